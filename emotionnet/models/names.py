"""The one table of model names: a name is a model file shipped inside the package.

    available_models()        # ['default', 'whisper-base']
    model_path("default")     # that file's path

As openai/whisper's `_MODELS` and `available_models()`. What a file needs to run (the whisper
family's encoder weights) its family declares (models/registry.py), not this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

DEFAULT_MODEL = "default"  # what `load_model()` and every command without `--model` use
FACE_MODEL = "face"  # what images and video frames are read with unless `--face-model` says otherwise


@dataclass(frozen=True)
class ShippedModel:
    file: str  # under emotionnet/assets/
    description: str


MODELS: dict[str, ShippedModel] = {
    DEFAULT_MODEL: ShippedModel("model.safetensors", "the CRNN shipped in the package: fast, exportable to ONNX"),
    "whisper-base": ShippedModel("whisper-base.safetensors",
                                 "a head on the frozen Whisper-base encoder (needs the Whisper-base weights)"),
    FACE_MODEL: ShippedModel("face.safetensors", "faces in images and video frames: BlazeFace + a small CNN "
                                                 "trained on FER2013"),
}


def available_models() -> list[str]:
    """The model names `load_model` and every `--model` take (besides a model file)."""
    return list(MODELS)


def model_path(name: str) -> Path:
    """The shipped file of model `name` (KeyError for a name not in `MODELS`)."""
    return Path(str(resources.files("emotionnet") / "assets" / MODELS[name].file))


def models_help() -> str:
    """One line per name for `--model` help texts: `name: description`."""
    return "; ".join(f"{name}: {model.description}" for name, model in MODELS.items())
