"""The ONNX backend: the network alone, run by onnxruntime.

Only the network is exported. Decoding, log-mel features, windows, the energy
gate and the calibration temperature stay in the package's Python code, so the
two backends differ in nothing but who multiplies the matrices (a test holds
their logits together within 1e-4).

The ONNX graph takes `features` of shape (batch, n_mels, frames) with a dynamic
batch axis and a frame count fixed by the model's window, and returns `logits`
(batch, 6). Its metadata_props carry the model file's JSON under `emotionnet`
(so the .onnx file describes itself) and the SHA-1 of the model file it came
from under `emotionnet.model_sha1`.

Where `--backend onnx` finds its .onnx: `<model file stem>.onnx` next to the
model file when that was exported from this very model file (a stale one is
ignored with a warning); otherwise a copy exported once into
`<cache_dir>/onnx/<sha1 of the model file>.onnx` (`load_model(cache_dir=...)`; default
`~/.cache/emotionnet`, the command line's `$EMOTIONNET_CACHE`) and reused from then on. Either is used only when its
answers on random windows agree with the model file's within 1e-4; otherwise it
is ignored with a warning and the network is exported again in memory.

The exporter is torch's TorchScript-based one (`dynamo=False`): it works
offline with the pinned torch, needs no `onnxscript`, takes well under a second
and handles both architectures (the CRNN's LSTM included) with a dynamic batch.
The torch.export-based exporter is tried only if that one is missing or fails.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from emotionnet.cache import cache_root
from emotionnet.digest import file_digest
from emotionnet.errors import EmotionNetError
from emotionnet.extras import MissingExtraError, require
from emotionnet.models.file import METADATA_KEY
from emotionnet.models.registry import family_of
from emotionnet.models.spec import ModelSpec, ModelSpecError

OPSET = 17
SHA1_KEY = f"{METADATA_KEY}.model_sha1"
INPUT_NAME, OUTPUT_NAME = "features", "logits"


class OnnxBackendError(EmotionNetError, RuntimeError):
    """The ONNX model could not be exported, loaded or run."""


class StaleOnnxWarning(UserWarning):
    """An .onnx next to a model file that was exported from another model file."""


EXPORT_TOLERANCE = 1e-4  # largest |logit difference| to torch an export may show


def onnx_cache_folder(cache_dir: str | Path | None = None) -> Path:
    """Where exports of model files are kept: `onnx/` in the cache folder (`emotionnet.cache.cache_root`)."""
    return cache_root(cache_dir) / "onnx"


def check_exportable(spec: ModelSpec) -> None:
    """OnnxBackendError, before anything is exported or written, for a model ONNX cannot run.

    The model's family says (`ModelFamily.onnx_refusal`); the whisper family's encoder export loads
    in onnxruntime only to be refused (`NOT_IMPLEMENTED ... MatMul(13)` for its float16 products),
    and a head on windows of any length is not one graph of one input length.
    """
    family = family_of(spec)
    if family.onnx_refusal:
        raise OnnxBackendError(f"{family.name} models run on the torch backend only: {family.onnx_refusal} "
                               "(CRNN and CNN model files are)")


def export_bytes(model: torch.nn.Module, metadata: dict, source_sha1: str | None = None,
                 spec: ModelSpec | None = None) -> bytes:
    """The serialised ONNX model of `model`, its metadata stored in metadata_props (`spec`: parsed already)."""
    spec = spec or ModelSpec.from_metadata(metadata)
    check_exportable(spec)
    onnx = require("onnx", "ONNX export", "onnx")

    n_mels, frames = spec.input_shape
    example = torch.zeros(1, n_mels, frames)
    model = model.eval()
    proto = _export(model, example)
    props = {METADATA_KEY: json.dumps(metadata)}
    if source_sha1:
        props[SHA1_KEY] = source_sha1
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "emotionnet"
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def _export(model: torch.nn.Module, example: torch.Tensor):
    onnx = require("onnx", "ONNX export", "onnx")

    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            # The TorchScript exporter is deprecated but present in the pinned torch;
            # the LSTM batch-size warning does not apply (frames are fixed, h0/c0 are zeros).
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, (example,), buffer, dynamo=False, opset_version=OPSET,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            )
        return onnx.load_from_string(buffer.getvalue())
    except Exception as legacy_error:  # the legacy exporter is gone or refused the model
        try:
            batch = torch.export.Dim("batch")
            program = torch.onnx.export(
                model, (example,), None, dynamo=True, opset_version=OPSET,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamic_shapes=({0: batch},),
            )
            return program.model_proto
        except Exception as dynamo_error:
            hint = " (the torch.export-based exporter needs 'pip install onnxscript')" \
                if isinstance(dynamo_error, ImportError) else ""
            raise OnnxBackendError(
                f"ONNX export failed: TorchScript exporter: {legacy_error}; "
                f"torch.export-based exporter: {dynamo_error}{hint}"
            ) from None


def export_onnx(
    model: torch.nn.Module, metadata: dict, out_path: str | Path, source_sha1: str | None = None,
    spec: ModelSpec | None = None,
) -> Path:
    """Write the network alone as ONNX (atomically); `source_sha1` names the model file it came from."""
    out_path = Path(out_path)
    data = export_bytes(model, metadata, source_sha1, spec)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f"{out_path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return out_path


def difference(scorer: OnnxScorer, model: torch.nn.Module, seed: int = 0) -> float:
    """The largest |logit difference| between an ONNX scorer and torch, on random input windows."""
    check = torch.randn(4, scorer.n_mels, scorer.frames, generator=torch.Generator().manual_seed(seed))
    with torch.inference_mode():
        expected = model(check)
    return float(np.abs(scorer(check).numpy() - expected.numpy()).max())


def export_difference(model: torch.nn.Module, onnx_path: str | Path, spec: ModelSpec, seed: int = 0) -> float:
    """The largest |logit difference| between an exported .onnx file and torch."""
    return difference(OnnxScorer(onnx_path, *spec.input_shape), model, seed)


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    """The metadata_props of an ONNX file, without loading its weights into a session."""
    onnx = require("onnx", "reading an .onnx file", "onnx")

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


def _matches(onnx_path: Path, sha1: str) -> bool:
    try:
        return read_onnx_metadata(onnx_path).get(SHA1_KEY) == sha1
    except Exception:  # unreadable or not ONNX: not ours to use
        return False


def locate_onnx(model_file: str | Path, model: torch.nn.Module, metadata: dict,
                spec: ModelSpec | None = None, cache_dir: str | Path | None = None) -> Path | None:
    """The .onnx for a model file: its sibling, else the cache (exporting once). None if not writable."""
    model_file = Path(model_file)
    sha1 = file_digest(model_file)
    sibling = model_file.with_suffix(".onnx")
    if sibling.is_file():
        if _matches(sibling, sha1):
            return sibling
        warnings.warn(f"{sibling} was not exported from {model_file.name}; ignoring it "
                      f"(re-run 'emotionnet export --onnx {sibling} --model {model_file}')",
                      StaleOnnxWarning, stacklevel=2)
    cached = onnx_cache_folder(cache_dir) / f"{sha1}.onnx"
    if cached.is_file() and _matches(cached, sha1):
        return cached
    try:
        return export_onnx(model, metadata, cached, source_sha1=sha1, spec=spec)
    except OSError:
        return None  # a read-only home: the caller exports in memory instead


def session(source: str | Path | bytes):
    """An onnxruntime CPU session using torch's thread count."""
    ort = require("onnxruntime", "the ONNX backend", "onnx")

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    model = source if isinstance(source, bytes) else str(source)
    try:
        return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise OnnxBackendError(f"onnxruntime could not load the model ({exc})") from None


