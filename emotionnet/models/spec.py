"""ModelSpec: everything that fixes a model's shape and how it hears, in one place.

A model file's JSON is read into a `ModelSpec` (and written from one), checked
field by field before anything is built: a crafted file gets one clear error,
never a traceback, a NaN answer or a request for gigabytes. The defaults of a
new model (temperature, architecture widths) live here and only here; the
window rule and its defaults in `emotionnet.window_rule`, the feature defaults
in `FeatureConfig`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from emotionnet.audio import SAMPLE_RATE
from emotionnet.features import NORMALISATIONS, FeatureConfig
from emotionnet.labels import LABELS
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

# The hyper-parameters a new model gets unless the recipe says otherwise (the shipped ones).
DEFAULT_ARCH_HPARAMS: dict[str, dict[str, Any]] = {
    "cnn": {"channels": [24, 48, 96, 192], "convs_per_block": 1, "dropout": 0.3},
    "crnn": {"channels": [16, 32, 64], "hidden": 96, "dropout": 0.3},
    # A head on a frozen Whisper-base encoder (models/whisper/): the encoder's weights are not the
    # model file's, only the digest that names them.
    "whisper": {"encoder": "openai/whisper-base", "encoder_digest": "", "layers": 6, "width": 512, "frame_pool": 8,
                "hidden": 256, "attention": 128, "dropout": 0.3, "center_time": False},
}
ENCODERS = {"openai/whisper-base": {"n_mels": 80, "layers": 6, "width": 512}}
# Defaults of switches a model file may leave out (files written before the switch existed).
OPTIONAL_HPARAMS: dict[str, dict[str, Any]] = {"cnn": {"batch_norm": True}, "crnn": {}, "whisper": {"head": "attentive"}}
WHISPER_HEADS = ("attentive", "stats")
SHORT_AUDIO = ("tile", "own length")  # ModelSpec.short_audio  # models/whisper/head.py: EmotionHead, StatsHead

# Bounds on what a model file may ask for: far beyond any sensible model, far below
# what would exhaust memory before the weights are even compared.
MAX_WIDTH = 4096
MAX_BLOCKS = 8
MAX_CONVS = 8
MAX_MELS = 512
MAX_FFT = 16_384


# The feature fields every format-1 file holds. A field added to FeatureConfig later is
# optional here, so files written before it keep loading with its default.
FORMAT_1_FEATURES = ("sample_rate", "win_length", "n_fft", "hop_length", "n_mels", "f_min", "f_max",
                     "log_offset", "normalisation")


class ModelSpecError(ValueError):
    """A model description that is missing, malformed or out of bounds (the message says which)."""


def _number(value: Any, name: str, low: float, high: float, integer: bool = False) -> float:
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise ModelSpecError(f"{name} must be {kind}, got {value!r}")
    if not (math.isfinite(value) and low <= value <= high):
        raise ModelSpecError(f"{name} must be {kind} from {low:g} to {high:g}, got {value!r}")
    return value


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
    n_fft = _number(data["n_fft"], "features.n_fft", 16, MAX_FFT, integer=True)
    _number(data["win_length"], "features.win_length", 16, n_fft, integer=True)
    _number(data["hop_length"], "features.hop_length", 1, n_fft, integer=True)
    _number(data["n_mels"], "features.n_mels", 1, MAX_MELS, integer=True)
    f_max = _number(data["f_max"], "features.f_max", 1, SAMPLE_RATE / 2)
    _number(data["f_min"], "features.f_min", 0, f_max - 1)
    _number(data["log_offset"], "features.log_offset", 1e-12, 1.0)
    if not isinstance(data["normalisation"], str) or data["normalisation"] not in NORMALISATIONS:
        raise ModelSpecError(f"features.normalisation {data['normalisation']!r} is not one of {NORMALISATIONS}")
    return FeatureConfig.from_dict(data)


def check_hparams(arch: Any, hparams: Any, n_mels: int) -> dict:
    """The architecture's full hyper-parameters, each known, typed and bounded."""
    if not isinstance(arch, str) or arch not in DEFAULT_ARCH_HPARAMS:
        raise ModelSpecError(f"unknown architecture {arch!r}; this version knows {', '.join(DEFAULT_ARCH_HPARAMS)}")
    hparams = dict(_mapping(hparams, "model.hparams"))
    known = {"n_mels", "n_classes", *DEFAULT_ARCH_HPARAMS[arch], *OPTIONAL_HPARAMS[arch]}
    unknown = sorted(set(hparams) - known)
    if unknown:
        raise ModelSpecError(f"{arch} has no hyper-parameter {', '.join(unknown)}")
    hparams = {**OPTIONAL_HPARAMS[arch], **hparams}
    if hparams.setdefault("n_mels", n_mels) != n_mels:
        raise ModelSpecError(f"model.hparams.n_mels is {hparams['n_mels']!r} but the features have {n_mels} mel bands")
    if hparams.setdefault("n_classes", len(LABELS)) != len(LABELS):
        raise ModelSpecError(f"model.hparams.n_classes is {hparams['n_classes']!r}; the labels are {len(LABELS)}")
    missing = [name for name in DEFAULT_ARCH_HPARAMS[arch] if name not in hparams]
    if missing:
        raise ModelSpecError(f"model.hparams lack {', '.join(missing)}")
    if arch == "whisper":
        return _check_encoder_head(hparams, n_mels)
    channels = hparams["channels"]
    if not isinstance(channels, list) or not 1 <= len(channels) <= MAX_BLOCKS:
        raise ModelSpecError(f"model.hparams.channels must be a list of 1 to {MAX_BLOCKS} widths, got {channels!r}")
    for width in channels:
        _number(width, "each of model.hparams.channels", 1, MAX_WIDTH, integer=True)
    _number(hparams["dropout"], "model.hparams.dropout", 0, 0.99)
    if "convs_per_block" in hparams:
        _number(hparams["convs_per_block"], "model.hparams.convs_per_block", 1, MAX_CONVS, integer=True)
    if "hidden" in hparams:
        _number(hparams["hidden"], "model.hparams.hidden", 2, MAX_WIDTH, integer=True)
    if not isinstance(hparams.get("batch_norm", True), bool):
        raise ModelSpecError(f"model.hparams.batch_norm must be true or false, got {hparams['batch_norm']!r}")
    if arch == "crnn" and n_mels // 2 ** len(channels) < 1:
        raise ModelSpecError(f"{len(channels)} crnn blocks halve {n_mels} mel bands to nothing")
    return hparams


