"""`ModelFamily`: what one kind of model declares, once, so that nothing else has to ask which it is.

A family (cnn, crnn, whisper; a face model next) lives in its own folder,
`emotionnet/models/<family>/`, and declares there:

- its name and modality ("audio": its input is a log-mel of 16 kHz audio; "face": a face crop),
- its hyper-parameters, each with the default a new model gets and the bounds a model file must keep
  (`HParam`), plus the rules between them (`check`),
- how its network is built from them (`build`), and the front end a new model hears (`features`),
- what a loaded network still needs (`attach`: the whisper family attaches and verifies its encoder),
- whether it exports to ONNX (`onnx_refusal` says why not),
- its training recipe (`recipe`: the kind of recipe in `emotionnet.training` that trains it).

`emotionnet/models/registry.py` lists the families; loading, inference, serving, batch, training
and tuning ask it (`family_of(spec)`, `FAMILIES[name]`) and never name a family. Anchors:
SpeechBrain's `Pretrained` (a model declares what it needs), openai/whisper's `ModelDimensions`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from emotionnet.errors import EmotionNetError
from emotionnet.features import FeatureConfig

AUDIO, FACE = "audio", "face"  # what a model reads: a log-mel of 16 kHz audio, or face crops of images
MODALITIES = (AUDIO, FACE)
COMPUTE_TYPES = ("auto", "float32", "bfloat16")  # "auto": bfloat16 products only where the CPU has them natively

# Bounds shared by families: far beyond any sensible model, far below what would exhaust memory
# before a model file's weights are even compared.
MAX_WIDTH = 4096
MAX_BLOCKS = 8


class ModelSpecError(EmotionNetError, ValueError):
    """A model description that is missing, malformed or out of bounds (the message says which)."""


# --------------------------------------------------------------------------- value checks

def number(value: Any, name: str, low: float, high: float, integer: bool = False) -> float:
    """`value` if it is a number (an integer where asked) from `low` to `high`; else ModelSpecError naming `name`."""
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise ModelSpecError(f"{name} must be {kind}, got {value!r}")
    if not (math.isfinite(value) and low <= value <= high):
        raise ModelSpecError(f"{name} must be {kind} from {low:g} to {high:g}, got {value!r}")
    return value


@dataclass(frozen=True)
class HParam:
    """One hyper-parameter: the default of a new model and what a model file may hold.

    kind: "int" or "float" (from `low` to `high`), "bool", "choice" (one of `choices`), "widths" (a
    list of 1 to `high` integers, each 1 to MAX_WIDTH) or "str" (any string; `check` judges it).
    `if_absent`: the value a model file written before this hyper-parameter existed meant
    (None: a file must hold it). `search`: the values `emotionnet tune` tries (empty: not searched).
    """

    name: str
    default: Any
    kind: str
    low: float = 0
    high: float = 0
    choices: tuple = ()
    if_absent: Any = None
    search: tuple = ()

    def check(self, value: Any) -> None:
        name = f"model.hparams.{self.name}"
        if self.kind in ("int", "float"):
            number(value, name, self.low, self.high, integer=self.kind == "int")
        elif self.kind == "bool" and not isinstance(value, bool):
            raise ModelSpecError(f"{name} must be true or false, got {value!r}")
        elif self.kind == "choice" and value not in self.choices:
            raise ModelSpecError(f"{name} must be one of {', '.join(map(str, self.choices))}, got {value!r}")
        elif self.kind == "str" and not isinstance(value, str):
            raise ModelSpecError(f"{name} must be a string, got {value!r}")
        elif self.kind == "widths":
            if not isinstance(value, list) or not 1 <= len(value) <= self.high:
                raise ModelSpecError(f"{name} must be a list of 1 to {self.high:g} widths, got {value!r}")
            for width in value:
                number(width, f"each of {name}", 1, MAX_WIDTH, integer=True)


# --------------------------------------------------------------------------- what a family declares

@dataclass(frozen=True)
class LoadOptions:
    """How a model file is brought to life beyond its weights (arguments of `load_model`, never the environment).

    encoder_weights: where a family on a pretrained encoder finds it (None: the installed weight packages).
    compute_type: "auto", "float32" or "bfloat16" for the matrix products of such an encoder.
    """

    encoder_weights: str | Path | None = None
    compute_type: str = "auto"

    def __post_init__(self):
        if self.compute_type not in COMPUTE_TYPES:
            raise ValueError(f"compute_type {self.compute_type!r}: choose one of {', '.join(COMPUTE_TYPES)}")


def _no_rules(hparams: dict, features: FeatureConfig) -> None:
    return None


@dataclass(frozen=True)
class ModelFamily:
    """One kind of model: see the module's docstring for each field's role."""

    name: str
    modality: str
    hparams: tuple[HParam, ...]
    build: Callable[..., nn.Module]  # (n_mels=, n_classes=, **hparams) -> an untrained network
    # The front end of a new model (a model file records its own); None for a family whose input is
    # not audio (a face model's is a 48x48 grey face crop: its build takes no n_mels).
    features: FeatureConfig | None
    recipe: str  # the kind of training recipe (emotionnet.training.recipes) that trains it
    description: str = ""
    check: Callable[[dict, FeatureConfig], None] = _no_rules  # rules between hyper-parameters; ModelSpecError
    # After the weights are loaded: whatever else the network needs (the whisper family attaches its
    # encoder). Its errors are its own (EncoderWeightsError, MissingExtraError); the loader names the file.
    attach: Callable[[nn.Module, dict, LoadOptions], None] | None = None
    # What must be installed before a model of this family can run (MissingExtraError naming the extra);
    # asked before loading, and by whatever offers a choice of models (the app).
    require: Callable[[LoadOptions], None] | None = None
    onnx_refusal: str | None = None  # why this family is not exported to ONNX; None: it is
    # How a loaded model of a family that does not read audio answers: (LoadedModel, path, LoadOptions,
    # threads) -> its recognizer (the face family's FaceRecognizer). None: the audio EmotionRecognizer.
    recognizer: Callable[..., Any] | None = None

    @property
    def hears_audio(self) -> bool:
        """Whether its input is audio (its model files then record the audio front end, `features`)."""
        return self.modality == AUDIO

    # A model file that states no `inference.window_range` was trained on its own window only (files
    # written before the family trained on varied windows); False: it answers any window the rule allows.
    own_window_if_unstated: bool = False

    def ready(self, options: LoadOptions | None = None) -> bool:
        """Whether what this family needs beyond a model file is installed (`require` does not raise)."""
        if self.require is None:
            return True
        try:
            self.require(options or LoadOptions())
        except ImportError:  # MissingExtraError
            return False
        return True

    def __post_init__(self):
        if self.modality not in MODALITIES:
            raise ValueError(f"family {self.name}: modality {self.modality!r} is not one of {MODALITIES}")

    @property
    def hparam_names(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.hparams)

    def default_hparams(self, n_mels: int | None = None, n_classes: int = 6) -> dict:
        """The hyper-parameters of a new model of this family (a copy the caller may change)."""
        if n_mels is None and self.features is not None:
            n_mels = self.features.n_mels
        front_end = {} if n_mels is None else {"n_mels": n_mels}
        return {**{h.name: _copy(h.default) for h in self.hparams}, **front_end, "n_classes": n_classes}

    def searched(self) -> tuple[HParam, ...]:
        """The hyper-parameters `emotionnet tune` searches beyond the ones every family shares."""
        return tuple(h for h in self.hparams if h.search)

    def check_hparams(self, hparams: dict, features: FeatureConfig, n_classes: int) -> dict:
        """The family's full hyper-parameters from a model file's: each known, typed and bounded."""
        known = {"n_mels", "n_classes", *self.hparam_names}
        unknown = sorted(set(hparams) - known)
        if unknown:
            raise ModelSpecError(f"{self.name} has no hyper-parameter {', '.join(unknown)}")
        hparams = {**{h.name: h.if_absent for h in self.hparams if h.if_absent is not None}, **hparams}
        if hparams.setdefault("n_mels", features.n_mels) != features.n_mels:
            raise ModelSpecError(f"model.hparams.n_mels is {hparams['n_mels']!r} but the features have "
                                 f"{features.n_mels} mel bands")
        if hparams.setdefault("n_classes", n_classes) != n_classes:
            raise ModelSpecError(f"model.hparams.n_classes is {hparams['n_classes']!r}; the network's outputs "
                                 f"are {n_classes}")
        missing = [h.name for h in self.hparams if h.name not in hparams]
        if missing:
            raise ModelSpecError(f"model.hparams lack {', '.join(missing)}")
        for h in self.hparams:
            h.check(hparams[h.name])
        self.check(hparams, features)
        return hparams

    def build_network(self, hparams: dict) -> nn.Module:
        """An untrained network from complete hyper-parameters (`check_hparams`' or `default_hparams`')."""
        hparams = dict(hparams)
        for h in self.hparams:
            if h.kind == "widths":
                hparams[h.name] = tuple(hparams[h.name])
        return self.build(**hparams)


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value