class OnnxScorer:
    """(windows, n_mels, frames) model inputs -> logits, computed by onnxruntime."""

    def __init__(self, source: str | Path | bytes, n_mels: int, frames: int):
        self.source = source if isinstance(source, bytes) else Path(source)
        self.n_mels, self.frames = n_mels, frames
        self.session = session(source)

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        if tuple(inputs.shape[1:]) != (self.n_mels, self.frames):
            raise OnnxBackendError(
                f"the ONNX model takes windows of {self.frames} frames (the model's own window); "
                f"got input of shape {tuple(inputs.shape)}"
            )
        array = np.ascontiguousarray(inputs.detach().cpu().numpy(), dtype=np.float32)
        (logits,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: array})
        return torch.from_numpy(logits)


def onnx_scorer(
    model_file: str | Path | None, model: torch.nn.Module, metadata: dict, spec: ModelSpec,
    cache_dir: str | Path | None = None,
) -> OnnxScorer:
    """A scorer backed by onnxruntime for this model (see the module docstring for where the .onnx comes from;
    `cache_dir`: the cache folder, default ~/.cache/emotionnet)."""
    check_exportable(spec)
    n_mels, frames = spec.input_shape
    path = locate_onnx(model_file, model, metadata, spec, cache_dir) if model_file is not None else None
    if path is not None:
        # The SHA-1 tag names the model file an .onnx claims to come from; the answers verify it
        # (a file with tampered weights and a copied tag would otherwise run, silently wrong).
        scorer = OnnxScorer(path, n_mels, frames)
        gap = difference(scorer, model)
        if gap <= EXPORT_TOLERANCE:
            return scorer
        warnings.warn(f"{path} answers differently from {Path(model_file).name} (|logit difference| {gap:.1e}); "
                      f"ignoring it (re-run 'emotionnet export --onnx {path} --model {model_file}')",
                      StaleOnnxWarning, stacklevel=2)
    return OnnxScorer(export_bytes(model, metadata, spec=spec), n_mels, frames)


def read_onnx_file(onnx_path: str | Path) -> tuple[OnnxScorer, ModelSpec, dict]:
    """The scorer, spec and model description of an exported .onnx file (its metadata_props hold the JSON).

    This is what `load_model("x.onnx")` runs: the file the user exported, not the
    shipped model's sibling.
    """
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise OnnxBackendError(f"{onnx_path}: file not found")
    try:
        props = read_onnx_metadata(onnx_path)
        metadata = json.loads(props[METADATA_KEY])
        if not isinstance(metadata, dict):
            raise ValueError("its metadata is not a JSON object")
        spec = ModelSpec.from_metadata(metadata)
    except MissingExtraError:
        raise
    except ModelSpecError as exc:
        raise OnnxBackendError(f"{onnx_path}: its model description is not valid ({exc})") from None
    except KeyError:
        raise OnnxBackendError(f"{onnx_path}: an ONNX file without EmotionNet metadata "
                               "(write one with 'emotionnet export --onnx')") from None
    except Exception as exc:  # not ONNX at all, or damaged
        raise OnnxBackendError(f"{onnx_path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    return OnnxScorer(onnx_path, *spec.input_shape), spec, metadata
