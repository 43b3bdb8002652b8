"""The training recipe: records in, one calibrated, evaluated model file out."""

from __future__ import annotations

import datetime
import json
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from emotionnet import __version__
from emotionnet.cache import cached_log_mels
from emotionnet.corpora import SPLIT_NAME, Collection, Record, select
from emotionnet.evaluation.metrics import log_loss, report, summary
from emotionnet.features import FeatureConfig
from emotionnet.inference.scoring import ScoredWindows, WindowScorer
from emotionnet.labels import LABEL_INDEX
from emotionnet.models import build_model, count_parameters
from emotionnet.models.file import save_model_file
from emotionnet.models.spec import DEFAULT_ARCH, DEFAULT_ARCH_HPARAMS, DEFAULT_HOP, DEFAULT_WINDOW, ModelSpec
from emotionnet.training.augment import AugmentConfig
from emotionnet.training.batches import BatchMaker
from emotionnet.training.trainer import EpochCallback, FitConfig, fit


@dataclass
class Recipe:
    arch: str = DEFAULT_ARCH
    hparams: dict = field(default_factory=dict)  # merged over DEFAULT_ARCH_HPARAMS[arch]
    window: float = DEFAULT_WINDOW  # seconds the model sees at once
    hop: float = DEFAULT_HOP  # seconds between windows of longer audio
    augment: bool = True
    augmentation: AugmentConfig = field(default_factory=AugmentConfig)  # strengths, when `augment`
    # `speaker` normalisation: the share of clips trained as their own context. A user's clip
    # arrives alone, so nearly every training clip is read against its own speech (as it will
    # be); the rest keep the model able to use a speaker's other audio when an API call gives it.
    own_context_p: float = 0.9
    fit: FitConfig = field(default_factory=FitConfig)
    # The temperature fitted on validation clips is multiplied by this before it is written: a
    # user's clip comes from a corpus the model never heard, where a model is overconfident (the
    # LOCO models' log-loss-optimal scale on their held-out corpus's validation clips: 1.3-3.5).
    # 1.32 is the scale that best holds both ECE targets on the seven LOCO folds' validation
    # clips (benchmarks/generalisation.py, "Temperature for a corpus the model never heard").
    # Calibration after training: it changes no weight.
    unseen_corpus_temperature_scale: float = 1.32
    # Per speaker: what sets a clip apart from its speaker's usual voice (level, brightness,
    # range) is the emotion; per utterance that is normalised away (test UAR 0.668 alone, 0.720
    # with speaker context, against 0.690 for the per-utterance model: docs/benchmarks.md).
    features: FeatureConfig = field(default_factory=lambda: FeatureConfig(normalisation="speaker"))

    def model_hparams(self) -> dict:
        return {**DEFAULT_ARCH_HPARAMS[self.arch], **self.hparams, "n_mels": self.features.n_mels}

    def to_dict(self) -> dict:
        data = asdict(self)
        data["features"] = self.features.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Recipe:
        """The inverse of `to_dict`; keys left out keep their defaults, unknown keys are an error."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown recipe key(s): {', '.join(sorted(unknown))}")
        recipe = cls(**{k: v for k, v in data.items() if k not in ("fit", "features", "augmentation")})
        if recipe.arch not in DEFAULT_ARCH_HPARAMS:
            raise ValueError(f"unknown architecture {recipe.arch!r}; choose from {', '.join(DEFAULT_ARCH_HPARAMS)}")
        recipe.fit = FitConfig(**data.get("fit", {}))
        recipe.features = FeatureConfig.from_dict({**recipe.features.to_dict(), **data.get("features", {})})
        augmentation = {k: tuple(v) if isinstance(v, list) else v for k, v in data.get("augmentation", {}).items()}
        recipe.augmentation = AugmentConfig(**augmentation)
        return recipe

    @classmethod
    def read(cls, path: str | Path) -> Recipe:
        """A recipe written by `write` (or by `emotionnet tune`)."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: not a usable recipe file ({exc})") from None

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")


def _labels(records: list[Record]) -> np.ndarray:
    return np.array([LABEL_INDEX[r.emotion] for r in records])


def clip_probabilities(scored: list[ScoredWindows], temperature: float) -> np.ndarray:
    """(clips, classes): each clip's mean calibrated probability over its chosen windows."""
    return np.stack([s.clip_probabilities(temperature) for s in scored])


def calibrate_temperature(scored: list[ScoredWindows], labels: np.ndarray) -> float:
    """The softmax temperature minimising validation log-loss (a 1-D grid search)."""
    best_t, best_nll = 1.0, float("inf")
    for t in np.exp(np.linspace(np.log(0.3), np.log(5.0), 80)):
        nll = log_loss(labels, clip_probabilities(scored, float(t)))
        if nll < best_nll:
            best_t, best_nll = float(t), nll
    return best_t


def calibration_record(validation_temperature: float, scale: float) -> dict:
    """How a model file's temperature was reached (kept in its metadata)."""
    return {"validation_temperature": validation_temperature, "unseen_corpus_scale": scale,
            "temperature": validation_temperature * scale}


