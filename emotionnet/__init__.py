"""EmotionNet: six emotions from speech, with a trained model inside.

    from emotionnet import load_model
    recognizer = load_model()
    print(recognizer.predict("speech.wav"))
"""

__version__ = "0.1.0"

from emotionnet.audio import AudioError, load_audio  # noqa: E402
from emotionnet.inference.recognizer import (  # noqa: E402
    EmotionRecognizer,
    Prediction,
    Segment,
    Timeline,
    load_model,
)
from emotionnet.labels import LABELS  # noqa: E402
from emotionnet.models.file import ModelFileError  # noqa: E402

__all__ = [
    "LABELS", "AudioError", "EmotionRecognizer", "ModelFileError", "Prediction",
    "Segment", "Timeline", "load_audio", "load_model",
]
