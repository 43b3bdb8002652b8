"""The environment variables a user may set, read and checked here, and only for the surfaces.

The library reads no environment: `load_model(name, vad=..., compute_type=..., encoder_weights=...,
cache_dir=...)` takes arguments (as faster-whisper takes `compute_type` and `vad_filter`), and so do
the feature and encoder caches (`cache_dir`) and training (`checkpoint_seconds`). The command line,
the service's settings, the app's server process and the encoder cache's own command call
`from_environment()` once and pass what it found down. A bad value is one line naming the variable,
the value and what is allowed.

| variable | meaning | allowed |
| --- | --- | --- |
| EMOTIONNET_MODEL | the model used when none is named | a model name (`available_models()`) or a model file |
| EMOTIONNET_VAD | the speech detector | auto (silero-vad where installed), silero, energy |
| EMOTIONNET_WHISPER | where the Whisper-base encoder's weights are | a CTranslate2 folder or model.bin, or base.pt |
| EMOTIONNET_WHISPER_BFLOAT16 | the Whisper encoder's matrix products | auto; 1, true, yes, on; 0, false, no, off |
| EMOTIONNET_CACHE | the cache folder (features, encoder states, ONNX exports) | a folder (default ~/.cache/emotionnet) |
| EMOTIONNET_CHECKPOINT_SECONDS | how often training saves within an epoch | seconds, 0 or more (default 120) |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from emotionnet.errors import EmotionNetError

MODEL_ENV = "EMOTIONNET_MODEL"
VAD_ENV = "EMOTIONNET_VAD"
WHISPER_ENV = "EMOTIONNET_WHISPER"
BFLOAT16_ENV = "EMOTIONNET_WHISPER_BFLOAT16"
CACHE_ENV = "EMOTIONNET_CACHE"
CHECKPOINT_ENV = "EMOTIONNET_CHECKPOINT_SECONDS"

DETECTORS = ("auto", "silero", "energy")  # vad.py's choices
_YES, _NO = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class EnvironmentSettingError(EmotionNetError, ValueError):
    """An environment variable set to a value that is not allowed (the message names both)."""


@dataclass(frozen=True)
class ModelSettings:
    """What the environment asks of `load_model`, the caches and training: None or "auto" where it asks
    nothing (the library's own defaults then apply)."""

    model: str | None = None
    vad: str = "auto"
    encoder_weights: str | None = None
    compute_type: str = "auto"
    cache_dir: str | None = None  # None: ~/.cache/emotionnet (emotionnet.cache.cache_root)
    checkpoint_seconds: float | None = None  # None: the trainer's default (CHECKPOINT_SECONDS)

    def load_options(self) -> dict:
        """Keyword arguments of `load_model` (beyond the model itself)."""
        return {"vad": self.vad, "encoder_weights": self.encoder_weights, "compute_type": self.compute_type,
                "cache_dir": self.cache_dir}


def _model(value: str) -> str:
    from emotionnet.models.names import available_models, is_model_name

    if is_model_name(value) or Path(value).is_file():
        return value
    raise EnvironmentSettingError(f"{MODEL_ENV}={value!r} is neither a model name ({', '.join(available_models())}) "
                                  "nor a model file that exists")


def _vad(value: str) -> str:
    choice = value.strip().lower()
    if choice not in DETECTORS:
        raise EnvironmentSettingError(f"{VAD_ENV}={value!r}: choose one of {', '.join(DETECTORS)}")
    return choice


def _encoder_weights(value: str) -> str:
    if not Path(value).exists():
        raise EnvironmentSettingError(f"{WHISPER_ENV}={value!r}: no such file or folder (a CTranslate2 Whisper "
                                      "folder or model.bin, or openai-whisper's base.pt)")
    return value


def _compute_type(value: str) -> str:
    choice = value.strip().lower()
    if choice in _YES:
        return "bfloat16"
    if choice in _NO:
        return "float32"
    if choice == "auto":
        return "auto"
    raise EnvironmentSettingError(f"{BFLOAT16_ENV}={value!r}: choose auto (bfloat16 where the CPU has it natively), "
                                  f"{', '.join(_YES)} or {', '.join(_NO)}")


def _cache_dir(value: str) -> str:
    if Path(value).is_file():
        raise EnvironmentSettingError(f"{CACHE_ENV}={value!r} is a file: name a folder (made when first used)")
    return value


def _checkpoint_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise EnvironmentSettingError(f"{CHECKPOINT_ENV}={value!r}: a number of seconds, 0 or more "
                                      "(0 saves after every step)")
    return seconds


def from_environment(environ: Mapping[str, str] | None = None, *, model: bool = True) -> ModelSettings:
    """The model settings of `environ` (default: this process's environment), each checked.

    `model=False` leaves EMOTIONNET_MODEL unread (a caller that reports a bad model file itself).
    """
    environ = os.environ if environ is None else environ

    def read(name: str, check, default):
        value = environ.get(name, "")
        return check(value) if value.strip() else default

    return ModelSettings(model=read(MODEL_ENV, _model, None) if model else None, vad=read(VAD_ENV, _vad, "auto"),
                         encoder_weights=read(WHISPER_ENV, _encoder_weights, None),
                         compute_type=read(BFLOAT16_ENV, _compute_type, "auto"),
                         cache_dir=read(CACHE_ENV, _cache_dir, None),
                         checkpoint_seconds=read(CHECKPOINT_ENV, _checkpoint_seconds, None))
