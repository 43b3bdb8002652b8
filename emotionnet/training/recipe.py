"""The training recipe: records in, one calibrated, evaluated model file out.

`train_model` runs the parts in turn: load each split's features (`load_splits`), fit the
network (`fit`, selecting on `validation_score`), score the validation and test clips
(`score_splits`), calibrate (`emotionnet.training.calibration`), measure (`split_metrics`)
and write the model file (`model_metadata`).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from torch import nn

from emotionnet.cache import cached_log_mels
from emotionnet.corpora import SPLIT_NAME, Collection, Record, select
from emotionnet.evaluation.metrics import report, summary
from emotionnet.features import FeatureConfig
from emotionnet.inference.recognizer import EmotionRecognizer
from emotionnet.inference.results import ScoredWindows
from emotionnet.labels import LABEL_INDEX
from emotionnet.models import build_model, count_parameters
from emotionnet.models.file import save_model_file
from emotionnet.models.registry import FAMILIES, get_family
from emotionnet.models.spec import ModelSpec
from emotionnet.training.augment import AugmentConfig
from emotionnet.training.batches import BatchMaker
from emotionnet.training.calibration import (
    calibrate_temperature,
    calibration_record,
    clip_probabilities,
)
from emotionnet.training.distillation import teacher_probabilities, teacher_record
from emotionnet.training.trainer import CHECKPOINT_SECONDS, EpochCallback, FitConfig, FitResult, fit

MODEL_FIELDS = ("arch", "hparams", "window", "hop", "features")  # the recipe's ModelSpec fields, flat in its JSON


def default_spec() -> ModelSpec:
    """The model a recipe trains unless told otherwise.

    Per speaker: what sets a clip apart from its speaker's usual voice (level, brightness,
    range) is the emotion; per utterance that is normalised away (test UAR 0.668 alone, 0.720
    with speaker context, against 0.690 for the per-utterance model: docs/benchmarks.md).
    """
    return ModelSpec(features=FeatureConfig(normalisation="speaker"))


@dataclass(init=False)
class Recipe:
    """How to train: the model to build (a `ModelSpec`; its hparams over the architecture's
    defaults) and the training choices. `Recipe(arch="cnn", window=4.0)` sets spec fields by name."""

    spec: ModelSpec
    augment: bool
    augmentation: AugmentConfig  # strengths, when `augment`
    # `speaker` normalisation: the share of clips trained as their own context. A user's clip
    # arrives alone, so nearly every training clip is read against its own speech (as it will
    # be); the rest keep the model able to use a speaker's other audio when an API call gives it.
    own_context_p: float
    fit: FitConfig
    # The temperature fitted on validation clips is multiplied by this before it is written: a
    # user's clip comes from a corpus the model never heard, where a model is overconfident (the
    # LOCO models' log-loss-optimal scale on their held-out corpus's validation clips: 1.3-3.5).
    # 1.32 is the scale that best holds both ECE targets on the seven LOCO folds' validation
    # clips (`calibration.unseen_corpus_scale`, run by benchmarks/generalisation.py, "Temperature
    # for a corpus the model never heard"). Calibration after training: it changes no weight.
    unseen_corpus_temperature_scale: float
    # A model (name or file) whose calibrated probabilities are soft labels beside the hard ones
    # (training/distillation.py; their weight is `fit.distillation_weight`). None: hard labels only.
    teacher: str | None

    def __init__(self, spec: ModelSpec | None = None, *, augment: bool = True,
                 augmentation: AugmentConfig | None = None, own_context_p: float = 0.9,
                 fit: FitConfig | None = None, unseen_corpus_temperature_scale: float = 1.32,
                 teacher: str | None = None, **model):
        unknown = set(model) - set(MODEL_FIELDS)
        if unknown:
            raise TypeError(f"Recipe got unexpected argument(s) {', '.join(sorted(unknown))}")
        spec = dataclasses.replace(spec or default_spec(), **model)
        self.spec = dataclasses.replace(spec, hparams=dict(spec.hparams))  # a copy of its own to change
        self.augment = augment
        self.augmentation = augmentation or AugmentConfig()
        self.own_context_p = own_context_p
        self.fit = fit or FitConfig()
        self.unseen_corpus_temperature_scale = unseen_corpus_temperature_scale
        self.teacher = None if teacher is None else str(teacher)

    # The spec's fields, read and set by name (a spec is frozen: setting one replaces it).
    arch = property(lambda self: self.spec.arch, lambda self, v: self._set(arch=v))
    hparams = property(lambda self: self.spec.hparams, lambda self, v: self._set(hparams=dict(v)))
    window = property(lambda self: self.spec.window, lambda self, v: self._set(window=v))
    hop = property(lambda self: self.spec.hop, lambda self, v: self._set(hop=v))
    features = property(lambda self: self.spec.features, lambda self, v: self._set(features=v))

    def _set(self, **changes) -> None:
        self.spec = dataclasses.replace(self.spec, **changes)

    def model_hparams(self) -> dict:
        return self.spec.model_hparams

    def to_dict(self) -> dict:
        return {"arch": self.arch, "hparams": dict(self.hparams), "window": self.window, "hop": self.hop,
                "augment": self.augment, "augmentation": dataclasses.asdict(self.augmentation),
                "own_context_p": self.own_context_p, "fit": dataclasses.asdict(self.fit),
                "unseen_corpus_temperature_scale": self.unseen_corpus_temperature_scale,
                "features": self.features.to_dict(), **({"teacher": self.teacher} if self.teacher else {})}

    @classmethod
    def from_dict(cls, data: dict) -> Recipe:
        """The inverse of `to_dict`; keys left out keep their defaults, unknown keys are an error."""
        known = {*MODEL_FIELDS, "augment", "augmentation", "own_context_p", "fit", "unseen_corpus_temperature_scale",
                 "teacher"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown recipe key(s): {', '.join(sorted(unknown))}")
        arch = data.get("arch", default_spec().arch)
        log_mel_families = [name for name, family in FAMILIES.items() if family.recipe == "log-mel"]
        if arch not in log_mel_families:
            known = f"its recipe is {get_family(arch).recipe!r}, " if arch in FAMILIES else ""
            raise ValueError(f"unknown architecture {arch!r} for this recipe ({known}choose from "
                             f"{', '.join(log_mel_families)})")
        rest = {k: v for k, v in data.items() if k not in ("fit", "features", "augmentation")}
        features = FeatureConfig.from_dict({**default_spec().features.to_dict(), **data.get("features", {})})
        augmentation = {k: tuple(v) if isinstance(v, list) else v for k, v in data.get("augmentation", {}).items()}
        return cls(**rest, features=features, fit=FitConfig(**data.get("fit", {})),
                   augmentation=AugmentConfig(**augmentation))

    @classmethod
    def read(cls, path: str | Path) -> Recipe:
        """A recipe written by `write` (or by `emotionnet tune`)."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: not a usable recipe file ({exc})") from None

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")