def validation_temperature(metadata: dict) -> float:
    """The temperature fitted on validation clips, before any unseen-corpus scale."""
    return float(metadata.get("calibration", {}).get("validation_temperature", metadata["temperature"]))


def train_model(
    collection: Collection,
    out: str | Path,
    recipe: Recipe,
    callbacks: list[EpochCallback] | None = None,
    progress: bool = True,
    sources: list[str] | None = None,
) -> dict:
    """Train, calibrate and evaluate; write the model file to `out` and return its metadata."""
    splits = {name: select(collection.records, name) for name in ("train", "val", "test")}
    if not splits["train"] or not splits["val"]:
        raise ValueError("training needs clips in both the train and val splits; "
                         f"found {len(splits['train'])} train and {len(splits['val'])} val")
    features: dict[str, list] = {}
    failed: dict[str, str] = {}
    for name, records in splits.items():
        mels, errors = cached_log_mels([r.path for r in records], recipe.features, progress=progress)
        failed.update(errors)
        splits[name] = [r for r, m in zip(records, mels) if m is not None]
        features[name] = [m for m in mels if m is not None]
    for error in failed.values():
        print(f"emotionnet: skipped {error}", file=sys.stderr)

    hparams = recipe.model_hparams()
    # Seeded before the model is built: its initial weights come from the global generator too.
    torch.manual_seed(recipe.fit.seed)
    model = build_model(recipe.arch, **hparams)
    spec = ModelSpec(recipe.arch, hparams, recipe.features, recipe.window, recipe.hop)
    frames = recipe.features.frames(recipe.features.samples_for_seconds(recipe.window))
    batches = BatchMaker(features["train"], splits["train"], recipe.features, frames,
                         recipe.augmentation if recipe.augment else None, recipe.own_context_p)
    val_labels = _labels(splits["val"])
    # Each speaker's clips are normalised together, as `emotionnet evaluate` does.
    contexts = {name: WindowScorer(model, spec).speaker_stats(
        features[name], [r.group for r in splits[name]]) for name in ("val", "test")}

    val_corpora = np.array([r.corpus for r in splits["val"]])

    def validate(m) -> dict:
        # Each clip alone, as a user's arrives; the selection figure is the mean of the
        # corpora's UARs, so a model cannot win by fitting the largest corpus's voices.
        scored = WindowScorer(m, spec).score_windows(features["val"])
        pred = clip_probabilities(scored, 1.0).argmax(axis=1)
        figures = summary(val_labels, pred)
        per_corpus = [summary(val_labels[val_corpora == c], pred[val_corpora == c])["uar"]
                      for c in sorted(set(val_corpora))]
        return {"uar": float(np.mean(per_corpus)), "val_uar_pooled": figures["uar"],
                "val_accuracy": figures["accuracy"], "val_macro_f1": figures["macro_f1"]}

    out = Path(out)
    checkpoint = out.with_name(out.name + ".ckpt")
    result = fit(model, recipe.fit, batches, validate, checkpoint=checkpoint,
                 callbacks=callbacks or [], progress=progress, clip_names=[r.path for r in splits["train"]])

    recognizer = WindowScorer(model, spec)
    scored = {name: recognizer.score_windows(features[name], contexts=contexts[name])
              for name in ("val", "test") if splits[name]}
    if recipe.features.normalisation == "speaker":
        # The same clips scored one by one, each its own context, as a lone clip is.
        scored["val_clip"] = recognizer.score_windows(features["val"])
        if splits["test"]:
            scored["test_clip"] = recognizer.score_windows(features["test"])
    # Calibrated for the lone clip, the way a user's clip arrives.
    validation_temperature = calibrate_temperature(scored.get("val_clip", scored["val"]), val_labels)
    temperature = validation_temperature * recipe.unseen_corpus_temperature_scale
    metrics = {}
    for name in scored:
        records = splits[name.removesuffix("_clip")]
        pred = clip_probabilities(scored[name], temperature).argmax(axis=1)
        rep = report(_labels(records), pred, [r.corpus for r in records], out.name, name)
        metrics[name] = {k: rep[k] for k in ("overall", "per_corpus", "per_class", "confusion")}

    meta = {
        **spec.to_metadata(),
        "model": {"arch": recipe.arch, "hparams": hparams, "parameters": count_parameters(model)},
        "temperature": temperature,
        "calibration": calibration_record(validation_temperature, recipe.unseen_corpus_temperature_scale),
        "training": {
            "recipe": recipe.to_dict(),
            "corpora": collection.per_corpus(),
            "clips": {k: len(v) for k, v in splits.items()},
            "sources": sources or [],
            "split": SPLIT_NAME,
            "excluded": [Path(p).name for p in collection.excluded],
            "skipped_labels": dict(collection.skipped),
            "epochs": len(result.history),
            "best_epoch": result.best_epoch,
            "wall_seconds": round(result.seconds, 1),
            "history": result.history,
            "package_version": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "date": datetime.date.today().isoformat(),
        },
        "metrics": metrics,
    }
    save_model_file(out, model, meta)
    json.dumps(meta)  # fail here, not in a reader, if anything is not JSON
    return meta
