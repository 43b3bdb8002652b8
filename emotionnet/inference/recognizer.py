"""EmotionRecognizer: load a model file once, then call it on audio.

    recognizer = EmotionRecognizer()              # the model shipped in the package
    recognizer.predict("clip.wav").emotion        # 'angry'
    recognizer.predict_timeline(array, 48000)     # windows over a long recording

Long audio is cut into windows (default 3 s every 1.5 s, stored in the model
file); windows an energy gate judges to be non-speech get no emotion, and the
overall answer is the mean of the speech windows' probabilities.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from emotionnet.audio import AudioError, AudioSource, to_audio
from emotionnet.features import BandStats, FeatureConfig, band_stats, log_mel
from emotionnet.inference import blocks, vad
from emotionnet.inference.windows import cut_windows, window_logits
from emotionnet.labels import LABELS
from emotionnet.models.file import load_model_file

Scorer = Callable[[torch.Tensor], torch.Tensor]  # (windows, mels, frames) -> logits


def default_model_path() -> Path:
    return Path(str(resources.files("emotionnet") / "assets" / "model.safetensors"))


@dataclass
class Prediction:
    emotion: str
    confidence: float
    probabilities: dict[str, float]

    @classmethod
    def from_probabilities(cls, probs: np.ndarray) -> Prediction:
        best = int(np.argmax(probs))
        return cls(LABELS[best], float(probs[best]), {label: float(p) for label, p in zip(LABELS, probs)})

    def to_dict(self) -> dict:
        return {"emotion": self.emotion, "confidence": self.confidence, "probabilities": self.probabilities}


@dataclass
class Segment:
    start: float
    end: float
    speech: bool
    prediction: Prediction | None  # None for non-speech

    def to_dict(self) -> dict:
        p = self.prediction
        return {"start": round(self.start, 3), "end": round(self.end, 3), "speech": self.speech,
                "emotion": p.emotion if p else None, "confidence": p.confidence if p else None,
                "probabilities": p.probabilities if p else None}


@dataclass
class Timeline:
    duration: float
    prediction: Prediction
    segments: list[Segment] = field(default_factory=list)
    speech: bool = True  # False when no window held speech: the answer is then a guess

    def to_dict(self) -> dict:
        data = {"duration": round(self.duration, 3), **self.prediction.to_dict()}
        if len(self.segments) > 1:
            data["segments"] = [s.to_dict() for s in self.segments]
        return data


class EmotionRecognizer:
    """A trained model with its feature settings, window and calibration."""

    def __init__(self, model_file: str | Path | None = None, backend: str = "torch"):
        self.model_file = Path(model_file) if model_file else default_model_path()
        model, metadata = load_model_file(self.model_file)
        self._setup(model, metadata, backend)

    @classmethod
    def from_model(cls, model: torch.nn.Module, metadata: dict) -> EmotionRecognizer:
        """Wrap a model in memory (during training, say) with its would-be file metadata."""
        recognizer = cls.__new__(cls)
        recognizer.model_file = None
        recognizer._setup(model, metadata, "torch")
        return recognizer

    def _setup(self, model: torch.nn.Module, metadata: dict, backend: str) -> None:
        self.metadata = metadata
        self.features = FeatureConfig.from_dict(self.metadata["features"])
        inference = self.metadata.get("inference", {})
        self.window = float(inference.get("window", 3.0))
        self.hop = float(inference.get("hop", 1.5))
        self.temperature = float(self.metadata.get("temperature", 1.0))
        self.backend = backend
        if backend == "torch":
            self.scorer: Scorer = model
        elif backend == "onnx":
            from emotionnet.inference.onnx_backend import onnx_scorer

            self.scorer = onnx_scorer(self.model_file, model, self.metadata)
        else:
            raise ValueError(f"unknown backend {backend!r}; choose torch or onnx")

    @property
    def labels(self) -> tuple[str, ...]:
        return LABELS

    def frames(self, seconds: float) -> int:
        return self.features.frames(self.features.samples_for_seconds(seconds))

    def predict(self, audio: AudioSource, sample_rate: int | None = None) -> Prediction:
        """The emotion of one clip (a path, file bytes, or an array with its sample rate)."""
        return self.predict_timeline(audio, sample_rate).prediction

    def predict_timeline(
        self, audio: AudioSource, sample_rate: int | None = None,
        window: float | None = None, hop: float | None = None, max_seconds: float | None = None,
    ) -> Timeline:
        """Emotion per window over time, plus the overall answer."""
        if isinstance(audio, (str, Path, bytes)) and blocks.is_long(audio):  # bounded memory (issue 13)
            return blocks.score_in_blocks(self, audio, window, hop, max_seconds)
        samples = to_audio(audio, sample_rate, max_seconds=max_seconds)
        return self.analyse([samples], window, hop)[0]

    def predict_files(
        self, paths: Iterable[str | Path], window: float | None = None, hop: float | None = None,
        batch_seconds: float = 120.0, max_seconds: float | None = None, same_speaker: bool = False,
    ) -> Iterable[tuple[str, Timeline | AudioError]]:
        """Timelines of many files, scored together in batches; bad files yield their AudioError.

        `same_speaker` says the files are one speaker's: a speaker-normalised model then
        reads each against all of them, so every file is loaded before any is scored.
        """
        if same_speaker:
            batch_seconds = float("inf")
        pending: list[tuple[str, np.ndarray]] = []
        seconds = 0.0

        def flush() -> Iterable[tuple[str, Timeline]]:
            speakers = ["same"] * len(pending) if same_speaker else None
            return zip([p for p, _ in pending], self.analyse([s for _, s in pending], window, hop, speakers))

        for path in paths:
            if not same_speaker and blocks.is_long(path):  # bounded memory (issue 13)
                if pending:
                    yield from flush()
                    pending, seconds = [], 0.0
                try:
                    yield str(path), blocks.score_in_blocks(self, path, window, hop, max_seconds)
                except AudioError as exc:
                    yield str(path), exc
                continue
            try:
                samples = to_audio(path, max_seconds=max_seconds)
            except AudioError as exc:
                yield str(path), exc
                continue
            pending.append((str(path), samples))
            seconds += samples.size / self.features.sample_rate
            if seconds >= batch_seconds:
                yield from flush()
                pending, seconds = [], 0.0
        if pending:
            yield from flush()

    def analyse(
        self, audios: list[np.ndarray], window: float | None = None, hop: float | None = None,
        speakers: Sequence[str | None] | None = None,
    ) -> list[Timeline]:
        """Timelines of 16 kHz mono arrays, all windows scored in shared batches.

        `speakers` (one key per array, or None) marks arrays of the same speaker:
        a `speaker`-normalised model then reads each against that speaker's voice.
        """
        mels = [log_mel(samples, self.features) for samples in audios]
        durations = [samples.size / self.features.sample_rate for samples in audios]
        return self.analyse_log_mels(mels, durations, window, hop, speakers)

    def analyse_log_mels(
        self, mels: list[torch.Tensor], durations: list[float] | None = None,
        window: float | None = None, hop: float | None = None, speakers: Sequence[str | None] | None = None,
    ) -> list[Timeline]:
        """Timelines from un-normalised log-mels (as the training cache holds them)."""
        window = window or self.window
        step = self.features.hop_length / self.features.sample_rate
        timelines = []
        for i, scored in enumerate(self.score_windows(mels, window, hop, self.speaker_stats(mels, speakers))):
            duration = durations[i] if durations else scored.frames * step
            probs = scored.window_probabilities(self.temperature)
            segments = [
                Segment(s * step, min(duration, s * step + window), sp, Prediction.from_probabilities(p) if sp else None)
                for s, sp, p in zip(scored.starts, scored.speech, probs)
            ]
            overall = Prediction.from_probabilities(scored.clip_probabilities(self.temperature))
            timelines.append(Timeline(duration, overall, segments, any(scored.speech)))
        return timelines

    def speaker_stats(
        self, mels: Sequence[torch.Tensor], speakers: Sequence[str | None] | None
    ) -> list[BandStats | None]:
        """Each clip's normalisation context: the pooled statistics of its speaker's clips.

        None (a clip without a speaker key, or a model not normalised per speaker)
        leaves the clip to be its own context.
        """
        if speakers is None or self.features.normalisation != "speaker":
            return [None] * len(mels)
        groups: dict[str, list] = defaultdict(list)
        for mel, speaker in zip(mels, speakers):
            if speaker is not None:
                groups[speaker].append(mel)
        pooled = {speaker: band_stats(group) for speaker, group in groups.items()}
        return [None if speaker is None else pooled[speaker] for speaker in speakers]

    def score_windows(
        self, mels: list[torch.Tensor], window: float | None = None, hop: float | None = None,
        contexts: Sequence[BandStats | None] | None = None,
    ) -> list[ScoredWindows]:
        """Raw window logits of many log-mels, scored in shared batches, with speech flags.

        `contexts` hold each log-mel's speaker statistics (see `speaker_stats`).
        """
        window, hop = window or self.window, hop or self.hop
        if window <= 0 or hop <= 0:
            raise ValueError("window and hop must be positive")
        frames = self.frames(window)
        hop_frames = max(1, round(hop * self.features.sample_rate / self.features.hop_length))
        inputs, scored = [], []
        for mel, context in zip(mels, contexts or [None] * len(mels)):
            mel = torch.as_tensor(mel).float()
            windows, starts = cut_windows(mel, frames, hop_frames, self.features, context)
            speech_mask = vad.speech_frames(vad.frame_levels(mel))
            speech = [vad.is_speech(speech_mask[s:s + frames]) for s in starts]
            inputs.append(windows)
            scored.append(ScoredWindows(mel.shape[-1], starts, speech, torch.empty(0)))
        logits = window_logits(self.scorer, torch.cat(inputs))
        for item, part in zip(scored, torch.split(logits, [len(w) for w in inputs])):
            item.logits = part
        return scored


@dataclass
class ScoredWindows:
    frames: int
    starts: list[int]
    speech: list[bool]
    logits: torch.Tensor  # (windows, classes), before temperature

    @property
    def chosen(self) -> np.ndarray:
        """The windows the overall answer averages: the speech ones, or all if none is."""
        speech = np.array(self.speech)
        return speech if speech.any() else np.ones_like(speech)

    def window_probabilities(self, temperature: float) -> np.ndarray:
        return torch.softmax(self.logits.float() / temperature, dim=-1).numpy()

    def clip_probabilities(self, temperature: float) -> np.ndarray:
        """The clip's answer: the mean calibrated probabilities of its chosen windows."""
        return self.window_probabilities(temperature)[self.chosen].mean(axis=0)


def load_model(path: str | Path | None = None, backend: str = "torch") -> EmotionRecognizer:
    """The shipped model (no argument) or any trained model file."""
    return EmotionRecognizer(path, backend=backend)
