"""ModelSpec: everything that fixes a model's shape and how it hears, in one place.

A model file's JSON is read into a `ModelSpec` (and written from one), checked
field by field before anything is built: a crafted file gets one clear error,
never a traceback, a NaN answer or a request for gigabytes. The defaults of a
new model (temperature, architecture widths) live here and only here; the
window rule and its defaults in `emotionnet.window_rule`, the feature defaults
in `FeatureConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emotionnet.audio import SAMPLE_RATE
from emotionnet.features import NORMALISATIONS, FeatureConfig
from emotionnet.labels import LABELS
from emotionnet.models.family import ModelSpecError, number
from emotionnet.models.registry import get_family
from emotionnet.window_rule import (  # noqa: F401 (the window rule's names, as this module has always had them)
    DEFAULT_HOP,
    DEFAULT_WINDOW,
    MAX_WINDOW,
    MIN_HOP,
    MIN_WINDOW,
    check_window,
)

DEFAULT_ARCH = "crnn"
DEFAULT_TEMPERATURE = 1.0  # before calibration

SHORT_AUDIO = ("tile", "own length")  # ModelSpec.short_audio

# Bounds on what a model file may ask for of its front end (the families bound their own hyper-parameters).
MAX_MELS = 512
MAX_FFT = 16_384
MAX_LABELS = 1000
MAX_LABEL_LENGTH = 100


# The feature fields every format-1 file holds. A field added to FeatureConfig later is
# optional here, so files written before it keep loading with its default.
FORMAT_1_FEATURES = ("sample_rate", "win_length", "n_fft", "hop_length", "n_mels", "f_min", "f_max",
                     "log_offset", "normalisation")


def _mapping(value: Any, name: str) -> dict:
    if not isinstance(value, dict):
        raise ModelSpecError(f"{name} must be a JSON object, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class Windowing:
    """Where the windows of a recording go, in feature frames: what scoring below the recognizer takes
    (it has no defaults of its own). Made only by `ModelSpec.windowing`, which checks the rule."""

    frames: int  # feature frames per window
    hop_frames: int  # feature frames between window starts
    seconds: float  # the window in seconds (a segment's end is its start plus this)
    hop: float  # seconds between window starts


def check_features(data: Any) -> FeatureConfig:
    """A FeatureConfig from a model file's `features`, every field present and in bounds."""
    data = _mapping(data, "features")
    missing = [name for name in FORMAT_1_FEATURES if name not in data]
    if missing:
        raise ModelSpecError(f"features lack {', '.join(missing)}")
    if data["sample_rate"] != SAMPLE_RATE:
        raise ModelSpecError(f"features.sample_rate is {data['sample_rate']!r}; this version hears {SAMPLE_RATE} Hz")
    n_fft = number(data["n_fft"], "features.n_fft", 16, MAX_FFT, integer=True)
    number(data["win_length"], "features.win_length", 16, n_fft, integer=True)
    number(data["hop_length"], "features.hop_length", 1, n_fft, integer=True)
    number(data["n_mels"], "features.n_mels", 1, MAX_MELS, integer=True)
    f_max = number(data["f_max"], "features.f_max", 1, SAMPLE_RATE / 2)
    number(data["f_min"], "features.f_min", 0, f_max - 1)
    number(data["log_offset"], "features.log_offset", 1e-12, 1.0)
    if not isinstance(data["normalisation"], str) or data["normalisation"] not in NORMALISATIONS:
        raise ModelSpecError(f"features.normalisation {data['normalisation']!r} is not one of {NORMALISATIONS}")
    return FeatureConfig.from_dict(data)


def check_hparams(arch: Any, hparams: Any, features: FeatureConfig, n_classes: int = len(LABELS)) -> dict:
    """The architecture's full hyper-parameters, each known, typed and bounded (by its family)."""
    return get_family(arch).check_hparams(dict(_mapping(hparams, "model.hparams")), features, n_classes)