@dataclass
class Splits:
    """The clips of each split (train, val, test) that loaded, and their cached log-mels."""

    records: dict[str, list[Record]]
    mels: dict[str, list]
    failed: dict[str, str] = field(default_factory=dict)

    def labels(self, name: str) -> np.ndarray:
        return np.array([LABEL_INDEX[r.emotion] for r in self.records[name]])


def load_splits(collection: Collection, features: FeatureConfig, progress: bool = True,
                cache_dir: str | Path | None = None) -> Splits:
    """Each split's records and log-mels (from the feature cache in `cache_dir`, default ~/.cache/emotionnet);
    clips that fail to load are left out."""
    chosen = {name: select(collection.records, name) for name in ("train", "val", "test")}
    if not chosen["train"] or not chosen["val"]:
        raise ValueError("training needs clips in both the train and val splits; "
                         f"found {len(chosen['train'])} train and {len(chosen['val'])} val")
    splits = Splits({}, {})
    for name, records in chosen.items():
        mels, errors = cached_log_mels([r.path for r in records], features, progress=progress, cache_dir=cache_dir)
        splits.failed.update(errors)
        splits.records[name] = [r for r, m in zip(records, mels) if m is not None]
        splits.mels[name] = [m for m in mels if m is not None]
    return splits


def validation_score(spec: ModelSpec, splits: Splits) -> Callable[[nn.Module], dict]:
    """What `fit` selects on: each validation clip alone, as a user's arrives; the selection
    figure is the mean of the corpora's UARs, so a model cannot win by fitting the largest
    corpus's voices."""
    labels = splits.labels("val")
    corpora = np.array([r.corpus for r in splits.records["val"]])

    def validate(model: nn.Module) -> dict:
        scored = EmotionRecognizer.from_model(model, spec).log_mel_scorer().scores(splits.mels["val"])
        pred = clip_probabilities(scored, 1.0).argmax(axis=1)
        figures = summary(labels, pred)
        per_corpus = [summary(labels[corpora == c], pred[corpora == c])["uar"] for c in sorted(set(corpora))]
        return {"uar": float(np.mean(per_corpus)), "val_uar_pooled": figures["uar"],
                "val_accuracy": figures["accuracy"], "val_macro_f1": figures["macro_f1"]}

    return validate


