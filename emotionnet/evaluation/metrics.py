"""Classification metrics over label indices, in the scikit-learn manner.

UAR (unweighted average recall, the mean of per-class recalls) is the field's
main figure: it does not reward a model for favouring the commonest class.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from emotionnet.labels import LABELS


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int = len(LABELS)) -> np.ndarray:
    """Rows are true labels, columns predicted."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)), 1)
    return matrix


def _ratios(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    hits = np.diag(matrix).astype(float)
    support, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    recall = np.divide(hits, support, out=np.zeros_like(hits), where=support > 0)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(hits), where=denom > 0)
    return precision, recall, f1


def summary(y_true: Sequence[int], y_pred: Sequence[int]) -> dict:
    """accuracy, UAR and macro-F1 over the classes present in `y_true`."""
    matrix = confusion_matrix(y_true, y_pred)
    _, recall, f1 = _ratios(matrix)
    present = matrix.sum(axis=1) > 0
    n = int(matrix.sum())
    return {
        "accuracy": float(np.trace(matrix) / n) if n else 0.0,
        "uar": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "n": n,
    }


def per_class(y_true: Sequence[int], y_pred: Sequence[int]) -> dict:
    matrix = confusion_matrix(y_true, y_pred)
    precision, recall, f1 = _ratios(matrix)
    return {
        label: {"precision": float(precision[i]), "recall": float(recall[i]),
                "f1": float(f1[i]), "support": int(matrix[i].sum())}
        for i, label in enumerate(LABELS)
    }


def uar(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    return summary(y_true, y_pred)["uar"]


def collapse(y_pred: Sequence[int]) -> float:
    """The share of predictions that go to the most-predicted class (1/6 for a balanced model).

    A model that answers "angry" to every unfamiliar voice shows here first.
    """
    y_pred = np.asarray(y_pred, dtype=int)
    return float(np.bincount(y_pred).max() / len(y_pred)) if len(y_pred) else 0.0


def reliability(y_true: Sequence[int], probabilities: np.ndarray, bins: int = 15) -> dict:
    """Confidence against accuracy in equal-width confidence bins (the reliability diagram's data)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(y_true)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    counts = np.bincount(which, minlength=bins)
    mean_confidence = np.bincount(which, confidence, minlength=bins) / np.maximum(counts, 1)
    accuracy = np.bincount(which, correct.astype(float), minlength=bins) / np.maximum(counts, 1)
    return {"edges": np.linspace(0, 1, bins + 1).tolist(), "count": counts.tolist(),
            "confidence": mean_confidence.tolist(), "accuracy": accuracy.tolist()}


def expected_calibration_error(y_true: Sequence[int], probabilities: np.ndarray, bins: int = 15) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by their share of clips."""
    return calibration_error(reliability(y_true, probabilities, bins))


def calibration_error(table: dict) -> float:
    """The ECE of a reliability table (from `reliability`, or several of them pooled)."""
    counts = np.asarray(table["count"], dtype=float)
    gaps = np.abs(np.asarray(table["accuracy"]) - np.asarray(table["confidence"]))
    return float((counts * gaps).sum() / counts.sum()) if counts.sum() else 0.0


def log_loss(y_true: Sequence[int], probabilities: np.ndarray) -> float:
    """Mean negative log-probability of the true class (what a fitted temperature minimises)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=int)
    return float(-np.mean(np.log(probabilities[np.arange(len(y_true)), y_true] + 1e-9)))


def brier_score(y_true: Sequence[int], probabilities: np.ndarray) -> float:
    """Mean squared distance between the probability vector and the one-hot truth (summed over classes)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    onehot = np.eye(probabilities.shape[1])[np.asarray(y_true, dtype=int)]
    return float(((probabilities - onehot) ** 2).sum(axis=1).mean()) if len(probabilities) else 0.0


def report(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    corpora: Sequence[str],
    model: str,
    split: str,
    skipped: dict | None = None,
) -> dict:
    """The evaluation report of DESIGN.md for predictions over labelled clips."""
    y_true, y_pred, corpora = np.asarray(y_true), np.asarray(y_pred), np.asarray(corpora)
    names = sorted(set(corpora.tolist()))
    return {
        "model": model,
        "split": split,
        "data": {
            "clips": int(len(y_true)),
            "per_corpus": {c: int((corpora == c).sum()) for c in names},
            "skipped": dict(skipped or {}),
        },
        "overall": summary(y_true, y_pred),
        "per_class": per_class(y_true, y_pred),
        "per_corpus": {c: summary(y_true[corpora == c], y_pred[corpora == c]) for c in names},
        "confusion": {"labels": list(LABELS), "matrix": confusion_matrix(y_true, y_pred).tolist()},
    }
