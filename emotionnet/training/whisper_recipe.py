"""Train a `whisper-base` model file: cache the frozen encoder's states, train the head, calibrate.

    emotionnet train ../shared/data --arch whisper --out whisper.safetensors

The encoder never trains, so the slow part (every clip and its augmented
copies through Whisper, about 1 s of CPU per 15 s of audio) is cached and
resumable; the head then trains in minutes. The temperature is fitted on the
validation clips and multiplied by the unseen-corpus scale that the LOCO
benchmark chose on validation splits (`benchmarks/whisper_head.py`).
"""

from __future__ import annotations

import datetime
import platform
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

from emotionnet.corpora import SPLIT_NAME, Collection, Record, split_of
from emotionnet.evaluation.metrics import report
from emotionnet.labels import LABEL_INDEX
from emotionnet.models import build_model, count_parameters
from emotionnet.models.file import save_model_file
from emotionnet.models.spec import ModelSpec, default_hparams
from emotionnet.models.whisper.encoder import WhisperEncoder
from emotionnet.models.whisper.frontend import WHISPER_FEATURES
from emotionnet.models.whisper.weights import ENCODER_NAME, load_encoder_tensors, tensors_digest
from emotionnet.training.calibration import calibrate_temperature
from emotionnet.training.encoder_cache import (
    HOP_SECONDS,
    WINDOW_SECONDS,
    StateStore,
    encoder_folder,
    fill,
    window_shape,
)
from emotionnet.training.head_training import (
    CachedStates,
    CachedStatistics,
    HeadConfig,
    as_scored,
    clip_logits,
    clip_probabilities,
    train_head,
)
from emotionnet.training.statistics_cache import (
    LONGEST_CROP_S,
    SHORTEST_CROP_S,
    at_most_per_cell,
    fill_statistics,
    statistics_folder,
)

# Chosen by the LOCO benchmark on validation clips only (docs/results/whisper-head-loco.md).
UNSEEN_CORPUS_TEMPERATURE_SCALE = 1.189
# Windows do not overlap: a long file is then encoded once, which keeps its real-time factor at a clip's.
INFERENCE_HOP_SECONDS = WINDOW_SECONDS


@dataclass(frozen=True)
class WhisperRecipe:
    head: HeadConfig = field(default_factory=HeadConfig)
    augmented_copies: int = 2  # of each training clip, beside the clean one (chosen by the LOCO study)
    unseen_corpus_temperature_scale: float = UNSEEN_CORPUS_TEMPERATURE_SCALE
    # "windows": the head fits 3 s windows (short clips repeated) from the frame cache and answers
    # 3 s windows only. "varied": the stats head fits each clip whole and a 1-10 s crop of it, over
    # real frames (statistics_cache.py), and answers any window of `window_range` at any length.
    lengths: str = "windows"
    window: float = WINDOW_SECONDS  # the default window of a "varied" model (long files are cut into them)
    window_range: tuple[float, float] = (SHORTEST_CROP_S, LONGEST_CROP_S)
    # At most this many clips per corpus x emotion of each split ({"train": 100, ...}; None: all).
    clips_per_cell: dict | None = None
    crops: bool = True  # a "varied" head also fits one 1-10 s crop of each training clip

    @property
    def variants(self) -> tuple[str, ...]:
        crops = ("crop",) if self.lengths == "varied" and self.crops else ()
        return ("clean", *crops, *(f"aug{i + 1}" for i in range(self.augmented_copies)))

    def to_dict(self) -> dict:
        return {"arch": "whisper", "head": self.head.to_dict(), "augmented_copies": self.augmented_copies,
                "unseen_corpus_temperature_scale": self.unseen_corpus_temperature_scale, "lengths": self.lengths,
                "window": self.window, "window_range": list(self.window_range),
                "clips_per_cell": self.clips_per_cell, "crops": self.crops}

    @classmethod
    def from_dict(cls, data: dict) -> WhisperRecipe:
        """The inverse of `to_dict` (as `emotionnet tune --arch whisper` writes it); unknown keys are an error."""
        unknown = set(data) - {"arch", "head", "augmented_copies", "unseen_corpus_temperature_scale", "lengths",
                               "window", "window_range", "clips_per_cell", "crops"}
        if unknown or data.get("arch", "whisper") != "whisper":
            raise ValueError(f"not a whisper recipe (unknown keys: {', '.join(sorted(unknown)) or 'none'}, "
                             f"arch {data.get('arch')!r})")
        rest = {k: v for k, v in data.items() if k not in ("arch", "head")}
        if "window_range" in rest:
            rest["window_range"] = tuple(rest["window_range"])
        # A recipe written before the stats head names no kind: it was the attentive head, with masks.
        return cls(HeadConfig(**{"kind": "attentive", "class_masks": True, **data.get("head", {})}), **rest)

    def hparams(self, encoder_digest: str) -> dict:
        h = self.head
        return {**default_hparams("whisper", WHISPER_FEATURES.n_mels), "encoder_digest": encoder_digest,
                "layers": h.layers, "hidden": h.hidden, "attention": h.attention, "dropout": h.dropout,
                "frame_pool": h.frame_pool, "center_time": h.center_time, "head": h.kind}


