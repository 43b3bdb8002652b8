"""Smoke tests of benchmarks/speed.py, training.py and accuracy.py on tiny inputs, so they cannot rot.

They check that each script runs end to end and reports what it promises; the
figures of such tiny runs mean nothing (DESIGN.md: targets are measured by the
benchmarks themselves, never by timed tests).
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA = REPO_ROOT.parent / "shared" / "data"
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def _needs_corpora() -> None:
    if not (DATA / "CREMA-D").is_dir():
        pytest.skip(f"corpora not found at {DATA} (see ../shared/README.md)")


def _has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


@pytest.fixture
def private_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("EMOTIONNET_CACHE", str(cache))
    return cache


# --------------------------------------------------------------------------- speed

def test_speed_smoke(tiny_model_file, tmp_path, private_cache, capsys):
    from benchmarks import speed

    out = tmp_path / "speed.json"
    code = speed.main(["--model", str(tiny_model_file), "--generated", "--clips", "2", "--long-seconds", "8",
                       "--threads", "1", "--repeat", "1", "--cold-runs", "1", "--json", str(out)])
    assert code == 0
    table = capsys.readouterr().out
    assert "| clips | torch | 1 |" in table and "| long recording | onnx | 1 |" in table
    result = json.loads(out.read_text())
    model = result["model"]
    assert model["bytes"] == tiny_model_file.stat().st_size
    assert model["sha256"] == hashlib.sha256(tiny_model_file.read_bytes()).hexdigest()
    assert model["parameters"] > 0 and model["arch"] == "cnn"
    assert {r["backend"] for r in result["rtf"]} == {"torch", "onnx"}
    assert {r["workload"] for r in result["rtf"]} == {"clips", "clips, batched", "long recording"}
    for row in result["rtf"]:
        assert row["threads"] == 1 and 0 < row["rtf"] < math.inf
    long_rows = [r for r in result["rtf"] if r["workload"] == "long recording"]
    assert all(abs(r["audio_s"] - 8.0) < 0.01 for r in long_rows)
    clip_rows = [r for r in result["rtf"] if r["workload"] == "clips"]
    for r in clip_rows:
        assert math.isclose(r["total_s"], r["decode_s"] + r["features_s"] + r["model_s"], abs_tol=1e-4)
    cold = result["cold_start"]
    assert cold["runs"] == 1 and cold["median_wall_s"] > 0 and cold["peak_rss_mb"] > 10
    if _has("opensmile"):
        sets = {r["feature_set"] for r in result["opensmile"]["rows"]}
        assert sets == {"eGeMAPSv02", "ComParE_2016"}
    else:
        assert "skipped" in result["opensmile"]
    assert "skipped" in result["gpu_training"] or result["gpu_training"]["rows"]
    assert result["machine"]["cores"] >= 1 and result["machine"]["versions"]["torch"]
    assert str(tiny_model_file.parent) not in out.read_text()  # reports name files, never by absolute path


def test_speed_training_throughput_runs_on_cpu():
    from benchmarks import speed

    for mixed in (False, True):
        row = speed.training_throughput("cnn", {"channels": [8, 16]}, "cpu", mixed, batch_size=2, steps=1, warmup=1)
        assert row["clips_per_s"] > 0 and row["peak_gpu_mb"] is None


def test_speed_picks_real_clips_of_about_three_seconds():
    _needs_corpora()
    import soundfile

    from benchmarks import speed

    clips = speed.pick_clips(DATA, 3)
    assert len(clips) == 3
    assert all(2.5 <= soundfile.info(str(c)).duration <= 3.5 for c in clips)


# --------------------------------------------------------------------------- training

@pytest.mark.corpus
def test_training_smoke(tmp_path, capsys):
    _needs_corpora()
    from benchmarks import training

    out = tmp_path / "training.json"
    code = training.main(["--limit", "1", "--epochs", "1", "--steps-per-epoch", "1", "--json", str(out)])
    assert code == 0
    assert "| features, cold" in capsys.readouterr().out
    result = json.loads(out.read_text())
    cold, warm = result["features"]
    assert cold["cache_before"]["files"] == 0 and cold["cache_after"]["files"] == cold["clips"] == 126
    # 3 splits x (4 corpora x 6 classes + nEMO 5 + ASED 5 + TurEV-DB 4): the default recipe trains on split v2
    assert warm["cache_before"]["files"] == warm["cache_after"]["files"] == cold["cache_after"]["files"]
    assert cold["errors"] == warm["errors"] == 0
    training = result["training"]
    assert training["arch"] == "crnn"  # the default recipe's, not a benchmark's own choice
    assert training["epochs"] == 1 and training["wall_s"] > 0 and training["peak_rss_mb"] > 50
    assert 0.0 <= training["test_uar"] <= 1.0
    assert training["clips"]["train"] == 42  # one clip per corpus and emotion it has
    assert "no verdict" in result["verdict"]


# --------------------------------------------------------------------------- accuracy

def test_seed_design_is_a_plain_cnn():
    import torch

    from benchmarks import accuracy
    from emotionnet.models import build_model, count_parameters

    recipe = accuracy.recipe_for("seed_cnn", seed=1)
    assert recipe.arch == "cnn" and not recipe.augment and recipe.fit.batch_size == 32 and recipe.fit.epochs == 18
    assert recipe.fit.seed == 1
    model = build_model(recipe.arch, **recipe.model_hparams())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert 235_000 < count_parameters(model) < 250_000  # the reference design: 241k
    assert accuracy.recipe_for("cnn", seed=0, epochs=2).fit.epochs == 2


def _method(uars: dict[str, float]) -> dict:
    stats = {k: {"uar": {"mean": v, "std": 0.0}} for k, v in uars.items()}
    return {"test": {"overall": stats.pop("overall"), "per_corpus": stats}}


def test_verdicts_say_plainly_who_beats_whom():
    from benchmarks import accuracy

    peer = {"overall": 0.65, "crema-d": 0.58, "ravdess": 0.55, "tess": 0.90, "savee": 0.24}
    better = {k: v + 0.06 for k, v in peer.items()}
    almost = {**better, "tess": peer["tess"] + 0.04}
    result = {"methods": {"compare_linear_svm": _method(peer), "seed_cnn": _method(peer),
                          "cnn": _method(better), "crnn": _method(almost)}}
    lines = accuracy.verdicts(result)
    assert any(line.startswith("cnn beats compare_linear_svm") and ": YES" in line for line in lines)
    crnn = next(line for line in lines if line.startswith("crnn beats compare_linear_svm"))
    assert ": NO" in crnn and "short of +5 on: TESS" in crnn
    assert any(line.startswith("cnn vs the seed CNN: BEATS") for line in lines)


def test_aggregate_mean_and_sample_std():
    from benchmarks import accuracy

    runs = [{"test": {"overall": {"uar": u, "accuracy": u, "macro_f1": u},
                      "per_corpus": {"tess": {"uar": u, "accuracy": u, "macro_f1": u}}}} for u in (0.5, 0.7)]
    stats = accuracy.aggregate(runs)
    assert stats["overall"]["uar"]["mean"] == pytest.approx(0.6)
    assert stats["overall"]["uar"]["std"] == pytest.approx(0.1414, abs=1e-4)  # ddof=1
    assert stats["per_corpus"]["tess"]["accuracy"]["n"] == 2


@pytest.mark.corpus
def test_accuracy_smoke(tiny_model_file, tmp_path, private_cache, capsys):
    _needs_corpora()
    from benchmarks import accuracy

    with_peers = _has("opensmile") and _has("sklearn")
    only = ["seed_cnn", "cnn", "crnn"] + (["peers", "loco"] if with_peers else [])
    models = tmp_path / "models"
    out = tmp_path / "accuracy.json"
    args = ["--limit", "1", "--epochs", "1", "--steps-per-epoch", "1", "--seeds", "1", "--loco-corpora", "savee",
            "--cache", str(models), "--model", str(tiny_model_file), "--quiet"]
    assert accuracy.main([*args, "--only", ",".join(only), "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| method | overall | CREMA-D | RAVDESS | TESS | SAVEE |" in table and "### Verdicts" in table
    assert "accuracy / macro-F1 per corpus" in table
    trained = 4 if with_peers else 3  # seed_cnn, cnn, crnn (+ the LOCO crnn); the shipped file is not trained
    assert f"and trained {trained} of its {trained} neural models" in table
    result = json.loads(out.read_text())
    assert result["split"] == "v1"
    peer_names = {"egemaps_rbf_svm", "compare_linear_svm", "compare_linear_svm_speaker"}
    expected = {"seed_cnn", "cnn", "cnn_clip", "crnn", "crnn_clip", "shipped"} | (peer_names if with_peers else set())
    assert set(result["methods"]) == expected
    for name, entry in result["methods"].items():
        assert set(entry["test"]["per_corpus"]) == {"crema-d", "ravdess", "tess", "savee"}, name
        for metric in ("uar", "accuracy", "macro_f1"):
            assert 0.0 <= entry["test"]["overall"][metric]["mean"] <= 1.0
    assert result["methods"]["seed_cnn"]["recipe"]["hparams"]["batch_norm"] is False
    assert result["methods"]["seed_cnn"]["recipe"]["features"]["normalisation"] == "utterance"
    assert not any(r["reused"] for r in result["methods"]["cnn"]["runs"])
    assert any("beats the seed CNN" in v or "vs the seed CNN" in v for v in result["verdicts"])
    if with_peers:
        assert set(result["loco"]) == peer_names | {"crnn"}
        assert set(result["loco"]["crnn"]) == {"savee"}
        assert any("beats egemaps_rbf_svm by >= 5 UAR points" in v for v in result["verdicts"])
    assert str(REPO_ROOT) not in out.read_text() and str(tmp_path) not in out.read_text()  # no absolute paths

    # A re-run reuses the model files it trained.
    assert accuracy.main([*args, "--only", "cnn", "--json", str(out)]) == 0
    again = json.loads(out.read_text())
    assert all(r["reused"] for r in again["methods"]["cnn"]["runs"])
    assert again["methods"]["cnn"]["test"] == result["methods"]["cnn"]["test"]


# --------------------------------------------------------------------------- generalisation

@pytest.mark.corpus
def test_generalisation_smoke(tmp_path, capsys):
    _needs_corpora()
    from benchmarks import generalisation, generalisation_report

    out, plot = tmp_path / "generalisation.json", tmp_path / "reliability.png"
    code = generalisation.main(["--only", "channels,voices", "--channel-clips", "1", "--split", "val", "--quiet",
                                "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "## Channel suite (42 val clips" in text and "## Targets (DESIGN.md)" in text
    result = json.loads(out.read_text())
    assert result["split"] == "v3" and result["scored_split"] == "val"
    channels = result["channels"]
    # One clip per corpus and emotion it has: 6 + 6 + 6 + 6 + 5 + 5 + 4.
    assert channels["clips"] == 42
    assert set(channels["channels"]) == {"telephone_8k_mulaw", "mp3_32k", "opus_12k", "reverb_rt60_0.3-0.8",
                                         "noise_10db_snr", "level_-25db", "laptop_mic"}
    for row in channels["channels"].values():
        assert row["drop"] == pytest.approx(channels["clean"]["overall"]["uar"] - row["overall"]["uar"])
        assert 0 <= row["overall"]["ece"] <= 1 and 1 / 6 <= row["overall"]["collapse"] <= 1
    voices = result["voices"]
    if "skipped" not in voices:
        assert sum(voices["counts"].values()) == len(generalisation.VOICES) * len(generalisation.SENTENCES)
    # The reliability diagram is drawn from the in-domain section's data.
    generalisation_report.plot_reliability({"in_domain": {"alone": {"reliability": {
        "count": [0, 3, 5], "confidence": [0.0, 0.4, 0.8], "accuracy": [0.0, 0.3, 0.9]}}}}, plot)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_generalisation_pools_loco_reliability_as_one_table():
    from benchmarks import generalisation_report
    from emotionnet.evaluation.metrics import calibration_error, expected_calibration_error, reliability

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(6) * 0.5, size=300)
    y = rng.integers(0, 6, size=300)
    parts = [slice(0, 40), slice(40, 220), slice(220, 300)]  # held-out corpora of unequal size
    pooled = generalisation_report.pooled_reliability([reliability(y[p], probs[p]) for p in parts])
    whole = reliability(y, probs)
    assert pooled["count"] == whole["count"]
    np.testing.assert_allclose(pooled["accuracy"], whole["accuracy"])
    np.testing.assert_allclose(pooled["confidence"], whole["confidence"])
    assert calibration_error(pooled) == pytest.approx(expected_calibration_error(y, probs))
    assert generalisation_report.pooled_reliability([]) is None


@pytest.mark.corpus
@pytest.mark.skipif(not (_has("opensmile") and _has("sklearn")), reason="needs the bench extra (opensmile, scikit-learn)")
def test_generalisation_peers_hear_the_same_degraded_clips(private_cache):
    _needs_corpora()
    from benchmarks import generalisation, generalisation_report
    from benchmarks.common import limited
    from emotionnet.corpora import Collection, find_records, select
    from emotionnet.evaluation.channels import CHANNELS

    collection = find_records([DATA])
    small = Collection(records=limited(collection.records, 2))  # 2 clips per split, corpus and emotion
    records, conditions = generalisation.channel_conditions(select(small.records, "test")[:12], 1, 0, False)
    assert set(conditions) == {"clean", *CHANNELS} and all(len(c) == len(records) for c in conditions.values())
    assert not np.array_equal(conditions["clean"][0], conditions["noise_10db_snr"][0])
    result = generalisation.run_peer_channels(small, records, conditions, ["egemaps_rbf_svm"], 1, False)
    table = result["egemaps_rbf_svm"]
    assert table["clips"] == len(records) and set(table["channels"]) == set(CHANNELS)
    for row in table["channels"].values():
        assert row["drop"] == pytest.approx(table["clean"]["overall"]["uar"] - row["overall"]["uar"])
    text = generalisation_report.format_markdown({"model_file": "m", "split": "v2", "sha256": "0" * 64, "normalisation": "speaker",
                                           "temperature": 1.0, "machine": {}, "data": {"clips": {}},
                                           "peers_channels": result, "wall_seconds": 1.0})
    assert "## Channel suite beside the peers" in text and "eGeMAPSv02" in text


def test_the_benchmarks_run_as_a_package_without_path_hacks():
    """`python -m benchmarks.X` from the repository root: no sys.path edits, and no script
    (a module with a `main`) imports another; the shared modules have no `main`."""
    import ast

    folder = REPO_ROOT / "benchmarks"
    assert (folder / "__init__.py").is_file()
    trees = {path.stem: ast.parse(path.read_text()) for path in folder.glob("*.py")}
    scripts = {name for name, tree in trees.items()
               if any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body)}
    for name, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "path" and getattr(node.value, "id", "") == "sys":
                raise AssertionError(f"benchmarks/{name}.py touches sys.path")
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("benchmarks"):
                imported = {node.module.split(".")[1]} if "." in node.module else {a.name for a in node.names}
                assert not imported & scripts, f"benchmarks/{name}.py imports the script(s) {imported & scripts}"
    for path in (REPO_ROOT / "scripts").glob("*.py"):
        assert "sys.path" not in path.read_text(), path
