"""What prediction answers: a clip's emotion, a timeline over windows, a file's outcome, and the raw
window logits (`ScoredWindows`) a caller that calibrates or averages them itself works from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from emotionnet.labels import LABELS

if TYPE_CHECKING:
    import torch


@dataclass
class Prediction:
    """The model's answer. `speech` is False when the voice activity detector found no speech:
    `emotion` is then the model's guess on non-speech audio, and the JSON object says
    `"speech": false, "emotion": null` and keeps the guess under `"guess"`."""

    emotion: str
    confidence: float
    probabilities: dict[str, float]
    speech: bool = True

    @classmethod
    def from_probabilities(cls, probs: np.ndarray, speech: bool = True) -> Prediction:
        best = int(np.argmax(probs))
        return cls(LABELS[best], float(probs[best]), {label: float(p) for label, p in zip(LABELS, probs)}, speech)

    def answer(self) -> dict:
        """emotion, confidence and probabilities: this prediction's, without the speech flag."""
        return {"emotion": self.emotion, "confidence": self.confidence, "probabilities": self.probabilities}

    def to_dict(self) -> dict:
        """`{"speech", "emotion", "confidence", "probabilities"}`; without speech those are null, the
        model's answer kept as `"guess": {"emotion", "confidence", "probabilities"}`."""
        if self.speech:
            return {"speech": True, **self.answer()}
        return {"speech": False, "emotion": None, "confidence": None, "probabilities": None, "guess": self.answer()}


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
    speech: bool = True  # False when no window held speech (`vad.has_speech`): the answer is then a guess

    def to_dict(self, segments: bool = True) -> dict:
        """The `predict --json` object without its path; `segments=False` leaves the timeline out."""
        data = {"duration": round(self.duration, 3), **self.prediction.to_dict()}
        if not segments:
            return data
        if len(self.segments) > 1:
            data["segments"] = [s.to_dict() for s in self.segments]
        return data


@dataclass
class FileResult:
    """One input of a batch: its timeline, or the error that kept it from being scored."""

    path: str
    timeline: Timeline | None = None
    error: str | None = None  # the message, naming the input and the problem
    cause: BaseException | None = field(default=None, repr=False, compare=False)  # what was raised

    @property
    def ok(self) -> bool:
        return self.timeline is not None

    @property
    def error_kind(self) -> str | None:
        """None when scored; "audio" when the input itself is bad (an `AudioError`: trying again gives the
        same answer); "job" when the run failed it (a scoring or reading failure: worth another try)."""
        if self.timeline is not None:
            return None
        from emotionnet.audio import AudioError  # here: results import no decoder

        return "audio" if self.cause is None or isinstance(self.cause, AudioError) else "job"

    def to_row(self) -> dict:
        """The `emotionnet batch` row: path, duration, speech, emotion, confidence, p_<label>..., error,
        error_kind (an error row's other fields null). Without speech, emotion and confidence are
        null and the p_ columns hold the model's guess, as `"guess"` in `predict --json`."""
        if self.timeline is None:
            return {"path": self.path, "duration": None, "speech": None, "emotion": None, "confidence": None,
                    "error": self.error, "error_kind": self.error_kind}
        p, speech = self.timeline.prediction, bool(self.timeline.speech)
        return {"path": self.path, "duration": float(self.timeline.duration), "speech": speech,
                "emotion": p.emotion if speech else None, "confidence": float(p.confidence) if speech else None,
                **{f"p_{label}": float(value) for label, value in p.probabilities.items()},
                "error": None, "error_kind": None}

    def to_dict(self, segments: bool = True) -> dict:
        """The `emotionnet predict --json` object of this file (or `{"path", "error": {"code", "message"}}`)."""
        if self.timeline is None:
            return {"path": self.path, "error": {"code": error_code(self.error), "message": self.error}}
        return {"path": self.path, **self.timeline.to_dict(segments)}


def error_code(message: str | None) -> str:
    """A short stable code for an input that failed (as the HTTP service's `bad_audio`, `audio_too_long`)."""
    if message and "too long" in message:
        return "audio_too_long"
    return "bad_audio"


def calibrated(logits: torch.Tensor, temperature: float) -> np.ndarray:
    """Softmax of logits divided by the calibration temperature, as float32 NumPy."""
    import torch  # here: the results alone need no torch (`emotionnet --help` imports none)

    return torch.softmax(logits.float() / temperature, dim=-1).numpy()


@dataclass
class ScoredWindows:
    """One clip's windows: their start frames, speech flags and logits."""

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
        return calibrated(self.logits, temperature)

    def clip_probabilities(self, temperature: float) -> np.ndarray:
        """The clip's answer: the mean calibrated probabilities of its chosen windows."""
        return self.window_probabilities(temperature)[self.chosen].mean(axis=0)
