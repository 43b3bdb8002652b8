"""Training end to end: the CLI on generated data, a few real steps, the feature cache."""

from __future__ import annotations

import copy
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import cli_env, make_toy_corpus, voiced

from emotionnet import cache
from emotionnet.cache import cached_log_mels
from emotionnet.cli.main import main
from emotionnet.corpora import find_records, select
from emotionnet.features import FeatureConfig
from emotionnet.inference.recognizer import EmotionRecognizer
from emotionnet.labels import LABELS
from emotionnet.models import build_model, count_parameters
from emotionnet.models.file import load_model_file, save_model_file
from emotionnet.training.batches import BatchMaker
from emotionnet.training.calibration import validation_temperature
from emotionnet.training.recipe import Recipe

pytestmark = pytest.mark.slow  # browser, Ray, service and training tests (pyproject markers)

REPORT_KEYS = {"model", "split", "data", "overall", "per_class", "per_corpus", "confusion"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A learnable toy corpus (pitch depends on the class) with a manifest, and a private cache."""
    root = tmp_path_factory.mktemp("toy")
    make_toy_corpus(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EMOTIONNET_CACHE", str(root / "cache"))
        yield root


@pytest.fixture(scope="module")
def trained(generated):
    out = generated / "toy.safetensors"
    code = main(["train", "--manifest", str(generated / "toy.csv"), "--out", str(out), "--epochs", "2",
                 "--arch", "cnn", "--steps-per-epoch", "3", "--batch-size", "8", "--channels", "8,16", "--window", "1.0",
                 "--quiet"])
    assert code == 0
    return out


def test_train_writes_a_complete_model_file(trained, generated):
    assert trained.is_file()
    assert (generated / "toy.safetensors.ckpt").is_file()
    model, _, meta = load_model_file(trained)
    assert {"format", "labels", "features", "model", "temperature", "training", "metrics"} <= set(meta)
    assert meta["format"] == 1 and meta["labels"] == list(LABELS)
    assert FeatureConfig.from_dict(meta["features"]) == FeatureConfig(normalisation="speaker")  # the recipe default
    assert meta["model"]["arch"] == "cnn" and meta["model"]["hparams"]["channels"] == [8, 16]
    assert meta["model"]["parameters"] == count_parameters(model)
    assert meta["inference"]["window"] == 1.0
    # The validation temperature, scaled for a corpus the model never heard, is the one used.
    calibration = meta["calibration"]
    scale = Recipe().unseen_corpus_temperature_scale
    assert calibration["unseen_corpus_scale"] == meta["training"]["recipe"]["unseen_corpus_temperature_scale"] == scale
    assert meta["temperature"] == pytest.approx(calibration["validation_temperature"] * scale) and meta["temperature"] > 0
    assert validation_temperature(meta) == calibration["validation_temperature"]
    assert validation_temperature({"temperature": 0.8}) == 0.8  # files written before the scale existed
    training = meta["training"]
    assert training["split"] == "v3" and training["epochs"] == 2
    assert training["corpora"] == {"custom": 36}
    assert training["clips"] == {"train": 24, "val": 6, "test": 6}
    assert [h["epoch"] for h in training["history"]] == [1, 2]
    assert all(np.isfinite(h["loss"]) for h in training["history"])
    assert {"package_version", "date", "wall_seconds", "recipe"} <= set(training)
    assert set(meta["metrics"]) == {"val", "val_clip", "test", "test_clip"}
    for figures in meta["metrics"].values():
        assert set(figures["overall"]) == {"accuracy", "uar", "macro_f1", "n"}
        assert figures["overall"]["n"] == 6
    json.dumps(meta)


def test_train_resumes_from_its_checkpoint(trained, generated, capsys):
    capsys.readouterr()
    before = load_model_file(trained).metadata["training"]["history"]
    # Without --quiet: the trainer only announces a resume when it shows progress.
    code = main(["train", "--manifest", str(generated / "toy.csv"), "--out", str(trained), "--epochs", "2",
                 "--arch", "cnn", "--steps-per-epoch", "3", "--batch-size", "8", "--channels", "8,16", "--window", "1.0"])
    assert code == 0
    out = capsys.readouterr().out
    assert "resuming" in out and "after epoch 2" in out
    assert "epoch   1" not in out  # nothing was trained again
    assert load_model_file(trained).metadata["training"]["history"] == before


def test_the_same_seed_trains_the_same_weights(generated, tmp_path):
    from safetensors.torch import load_file

    def train(name: str, seed: int) -> dict:
        out = tmp_path / name
        assert main(["train", "--manifest", str(generated / "toy.csv"), "--out", str(out), "--epochs", "1",
                     "--arch", "cnn", "--steps-per-epoch", "2", "--batch-size", "8", "--channels", "8,16",
                     "--window", "1.0", "--seed", str(seed), "--quiet"]) == 0
        return load_file(out)

    torch.manual_seed(1234)  # whatever the process drew before must not matter
    first = train("a.safetensors", 0)
    torch.rand(7)
    again, other = train("b.safetensors", 0), train("c.safetensors", 1)
    assert first.keys() == again.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)  # initial weights included
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_evaluate_json_report(trained, generated, capsys):
    capsys.readouterr()
    code = main(["evaluate", "--manifest", str(generated / "toy.csv"), "--model", str(trained),
                 "--json", "--split", "all"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert REPORT_KEYS <= set(result)
    assert result["split"] == "all" and result["model"] == trained.name
    assert result["data"]["clips"] == 36 and result["data"]["per_corpus"] == {"custom": 36}
    assert result["overall"]["n"] == 36
    assert list(result["per_class"]) == list(LABELS)
    assert all(m["support"] == 6 for m in result["per_class"].values())
    assert result["confusion"]["labels"] == list(LABELS)
    assert np.array(result["confusion"]["matrix"]).sum(axis=1).tolist() == [6] * 6


def test_evaluate_writes_report_and_confusion(trained, generated, tmp_path, capsys):
    out = tmp_path / "report"
    code = main(["evaluate", "--manifest", str(generated / "toy.csv"), "--model", str(trained),
                 "--split", "test", "--out", str(out)])
    assert code == 0
    table = capsys.readouterr().out
    assert "UAR" in table and "overall" in table
    result = json.loads((out / "report.json").read_text())
    assert REPORT_KEYS <= set(result) and result["overall"]["n"] == 6
    assert (out / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_without_matplotlib_writes_the_report_and_says_why_there_is_no_plot(
        trained, generated, tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the `app` extra were not installed
    out = tmp_path / "report"
    code = main(["evaluate", "--manifest", str(generated / "toy.csv"), "--model", str(trained),
                 "--split", "test", "--out", str(out)])
    assert code == 0 and (out / "report.json").is_file() and not (out / "confusion.png").exists()
    assert 'confusion.png not written: the confusion plot needs matplotlib (pip install "emotionnet[app]")' \
        in capsys.readouterr().err


def test_feature_cache_computes_each_clip_once(generated, monkeypatch):
    config = FeatureConfig()
    paths = sorted(str(p) for p in (generated / "clips").glob("*.wav"))[:4]
    folder = generated / "cache-once"
    first, errors = cached_log_mels(paths, config, workers=1, progress=False, cache_dir=folder)
    assert not errors and len(first) == 4
    assert len(list((generated / "cache-once").rglob("*.npy"))) == 4

    class NoPool:
        def __init__(self, *args, **kwargs):
            raise AssertionError("a cached clip was computed again")

    monkeypatch.setattr(cache, "ProcessPoolExecutor", NoPool)
    second, errors = cached_log_mels(paths, config, progress=False, cache_dir=folder)
    assert not errors
    for a, b in zip(first, second):
        assert a.dtype == np.float16 and a.shape[0] == 64
        np.testing.assert_array_equal(a, b)


def test_feature_cache_reports_bad_files(generated, tmp_path):
    good = str(sorted((generated / "clips").glob("*.wav"))[0])
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    mels, errors = cached_log_mels([good, str(bad)], FeatureConfig(), workers=1, progress=False,
                                   cache_dir=tmp_path / "cache")
    assert mels[0] is not None and mels[1] is None
    assert list(errors) == [str(bad)] and "unreadable" in errors[str(bad)]


# On the real corpora: a few steps on a small stratified sample.

def _stratified(records, per_class: int) -> list:
    by_label = defaultdict(list)
    for r in sorted(records, key=lambda r: r.path):
        by_label[r.emotion].append(r)
    chosen = []
    for label in LABELS:
        pool = by_label[label]
        step = max(1, len(pool) // per_class)
        chosen += pool[::step][:per_class]
    return chosen


@pytest.mark.corpus
def test_a_few_real_steps_lower_the_loss(shared_data, tmp_path):
    torch.manual_seed(0)
    found = find_records([shared_data])
    train = _stratified(select(found.records, "train"), 8)  # 48 clips
    val = _stratified(select(found.records, "val"), 4)  # 24 clips
    assert len(train) == 48 and len(val) == 24
    config = FeatureConfig()
    mels, errors = cached_log_mels([r.path for r in train + val], config, progress=False, cache_dir=tmp_path / "cache")
    assert not errors

    frames = config.frames_of_samples(config.samples_for_seconds(2.0))
    batches = BatchMaker(mels[:48], train, config, frames, augment=None)
    hparams = {"channels": [8, 16, 32], "convs_per_block": 1, "dropout": 0.0, "n_mels": 64}
    model = build_model("cnn", **hparams)
    fixed_x, fixed_y, _ = batches.batch(torch.arange(48), torch.Generator().manual_seed(123))

    def fixed_loss() -> float:
        """Loss on one fixed crop of every training clip (batch statistics, weights untouched)."""
        with torch.no_grad():
            return F.cross_entropy(copy.deepcopy(model).train()(fixed_x), fixed_y).item()

    before = fixed_loss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    losses = []
    model.train()
    for _ in range(15):
        x, y, _ = batches.batch(batches.indices(16, g), g)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    after = fixed_loss()
    assert np.mean(losses[-4:]) < np.mean(losses[:4]) - 0.05, losses
    # Below chance (ln 6 = 1.79), not just rid of a bad initial bias: about 1.68 after 15 steps.
    assert after < before and after < np.log(6) - 0.05, (before, after)

    # The saved file reloads to the same outputs, through the file and through the recognizer.
    model.eval()
    path = tmp_path / "real.safetensors"
    meta = {"sample_rate": 16_000, "features": config.to_dict(),
            "model": {"arch": "cnn", "hparams": hparams, "parameters": count_parameters(model)},
            "inference": {"window": 2.0, "hop": 1.0}, "temperature": 1.0,
            "training": {"recipe": "test", "split": "v1"}, "metrics": {}}
    save_model_file(path, model, meta)
    loaded, _, _ = load_model_file(path)
    clip = Path(val[0].path)
    x = torch.stack([batches.batch(torch.tensor([i]), torch.Generator().manual_seed(1))[0][0] for i in range(3)])
    with torch.no_grad():
        # Loaded models run channels-last, which only reorders the sums (as in test_model_file).
        assert torch.allclose(loaded(x), model(x), atol=1e-5, rtol=0)
    from_file = EmotionRecognizer.from_file(path).predict(clip)
    in_memory = EmotionRecognizer.from_model(model, {**meta, "format": 1, "labels": list(LABELS)}).predict(clip)
    assert from_file.emotion == in_memory.emotion
    assert np.allclose(list(from_file.probabilities.values()), list(in_memory.probabilities.values()))


def test_a_speaker_normalised_model_reports_both_contexts(generated, tmp_path, capsys):
    out = tmp_path / "speaker.safetensors"
    code = main(["train", "--manifest", str(generated / "toy.csv"), "--out", str(out), "--epochs", "1",
                 "--arch", "cnn", "--steps-per-epoch", "3", "--batch-size", "8", "--channels", "8,16", "--window", "1.0",
                 "--normalisation", "speaker", "--quiet"])
    assert code == 0
    meta = load_model_file(out).metadata
    assert meta["features"]["normalisation"] == "speaker"
    assert set(meta["metrics"]) == {"val", "val_clip", "test", "test_clip"}
    for context, key in (("speaker", "test"), ("clip", "test_clip")):
        capsys.readouterr()
        assert main(["evaluate", "--manifest", str(generated / "toy.csv"), "--model", str(out),
                     "--json", "--split", "test", "--context", context]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["context"] == context and result["normalisation"] == "speaker"
        # `evaluate` reproduces the figures the recipe stored, in either context.
        assert result["overall"] == meta["metrics"][key]["overall"]
    capsys.readouterr()
    assert main(["evaluate", "--manifest", str(generated / "toy.csv"), "--model", str(out), "--json",
                 "--split", "test"]) == 0
    assert json.loads(capsys.readouterr().out)["context"] == "clip"  # a lone clip is the default, the headline


def test_speaker_batches_take_out_a_channel_the_whole_speaker_would_share():
    from emotionnet.corpora import Record
    from emotionnet.features import log_mel
    from emotionnet.training.augment import AugmentConfig

    config = FeatureConfig(normalisation="speaker")
    records = [Record(f"{s}_{e}.wav", "custom", s, e) for s in ("a", "b") for e in LABELS]
    mels = [log_mel(voiced(1.2, f0=100 + 10 * i, seed=i), config).numpy() for i in range(len(records))]
    frames = config.frames_of_samples(config.samples_for_seconds(1.0))
    gain_only = AugmentConfig(gain_db=(-10.0, 10.0), noise_p=0, eq_p=0, bandlimit_p=0, reverb_p=0, warp_p=0, tempo_p=0,
                              freq_masks=0, time_masks=0)
    indices = torch.arange(len(records))
    plain, *_ = BatchMaker(mels, records, config, frames, None, own_context_p=0).batch(
        indices, torch.Generator().manual_seed(0))
    louder, *_ = BatchMaker(mels, records, config, frames, gain_only, own_context_p=0).batch(
        indices, torch.Generator().manual_seed(0))
    # A gain of up to 10 dB (2.3 in natural-log units, about one standard deviation) is
    # taken out; what is left comes from quiet bins near the log offset's floor.
    assert float((louder - plain).abs().median()) < 0.05 and float((louder - plain).abs().mean()) < 0.1
    alone, *_ = BatchMaker(mels, records, config, frames, None, own_context_p=1).batch(
        indices, torch.Generator().manual_seed(0))
    # The speaker's statistics differ from each clip's own.
    assert float((alone - plain).abs().mean()) > 0.05


# --- issue 13: interrupts, kills, NaN, damaged files ---------------------------------------------

TINY = ["--epochs", "2", "--arch", "cnn", "--steps-per-epoch", "4", "--batch-size", "8", "--channels", "8,16",
        "--window", "1.0", "--quiet"]


def _train(generated, out, *extra) -> int:
    return main(["train", "--manifest", str(generated / "toy.csv"), "--out", str(out), *TINY, *extra])


def test_ctrl_c_in_the_first_epoch_saves_a_checkpoint_that_resumes(generated, tmp_path, monkeypatch, capsys):
    import signal

    out = tmp_path / "stopped.safetensors"
    calls = {"n": 0}
    batch = BatchMaker.batch

    def interrupted_batch(self, indices, g):
        calls["n"] += 1
        if calls["n"] == 2:
            signal.raise_signal(signal.SIGINT)  # as Ctrl-C during the second step
        return batch(self, indices, g)

    monkeypatch.setattr(BatchMaker, "batch", interrupted_batch)
    assert _train(generated, out) == 130
    err = capsys.readouterr().err
    checkpoint = out.with_name(out.name + ".ckpt")
    assert "re-run the same command to resume" in err and checkpoint.is_file() and not out.exists()
    state = torch.load(checkpoint, weights_only=True)
    assert (state["epoch"], state["step"]) == (0, 2)  # two steps into epoch 1: the work is kept
    monkeypatch.setattr(BatchMaker, "batch", batch)
    assert main(["train", "--manifest", str(generated / "toy.csv"), "--out", str(out), *TINY[:-1]]) == 0
    assert "after epoch 0, step 2 of epoch 1" in capsys.readouterr().out
    assert [h["epoch"] for h in load_model_file(out).metadata["training"]["history"]] == [1, 2]


def test_training_killed_at_random_points_resumes_to_a_model_that_loads(generated, tmp_path):
    import signal
    import subprocess
    import sys
    import time


    out = tmp_path / "killed.safetensors"
    command = [sys.executable, "-m", "emotionnet", "train", "--manifest", str(generated / "toy.csv"),
               "--out", str(out), *TINY]
    # a checkpoint after every step, so kills land before, during and after its writes
    env = cli_env(EMOTIONNET_CHECKPOINT_SECONDS="0")
    checkpoint = out.with_name(out.name + ".ckpt")
    rng = np.random.default_rng(13)
    kills, logs = 0, []
    for delay in rng.uniform(0.0, 0.4, 3):
        log = tmp_path / f"run{len(logs)}.log"
        logs.append(log)
        with open(log, "w") as stdout:
            process = subprocess.Popen(command, env=env, stdout=stdout, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 300
            # once training has saved something, a little later: kills land before, during and after writes
            while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(delay)
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                kills += 1
            process.wait()
        if out.exists():
            break
    assert kills >= 1, "no run was killed: the kill-and-resume path went untested"
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    after_a_kill = "".join(log.read_text() for log in logs[1:]) + done.stdout
    assert "resuming from" in after_a_kill  # a killed run's checkpoint was read back, not thrown away
    model, _, meta = load_model_file(out)
    assert [h["epoch"] for h in meta["training"]["history"]] == [1, 2]
    prediction = EmotionRecognizer.from_file(out).predict(voiced(1.0), 16_000)  # the resumed weights answer, finitely
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-5) and 0 < prediction.confidence <= 1


def test_a_truncated_checkpoint_is_one_clear_line(generated, tmp_path, capsys):
    out = tmp_path / "cut.safetensors"
    checkpoint = out.with_name(out.name + ".ckpt")
    checkpoint.write_bytes(b"PK\x03\x04 truncated")
    assert _train(generated, out) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"emotionnet: error: {checkpoint}: unreadable checkpoint") and "--restart" in err
    assert len(err.strip().splitlines()) == 1


def test_a_nan_loss_stops_training_naming_the_clip(generated, tmp_path, monkeypatch, capsys):
    from emotionnet.training import recipe

    poisoned = str((generated / "clips" / "s1_angry.wav").resolve())
    cached = recipe.cached_log_mels

    def with_one_bad_clip(paths, config, **kwargs):
        mels, errors = cached(paths, config, **kwargs)
        return [np.full_like(m, np.inf) if p == poisoned else m for p, m in zip(paths, mels)], errors

    monkeypatch.setattr(recipe, "cached_log_mels", with_one_bad_clip)
    out = tmp_path / "nan.safetensors"
    assert _train(generated, out, "--batch-size", "24") == 1  # every batch draws every clip's chance
    err = capsys.readouterr().err
    assert err.startswith("emotionnet: error: the loss is not finite at epoch 1, step 1")
    assert "s1_angry.wav" in err and "nothing was saved" in err
    assert not out.exists()  # once: exit 0 with a model whose tensors were NaN


def test_weights_that_are_not_finite_are_never_returned():
    from emotionnet.training.trainer import TrainingError, _check_finite

    with pytest.raises(TrainingError, match="non-finite"):
        _check_finite({"w": torch.tensor([1.0, float("nan")]), "steps": torch.tensor([3])}, "the weights")
    _check_finite({"w": torch.ones(2), "steps": torch.tensor([3])}, "the weights")


def test_a_damaged_cached_feature_file_is_rebuilt(generated, tmp_path, capsys):
    paths = sorted(str(p) for p in (generated / "clips").glob("*.wav"))[:2]
    folder = tmp_path / "cache"
    first, _ = cached_log_mels(paths, FeatureConfig(), workers=1, progress=False, cache_dir=folder)
    files = sorted((tmp_path / "cache").rglob("*.npy"))
    files[0].write_bytes(files[0].read_bytes()[:40])  # once: "EOF: reading array header" on every run
    again, errors = cached_log_mels(paths, FeatureConfig(), workers=1, progress=False, cache_dir=folder)
    assert not errors
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert str(files[0]) in capsys.readouterr().err
    assert cached_log_mels(paths, FeatureConfig(), workers=1, progress=False, cache_dir=folder)[1] == {}


def test_evaluate_a_manifest_of_known_corpus_ids(generated, trained, tmp_path, capsys):
    rows = ["path,emotion,speaker,corpus"]
    for k, wav in enumerate(sorted((generated / "clips").glob("*.wav"))[:12]):
        label = LABELS[k % 5]  # no sad clip at all
        rows.append(f"{wav},{label},crema-d-10{10 + k % 4},crema-d")
    rows.append(f"{wav},angyr,crema-d-1010,crema-d")  # a misspelt label
    manifest = tmp_path / "mine.csv"
    manifest.write_text("\n".join(rows) + "\n")
    assert main(["evaluate", "--manifest", str(manifest), "--model", str(trained)]) == 0
    out, err = capsys.readouterr()
    assert "clips 12" in out  # no split column: every row, not the test split's
    assert "emotionnet: warning: left out 1 clip(s)" in err and "'angyr' 1" in err
    sad = next(line for line in out.splitlines() if line.startswith("sad "))
    assert sad.split() == ["sad", "-", "-", "-", "0"]  # no clips: no figure, not 0.000


def test_evaluate_with_no_loadable_clip_is_one_line(tmp_path, trained, capsys):
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    manifest = tmp_path / "bad.csv"
    manifest.write_text("path,emotion\nbad.wav,angry\n")
    assert main(["evaluate", "--manifest", str(manifest), "--model", str(trained)]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("emotionnet: error: no clip could be scored")
    assert "Traceback" not in err and "bad.wav: unreadable" in err


def test_temperature_scale_rewrites_only_the_calibration(trained, tmp_path):
    import shutil

    from emotionnet.training.calibration import set_temperature_scale

    copy_ = tmp_path / "scaled.safetensors"
    shutil.copy(trained, copy_)
    _, _, before = load_model_file(trained)
    base = validation_temperature(before)
    record = set_temperature_scale(copy_, 2.0)
    model, _, after = load_model_file(copy_)
    assert after["temperature"] == pytest.approx(2.0 * base) == record["temperature"]
    assert after["calibration"]["unseen_corpus_scale"] == 2.0 and validation_temperature(after) == base
    original, _, _ = load_model_file(trained)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), original.state_dict().values()))
    # Scales apply to the validation temperature, never on top of an earlier scale.
    set_temperature_scale(copy_, 1.0)
    assert load_model_file(copy_).metadata["temperature"] == pytest.approx(base)
    with pytest.raises(ValueError, match="outside"):
        set_temperature_scale(copy_, 0.0)
