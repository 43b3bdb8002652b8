"""The classic-peer benchmark (openSMILE + SVM): its parts on generated audio, then a smoke run on the corpora."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import voiced, write_wav

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA = REPO_ROOT / ".." / "shared" / "data"


@pytest.fixture(scope="module")
def peers():
    pytest.importorskip("opensmile", reason="opensmile is not installed (pip install -e .[dev])")
    pytest.importorskip("sklearn", reason="scikit-learn is not installed (pip install -e .[dev])")
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from benchmarks import peer_methods

    return peer_methods


@pytest.fixture(scope="module")
def result(peers, tmp_path_factory):
    if not DATA.is_dir():
        pytest.skip("the corpora are not in ../shared/data")
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EMOTIONNET_CACHE", str(cache))
        first = peers.run_peers("../shared/data", limit=1, loco_corpora=("tess", "savee"), progress=False)
        again = peers.run_peers("../shared/data", limit=1, loco=False, progress=False)
    return first, again


def test_extraction_on_generated_clips_is_cached_and_reports_bad_ones(peers, tmp_path, monkeypatch):
    monkeypatch.setenv("EMOTIONNET_CACHE", str(tmp_path / "cache"))
    clips = [str(write_wav(tmp_path / f"c{i}.wav", voiced(1.0, seed=i))) for i in range(2)]
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    vectors, timing = peers.extract_features([*clips, str(bad)], "eGeMAPSv02", workers=1, progress=False)
    assert sorted(vectors) == clips and all(v.shape == (88,) for v in vectors.values())
    assert timing["extracted_now"] == 2 and len(timing["failed"]) == 1 and "bad.wav" in timing["failed"][0]
    again, timing = peers.extract_features(clips, "eGeMAPSv02", workers=1, progress=False)
    assert timing["extracted_now"] == 0  # the second time, from the cache
    for path in clips:
        np.testing.assert_array_equal(again[path], vectors[path])


def test_each_method_separates_separable_classes(peers):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(6), 20)
    x = rng.normal(0, 1, (120, 8)) + 4.0 * np.eye(6, 8)[y]
    for method in peers.METHODS:
        (predicted,), _ = peers._fit_predict(method, x, y, [x], seed=0, class_weight="balanced")
        assert np.mean(predicted == y) > 0.9, method


def _check_summary(s: dict) -> None:
    assert set(s) >= {"accuracy", "uar", "macro_f1", "n"}
    for key in ("accuracy", "uar", "macro_f1"):
        assert isinstance(s[key], float) and not math.isnan(s[key]) and 0.0 <= s[key] <= 1.0
    assert s["n"] > 0


@pytest.mark.corpus
def test_result_structure(result, peers):
    first, _ = result
    assert first["split"] == "v1"
    assert set(first["methods"]) == set(peers.METHODS)
    for entry in first["methods"].values():
        for split in ("test", "val"):
            rep = entry[split]
            assert rep["split"] == split
            _check_summary(rep["overall"])
            assert set(rep["per_corpus"]) == {"crema-d", "ravdess", "tess", "savee"}
            for s in rep["per_corpus"].values():
                _check_summary(s)
            assert list(rep["per_class"]) == list(rep["confusion"]["labels"])
            matrix = rep["confusion"]["matrix"]
            assert len(matrix) == 6 and sum(map(sum, matrix)) == rep["overall"]["n"]
    for table in first["loco"].values():
        assert set(table) == {"tess", "savee"}
        for s in table.values():
            _check_summary(s)


@pytest.mark.corpus
def test_extraction_is_cached_and_timed(result):
    first, again = result
    for feature_set, n_features in (("eGeMAPSv02", 88), ("ComParE_2016", 6373)):
        t1, t2 = first["extraction"][feature_set], again["extraction"][feature_set]
        assert t1["n_features"] == n_features
        assert t1["extracted_now"] == t1["clips"] > 0 and not t1["failed"]
        assert t2["extracted_now"] == 0 and t2["clips"] == t1["clips"]  # second run: all from the cache
        assert t1["rtf_opensmile"] > 0  # measured and recorded; its size is benchmarks/peers.py's to report
    # the same features give the same predictions
    for method, entry in first["methods"].items():
        assert entry["test"]["confusion"] == again["methods"][method]["test"]["confusion"]


@pytest.mark.corpus
def test_table_prints(result):
    from benchmarks.peers import format_table

    text = format_table(result[0])
    assert "TEST UAR" in text and "CREMA-D" in text and "egemaps_rbf_svm" in text


def test_per_speaker_standardisation_uses_each_speakers_own_statistics(peers):
    from emotionnet.corpora import Record

    rng = np.random.default_rng(0)
    records = [Record(f"{s}{i}.wav", "custom", s, "angry") for s in ("a", "b") for i in range(5)]
    offset = {"a": 0.0, "b": 50.0}  # speaker b's recording is far louder in every feature
    vectors = {r.path: rng.normal(offset[r.speaker], 1.0, 4) for r in records}
    x, _, _ = peers.feature_matrix(records, vectors, per_speaker=True)
    for speaker in ("a", "b"):
        rows = x[[r.speaker == speaker for r in records]]
        np.testing.assert_allclose(rows.mean(axis=0), 0, atol=1e-9)
        np.testing.assert_allclose(rows.std(axis=0), 1, atol=1e-6)
    plain, _, _ = peers.feature_matrix(records, vectors)
    assert abs(plain[5:].mean() - plain[:5].mean()) > 40
