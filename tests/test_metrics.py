"""Metrics against scikit-learn, and the shape of the evaluation report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emotionnet.evaluation.metrics import confusion_matrix, per_class, report, summary, uar
from emotionnet.labels import LABELS

sklearn_metrics = pytest.importorskip("sklearn.metrics")


def _random_labels(seed: int, n: int = 300, skill: float = 0.5):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 6, n)
    y_pred = np.where(rng.random(n) < skill, y_true, rng.integers(0, 6, n))
    return y_true, y_pred


@pytest.mark.parametrize("seed", range(5))
def test_summary_matches_sklearn(seed):
    y_true, y_pred = _random_labels(seed, n=50 + 97 * seed)
    got = summary(y_true, y_pred)
    assert got["n"] == len(y_true)
    assert got["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(y_true, y_pred))
    assert got["uar"] == pytest.approx(sklearn_metrics.balanced_accuracy_score(y_true, y_pred))
    assert got["uar"] == pytest.approx(sklearn_metrics.recall_score(y_true, y_pred, average="macro"))
    assert got["macro_f1"] == pytest.approx(sklearn_metrics.f1_score(y_true, y_pred, average="macro"))
    assert uar(y_true, y_pred) == got["uar"]


def test_summary_over_classes_present_in_truth():
    """A class nobody has (a corpus without disgust, say) does not drag UAR or F1 down."""
    y_true = np.array([0, 0, 1, 1, 3, 3, 3])
    y_pred = np.array([0, 2, 1, 1, 3, 5, 0])
    present = sorted(set(y_true.tolist()))
    got = summary(y_true, y_pred)
    assert got["uar"] == pytest.approx(sklearn_metrics.recall_score(y_true, y_pred, labels=present, average="macro"))
    assert got["macro_f1"] == pytest.approx(sklearn_metrics.f1_score(y_true, y_pred, labels=present, average="macro"))
    assert got["accuracy"] == pytest.approx(4 / 7)


def test_per_class_matches_sklearn():
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


def test_confusion_rows_are_true_labels():
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


def test_report_structure_matches_design():
    y_true, y_pred = _random_labels(11, n=60)
    corpora = np.array(["crema-d", "tess", "savee"] * 20)
    result = report(y_true, y_pred, corpora, "model.safetensors", "test", {"surprise": 4, "calm": 2})

    assert set(result) >= {"model", "split", "data", "overall", "per_class", "per_corpus", "confusion"}
    assert result["model"] == "model.safetensors" and result["split"] == "test"
    assert result["data"] == {"clips": 60, "per_corpus": {"crema-d": 20, "savee": 20, "tess": 20},
                              "skipped": {"surprise": 4, "calm": 2}}
    assert set(result["overall"]) == {"accuracy", "uar", "macro_f1", "n"}
    assert result["overall"] == summary(y_true, y_pred)
    assert list(result["per_class"]) == list(LABELS)
    for figures in result["per_class"].values():
        assert set(figures) == {"precision", "recall", "f1", "support"}
    assert set(result["per_corpus"]) == {"crema-d", "tess", "savee"}
    for name, figures in result["per_corpus"].items():
        assert set(figures) == {"accuracy", "uar", "macro_f1", "n"}
        mask = corpora == name
        assert figures == summary(y_true[mask], y_pred[mask])
    assert result["confusion"]["labels"] == list(LABELS)
    assert result["confusion"]["matrix"] == confusion_matrix(y_true, y_pred).tolist()
    assert sum(map(sum, result["confusion"]["matrix"])) == 60
    # Plain JSON types throughout (no NumPy scalars).
    assert json.loads(json.dumps(result)) == result


def test_report_without_skipped():
    result = report([0, 1], [0, 1], ["custom", "custom"], "m", "all")
    assert result["data"]["skipped"] == {}
    assert result["per_corpus"]["custom"]["n"] == 2
