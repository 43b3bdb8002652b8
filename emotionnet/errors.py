"""The package's error tree: every error EmotionNet raises on purpose is an `EmotionNetError`.

    except emotionnet.EmotionNetError:   # anything EmotionNet refused, with a message that says why

Each error also keeps the built-in base it always had (most are ValueErrors), so code that
catches those goes on working. Errors are told apart by their class, never by their message.
"""

from __future__ import annotations


class EmotionNetError(Exception):
    """The root of every error EmotionNet raises on purpose."""


class EncoderWeightsError(EmotionNetError, ValueError):
    """Pretrained encoder weights that are missing, unreadable or not the ones a model needs (the message says which)."""


class CTranslate2FormatError(EmotionNetError, ValueError):
    """Bytes that are not a CTranslate2 model file of a version this reader knows."""
