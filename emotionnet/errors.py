"""The package's error tree: every error EmotionNet raises on purpose is an `EmotionNetError`.

    except emotionnet.EmotionNetError:   # anything EmotionNet refused, with a message that says why

    EmotionNetError
      AudioError (ValueError)            bad audio input; MicrophoneError (streaming/sources.py) beneath
        AudioNotFoundError               no file at the path given
        AudioTooLongError                over the caller's duration limit
      ModelFileError (ValueError)        a model file that cannot be loaded (models/file.py)
        UnknownModelError                a model name that is not in available_models()
      ModelSpecError (ValueError)        a model description out of bounds (models/family.py)
      EncoderWeightsError (ValueError)   pretrained encoder weights missing or not the model's
      CTranslate2FormatError (ValueError)
      EnvironmentSettingError (ValueError)  a variable the surfaces read, set to a value not allowed
      OnnxBackendError (RuntimeError)    the onnx backend cannot run (inference/onnx_backend.py)
      TrainingError (ValueError)         training cannot go on (training/trainer.py)
      MissingExtraError (ImportError)    an optional package is missing (extras.py)

Each error also keeps the built-in base it always had (most are ValueErrors), so code that
catches those goes on working. Errors are told apart by their class, never by their message.
"""

from __future__ import annotations


class EmotionNetError(Exception):
    """The root of every error EmotionNet raises on purpose."""


class AudioError(EmotionNetError, ValueError):
    """Audio that cannot be used (missing, unreadable, empty, too short, non-finite, too long, an impossible
    sample rate): the message names the input and the problem; `code` is the short stable name of the
    problem that JSON errors carry."""

    code = "bad_audio"


class AudioNotFoundError(AudioError):
    """No file at the path given."""

    code = "not_found"


class AudioTooLongError(AudioError):
    """Audio longer than the caller's limit (`max_seconds`): the service answers it 413, not 400."""

    code = "audio_too_long"


class ImageError(EmotionNetError, ValueError):
    """An image that cannot be used (missing, not JPEG/PNG/WebP, damaged, too many pixels); the message names
    the input and the problem."""


class DetectorFileError(EmotionNetError, RuntimeError):
    """The shipped face detector's weights are missing or not the file the package was built with."""


class EncoderWeightsError(EmotionNetError, ValueError):
    """Pretrained encoder weights that are missing, unreadable or not the ones a model needs (the message says which)."""


class CTranslate2FormatError(EmotionNetError, ValueError):
    """Bytes that are not a CTranslate2 model file of a version this reader knows."""
