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
    "AudioError": "emotionnet.audio",
    "AudioWarning": "emotionnet.audio",
    "AudioNotFoundError": "emotionnet.audio",
    "AudioTooLongError": "emotionnet.audio",
    "MissingExtraError": "emotionnet.extras",
    "load_audio": "emotionnet.audio",
    "ModelFileError": "emotionnet.models.file",
    "EncoderWeightsError": "emotionnet.models.whisper.weights",
    "CTranslate2FormatError": "emotionnet.models.whisper.ctranslate2_file",
    "ModelSpec": "emotionnet.models.spec",
    "ModelSpecError": "emotionnet.models.spec",
    "EmotionRecognizer": "emotionnet.inference.recognizer",
    "load_model": "emotionnet.inference.recognizer",
    "UnknownModelError": "emotionnet.inference.recognizer",
    "FileResult": "emotionnet.inference.results",
    "Prediction": "emotionnet.inference.results",
    "Segment": "emotionnet.inference.results",
    "Timeline": "emotionnet.inference.results",
    "OnnxBackendError": "emotionnet.inference.onnx_backend",
    "StaleOnnxWarning": "emotionnet.inference.onnx_backend",
    "MicrophoneError": "emotionnet.streaming.sources",
    "TrainingError": "emotionnet.training.trainer",
    "VideoError": "emotionnet.video",
    "open_video": "emotionnet.video",
}

__all__ = [
    "LABELS", "AudioError", "AudioNotFoundError", "AudioTooLongError", "AudioWarning", "CTranslate2FormatError", "EmotionRecognizer", "EncoderWeightsError", "FileResult", "MicrophoneError", "MissingExtraError",
    "ModelFileError", "ModelSpec", "ModelSpecError", "OnnxBackendError", "Prediction", "Segment",
    "StaleOnnxWarning", "Timeline", "TrainingError", "UnknownModelError", "VideoError", "load_audio", "load_model",
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
    from emotionnet.audio import AudioError, AudioNotFoundError, AudioTooLongError, AudioWarning, load_audio
    from emotionnet.extras import MissingExtraError
    from emotionnet.inference.onnx_backend import OnnxBackendError, StaleOnnxWarning
    from emotionnet.inference.recognizer import EmotionRecognizer, UnknownModelError, load_model
    from emotionnet.inference.results import FileResult, Prediction, Segment, Timeline
    from emotionnet.labels import LABELS
    from emotionnet.models.file import ModelFileError
    from emotionnet.models.spec import ModelSpec, ModelSpecError
    from emotionnet.models.whisper.ctranslate2_file import CTranslate2FormatError
    from emotionnet.models.whisper.weights import EncoderWeightsError
    from emotionnet.streaming.sources import MicrophoneError
    from emotionnet.training.trainer import TrainingError
    from emotionnet.video import VideoError, open_video