def score_splits(recognizer: EmotionRecognizer, splits: Splits) -> dict[str, list[ScoredWindows]]:
    """The validation and test clips scored with each speaker's clips as context (as `emotionnet
    evaluate --context speaker`) and, for a speaker-normalised model, alone (`val_clip`, `test_clip`)."""
    scorer = recognizer.log_mel_scorer()
    scored = {name: scorer.scores(splits.mels[name], speakers=[r.group for r in splits.records[name]])
              for name in ("val", "test") if splits.records[name]}
    if recognizer.features.normalisation == "speaker":
        for name in ("val", "test"):
            if splits.records[name]:
                scored[f"{name}_clip"] = scorer.scores(splits.mels[name])
    return scored


def split_metrics(scored: dict[str, list[ScoredWindows]], splits: Splits, temperature: float, model: str) -> dict:
    """The evaluation report's figures for each scored split at the model's temperature."""
    metrics = {}
    for name, windows in scored.items():
        records = splits.records[name.removesuffix("_clip")]
        pred = clip_probabilities(windows, temperature).argmax(axis=1)
        rep = report(splits.labels(name.removesuffix("_clip")), pred, [r.corpus for r in records], model, name)
        metrics[name] = {k: rep[k] for k in ("overall", "per_corpus", "per_class", "confusion")}
    return metrics


def training_record(collection: Collection, splits: Splits, recipe: Recipe, result: FitResult,
                    sources: list[str] | None) -> dict:
    """The model file's `training` entry: what was trained on, how, how long, with what."""
    return {
        "recipe": recipe.to_dict(),
        "corpora": collection.per_corpus(),
        "clips": {k: len(v) for k, v in splits.records.items()},
        "sources": sources or [],
        "split": SPLIT_NAME,
        "excluded": [Path(p).name for p in collection.excluded],
        "skipped_labels": dict(collection.skipped),
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
        "wall_seconds": round(result.seconds, 1),
        "history": result.history,
        **({"teacher": teacher_record(recipe.teacher)} if recipe.teacher else {}),
        "package_version": version("emotionnet"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": datetime.date.today().isoformat(),
    }


def model_metadata(spec: ModelSpec, model: nn.Module, calibration: dict, training: dict, metrics: dict) -> dict:
    """The model file's JSON: the calibrated spec, the parameter count, and the records above."""
    described = spec.to_metadata()
    return {**described, "model": {**described["model"], "parameters": count_parameters(model)},
            "calibration": calibration, "training": training, "metrics": metrics}


def train_model(
    collection: Collection,
    out: str | Path,
    recipe: Recipe,
    callbacks: list[EpochCallback] | None = None,
    progress: bool = True,
    sources: list[str] | None = None,
    load_options: dict | None = None,
    cache_dir: str | Path | None = None,
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
) -> dict:
    """Train, calibrate and evaluate; write the model file to `out` and return its metadata.

    `load_options` are `load_model`'s options (vad, compute_type, encoder_weights) for the recipe's teacher;
    `cache_dir` the cache folder of the features (default ~/.cache/emotionnet); `checkpoint_seconds` how
    often the checkpoint `out`.ckpt is written within an epoch.
    """
    splits = load_splits(collection, recipe.features, progress, cache_dir)
    for error in splits.failed.values():
        print(f"emotionnet: skipped {error}", file=sys.stderr)
    spec = dataclasses.replace(recipe.spec, hparams=recipe.spec.model_hparams)
    torch.manual_seed(recipe.fit.seed)  # before the model is built: its initial weights come from it too
    model = build_model(spec.arch, **spec.hparams)
    teacher = (teacher_probabilities(recipe.teacher, splits.records["train"], progress, load_options, cache_dir)
               if recipe.teacher else None)
    batches = BatchMaker(splits.mels["train"], splits.records["train"], spec.features, spec.frames(spec.window),
                         recipe.augmentation if recipe.augment else None, recipe.own_context_p, teacher)
    out = Path(out)
    result = fit(model, recipe.fit, batches, validation_score(spec, splits), checkpoint=out.with_name(out.name + ".ckpt"),
                 callbacks=callbacks or [], progress=progress, clip_names=[r.path for r in splits.records["train"]],
                 checkpoint_seconds=checkpoint_seconds)

    scored = score_splits(EmotionRecognizer.from_model(model, spec), splits)
    # Calibrated for the lone clip, the way a user's clip arrives.
    fitted = calibrate_temperature(scored.get("val_clip", scored["val"]), splits.labels("val"))
    calibration = calibration_record(fitted, recipe.unseen_corpus_temperature_scale)
    spec = dataclasses.replace(spec, temperature=calibration["temperature"])
    meta = model_metadata(spec, model, calibration, training_record(collection, splits, recipe, result, sources),
                          split_metrics(scored, splits, spec.temperature, out.name))
    save_model_file(out, model, meta)
    json.dumps(meta)  # fail here, not in a reader, if anything is not JSON
    return meta