def fit_temperature(logits: list[torch.Tensor], labels: np.ndarray) -> float:
    """The temperature minimising validation log-loss (the CRNN's calibration, on cached windows)."""
    return calibrate_temperature(as_scored(logits), labels)


def cache_states(records: list[Record], recipe: WhisperRecipe, encoder: WhisperEncoder, digest: str,
                 cache_dir: str | Path | None = None) -> None:
    """Fill the encoder cache: every clip clean, training clips also augmented (resumable)."""
    for variant in recipe.variants:
        chosen = records if variant == "clean" else [r for r in records if split_of(r) == "train"]
        fill(chosen, variant, StateStore(encoder_folder(digest, cache_dir) / variant), 0, encoder, digest)


def prepare_cache(records: list[Record], recipe: WhisperRecipe, fill_missing: bool = True,
                  encoder_weights: str | Path | None = None,
                  cache_dir: str | Path | None = None) -> tuple[CachedStates, str]:
    """The encoder cache for these records, filled where it lacks them (unless not `fill_missing`:
    another process is filling it), and where the weights came from (`encoder_weights`, else the
    installed weight packages). `cache_dir`: the cache folder (default ~/.cache/emotionnet)."""
    tensors, where = load_encoder_tensors(encoder_weights)
    digest = tensors_digest(tensors)
    encoder = WhisperEncoder.from_ctranslate2(tensors)
    del tensors
    if recipe.lengths == "varied":
        for variant in recipe.variants if fill_missing else ():
            chosen = records if variant == "clean" else [r for r in records if split_of(r) == "train"]
            fill_statistics(chosen, variant, 0, encoder, digest, cache_dir)
        return CachedStatistics(statistics_folder(digest, cache_dir), recipe.variants, encoder.n_states,
                                encoder.positions.shape[1], digest), where
    if fill_missing:
        cache_states(records, recipe, encoder, digest, cache_dir)
    return CachedStates(encoder_folder(digest, cache_dir), recipe.variants, window_shape(encoder), digest), where


def _drawn(records: list[Record], clips_per_cell: dict | None) -> list[Record]:
    """The records of `clips_per_cell`'s fixed draw (at most so many per corpus x emotion of each split)."""
    if not clips_per_cell:
        return records
    kept = {r.path for split, limit in clips_per_cell.items()
            for r in at_most_per_cell([r for r in records if split_of(r) == split], limit)}
    return [r for r in records if r.path in kept or split_of(r) not in clips_per_cell]


