"""The service's one door to the recognizer: load, decode, score, stream.

Every call into the inference API from `emotionnet.serving` goes through this
module, so a change of that API is a change here only.
"""

from __future__ import annotations

from dataclasses import dataclass

from emotionnet.audio import AudioError
from emotionnet.errors import AudioTooLongError
from emotionnet.serving.scheduling import ScheduledNetwork, Turns


def is_too_long(exc: AudioError) -> bool:
    """Audio over the duration limit (answered 413), not bad audio (400)."""
    return isinstance(exc, AudioTooLongError)


@dataclass(frozen=True)
class AudioHeader:
    """What a file's header says, read before anything is decoded."""

    sample_rate: float
    seconds: float
    channels: int

    @property
    def samples(self) -> float:
        """Samples to decode, all channels counted: what decoding costs."""
        return self.seconds * self.sample_rate * self.channels


class ServedModel:
    """The recognizer loaded once per process, shared by every request and stream.

    Its network asks `turns` before each batch of windows (see `emotionnet.serving.scheduling`).
    """

    def __init__(self, recognizer, turns: Turns | None = None):
        from emotionnet.inference.recognizer import EmotionRecognizer

        self.turns = turns or Turns()
        network = ScheduledNetwork(recognizer.network, self.turns)
        self.recognizer = EmotionRecognizer(network, recognizer.spec, backend=recognizer.backend, vad=recognizer.vad,
                                            model_file=recognizer.model_file, metadata=recognizer.metadata)

    @classmethod
    def load(cls, path: str | None = None, load_options: dict | None = None) -> ServedModel:
        """`load_model(path, **load_options)` (the options the service's settings read from the environment)."""
        from emotionnet import load_model

        return cls(load_model(path, **(load_options or {})))

    @property
    def name(self) -> str:
        return str(self.recognizer.model_file or "<in memory>")

    @property
    def public_name(self) -> str:
        """The model's name ("whisper-base"), or its file's name without the folder: what anyone may be shown."""
        from emotionnet.models.names import display_name

        return display_name(self.recognizer.model_file)

    @property
    def sample_rate(self) -> int:
        return self.recognizer.features.sample_rate

    @property
    def window(self) -> float:
        return self.recognizer.window

    def windowing(self, window: float | None, hop: float | None):
        """The one window rule for this model (ValueError when the window or hop breaks it)."""
        return self.recognizer.windowing(window, hop)

    def header(self, source: bytes | str, name: str) -> AudioHeader:
        """The header of file bytes or a file, or an AudioError (unreadable, an absurd rate)."""
        import io

        import soundfile

        from emotionnet.audio import audio_info

        rate, seconds = audio_info(source, name=name)
        channels = soundfile.info(io.BytesIO(source) if isinstance(source, bytes) else source).channels
        return AudioHeader(rate, seconds, channels)

    def count_windows(self, seconds: float, window: float | None, hop: float | None) -> int:
        """How many windows `score` would cut from `seconds` of audio (window and hop checked already)."""
        from emotionnet.inference.windows import window_starts

        windowing = self.windowing(window, hop)
        frames = self.recognizer.features.frames_of_samples(int(seconds * self.sample_rate))
        return len(window_starts(frames, windowing.frames, windowing.hop_frames))

    def score_uploads(self, uploads: list[tuple[str, bytes | str]], window: float | None, hop: float | None,
                      max_seconds: float) -> list:
        """A timeline, or the exception that stopped it (an AudioError for bad audio, named by the upload's name;
        its class kept: an AudioTooLongError is answered 413), per upload (its name and its bytes or spooled
        file), through the package's one loop for many inputs (`predict_files`): decoded in turn, scored in
        shared batches (each alone should a batch fail), a long file in blocks."""
        from emotionnet.inference.many import AudioInput

        results = self.recognizer.predict_files([AudioInput(name, source) for name, source in uploads],
                                                window=window, hop=hop, max_seconds=max_seconds)
        return [result.timeline if result.ok else result.cause or RuntimeError(result.error) for result in results]

    def result(self, name: str | None, timeline) -> dict:
        """The `emotionnet predict --json` object of one clip."""
        from emotionnet.inference.results import FileResult

        return FileResult(name, timeline).to_dict()

    def stream_engine(self, hop: float, window: float | None = None):
        """A fresh live engine (one per WebSocket): results every `hop` seconds of audio."""
        from emotionnet.streaming import StreamEngine

        return StreamEngine(self.recognizer, window=window, hop=hop)
