"""The model file: one .safetensors holding weights and a JSON description.

safetensors never unpickles, so loading a file from anywhere is safe. The JSON
under the metadata key `emotionnet` carries everything needed to rebuild the
model and its features: nothing is assumed from code defaults.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from emotionnet.labels import LABELS
from emotionnet.models import build_model

FORMAT = 1
METADATA_KEY = "emotionnet"


class ModelFileError(ValueError):
    """A model file that is missing, truncated, foreign or of an unknown format."""


def save_model_file(path: str | Path, model: nn.Module, metadata: dict) -> None:
    """Write weights and metadata atomically (a crash never leaves half a file)."""
    meta = {"format": FORMAT, "labels": list(LABELS), **metadata}
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={METADATA_KEY: json.dumps(meta)})
    os.chmod(tmp, 0o644)  # a model file is meant to be shared; the temporary file was private
    os.replace(tmp, path)


def read_model_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Weights and metadata of a model file, checked for shape and format."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(METADATA_KEY)
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: not a readable .safetensors model file ({exc})") from None
    if raw is None:
        raise ModelFileError(f"{path}: a safetensors file, but not an EmotionNet model (no '{METADATA_KEY}' metadata)")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError:
        raise ModelFileError(f"{path}: its EmotionNet metadata is not valid JSON") from None
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: model file format {meta.get('format')!r}; this version reads format {FORMAT}")
    if tuple(meta.get("labels", ())) != LABELS:
        raise ModelFileError(f"{path}: labels {meta.get('labels')} differ from {list(LABELS)}")
    return tensors, meta


def load_model_file(path: str | Path) -> tuple[nn.Module, dict]:
    """Rebuild the model described by a file, in eval mode, with its weights."""
    tensors, meta = read_model_file(path)
    spec = meta.get("model", {})
    try:
        model = build_model(spec["arch"], **spec.get("hparams", {}))
        model.load_state_dict(tensors, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: weights do not match the architecture it describes ({exc})") from None
    # Channels-last roughly halves CNN inference time on CPU (oneDNN's preferred layout).
    return model.to(memory_format=torch.channels_last).eval(), meta
