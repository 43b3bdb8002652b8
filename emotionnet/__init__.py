"""EmotionNet: six emotions from speech, with a trained model inside.

    from emotionnet import load_model
    recognizer = load_model()
    print(recognizer.predict("speech.wav"))

The names below load on first use, so `import emotionnet` (and the command
line's `--help` and `--version`) costs no torch import.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

try:
    __version__ = version("emotionnet")  # pyproject.toml is the one place the version is written
except PackageNotFoundError:  # a checkout on sys.path that was never installed
    __version__ = "0+unknown"

# Public name -> the module that defines it.
_EXPORTS = {
    "LABELS": "emotionnet.labels",
    "AudioError": "emotionnet.errors",
    "AudioWarning": "emotionnet.audio",
    "AudioNotFoundError": "emotionnet.errors",
    "AudioTooLongError": "emotionnet.errors",
    "MissingExtraError": "emotionnet.extras",
    "load_audio": "emotionnet.audio",
    "ModelFileError": "emotionnet.models.file",
    "EmotionNetError": "emotionnet.errors",
    "BatchJobError": "emotionnet.batch.job",
    "OutputError": "emotionnet.batch.output",
    "ImageError": "emotionnet.errors",
    "DetectorFileError": "emotionnet.errors",
    "EnvironmentSettingError": "emotionnet.environment",
    "EncoderWeightsError": "emotionnet.errors",
    "CTranslate2FormatError": "emotionnet.errors",
    "ModelSpec": "emotionnet.models.spec",
    "ModelSpecError": "emotionnet.models.spec",
    "EmotionRecognizer": "emotionnet.inference.recognizer",
    "load_model": "emotionnet.inference.recognizer",
    "available_models": "emotionnet.models.names",
    "UnknownModelError": "emotionnet.inference.recognizer",
    "FileResult": "emotionnet.inference.results",
    "Prediction": "emotionnet.inference.results",
    "Segment": "emotionnet.inference.results",
    "Timeline": "emotionnet.inference.results",
    "OnnxBackendError": "emotionnet.inference.onnx_backend",
    "StaleOnnxWarning": "emotionnet.inference.onnx_backend",
    "MicrophoneError": "emotionnet.streaming.sources",
    "CameraError": "emotionnet.streaming.video_sources",
    "TrainingError": "emotionnet.training.trainer",
    "VideoError": "emotionnet.video",
    "open_video": "emotionnet.video",
}

__all__ = [
    "LABELS", "AudioError", "AudioNotFoundError", "AudioTooLongError", "AudioWarning", "BatchJobError", "OutputError",
    "CTranslate2FormatError", "DetectorFileError", "ImageError", "EmotionRecognizer", "EmotionNetError",
    "EncoderWeightsError", "EnvironmentSettingError", "FileResult", "MicrophoneError", "CameraError", "MissingExtraError",
    "ModelFileError", "ModelSpec", "ModelSpecError", "OnnxBackendError", "Prediction", "Segment",
    "StaleOnnxWarning", "Timeline", "TrainingError", "UnknownModelError", "VideoError", "available_models", "load_audio", "load_model",
    "open_video",
]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'emotionnet' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # the next access skips this function
    return value


def __dir__() -> list[str]:
    """The public names, each once (not the module's own imports: `importlib`, `TYPE_CHECKING`, ...)."""
    return sorted({*__all__, "__version__"})


if TYPE_CHECKING:
    from emotionnet.audio import AudioWarning, load_audio
    from emotionnet.batch.job import BatchJobError
    from emotionnet.batch.output import OutputError
    from emotionnet.environment import EnvironmentSettingError
    from emotionnet.errors import (
        AudioError,
        AudioNotFoundError,
        AudioTooLongError,
        CTranslate2FormatError,
        DetectorFileError,
        EmotionNetError,
        EncoderWeightsError,
        ImageError,
    )
    from emotionnet.extras import MissingExtraError
    from emotionnet.inference.onnx_backend import OnnxBackendError, StaleOnnxWarning
    from emotionnet.inference.recognizer import EmotionRecognizer, UnknownModelError, load_model
    from emotionnet.inference.results import FileResult, Prediction, Segment, Timeline
    from emotionnet.labels import LABELS
    from emotionnet.models.file import ModelFileError
    from emotionnet.models.names import available_models
    from emotionnet.models.spec import ModelSpec, ModelSpecError
    from emotionnet.streaming.sources import MicrophoneError
    from emotionnet.streaming.video_sources import CameraError
    from emotionnet.training.trainer import TrainingError
    from emotionnet.video import VideoError, open_video
