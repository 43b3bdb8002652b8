"""EmotionRecognizer: the public way to load a model once and call it on audio.

    recognizer = load_model()                      # $EMOTIONNET_MODEL, else the model shipped in the package
    recognizer.predict("clip.wav").emotion         # 'angry'
    recognizer.predict_timeline(array, 48000)      # windows over a long recording
    for result in recognizer.predict_files(paths): # many files in shared batches
        print(result.path, result.timeline or result.error)

A speaker-normalised model (the shipped one) hears a clip best against the same
speaker's other audio: pass `context=recognizer.speaker_context([...])` to
`predict`/`predict_timeline`, or `same_speaker=True` to `predict_files`.
The scoring itself (windows, energy gate, calibration) is `inference/scoring.py`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from emotionnet.audio import AudioError, AudioSource, to_audio
from emotionnet.features import BandStats, FeatureConfig, band_stats, log_mel
from emotionnet.inference import blocks
from emotionnet.inference.results import FileResult, Prediction, Timeline
from emotionnet.inference.scoring import WindowScorer
from emotionnet.labels import LABELS
from emotionnet.models.file import load_model_file
from emotionnet.models.spec import ModelSpec, check_window

MODEL_ENV = "EMOTIONNET_MODEL"  # the model file used when none is named (the CLI and the app honour it too)
BACKENDS = ("torch", "onnx")


def default_model_path() -> Path:
    """The model shipped inside the package."""
    return Path(str(resources.files("emotionnet") / "assets" / "model.safetensors"))


def resolve_model_path(path: str | Path | None = None) -> Path:
    """`path`, else $EMOTIONNET_MODEL, else the shipped model."""
    return Path(path or os.environ.get(MODEL_ENV) or default_model_path())


class EmotionRecognizer:
    """A trained model with its feature settings, window and calibration."""

    def __init__(self, model_file: str | Path | None = None, backend: str = "torch"):
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose torch or onnx")
        self.model_file: Path | None = resolve_model_path(model_file)
        model, self.metadata = load_model_file(self.model_file)
        spec = ModelSpec.from_metadata(self.metadata)
        self.backend = backend
        if backend == "onnx":
            from emotionnet.inference.onnx_backend import onnx_scorer

            self.scoring = WindowScorer(onnx_scorer(self.model_file, model, self.metadata, spec), spec)
        else:
            self.scoring = WindowScorer(model, spec)

    @classmethod
    def from_model(cls, model: torch.nn.Module, metadata: dict | ModelSpec) -> EmotionRecognizer:
        """Wrap a model in memory (during training, say) with its would-be file metadata or its spec."""
        recognizer = cls.__new__(cls)
        recognizer.model_file = None
        recognizer.metadata = metadata.to_metadata() if isinstance(metadata, ModelSpec) else metadata
        spec = metadata if isinstance(metadata, ModelSpec) else ModelSpec.from_metadata(metadata)
        recognizer.backend = "torch"
        recognizer.scoring = WindowScorer(model, spec)
        return recognizer

    @property
    def spec(self) -> ModelSpec:
        return self.scoring.spec

    @property
    def features(self) -> FeatureConfig:
        return self.spec.features

    @property
    def window(self) -> float:
        return self.spec.window

    @property
    def hop(self) -> float:
        return self.spec.hop

    @property
    def temperature(self) -> float:
        return self.spec.temperature

    @property
    def labels(self) -> tuple[str, ...]:
        return LABELS

    def predict(
        self, audio: AudioSource, sample_rate: int | None = None, context: BandStats | None = None
    ) -> Prediction:
        """The emotion of one clip (a path, file bytes, or an array with its sample rate)."""
        return self.predict_timeline(audio, sample_rate, context=context).prediction

    def predict_timeline(
        self, audio: AudioSource, sample_rate: int | None = None, *,
        window: float | None = None, hop: float | None = None, max_seconds: float | None = None,
        context: BandStats | None = None,
    ) -> Timeline:
        """Emotion per window over time, plus the overall answer.

        `context` (from `speaker_context`) reads the clip against its speaker's voice.
        """
        window, hop = self._window_hop(window, hop)
        if isinstance(audio, (str, Path, bytes)) and blocks.is_long(audio):  # bounded memory (issue 13)
            return blocks.score_in_blocks(self.scoring, audio, window, hop, max_seconds, context=context)
        samples = to_audio(audio, sample_rate, max_seconds=max_seconds)
        mel = log_mel(samples, self.features)
        contexts = [context if self.features.normalisation == "speaker" else None]
        return self.scoring.timelines([mel], [self._seconds(samples)], window, hop, contexts=contexts,
                                      audios=[samples])[0]

    def speaker_context(self, sources: Iterable[AudioSource], sample_rate: int | None = None) -> BandStats:
        """The statistics of one speaker's audio (files, bytes or arrays at `sample_rate`), for `context=`."""
        mels = [log_mel(to_audio(source, sample_rate), self.features) for source in sources]
        if not mels:
            raise ValueError("a speaker context needs at least one clip of the speaker")
        return band_stats(mels)

    def predict_files(
        self, paths: Iterable[str | Path], *, window: float | None = None, hop: float | None = None,
        batch_seconds: float = 120.0, max_seconds: float | None = None, same_speaker: bool = False,
    ) -> Iterator[FileResult]:
        """A `FileResult` per path, in order: its timeline, or the error of a file that could not be read.

        Files are scored together in batches of about `batch_seconds` of audio.
        `same_speaker` says the files are one speaker's: a speaker-normalised model then
        reads each against all of them, so every file is loaded before any is scored.
        Window and hop are checked here, before any file is read.
        """
        window, hop = self._window_hop(window, hop)
        return self._predict_files(paths, window, hop, float("inf") if same_speaker else batch_seconds,
                                   max_seconds, same_speaker)

    def _predict_files(self, paths, window, hop, batch_seconds, max_seconds, same_speaker) -> Iterator[FileResult]:
        pending: list[tuple[str, np.ndarray | None, str | None]] = []
        seconds = 0.0

        def flush() -> Iterator[FileResult]:
            loaded = [(path, samples) for path, samples, _ in pending if samples is not None]
            mels = [log_mel(samples, self.features) for _, samples in loaded]
            speakers = ["same"] * len(mels) if same_speaker else None
            timelines = iter(self.scoring.timelines(mels, [self._seconds(s) for _, s in loaded], window, hop,
                                                    speakers, audios=[s for _, s in loaded]) if mels else [])
            for path, samples, error in pending:  # in the order given, failures in their place
                yield FileResult(path, error=error) if samples is None else FileResult(path, next(timelines))

        for path in paths:
            if not same_speaker and blocks.is_long(path):  # bounded memory (issue 13)
                if pending:
                    yield from flush()
                    pending, seconds = [], 0.0
                try:
                    yield FileResult(str(path), blocks.score_in_blocks(self.scoring, path, window, hop, max_seconds))
                except AudioError as exc:
                    yield FileResult(str(path), error=str(exc))
                continue
            try:
                samples = to_audio(path, max_seconds=max_seconds)
            except AudioError as exc:
                pending.append((str(path), None, str(exc)))
                continue
            pending.append((str(path), samples, None))
            seconds += self._seconds(samples)
            if seconds >= batch_seconds:
                yield from flush()
                pending, seconds = [], 0.0
        if pending:
            yield from flush()

    def _seconds(self, samples: np.ndarray) -> float:
        return samples.size / self.features.sample_rate

    def _window_hop(self, window: float | None, hop: float | None) -> tuple[float, float]:
        window = self.window if window is None else window
        hop = self.hop if hop is None else hop
        check_window(window, hop)
        if self.backend == "onnx" and self.scoring.frames(window) != self.scoring.frames(self.window):
            raise ValueError(f"window {window:g} s with the onnx backend: the ONNX network takes the model's "
                             f"own {self.window:g} s window (use the torch backend for another window)")
        return window, hop


def load_model(path: str | Path | None = None, backend: str = "torch") -> EmotionRecognizer:
    """A model file (default: $EMOTIONNET_MODEL, else the model shipped in the package)."""
    return EmotionRecognizer(path, backend=backend)


def load_onnx_recognizer(onnx_path: str | Path) -> EmotionRecognizer:
    """A recognizer run entirely from an exported .onnx file (`emotionnet predict --model x.onnx`)."""
    from emotionnet.inference.onnx_backend import read_onnx_file

    scorer, metadata = read_onnx_file(onnx_path)
    recognizer = EmotionRecognizer.from_model(scorer, metadata)
    recognizer.model_file, recognizer.backend = Path(onnx_path), "onnx"
    return recognizer
