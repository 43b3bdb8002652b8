"""The model file: one .safetensors holding weights and a JSON description.

safetensors never unpickles, so loading a file from anywhere is safe. The JSON
under the metadata key `emotionnet` carries everything needed to rebuild the
model and its features (read into a `ModelSpec`): nothing is assumed from code
defaults. A file is checked in the order that keeps a crafted one cheap: the
JSON first, then the tensors' names and shapes against the architecture it
describes (built on torch's `meta` device, which allocates nothing), and only
then are the weights read, and checked to be finite.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from emotionnet.errors import EmotionNetError
from emotionnet.labels import LABELS
from emotionnet.models.family import LoadOptions
from emotionnet.models.registry import build_model, family_of
from emotionnet.models.spec import ModelSpec, ModelSpecError

FORMAT = 1
METADATA_KEY = "emotionnet"
MAX_METADATA_BYTES = 16 * 2**20  # far above any real description (the shipped one is ~30 kB)


class LoadedModel(NamedTuple):
    """A model file read and rebuilt: the network in eval mode, its parsed spec, and the file's whole JSON."""

    network: nn.Module
    spec: ModelSpec
    metadata: dict


class ModelFileError(EmotionNetError, ValueError):
    """A model file that is missing, truncated, foreign, of an unknown format or describes an impossible model."""


def save_model_file(path: str | Path, model: nn.Module, metadata: dict) -> None:
    """Write weights and metadata atomically (a crash never leaves half a file)."""
    meta = {"format": FORMAT, "labels": list(LABELS), **metadata}
    ModelSpec.from_metadata(meta)  # never write a file that would not load
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={METADATA_KEY: json.dumps(meta)})
    os.chmod(tmp, 0o644)  # a model file is meant to be shared; the temporary file was private
    os.replace(tmp, path)


def _check_metadata(path: Path, raw: str | None) -> dict:
    if raw is None:
        raise ModelFileError(f"{path}: a safetensors file, but not an EmotionNet model (no '{METADATA_KEY}' metadata)")
    if len(raw) > MAX_METADATA_BYTES:
        raise ModelFileError(f"{path}: its EmotionNet metadata is {len(raw)} bytes, more than a model file holds")
    try:
        meta = json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        raise ModelFileError(f"{path}: its EmotionNet metadata is not valid JSON") from None
    if not isinstance(meta, dict):
        raise ModelFileError(f"{path}: its EmotionNet metadata is a JSON {type(meta).__name__}, not an object")
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: model file format {meta.get('format')!r}; this version reads format {FORMAT}")
    return meta


def _check_shapes(path: Path, spec: ModelSpec, shapes: dict[str, list[int]]) -> None:
    """The file's tensors are exactly the described architecture's, name by name and shape by shape."""
    with torch.device("meta"):
        expected = {k: list(v.shape) for k, v in build_model(spec.arch, **spec.hparams).state_dict().items()}
    if set(shapes) != set(expected):
        extra, missing = sorted(set(shapes) - set(expected)), sorted(set(expected) - set(shapes))
        raise ModelFileError(f"{path}: weights do not match the architecture it describes ({spec.arch}: "
                             f"unexpected {extra[:3]}, missing {missing[:3]})")
    for name, shape in expected.items():
        if shapes[name] != shape:
            raise ModelFileError(f"{path}: weights do not match the architecture it describes ({spec.arch}: "
                                 f"{name} is {shapes[name]}, the description gives {shape})")


def _open_checked(path: Path) -> tuple[dict[str, torch.Tensor], dict, ModelSpec]:
    if path.is_dir():
        raise ModelFileError(f"{path}: is a folder, not a model file")
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = _check_metadata(path, (f.metadata() or {}).get(METADATA_KEY))
            try:
                spec = ModelSpec.from_metadata(meta)
            except ModelSpecError as exc:
                raise ModelFileError(f"{path}: {exc}") from None
            _check_shapes(path, spec, {k: list(f.get_slice(k).get_shape()) for k in f.keys()})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except ModelFileError:
        raise
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as exc:
        raise ModelFileError(f"{path}: not a readable .safetensors model file ({exc})") from None
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ModelFileError(f"{path}: weight {name} holds NaN or infinite values")
    return tensors, meta, spec


def read_model_spec(path: str | Path) -> ModelSpec:
    """The spec a model file describes, its JSON checked, its weights not read."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = _check_metadata(path, (f.metadata() or {}).get(METADATA_KEY))
    except ModelFileError:
        raise
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as exc:
        raise ModelFileError(f"{path}: not a readable .safetensors model file ({exc})") from None
    try:
        return ModelSpec.from_metadata(meta)
    except ModelSpecError as exc:
        raise ModelFileError(f"{path}: {exc}") from None


def read_model_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Weights and metadata of a model file, checked for format, description, shapes and values."""
    tensors, meta, _ = _open_checked(Path(path))
    return tensors, meta


def load_model_file(path: str | Path, options: LoadOptions | None = None) -> LoadedModel:
    """Rebuild the model described by a file, in eval mode, with its weights, and the spec it was parsed into.

    `options` reach what the model's family attaches after loading (the whisper family's encoder).
    """
    tensors, meta, spec = _open_checked(Path(path))
    model = build_model(spec.arch, **spec.hparams)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:  # a dtype the parameters cannot take
        raise ModelFileError(f"{path}: weights do not match the architecture it describes ({exc})") from None
    family = family_of(spec)
    if family.attach is not None:
        try:
            family.attach(model, spec.hparams, options or LoadOptions())
        except ValueError as exc:  # the weights it needs are not the ones the file was trained with
            raise ModelFileError(f"{path}: {exc}") from None
    # Channels-last roughly halves CNN inference time on CPU (oneDNN's preferred layout).
    return LoadedModel(model.to(memory_format=torch.channels_last).eval(), spec, meta)
