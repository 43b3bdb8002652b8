"""Metrics against scikit-learn, and the shape of the evaluation report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emotionnet.evaluation.metrics import confusion_matrix, per_class, report, summary, uar
from emotionnet.labels import LABELS


@pytest.fixture(scope="module")
def sklearn_metrics():
    # Only the comparisons need scikit-learn; the hand-worked tests run without it.
    return pytest.importorskip("sklearn.metrics")


def _random_labels(seed: int, n: int = 300, skill: float = 0.5):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 6, n)
    y_pred = np.where(rng.random(n) < skill, y_true, rng.integers(0, 6, n))
    return y_true, y_pred


@pytest.mark.parametrize("seed", range(5))
def test_summary_matches_sklearn(seed, sklearn_metrics):
    y_true, y_pred = _random_labels(seed, n=50 + 97 * seed)
    got = summary(y_true, y_pred)
    assert got["n"] == len(y_true)
    assert got["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(y_true, y_pred))
    assert got["uar"] == pytest.approx(sklearn_metrics.balanced_accuracy_score(y_true, y_pred))
    assert got["uar"] == pytest.approx(sklearn_metrics.recall_score(y_true, y_pred, average="macro"))
    assert got["macro_f1"] == pytest.approx(sklearn_metrics.f1_score(y_true, y_pred, average="macro"))
    assert uar(y_true, y_pred) == got["uar"]


def test_summary_over_classes_present_in_truth(sklearn_metrics):
    """A class nobody has (a corpus without disgust, say) does not drag UAR or F1 down."""
    y_true = np.array([0, 0, 1, 1, 3, 3, 3])
    y_pred = np.array([0, 2, 1, 1, 3, 5, 0])
    present = sorted(set(y_true.tolist()))
    got = summary(y_true, y_pred)
    assert got["uar"] == pytest.approx(sklearn_metrics.recall_score(y_true, y_pred, labels=present, average="macro"))
    assert got["macro_f1"] == pytest.approx(sklearn_metrics.f1_score(y_true, y_pred, labels=present, average="macro"))
    assert got["accuracy"] == pytest.approx(4 / 7)


def test_per_class_matches_sklearn(sklearn_metrics):
    y_true, y_pred = _random_labels(7)
    precision, recall, f1, support = sklearn_metrics.precision_recall_fscore_support(
        y_true, y_pred, labels=range(6), zero_division=0)
    got = per_class(y_true, y_pred)
    assert list(got) == list(LABELS)
    for i, label in enumerate(LABELS):
        assert got[label]["precision"] == pytest.approx(precision[i])
        assert got[label]["recall"] == pytest.approx(recall[i])
        assert got[label]["f1"] == pytest.approx(f1[i])
        assert got[label]["support"] == support[i]


def test_per_class_zero_division_is_zero():
    got = per_class([0, 0, 1], [0, 0, 0])
    assert got["disgust"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert got["sad"]["support"] == 0


def test_confusion_rows_are_true_labels(sklearn_metrics):
    # Two angry clips predicted as sad, one fear clip predicted as happy.
    matrix = confusion_matrix([0, 0, 2, 5], [5, 5, 3, 5])
    assert matrix.shape == (6, 6)
    assert matrix[0, 5] == 2 and matrix[5, 0] == 0
    assert matrix[2, 3] == 1 and matrix[3, 2] == 0
    assert matrix[5, 5] == 1
    y_true, y_pred = _random_labels(3)
    np.testing.assert_array_equal(
        confusion_matrix(y_true, y_pred), sklearn_metrics.confusion_matrix(y_true, y_pred, labels=range(6)))


def test_perfect_and_empty():
    y = [0, 1, 2, 3, 4, 5]
    assert summary(y, y) == {"accuracy": 1.0, "uar": 1.0, "macro_f1": 1.0, "n": 6}
    assert summary([], []) == {"accuracy": 0.0, "uar": 0.0, "macro_f1": 0.0, "n": 0}


def test_uar_is_not_fooled_by_the_majority_class():
    y_true = [0] * 90 + [1] * 10
    y_pred = [0] * 100
    got = summary(y_true, y_pred)
    assert got["accuracy"] == pytest.approx(0.9)
    assert got["uar"] == pytest.approx(0.5)


def test_report_on_a_hand_worked_example():
    """Every figure below is worked out by hand, not by the functions under test."""
    a, d, n, s = (LABELS.index(x) for x in ("angry", "disgust", "neutral", "sad"))
    y_true = [a, a, a, d, d, n, n, n, s, s]
    y_pred = [a, a, d, d, n, n, n, a, s, s]
    corpora = ["tess"] * 5 + ["crema-d"] * 5
    result = report(y_true, y_pred, corpora, "model.safetensors", "test", {"surprise": 4, "calm": 2})

    assert set(result) == {"model", "split", "data", "overall", "per_class", "per_corpus", "confusion"}
    assert result["model"] == "model.safetensors" and result["split"] == "test"
    assert result["data"] == {"clips": 10, "per_corpus": {"crema-d": 5, "tess": 5},
                              "skipped": {"surprise": 4, "calm": 2}}
    # 7 of 10 right; recalls angry 2/3, disgust 1/2, neutral 2/3, sad 1 (fear, happy absent).
    assert result["overall"] == pytest.approx({"accuracy": 0.7, "uar": (2 / 3 + 1 / 2 + 2 / 3 + 1) / 4,
                                               "macro_f1": (2 / 3 + 1 / 2 + 2 / 3 + 1) / 4, "n": 10})
    assert list(result["per_class"]) == list(LABELS)
    assert result["per_class"]["angry"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3,
                                                          "support": 3})
    assert result["per_class"]["disgust"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5,
                                                            "support": 2})
    assert result["per_class"]["fear"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    # tess: angry 2/3 (precision 1), disgust 1/2 (precision 1/2); crema-d: neutral 2/3, sad 1.
    assert result["per_corpus"]["tess"] == pytest.approx(
        {"accuracy": 0.6, "uar": (2 / 3 + 1 / 2) / 2, "macro_f1": (0.8 + 0.5) / 2, "n": 5})
    assert result["per_corpus"]["crema-d"] == pytest.approx(
        {"accuracy": 0.8, "uar": (2 / 3 + 1) / 2, "macro_f1": (0.8 + 1) / 2, "n": 5})
    matrix = result["confusion"]["matrix"]
    assert result["confusion"]["labels"] == list(LABELS)
    assert matrix[a] == [2, 1, 0, 0, 0, 0]  # rows are the true labels
    assert matrix[n] == [1, 0, 0, 0, 2, 0]
    assert [row[n] for row in matrix] == [0, 1, 0, 0, 2, 0]  # columns the predicted ones
    # Plain JSON types throughout (no NumPy scalars).
    assert json.loads(json.dumps(result)) == result


def test_report_without_skipped():
    result = report([0, 1], [0, 1], ["custom", "custom"], "m", "all")
    assert result["data"]["skipped"] == {}
    assert result["per_corpus"]["custom"]["n"] == 2
