"""Classification metrics over label indices, in the scikit-learn manner.

UAR (unweighted average recall, the mean of per-class recalls) is the field's
main figure: it does not reward a model for favouring the commonest class.
`labels` names the classes the indices count (as scikit-learn's `labels=`; default
the six); inputs are checked first: an index outside the labels or a length that
differs is a ValueError saying so, never a class miscounted or a broadcast error.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from emotionnet.labels import LABELS


def check_indices(values: Sequence[int], name: str, n_classes: int) -> np.ndarray:
    """`values` as a 1-D integer array, each an index of one of `n_classes` labels; ValueError otherwise."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one label index per clip (1-D), got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        if not (np.issubdtype(array.dtype, np.floating) and np.all(np.mod(array, 1) == 0)):
            raise ValueError(f"{name} must hold label indices (integers), got {array.dtype}")
    array = array.astype(np.int64)
    bad = (array < 0) | (array >= n_classes)
    if bad.any():
        raise ValueError(f"{name} holds {int(array[bad][0])}, not an index of the {n_classes} labels "
                         f"(0 to {n_classes - 1})")
    return array


def check_pair(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Both checked by `check_indices`, and of the same length."""
    y_true, y_pred = check_indices(y_true, "y_true", n_classes), check_indices(y_pred, "y_pred", n_classes)
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} labels but y_pred {len(y_pred)}")
    return y_true, y_pred


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str] = LABELS) -> np.ndarray:
    """Rows are true labels, columns predicted, in the order of `labels`."""
    y_true, y_pred = check_pair(y_true, y_pred, len(labels))
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def _ratios(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    hits = np.diag(matrix).astype(float)
    support, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    recall = np.divide(hits, support, out=np.zeros_like(hits), where=support > 0)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(hits), where=denom > 0)
    return precision, recall, f1


def summary(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str] = LABELS) -> dict:
    """accuracy, UAR and macro-F1 over the classes present in `y_true`."""
    matrix = confusion_matrix(y_true, y_pred, labels)
    _, recall, f1 = _ratios(matrix)
    present = matrix.sum(axis=1) > 0
    n = int(matrix.sum())
    return {
        "accuracy": float(np.trace(matrix) / n) if n else 0.0,
        "uar": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "n": n,
    }


def per_class(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str] = LABELS) -> dict:
    matrix = confusion_matrix(y_true, y_pred, labels)
    precision, recall, f1 = _ratios(matrix)
    return {
        label: {"precision": float(precision[i]), "recall": float(recall[i]),
                "f1": float(f1[i]), "support": int(matrix[i].sum())}
        for i, label in enumerate(labels)
    }


def uar(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str] = LABELS) -> float:
    return summary(y_true, y_pred, labels)["uar"]


def collapse(y_pred: Sequence[int]) -> float:
    """The share of predictions that go to the most-predicted class (1/6 for a balanced model).

    A model that answers "angry" to every unfamiliar voice shows here first.
    """
    y_pred = check_indices(y_pred, "y_pred", np.iinfo(np.int32).max)
    return float(np.bincount(y_pred).max() / len(y_pred)) if len(y_pred) else 0.0


def reliability(y_true: Sequence[int], probabilities: np.ndarray, bins: int = 15) -> dict:
    """Confidence against accuracy in equal-width confidence bins (the reliability diagram's data)."""
    probabilities, y_true = _checked_probabilities(y_true, probabilities)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == y_true
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
    probabilities, y_true = _checked_probabilities(y_true, probabilities)
    return float(-np.mean(np.log(probabilities[np.arange(len(y_true)), y_true] + 1e-9)))


def brier_score(y_true: Sequence[int], probabilities: np.ndarray) -> float:
    """Mean squared distance between the probability vector and the one-hot truth (summed over classes)."""
    probabilities, y_true = _checked_probabilities(y_true, probabilities)
    onehot = np.eye(probabilities.shape[1])[y_true]
    return float(((probabilities - onehot) ** 2).sum(axis=1).mean()) if len(probabilities) else 0.0


def _checked_probabilities(y_true: Sequence[int], probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(clips, classes) probabilities and one true index per clip, each within the classes."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2:
        raise ValueError(f"probabilities must be (clips, classes), got shape {probabilities.shape}")
    y_true = check_indices(y_true, "y_true", probabilities.shape[1])
    if len(y_true) != len(probabilities):
        raise ValueError(f"y_true has {len(y_true)} labels but probabilities {len(probabilities)} rows")
    return probabilities, y_true


def report(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    corpora: Sequence[str],
    model: str,
    split: str,
    skipped: dict | None = None,
    labels: Sequence[str] = LABELS,
) -> dict:
    """The evaluation report of DESIGN.md for predictions over labelled clips (indices into `labels`)."""
    y_true, y_pred = check_pair(y_true, y_pred, len(labels))
    corpora = np.asarray(corpora)
    if len(corpora) != len(y_true):
        raise ValueError(f"corpora has {len(corpora)} entries but y_true {len(y_true)}")
    names = sorted(set(corpora.tolist()))
    return {
        "model": model,
        "split": split,
        "data": {
            "clips": int(len(y_true)),
            "per_corpus": {c: int((corpora == c).sum()) for c in names},
            "skipped": dict(skipped or {}),
        },
        "overall": summary(y_true, y_pred, labels),
        "per_class": per_class(y_true, y_pred, labels),
        "per_corpus": {c: summary(y_true[corpora == c], y_pred[corpora == c], labels) for c in names},
        "confusion": {"labels": list(labels), "matrix": confusion_matrix(y_true, y_pred, labels).tolist()},
    }
