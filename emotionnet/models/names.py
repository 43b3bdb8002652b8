"""The one table of model names: a name is a model file shipped inside the package.

    available_models()        # ['whisper-base', 'fast', 'face']
    model_path("fast")        # that file's path

As openai/whisper's `_MODELS` and `available_models()`. What a file needs to run (the whisper
family's encoder weights) its family declares (models/registry.py), not this table.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

DEFAULT_MODEL = "whisper-base"  # what `load_model()` and every command without `--model` use
FAST_MODEL = "fast"  # the CRNN: for devices where the Whisper-base encoder (145 MB, ~20 ms a window) is too much
FACE_MODEL = "face"  # what images and video frames are read with unless `--face-model` says otherwise


@dataclass(frozen=True)
class ShippedModel:
    file: str  # under emotionnet/assets/
    description: str


MODELS: dict[str, ShippedModel] = {
    DEFAULT_MODEL: ShippedModel("whisper-base.safetensors", "the default: a head on the frozen Whisper-base "
                                                            "encoder, the better ear on voices it never heard"),
    FAST_MODEL: ShippedModel("model.safetensors", "a small CRNN over log-mel: hundreds of times real time, "
                                                  "exportable to ONNX"),
    FACE_MODEL: ShippedModel("face.safetensors", "faces in images and video frames: BlazeFace + a small CNN "
                                                 "trained on FER2013"),
}


# Names a model went by before; each still loads, with a warning naming what it is now.
RENAMED: dict[str, str] = {"default": FAST_MODEL}  # the CRNN was "default" until whisper-base took that place


def available_models() -> list[str]:
    """The model names `load_model` and every `--model` take (besides a model file)."""
    return list(MODELS)


def is_model_name(name: object) -> bool:
    """Whether `name` names a shipped model (today's name or a former one)."""
    return isinstance(name, str) and (name in MODELS or name in RENAMED)


def model_path(name: str) -> Path:
    """The shipped file of model `name` (KeyError for a name not in `MODELS` or `RENAMED`)."""
    if name in RENAMED:
        warnings.warn(f"the model name {name!r} is now {RENAMED[name]!r} (the default model is {DEFAULT_MODEL})",
                      FutureWarning, stacklevel=2)
        name = RENAMED[name]
    return Path(str(resources.files("emotionnet") / "assets" / MODELS[name].file))


def models_help() -> str:
    """One line per name for `--model` help texts: `name: description`."""
    return "; ".join(f"{name}: {model.description}" for name, model in MODELS.items())


def display_name(model_file: str | Path | None) -> str:
    """What to call a loaded model when saying which one answered: its name for a shipped file
    ("whisper-base"), else the file's name without its folder."""
    if model_file is None:
        return "<in memory>"
    path = Path(model_file)
    shipped = {model_path(name).resolve(): name for name in MODELS}
    return shipped.get(path.resolve(), path.name)
