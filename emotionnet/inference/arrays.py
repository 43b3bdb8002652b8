"""Timelines of several decoded clips at once: the batched path the service and batch jobs share.

`EmotionRecognizer.predict_timeline` takes one clip and `predict_files` takes
paths; a service with concurrent requests and a batch worker with a chunk of
files both hold decoded arrays and want their windows scored in shared batches.
"""

from __future__ import annotations

import numpy as np

from emotionnet.features import log_mel
from emotionnet.models.spec import check_window


def timelines_of(recognizer, audios: list[np.ndarray], window: float | None = None,
                 hop: float | None = None) -> list:
    """A `Timeline` per 16 kHz mono array (each clip its own context), all windows scored together."""
    window = recognizer.window if window is None else window
    hop = recognizer.hop if hop is None else hop
    check_window(window, hop)
    features = recognizer.features
    mels = [log_mel(audio, features) for audio in audios]
    durations = [audio.size / features.sample_rate for audio in audios]
    return recognizer.scoring.timelines(mels, durations, window, hop, audios=audios)
