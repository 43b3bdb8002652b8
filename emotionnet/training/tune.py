"""Hyper-parameter search over the training recipe, as the original project did by hand.

Optuna's TPE sampler proposes recipes (depth, widths, recurrent size, learning rate,
augmentation strength, normalisation); each trial trains with the ordinary recipe
and reports its validation UAR after every epoch, so the median pruner stops
trials that trail. The study lives in an SQLite file: a killed search resumes
where it stopped, and a trial that was cut off is run again from its checkpoint.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from pathlib import Path

from emotionnet.corpora import Collection
from emotionnet.models.registry import get_family
from emotionnet.training.head_training import HeadConfig
from emotionnet.training.recipe import Recipe, train_model
from emotionnet.training.trainer import CHECKPOINT_SECONDS
from emotionnet.training.whisper_recipe import WhisperRecipe

STUDY_NAME = "emotionnet"
SCALED_AUGMENTATIONS = ("noise_p", "eq_p", "bandlimit_p", "reverb_p", "warp_p", "tempo_p")


def suggest_recipe(trial, base: Recipe) -> Recipe:
    """The recipe a trial proposes: `base` with the searched settings replaced."""
    recipe = copy.deepcopy(base)
    depth = trial.suggest_int("depth", 2, 4)
    width = trial.suggest_categorical("width", [8, 16, 24, 32])
    recipe.hparams = {**recipe.hparams, "channels": [width * 2 ** i for i in range(depth)],
                      "dropout": trial.suggest_float("dropout", 0.1, 0.5)}
    for hparam in get_family(recipe.arch).searched():  # what only this family has (the crnn's hidden size)
        recipe.hparams[hparam.name] = trial.suggest_categorical(hparam.name, list(hparam.search))
    recipe.fit.lr = trial.suggest_float("lr", 1e-3, 1e-2, log=True)
    recipe.fit.weight_decay = trial.suggest_float("weight_decay", 1e-3, 1e-1, log=True)
    # One knob for all augmentation: every probability scaled together.
    strength = trial.suggest_float("augment_strength", 0.0, 1.5)
    recipe.augmentation = dataclasses.replace(recipe.augmentation, **{
        name: min(1.0, getattr(base.augmentation, name) * strength) for name in SCALED_AUGMENTATIONS})
    normalisation = trial.suggest_categorical("normalisation", ["speaker", "utterance"])
    recipe.features = dataclasses.replace(recipe.features, normalisation=normalisation)
    if normalisation == "speaker":
        recipe.own_context_p = trial.suggest_float("own_context_p", 0.5, 1.0)
    return recipe


def _recipe_key(recipe: Recipe) -> str:
    return hashlib.sha1(json.dumps(recipe.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


def _requeue_interrupted(study) -> int:
    """Trials left RUNNING by a killed search: marked failed and queued again with the same settings."""
    from optuna.trial import TrialState

    stale = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]
    for trial in stale:
        study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        study.enqueue_trial(trial.params, skip_if_exists=False)
    return len(stale)


def tune(
    collection: Collection,
    out: str | Path,
    trials: int,
    base: Recipe | None = None,
    seed: int = 0,
    progress: bool = True,
    on_trial=None,
    cache_dir: str | Path | None = None,
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
    load_options: dict | None = None,
):
    """Run (or resume) a search of `trials` finished trials in total; returns the optuna study.

    `out` is a folder: `study.db` (the SQLite study), `trials/` (each trial's model file
    and checkpoint, named by its recipe), and after every trial `best_recipe.json`.
    `cache_dir`, `checkpoint_seconds` and `load_options` (a teacher's) are each trial's, as `train_model` takes them.
    """
    import optuna

    out = Path(out)
    (out / "trials").mkdir(parents=True, exist_ok=True)
    base = base or Recipe()
    study = _open_study(out, seed, progress)

    def objective(trial) -> float:
        recipe = suggest_recipe(trial, base)
        trial.set_user_attr("recipe", recipe.to_dict())

        def report(epoch: int, metrics: dict) -> None:
            trial.report(metrics["uar"], epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"val UAR {metrics['uar']:.3f} after epoch {epoch}")

        # Named by the recipe, so a trial that is run again resumes from its checkpoint.
        meta = train_model(collection, out / "trials" / f"{_recipe_key(recipe)}.safetensors", recipe,
                           callbacks=[report], progress=False, load_options=load_options, cache_dir=cache_dir,
                           checkpoint_seconds=checkpoint_seconds)
        return max(h["uar"] for h in meta["training"]["history"])

    return _run_study(study, objective, trials, out, on_trial)


def _open_study(out: Path, seed: int, progress: bool, warmup_steps: int = 1):
    """The study in `out/study.db`, created or resumed; trials a kill left running are queued again.
    A trial is pruned from its `warmup_steps`-th report on, when it trails the median of the others."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=STUDY_NAME, storage=f"sqlite:///{out / 'study.db'}", load_if_exists=True, direction="maximize",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=warmup_steps),
    )
    # A resumed study gets a sampler seeded anew, else it would propose the first run's trials again.
    study.sampler = optuna.samplers.TPESampler(seed=seed + len(study.trials))
    requeued = _requeue_interrupted(study)
    if requeued and progress:
        print(f"tune: {requeued} interrupted trial(s) queued again", flush=True)
    return study


