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
from conftest import make_toy_corpus, voiced

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
    model, meta = load_model_file(trained)
    assert {"format", "labels", "features", "model", "temperature", "training", "metrics"} <= set(meta)
    assert meta["format"] == 1 and meta["labels"] == list(LABELS)
    assert FeatureConfig.from_dict(meta["features"]) == FeatureConfig(normalisation="speaker")  # the recipe default
    assert meta["model"]["arch"] == "cnn" and meta["model"]["hparams"]["channels"] == [8, 16]
    assert meta["model"]["parameters"] == count_parameters(model)
    assert meta["inference"]["window"] == 1.0
    assert meta["temperature"] > 0
    training = meta["training"]
    assert training["split"] == "v2" and training["epochs"] == 2
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
    before = load_model_file(trained)[1]["training"]["history"]
    # Without --quiet: the trainer only announces a resume when it shows progress.
    code = main(["train", "--manifest", str(generated / "toy.csv"), "--out", str(trained), "--epochs", "2",
                 "--arch", "cnn", "--steps-per-epoch", "3", "--batch-size", "8", "--channels", "8,16", "--window", "1.0"])
    assert code == 0
    out = capsys.readouterr().out
    assert "resuming" in out and "after epoch 2" in out
    assert "epoch   1" not in out  # nothing was trained again
    assert load_model_file(trained)[1]["training"]["history"] == before


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


def test_feature_cache_computes_each_clip_once(generated, monkeypatch):
    config = FeatureConfig()
    paths = sorted(str(p) for p in (generated / "clips").glob("*.wav"))[:4]
    monkeypatch.setenv("EMOTIONNET_CACHE", str(generated / "cache-once"))
    first, errors = cached_log_mels(paths, config, workers=1, progress=False)
    assert not errors and len(first) == 4
    assert len(list((generated / "cache-once").rglob("*.npy"))) == 4

    class NoPool:
        def __init__(self, *args, **kwargs):
            raise AssertionError("a cached clip was computed again")

    monkeypatch.setattr(cache, "ProcessPoolExecutor", NoPool)
    second, errors = cached_log_mels(paths, config, progress=False)
    assert not errors
    for a, b in zip(first, second):
        assert a.dtype == np.float16 and a.shape[0] == 64
        np.testing.assert_array_equal(a, b)


def test_feature_cache_reports_bad_files(generated, monkeypatch, tmp_path):
    monkeypatch.setenv("EMOTIONNET_CACHE", str(tmp_path / "cache"))
    good = str(sorted((generated / "clips").glob("*.wav"))[0])
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    mels, errors = cached_log_mels([good, str(bad)], FeatureConfig(), workers=1, progress=False)
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
def test_a_few_real_steps_lower_the_loss(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("EMOTIONNET_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    found = find_records([shared_data])
    train = _stratified(select(found.records, "train"), 8)  # 48 clips
    val = _stratified(select(found.records, "val"), 4)  # 24 clips
    assert len(train) == 48 and len(val) == 24
    config = FeatureConfig()
    mels, errors = cached_log_mels([r.path for r in train + val], config, progress=False)
    assert not errors

    frames = config.frames(config.samples_for_seconds(2.0))
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
    loaded, _ = load_model_file(path)
    clip = Path(val[0].path)
    x = torch.stack([batches.batch(torch.tensor([i]), torch.Generator().manual_seed(1))[0][0] for i in range(3)])
    with torch.no_grad():
        # Loaded models run channels-last, which only reorders the sums (as in test_model_file).
        assert torch.allclose(loaded(x), model(x), atol=1e-5, rtol=0)
    from_file = EmotionRecognizer(path).predict(clip)
    in_memory = EmotionRecognizer.from_model(model, {**meta, "format": 1, "labels": list(LABELS)}).predict(clip)
    assert from_file.emotion == in_memory.emotion
    assert np.allclose(list(from_file.probabilities.values()), list(in_memory.probabilities.values()))


def test_a_speaker_normalised_model_reports_both_contexts(generated, tmp_path, capsys):
    out = tmp_path / "speaker.safetensors"
    code = main(["train", "--manifest", str(generated / "toy.csv"), "--out", str(out), "--epochs", "1",
                 "--arch", "cnn", "--steps-per-epoch", "3", "--batch-size", "8", "--channels", "8,16", "--window", "1.0",
                 "--normalisation", "speaker", "--quiet"])
    assert code == 0
    meta = load_model_file(out)[1]
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
    frames = config.frames(config.samples_for_seconds(1.0))
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