def train_whisper_model(collection: Collection, out: str | Path, recipe: WhisperRecipe | None = None,
                        sources: list[str] | None = None, progress: bool = True, fill_missing: bool = True,
                        encoder_weights: str | Path | None = None, cache_dir: str | Path | None = None) -> dict:
    """Train, calibrate and evaluate a `whisper` head; write its model file to `out`; return its metadata.

    `encoder_weights`: where the encoder's weights are (None: the installed weight packages); `cache_dir`:
    the cache folder of the encoder's states (None: ~/.cache/emotionnet)."""
    recipe = recipe or WhisperRecipe()
    if recipe.lengths not in ("windows", "varied"):
        raise ValueError(f"lengths must be windows or varied, got {recipe.lengths!r}")
    if recipe.lengths == "varied" and recipe.head.kind != "stats":
        raise ValueError("a head fitted on varied lengths is the stats head (the statistics cache holds no frames)")
    start = time.time()
    records = _drawn(collection.records, recipe.clips_per_cell)
    cache, where = prepare_cache(records, recipe, fill_missing, encoder_weights, cache_dir)
    digest = cache.encoder_digest
    parts = {name: [r for r in records if split_of(r) == name and cache.windows(r, "clean")]
             for name in ("train", "val", "test")}
    head, fit = train_head(cache, parts["train"], parts["val"], recipe.head, recipe.variants,
                           progress=(lambda m: print(m, flush=True)) if progress else None)
    logits = {name: clip_logits(head, cache, parts[name], recipe.head.layers) for name in ("val", "test")}
    validation_temperature = fit_temperature(logits["val"], _labels(parts["val"]))
    temperature = validation_temperature * recipe.unseen_corpus_temperature_scale
    hparams = recipe.hparams(digest)
    model = build_model("whisper", **hparams)
    model.head.load_state_dict(head.state_dict())
    if recipe.lengths == "varied":  # windows do not overlap, as below
        spec = ModelSpec("whisper", hparams, WHISPER_FEATURES, recipe.window, recipe.window, temperature,
                         recipe.window_range, "own length")
    else:
        spec = ModelSpec("whisper", hparams, WHISPER_FEATURES, WINDOW_SECONDS, INFERENCE_HOP_SECONDS, temperature)
    metrics = {}
    for name in ("val", "test"):
        if parts[name]:
            pred = clip_probabilities(logits[name], temperature).argmax(axis=1)
            rep = report(_labels(parts[name]), pred, [r.corpus for r in parts[name]], Path(out).name, name)
            metrics[name] = {k: rep[k] for k in ("overall", "per_corpus", "per_class", "confusion")}
    described = spec.to_metadata()
    meta = {
        **described,
        "model": {**described["model"], "parameters": count_parameters(model),
                  "encoder": {"name": ENCODER_NAME, "digest": digest, "source": "installed weights" if
                              where.startswith("the installed") else Path(where).name}},
        "calibration": {"validation_temperature": validation_temperature,
                        "unseen_corpus_scale": recipe.unseen_corpus_temperature_scale, "temperature": temperature},
        "training": {
            "recipe": {"head": recipe.head.to_dict(), "augmented_copies": recipe.augmented_copies,
                       **({"lengths": "varied", "variants": list(recipe.variants),
                           "clips_per_cell": recipe.clips_per_cell} if recipe.lengths == "varied" else
                          {"window_seconds": WINDOW_SECONDS, "cache_hop_seconds": HOP_SECONDS})},
            "corpora": collection.per_corpus(), "clips": {k: len(v) for k, v in parts.items()},
            "sources": sources or [], "split": SPLIT_NAME,
            "excluded": [Path(p).name for p in collection.excluded], "skipped_labels": dict(collection.skipped),
            "epochs": len(fit["history"]), "best_epoch": fit["best_epoch"], "history": fit["history"],
            "wall_seconds": round(time.time() - start, 1), "package_version": version("emotionnet"),
            "torch": torch.__version__, "python": platform.python_version(), "date": datetime.date.today().isoformat(),
        },
        "metrics": metrics,
    }
    save_model_file(out, model, meta)
    return meta


def _labels(records: list[Record]) -> np.ndarray:
    return np.array([LABEL_INDEX[r.emotion] for r in records])