def _run_study(study, objective, trials: int, out: Path, on_trial):
    """Run trials until `trials` have finished; after each, write the best trial's recipe."""
    from optuna.trial import TrialState

    def after(study, trial) -> None:
        if any(t.state == TrialState.COMPLETE for t in study.trials):  # best_trial raises before the first
            best = study.best_trial.user_attrs["recipe"]
            (out / "best_recipe.json").write_text(json.dumps(best, indent=1) + "\n")
        if on_trial:
            on_trial(trial)

    done = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)
    if trials > done:
        study.optimize(objective, n_trials=trials - done, callbacks=[after], catch=(ValueError,))
    return study


def suggest_head(trial, base: HeadConfig) -> HeadConfig:
    """The whisper head a trial proposes: `base` with its size and regularisation replaced (the
    linear "stats" head has only its layers, its L2 penalty and the loss's class masks to choose)."""
    if base.kind == "stats":
        return dataclasses.replace(
            base,
            layers=trial.suggest_int("layers", 2, 6),
            l2=trial.suggest_float("l2", 3e-3, 0.5, log=True),
            class_masks=trial.suggest_categorical("class_masks", [False, True]),
        )
    return dataclasses.replace(
        base,
        layers=trial.suggest_int("layers", 3, 6),
        hidden=trial.suggest_categorical("hidden", [128, 192, 256, 384]),
        dropout=trial.suggest_float("dropout", 0.1, 0.5),
        lr=trial.suggest_float("lr", 3e-4, 3e-3, log=True),
        weight_decay=trial.suggest_float("weight_decay", 1e-3, 0.3, log=True),
        label_smoothing=trial.suggest_float("label_smoothing", 0.0, 0.2),
        frame_dropout=trial.suggest_float("frame_dropout", 0.0, 0.3),
    )


def suggest_whisper_recipe(trial, base: WhisperRecipe) -> WhisperRecipe:
    """The whisper recipe a trial proposes: its head, and for the stats head (whose fit costs
    seconds) also how many of the base's augmented copies of each clip it trains on."""
    recipe = dataclasses.replace(base, head=suggest_head(trial, base.head))
    if base.head.kind == "stats" and base.augmented_copies:
        recipe = dataclasses.replace(recipe, augmented_copies=trial.suggest_int("augmented_copies", 0,
                                                                                base.augmented_copies))
    return recipe


