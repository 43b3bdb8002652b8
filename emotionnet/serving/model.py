"""The service's one door to the recognizer: load, decode, score, stream.

Every call into the inference API from `emotionnet.serving` goes through this
module, so a change of that API is a change here only.
"""

from __future__ import annotations

import numpy as np

from emotionnet.audio import AudioError


def is_too_long(exc: AudioError) -> bool:
    """Audio over the duration limit (answered 413), not bad audio (400)."""
    return "too long" in str(exc)


class ServedModel:
    """The recognizer loaded once per process, shared by every request and stream."""

    def __init__(self, recognizer):
        self.recognizer = recognizer

    @classmethod
    def load(cls, path: str | None = None) -> ServedModel:
        from emotionnet import load_model

        return cls(load_model(path))

    @property
    def name(self) -> str:
        return str(self.recognizer.model_file or "<in memory>")

    @property
    def sample_rate(self) -> int:
        return self.recognizer.features.sample_rate

    @property
    def window(self) -> float:
        return self.recognizer.window

    def windowing(self, window: float | None, hop: float | None):
        """The one window rule for this model (ValueError when the window or hop breaks it)."""
        return self.recognizer.windowing(window, hop)

    def decode(self, data: bytes, name: str, max_seconds: float) -> np.ndarray:
        """File bytes (any format libsndfile reads) -> 16 kHz mono float32, or an AudioError."""
        from emotionnet.audio import load_audio

        return load_audio(data, max_seconds=max_seconds, name=name)

    def score(self, audios: list[np.ndarray], window: float | None, hop: float | None) -> list:
        """Timelines of several decoded clips, their windows scored in shared batches."""
        return self.recognizer.predict_arrays(audios, window=window, hop=hop)

    def result(self, name: str | None, timeline) -> dict:
        """The `emotionnet predict --json` object of one clip."""
        from emotionnet.inference.results import FileResult

        return FileResult(name, timeline).to_dict()

    def stream_engine(self, hop: float, window: float | None = None):
        """A fresh live engine (one per WebSocket): results every `hop` seconds of audio."""
        from emotionnet.streaming import StreamEngine

        return StreamEngine(self.recognizer, window=window, hop=hop)
