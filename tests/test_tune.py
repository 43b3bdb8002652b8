"""`emotionnet tune`: a two-trial search on generated data, its outputs, and resuming a killed search."""

from __future__ import annotations

import pytest
from conftest import make_toy_corpus

from emotionnet.cli.main import main
from emotionnet.training.recipe import Recipe

pytestmark = pytest.mark.slow  # browser, Ray, service and training tests (pyproject markers)

optuna = pytest.importorskip("optuna", reason="emotionnet tune needs optuna (the tune extra)")

FAST = ["--epochs", "2", "--steps-per-epoch", "2", "--arch", "cnn"]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("tune")
    csv = make_toy_corpus(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EMOTIONNET_CACHE", str(root / "cache"))
        yield csv


def finished(study_db) -> list:
    study = optuna.load_study(study_name="emotionnet", storage=f"sqlite:///{study_db}")
    return [t for t in study.trials if t.state.is_finished()]


def test_two_trials_write_a_study_a_table_a_plot_and_a_recipe_train_can_use(toy, tmp_path, capsys):
    out = tmp_path / "study"
    assert main(["tune", "--manifest", str(toy), "--out", str(out), "--trials", "2", *FAST]) == 0
    trials = finished(out / "study.db")
    assert len(trials) == 2
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    assert {"depth", "width", "lr", "augment_strength", "normalisation"} <= set(trials[0].params)
    table = (out / "trials.md").read_text().splitlines()
    assert len(table) == 2 + 2 and "best val UAR" in table[0]
    assert (out / "trials.png").stat().st_size > 1000
    best = Recipe.read(out / "best_recipe.json")
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    winner = max(complete, key=lambda t: t.value)
    assert best.hparams["channels"][0] == winner.params["width"]
    assert len(best.hparams["channels"]) == winner.params["depth"]
    assert best.features.normalisation == winner.params["normalisation"]

    model = tmp_path / "best.safetensors"
    assert main(["train", "--manifest", str(toy), "--recipe", str(out / "best_recipe.json"), "--out", str(model),
                 "--epochs", "1", "--steps-per-epoch", "1", "--quiet"]) == 0
    from emotionnet.models.file import load_model_file

    meta = load_model_file(model).metadata
    assert meta["model"]["hparams"]["channels"] == best.hparams["channels"]


def test_a_killed_search_resumes_and_reruns_the_cut_off_trial(toy, tmp_path):
    out = tmp_path / "study"
    assert main(["tune", "--manifest", str(toy), "--out", str(out), "--trials", "1", *FAST]) == 0
    # A search killed mid-trial leaves that trial RUNNING in the study.
    study = optuna.load_study(study_name="emotionnet", storage=f"sqlite:///{out / 'study.db'}")
    cut_off = study.ask({"depth": optuna.distributions.IntDistribution(2, 4)})
    assert cut_off.number == 1
    assert main(["tune", "--manifest", str(toy), "--out", str(out), "--trials", "2", *FAST]) == 0
    study = optuna.load_study(study_name="emotionnet", storage=f"sqlite:///{out / 'study.db'}")
    states = [t.state.name for t in study.trials]
    assert states[1] == "FAIL"  # the cut-off trial...
    rerun = study.trials[2]
    assert rerun.state.name in ("COMPLETE", "PRUNED") and rerun.params["depth"] == cut_off.params["depth"]  # ...run again
    assert len([s for s in states if s in ("COMPLETE", "PRUNED")]) == 2


def test_a_bad_recipe_file_is_one_clear_error(toy, tmp_path, capsys):
    bad = tmp_path / "recipe.json"
    bad.write_text('{"arch": "crnn", "layers": 3}')
    assert main(["train", "--manifest", str(toy), "--recipe", str(bad), "--out", str(tmp_path / "x.safetensors")]) == 1
    assert "unknown recipe key(s): layers" in capsys.readouterr().err


def test_a_resumed_study_proposes_new_trials_not_the_first_runs_again(tmp_path):
    from emotionnet.training.tune import _open_study

    pytest.importorskip("optuna", reason="emotionnet tune needs optuna (the tune extra)")
    proposals = []
    for _ in range(2):  # two runs of one study folder, each asking for two trials
        study = _open_study(tmp_path, seed=0, progress=False)
        for _ in range(2):
            trial = study.ask()
            proposals.append(trial.suggest_float("l2", 1e-3, 1.0, log=True))
            study.tell(trial, 0.5)
    assert len(set(proposals)) == 4