def tune_whisper(collection: Collection, out: str | Path, trials: int, base: WhisperRecipe | None = None,
                 seed: int = 0, progress: bool = True, on_trial=None, encoder_weights: str | Path | None = None,
                 cache_dir: str | Path | None = None):
    """Search the `whisper` head with leave-one-corpus-out validation as the objective.

    The recipe is meant for voices no corpus had, so a trial is judged the way LOCO judges:
    per corpus, a head trained on the others (selected on their validation clips) scored on
    that corpus's validation clips; the objective is the mean over corpora. The running mean
    is reported after each fold, so the median pruner stops a trial that trails. Test
    splits are never read. The encoder cache is filled first (slow once, then reused), with
    the encoder's weights from `encoder_weights` (None: the installed weight packages), its states cached in
    `cache_dir` (None: ~/.cache/emotionnet).
    """
    import optuna

    from emotionnet.training.head_training import held_out_validation_uar
    from emotionnet.training.whisper_recipe import prepare_cache

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = base or WhisperRecipe()
    records = collection.records
    corpora = sorted({r.corpus for r in records})
    if len(corpora) < 2:
        raise ValueError(f"tuning against unseen corpora needs at least two corpora; found {', '.join(corpora)}")
    cache, _ = prepare_cache(records, base, encoder_weights=encoder_weights, cache_dir=cache_dir)
    # Corpora differ far more than recipes do: judge a trial on half the folds before pruning it.
    study = _open_study(out, seed, progress, warmup_steps=len(corpora) // 2)

    def objective(trial) -> float:
        recipe = suggest_whisper_recipe(trial, base)
        trial.set_user_attr("recipe", recipe.to_dict())
        scores = []
        for fold, corpus in enumerate(corpora):
            scores.append(held_out_validation_uar(cache, records, corpus, recipe.head, recipe.variants))
            trial.set_user_attr(f"val_uar_{corpus}", scores[-1])
            trial.report(float(sum(scores) / len(scores)), fold)
            if trial.should_prune():
                raise optuna.TrialPruned(f"held-out val UAR {scores[-1]:.3f} on {corpus}")
        return float(sum(scores) / len(scores))

    return _run_study(study, objective, trials, out, on_trial)


def trials_table(study, steps: str = "epochs") -> str:
    """The trials as a markdown table, best first; `steps` names what a trial reports after (epochs, folds)."""
    rows = sorted(study.trials, key=lambda t: (t.value is None, -(t.value or 0)))
    names = sorted({k for t in study.trials for k in t.params})
    lines = [f"| trial | state | best val UAR | {steps} | " + " | ".join(names) + " |",
             "|---" * (len(names) + 4) + "|"]
    for t in rows:
        value = f"{t.value:.3f}" if t.value is not None else (
            f"{max(t.intermediate_values.values()):.3f}" if t.intermediate_values else "—")
        params = [f"{t.params[k]:.4g}" if isinstance(t.params.get(k), float) else str(t.params.get(k, ""))
                  for k in names]
        lines.append(f"| {t.number} | {t.state.name.lower()} | {value} | {len(t.intermediate_values)} | "
                     + " | ".join(params) + " |")
    return "\n".join(lines) + "\n"


def plot_trials(study, path: str | Path) -> None:
    """Each trial's validation UAR per epoch; pruned trials dashed (MissingExtraError without matplotlib)."""
    from emotionnet.extras import require

    matplotlib = require("matplotlib", "the trials plot", "app")

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState

    fig, ax = plt.subplots(figsize=(6, 4))
    for t in study.trials:
        if not t.intermediate_values:
            continue
        epochs, values = zip(*sorted(t.intermediate_values.items()))
        ax.plot(epochs, values, linestyle="--" if t.state == TrialState.PRUNED else "-", marker=".",
                label=f"trial {t.number} ({t.state.name.lower()})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation UAR")
    ax.set_title("emotionnet tune: trials")
    if len(study.trials) <= 12:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