def check_labels(value: Any, name: str, within: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """A model file's `labels` (its network's outputs, in order) or `answers` (those it answers):
    2 or more distinct, non-empty names; `answers` are some of the `labels`."""
    if not isinstance(value, list) or not 2 <= len(value) <= MAX_LABELS:
        raise ModelSpecError(f"{name} must be a list of 2 to {MAX_LABELS} names, got {str(value)[:80]}")
    for label in value:
        if not isinstance(label, str) or not 0 < len(label) <= MAX_LABEL_LENGTH:
            raise ModelSpecError(f"each of {name} must be a name of 1 to {MAX_LABEL_LENGTH} characters, "
                                 f"got {str(label)[:80]!r}")
    if len(set(value)) != len(value):
        raise ModelSpecError(f"{name} name a label twice: {value}")
    if within is not None and not set(value) <= set(within):
        raise ModelSpecError(f"{name} {sorted(set(value) - set(within))} are not among the labels {list(within)}")
    return tuple(value)


def default_hparams(arch: str, n_mels: int | None = None, n_classes: int = len(LABELS)) -> dict:
    """The hyper-parameters of a new `arch` model (a copy the caller may change): its family's defaults."""
    return get_family(arch).default_hparams(n_mels, n_classes)


@dataclass(frozen=True)
class ModelSpec:
    """A model's architecture, features, analysis window, calibration temperature and labels.

    `labels` name the network's outputs, in order (a file without them means the six, `LABELS`);
    `answers`, those the model answers with (default: all of them). A network trained on more
    classes than it answers (FER2013's seven with surprise, answering the six) declares the rest
    away: its answers' probabilities are a softmax over their logits alone.
    """

    arch: str = DEFAULT_ARCH
    hparams: dict = field(default_factory=dict)  # complete after `from_metadata`; merged over the defaults
    features: FeatureConfig = field(default_factory=FeatureConfig)
    window: float = DEFAULT_WINDOW
    hop: float = DEFAULT_HOP
    temperature: float = DEFAULT_TEMPERATURE
    # The windows (seconds, shortest and longest) the model was trained to answer; any other is refused.
    # None: any window check_window allows (the CRNN's crops make it robust to the window).
    window_range: tuple[float, float] | None = None
    # "tile": audio shorter than a window is repeated to fill it (networks of one input length, and
    # heads trained on repeated clips); "own length": scored at its own length, over its real frames.
    short_audio: str = "tile"
    labels: tuple[str, ...] = LABELS
    answers: tuple[str, ...] | None = None  # None: every label

    @property
    def answer_labels(self) -> tuple[str, ...]:
        """The labels the model answers with, in its outputs' order."""
        return self.labels if self.answers is None else tuple(x for x in self.labels if x in self.answers)

    @property
    def answer_index(self) -> list[int] | None:
        """Indices of the answered labels among the network's outputs; None when it answers all of them."""
        if self.answers is None or set(self.answers) == set(self.labels):
            return None
        return [i for i, label in enumerate(self.labels) if label in self.answers]

    @property
    def sample_rate(self) -> int:
        return self.features.sample_rate

    @property
    def model_hparams(self) -> dict:
        """What the architecture is built with: the defaults, this spec's choices, its mel bands."""
        return {**default_hparams(self.arch, self.features.n_mels), **self.hparams, "n_mels": self.features.n_mels,
                "n_classes": len(self.labels)}

    @property
    def frame_seconds(self) -> float:
        """Seconds from one feature frame to the next (the feature hop)."""
        return self.features.hop_length / self.features.sample_rate

    def frames(self, seconds: float) -> int:
        """Feature frames in `seconds` of audio (the frames a window of that length holds)."""
        return self.features.frames_of_samples(self.features.samples_for_seconds(seconds))

    def hop_frames(self, hop_seconds: float) -> int:
        """Feature frames between the starts of windows `hop_seconds` apart (at least one)."""
        return max(1, round(hop_seconds * self.features.sample_rate / self.features.hop_length))

    def window_hop(self, window: float | None = None, hop: float | None = None,
                   longest: float = MAX_WINDOW) -> tuple[float, float]:
        """(window, hop) in seconds, this spec's where None, checked by the one rule (`check_window`)."""
        window = self.window if window is None else window
        hop = self.hop if hop is None else hop
        check_window(window, window, longest)  # the window first: a refused window is what to say
        if self.window_range is not None:
            shortest, longest_trained = self.window_range
            if not shortest - 1e-9 <= window <= longest_trained + 1e-9:
                trained = (f"{shortest:g} s windows" if shortest == longest_trained
                           else f"windows of {shortest:g} to {longest_trained:g} s")
                raise ValueError(f"this model was trained on {trained} and answers those only, not "
                                 f"{window:g} s")
        check_window(window, hop, longest)
        return window, hop

    def windowing(self, window: float | None = None, hop: float | None = None,
                  longest: float = MAX_WINDOW) -> Windowing:
        """The one window rule at every entry point: seconds (this spec's where None) checked by
        `check_window`, then turned into the frame counts scoring takes."""
        window, hop = self.window_hop(window, hop, longest)
        return Windowing(self.frames(window), self.hop_frames(hop), window, hop)

    @property
    def tiles_short_windows(self) -> bool:
        """Whether audio shorter than a window is repeated to fill it (`short_audio`)."""
        return self.short_audio == "tile"

    @property
    def input_shape(self) -> tuple[int, int]:
        """(n_mels, frames) of one model input: a window of the model's own length."""
        return self.features.n_mels, self.frames(self.window)

    def to_metadata(self) -> dict:
        """The model file's JSON fields this spec owns (format 1 layout)."""
        return {
            "features": self.features.to_dict(),
            "sample_rate": self.sample_rate,
            "temperature": self.temperature,
            "inference": {"window": self.window, "hop": self.hop, "short_audio": self.short_audio,
                          **({"window_range": list(self.window_range)} if self.window_range else {})},
            "model": {"arch": self.arch, "hparams": self.model_hparams},
            "labels": list(self.labels),
            **({"answers": list(self.answer_labels)} if self.answer_index is not None else {}),
        }

    @classmethod
    def from_metadata(cls, meta: Any) -> ModelSpec:
        """The spec a model file's JSON describes; ModelSpecError naming the first bad field."""
        meta = _mapping(meta, "the model description")
        if "model" not in meta:
            raise ModelSpecError("no 'model' (architecture and hyper-parameters) in the model description")
        model = _mapping(meta["model"], "model")
        family = get_family(model.get("arch"))
        if not family.hears_audio:  # a face model: no audio front end to read (the default stands in, unused)
            features = FeatureConfig()
        elif "features" not in meta:
            raise ModelSpecError("no 'features' in the model description")
        else:
            features = check_features(meta["features"])
        if meta.get("sample_rate", features.sample_rate) != features.sample_rate:
            raise ModelSpecError(f"sample_rate {meta['sample_rate']!r} differs from the features' "
                                 f"{features.sample_rate}")
        labels = check_labels(meta.get("labels", list(LABELS)), "labels")  # files without them mean the six
        answers = check_labels(meta["answers"], "answers", labels) if "answers" in meta else None
        hparams = check_hparams(model.get("arch"), model.get("hparams", {}), features, len(labels))
        inference = _mapping(meta.get("inference", {}), "inference")
        window = number(inference.get("window", DEFAULT_WINDOW), "inference.window", MIN_WINDOW, MAX_WINDOW)
        hop = number(inference.get("hop", DEFAULT_HOP), "inference.hop", MIN_HOP, window)
        temperature = number(meta.get("temperature", DEFAULT_TEMPERATURE), "temperature", 1e-3, 1e3)
        short_audio = inference.get("short_audio", "tile")
        if short_audio not in SHORT_AUDIO:
            raise ModelSpecError(f"inference.short_audio {short_audio!r} is not one of {SHORT_AUDIO}")
        window_range = inference.get("window_range")
        if window_range is None and get_family(model["arch"]).own_window_if_unstated:
            # e.g. a whisper head written before varied-length training saw its own window only (short
            # clips repeated to fill it): elsewhere its standardised statistics are off the scale.
            window_range = [window, window]
        if window_range is not None:
            if not (isinstance(window_range, list) and len(window_range) == 2):
                raise ModelSpecError(f"inference.window_range must be [shortest, longest], got {window_range!r}")
            shortest = number(window_range[0], "inference.window_range[0]", MIN_WINDOW, MAX_WINDOW)
            longest = number(window_range[1], "inference.window_range[1]", shortest, MAX_WINDOW)
            if not shortest <= window <= longest:
                raise ModelSpecError(f"inference.window {window:g} is outside inference.window_range")
            window_range = (float(shortest), float(longest))
        return cls(model["arch"], hparams, features, float(window), float(hop), float(temperature),
                   window_range, short_audio, labels, answers)
