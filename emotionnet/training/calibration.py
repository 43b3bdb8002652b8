"""Calibration: the softmax temperature a model file ships with, and how it was reached.

Two steps, both after training (no weight changes):

1. the temperature that minimises log-loss on the validation clips, each scored alone
   (`calibrate_temperature`);
2. times a scale for a corpus the model never heard, where a model is overconfident
   (`Recipe.unseen_corpus_temperature_scale`). The scale is chosen by
   `unseen_corpus_scale` from leave-one-corpus-out models scored on validation clips
   only: their own corpora's (seen) and their held-out corpus's (unseen), over `SCALES`.

`set_temperature_scale` applies another scale to a model file already written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from emotionnet.evaluation.metrics import expected_calibration_error, log_loss
from emotionnet.inference.results import ScoredWindows

SCALES = 2.0 ** np.linspace(-1, 2, 31)  # temperature multipliers tried for an unseen corpus (1.0 among them)
ECE_TARGET_SEEN = 0.05  # DESIGN.md's calibration targets: the test split (corpora the model heard) ...
ECE_TARGET_UNSEEN = 0.10  # ... and a corpus it never heard (LOCO)


def clip_probabilities(scored: Sequence[ScoredWindows], temperature: float) -> np.ndarray:
    """(clips, classes): each clip's mean calibrated probability over its chosen windows."""
    return np.stack([s.clip_probabilities(temperature) for s in scored])


def calibrate_temperature(scored: Sequence[ScoredWindows], labels: np.ndarray) -> float:
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


def calibration_curves(scored: Sequence[ScoredWindows], labels: np.ndarray, base_temperature: float) -> dict:
    """ECE and log-loss of clips (their scored windows) at `base_temperature` times each of `SCALES`."""
    curves: dict[str, list] = {"ece": [], "nll": []}
    for scale in SCALES:
        probs = clip_probabilities(scored, base_temperature * scale)
        curves["ece"].append(expected_calibration_error(labels, probs))
        curves["nll"].append(log_loss(labels, probs))
    return curves


def unseen_corpus_scale(folds: Mapping[str, dict], seen_target: float = ECE_TARGET_SEEN,
                        unseen_target: float = ECE_TARGET_UNSEEN) -> dict:
    """The temperature scale for a corpus the model never heard, chosen on validation splits only.

    `folds` maps each held-out corpus to its LOCO model's `calibration_curves` over `SCALES`:
    `seen_val` (its training corpora's validation clips), `held_out_val` (the held-out
    corpus's validation clips) and `held_out_test` (reported, never used to choose). The
    scale chosen minimises, averaged over the folds, the worse of the two validation ECEs
    measured against its target: a user's clip is from a corpus the model never heard, but
    a confidence that is too low in-domain is no better.
    """
    if not folds:
        return {}
    curves = list(folds.values())
    seen = np.array([f["seen_val"]["ece"] for f in curves]) / seen_target
    unseen = np.array([f["held_out_val"]["ece"] for f in curves]) / unseen_target
    score = np.maximum(seen, unseen).mean(axis=0)
    best = int(np.argmin(score))
    return {"scale": float(SCALES[best]), "scales": [float(x) for x in SCALES], "criterion": score.tolist(),
            "seen_val_ece": float(np.mean([f["seen_val"]["ece"][best] for f in curves])),
            "held_out_val_ece": float(np.mean([f["held_out_val"]["ece"][best] for f in curves])),
            "held_out_test_ece": {c: f["held_out_test"]["ece"][best] for c, f in folds.items()},
            "held_out_val_best_scale": {c: float(SCALES[int(np.argmin(f["held_out_val"]["nll"]))])
                                        for c, f in folds.items()}}


def set_temperature_scale(path: str | Path, scale: float, set_by: str = "set_temperature_scale") -> dict:
    """Rewrite a model file in place with temperature = validation temperature x `scale` (weights untouched);
    returns its new calibration record."""
    from emotionnet.models.file import load_model_file, save_model_file

    if not 0.05 <= scale <= 20:
        raise ValueError(f"scale {scale:g} is outside 0.05-20")
    model, _, meta = load_model_file(path)
    record = {**calibration_record(validation_temperature(meta), scale), "set_by": set_by}
    save_model_file(path, model, {**meta, "temperature": record["temperature"], "calibration": record})
    return record
