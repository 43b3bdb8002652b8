"""What prediction answers: a clip's emotion, a timeline over windows, a file's outcome, and the raw
window logits (`ScoredWindows`) a caller that calibrates or averages them itself works from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from emotionnet.labels import LABELS

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Guess:
    """What the model answered for audio that holds no speech: kept, under its own name, never the answer."""

    emotion: str
    confidence: float
    probabilities: dict[str, float]

    def to_dict(self) -> dict:
        return {"emotion": self.emotion, "confidence": self.confidence, "probabilities": self.probabilities}


@dataclass
class Prediction:
    """The model's answer. Without speech (`speech` False: the speech detector heard none) there is
    no answer: `emotion`, `confidence` and `probabilities` are None and `guess` holds what the model
    said on the non-speech audio, as the JSON object's `"guess"`. Digital silence (every sample
    zero) is not shown to the model at all: its `guess` is None too."""

    emotion: str | None
    confidence: float | None
    probabilities: dict[str, float] | None
    speech: bool = True
    guess: Guess | None = None

    @classmethod
    def from_probabilities(cls, probs: np.ndarray, speech: bool = True,
                           labels: tuple[str, ...] = LABELS) -> Prediction:
        """The answer of calibrated probabilities, one per label of the model (`ModelSpec.answer_labels`);
        without speech, the guess."""
        if len(probs) != len(labels):
            raise ValueError(f"{len(probs)} probabilities for {len(labels)} labels")
        best = int(np.argmax(probs))
        answer = Guess(labels[best], float(probs[best]), {label: float(p) for label, p in zip(labels, probs)})
        if not speech:
            return cls.no_speech(answer)
        return cls(answer.emotion, answer.confidence, answer.probabilities, True)

    @classmethod
    def no_speech(cls, guess: Guess | None = None) -> Prediction:
        """No speech heard; `guess` is the model's answer, None where it was not asked (digital silence)."""
        return cls(None, None, None, False, guess)

    @property
    def most_likely(self) -> Guess | None:
        """The model's top emotion whether it heard speech or not (the guess without speech): what
        evaluation scores, since every corpus clip is labelled. None for digital silence."""
        if self.speech:
            return Guess(self.emotion, self.confidence, self.probabilities)
        return self.guess

    def to_dict(self) -> dict:
        """`{"speech", "emotion", "confidence", "probabilities"}`; without speech those are null and the
        model's answer is `"guess": {"emotion", "confidence", "probabilities"}` (null for digital silence)."""
        answer = {"emotion": self.emotion, "confidence": self.confidence, "probabilities": self.probabilities}
        if self.speech:
            return {"speech": True, **answer}
        return {"speech": False, **answer, "guess": self.guess.to_dict() if self.guess else None}


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
    speech: bool = True  # False when no window held speech (`vad.has_speech`): the prediction is then a guess
    # (start, end) seconds of each run of speech by the speech detector in use; None: not known
    # (a timeline built by hand), and a summary then counts the speech windows' time instead
    speech_runs: list[tuple[float, float]] | None = None

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
        null and the p_ columns hold the model's guess, as `"guess"` in `predict --json` (null for
        digital silence, which the model is not asked about)."""
        if self.timeline is None:
            return {"path": self.path, "duration": None, "speech": None, "emotion": None, "confidence": None,
                    "error": self.error, "error_kind": self.error_kind}
        p = self.timeline.prediction
        answer = p.most_likely  # the answer, or without speech the guess (None: digital silence)
        return {"path": self.path, "duration": float(self.timeline.duration), "speech": bool(p.speech),
                "emotion": p.emotion, "confidence": p.confidence,
                **({f"p_{label}": float(value) for label, value in answer.probabilities.items()} if answer else {}),
                "error": None, "error_kind": None}

    def to_dict(self, segments: bool = True) -> dict:
        """The `emotionnet predict --json` object of this file (or `{"path", "error": {"code", "message"}}`)."""
        if self.timeline is None:
            return {"path": self.path, "error": {"code": self.code, "message": self.error}}
        return {"path": self.path, **self.timeline.to_dict(segments)}

    @property
    def code(self) -> str | None:
        """The error's short stable name, as JSON errors carry it (`AudioError.code`: bad_audio, not_found,
        audio_too_long); None when scored. Read from what was raised, never from the message."""
        if self.timeline is not None:
            return None
        return getattr(self.cause, "code", "bad_audio")


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
    speech_frames: torch.Tensor | None = None  # the detector's speech flag per feature frame

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