def _check_encoder_head(hparams: dict, n_mels: int) -> dict:
    encoder = ENCODERS.get(hparams["encoder"])
    if encoder is None:
        raise ModelSpecError(f"unknown encoder {hparams['encoder']!r}; this version knows {', '.join(ENCODERS)}")
    digest = hparams["encoder_digest"]
    if not (isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
        raise ModelSpecError(f"model.hparams.encoder_digest must be a sha256 hex digest, got {digest!r}")
    if n_mels != encoder["n_mels"]:
        raise ModelSpecError(f"{hparams['encoder']} hears {encoder['n_mels']} mel bands; the features have {n_mels}")
    _number(hparams["layers"], "model.hparams.layers", 1, encoder["layers"], integer=True)
    if hparams["width"] != encoder["width"]:
        raise ModelSpecError(f"model.hparams.width is {hparams['width']!r}; {hparams['encoder']} is {encoder['width']}")
    if _number(hparams["frame_pool"], "model.hparams.frame_pool", 4, 64, integer=True) % 4:
        raise ModelSpecError(f"model.hparams.frame_pool must be a multiple of 4 (the encoder cache's pooling), "
                             f"got {hparams['frame_pool']}")
    _number(hparams["hidden"], "model.hparams.hidden", 2, MAX_WIDTH, integer=True)
    _number(hparams["attention"], "model.hparams.attention", 2, MAX_WIDTH, integer=True)
    _number(hparams["dropout"], "model.hparams.dropout", 0, 0.99)
    if hparams["head"] not in WHISPER_HEADS:
        raise ModelSpecError(f"model.hparams.head must be one of {', '.join(WHISPER_HEADS)}, got {hparams['head']!r}")
    if not isinstance(hparams["center_time"], bool):
        raise ModelSpecError(f"model.hparams.center_time must be true or false, got {hparams['center_time']!r}")
    return hparams


def default_hparams(arch: str, n_mels: int = FeatureConfig.n_mels) -> dict:
    """The hyper-parameters of a new `arch` model (a copy the caller may change)."""
    if arch not in DEFAULT_ARCH_HPARAMS:
        raise ValueError(f"unknown architecture {arch!r}; choose from {', '.join(DEFAULT_ARCH_HPARAMS)}")
    return {**DEFAULT_ARCH_HPARAMS[arch], **OPTIONAL_HPARAMS[arch], "n_mels": n_mels, "n_classes": len(LABELS)}


@dataclass(frozen=True)
class ModelSpec:
    """A model's architecture, features, analysis window and calibration temperature."""

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

    @property
    def sample_rate(self) -> int:
        return self.features.sample_rate

    @property
    def model_hparams(self) -> dict:
        """What the architecture is built with: the defaults, this spec's choices, its mel bands."""
        return {**default_hparams(self.arch, self.features.n_mels), **self.hparams, "n_mels": self.features.n_mels}

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
        }

    @classmethod
    def from_metadata(cls, meta: Any) -> ModelSpec:
        """The spec a model file's JSON describes; ModelSpecError naming the first bad field."""
        meta = _mapping(meta, "the model description")
        if "features" not in meta:
            raise ModelSpecError("no 'features' in the model description")
        features = check_features(meta["features"])
        if meta.get("sample_rate", features.sample_rate) != features.sample_rate:
            raise ModelSpecError(f"sample_rate {meta['sample_rate']!r} differs from the features' "
                                 f"{features.sample_rate}")
        if "model" not in meta:
            raise ModelSpecError("no 'model' (architecture and hyper-parameters) in the model description")
        model = _mapping(meta["model"], "model")
        hparams = check_hparams(model.get("arch"), model.get("hparams", {}), features.n_mels)
        inference = _mapping(meta.get("inference", {}), "inference")
        window = _number(inference.get("window", DEFAULT_WINDOW), "inference.window", MIN_WINDOW, MAX_WINDOW)
        hop = _number(inference.get("hop", DEFAULT_HOP), "inference.hop", MIN_HOP, window)
        temperature = _number(meta.get("temperature", DEFAULT_TEMPERATURE), "temperature", 1e-3, 1e3)
        short_audio = inference.get("short_audio", "tile")
        if short_audio not in SHORT_AUDIO:
            raise ModelSpecError(f"inference.short_audio {short_audio!r} is not one of {SHORT_AUDIO}")
        window_range = inference.get("window_range")
        if window_range is None and model["arch"] == "whisper":
            # A whisper head written before varied-length training saw its own window only (short
            # clips repeated to fill it): elsewhere its standardised statistics are off the scale.
            window_range = [window, window]
        if window_range is not None:
            if not (isinstance(window_range, list) and len(window_range) == 2):
                raise ModelSpecError(f"inference.window_range must be [shortest, longest], got {window_range!r}")
            shortest = _number(window_range[0], "inference.window_range[0]", MIN_WINDOW, MAX_WINDOW)
            longest = _number(window_range[1], "inference.window_range[1]", shortest, MAX_WINDOW)
            if not shortest <= window <= longest:
                raise ModelSpecError(f"inference.window {window:g} is outside inference.window_range")
            window_range = (float(shortest), float(longest))
        return cls(model["arch"], hparams, features, float(window), float(hop), float(temperature),
                   window_range, short_audio)
