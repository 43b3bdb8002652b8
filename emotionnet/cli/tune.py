"""`emotionnet tune`: search the training recipe with Optuna; resumable."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from emotionnet.cli.common import (
    CLIError,
    add_command,
    encoder_head_recipe,
    load_collection,
    model_family,
    model_settings,
    run_options,
)
from emotionnet.extras import MissingExtraError

EXAMPLES = """  emotionnet tune ../shared/data --trials 20 --out tune/          search; re-run to resume after a kill
  emotionnet tune ../shared/data --trials 30 --out tune/          ten more trials in the same study
  emotionnet train ../shared/data --recipe tune/best_recipe.json --out best.safetensors
  emotionnet tune ../shared/data --arch whisper --trials 8 --out tune-whisper/
                  the whisper-base head, each trial judged by leave-one-corpus-out validation UAR; the
                  default (linear "stats") head searches layers, L2 and class masks, a recipe with
                  "augmented_copies": N also 0..N copies; {"head": {"kind": "attentive"}} searches that head
Trials are pruned on validation UAR after each epoch (--arch whisper: after each fold); tune/trials.md and
tune/trials.png show them. Run one process per study folder: a second one would take the first's running
trial for one a kill left behind, and queue it again."""


def add_parser(sub) -> None:
    p = add_command(sub, "tune", "Search the training recipe (Optuna, pruned on validation UAR).", EXAMPLES)
    p.add_argument("folders", nargs="*", metavar="FOLDER", help="corpus folders (detected by file naming)")
    p.add_argument("--manifest", metavar="CSV", help="CSV with path,emotion[,speaker,corpus,split]")
    p.add_argument("--out", metavar="DIR", default="tune", help="study folder (default: tune/)")
    p.add_argument("--trials", type=int, default=20, help="finished trials wanted in the study (default 20)")
    p.add_argument("--recipe", metavar="JSON", help="base recipe (default: the default recipe)")
    p.add_argument("--arch", type=model_family, metavar="FAMILY",
                   help="the model family of every trial (default: the recipe's): cnn, crnn, or whisper, which "
                        "searches the whisper-base head, its objective the mean validation UAR of corpora left "
                        "out of training")
    p.add_argument("--epochs", type=int, help="maximum epochs per trial")
    p.add_argument("--steps-per-epoch", type=int, help="batches per epoch (default: one pass over the clips)")
    p.add_argument("--seed", type=int, default=0, help="sampler and training seed")
    p.set_defaults(run=run)


def run(args) -> int:
    from emotionnet.training.recipe import Recipe
    from emotionnet.training.tune import tune

    if importlib.util.find_spec("optuna") is None:
        raise CLIError("tune needs Optuna", "pip install 'emotionnet[tune]'")
    if args.trials < 1 or (args.epochs is not None and args.epochs < 1):
        raise CLIError("--trials and --epochs must be at least 1")
    collection = load_collection(args.folders, args.manifest)
    if args.arch:
        from emotionnet.models.registry import get_family

        family = get_family(args.arch)
        if family.recipe == "encoder-head":
            return _run_encoder_head(args, family, collection)
    try:
        base = Recipe.read(args.recipe) if args.recipe else Recipe()
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if args.arch:
        base.arch = args.arch
    base.fit.seed = args.seed
    if args.epochs:
        base.fit.epochs = args.epochs
    if args.steps_per_epoch:
        base.fit.steps_per_epoch = args.steps_per_epoch
    out = Path(args.out)
    print(f"tuning on {len(collection.records)} clips {collection.per_corpus()}; study {out / 'study.db'}", flush=True)
    settings = model_settings()
    try:
        study = tune(collection, out, args.trials, base, seed=args.seed, on_trial=_show,
                     load_options=settings.load_options(), **run_options(settings))
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    return _write_results(study, out, "epochs")


def _show(trial) -> None:
    value = f"{trial.value:.3f}" if trial.value is not None else "—"
    print(f"trial {trial.number:3d}  {trial.state.name.lower():8s}  best val UAR {value}  {trial.params}", flush=True)


def _run_encoder_head(args, family, collection) -> int:
    from emotionnet.training.tune import tune_whisper

    base = encoder_head_recipe(args, family, ("epochs", "steps_per_epoch", "seed"))
    out = Path(args.out)
    print(f"tuning the {family.name} head on {len(collection.records)} clips {collection.per_corpus()}, judged on corpora "
          f"left out; study {out / 'study.db'}", flush=True)
    settings = model_settings()
    try:
        study = tune_whisper(collection, out, args.trials, base, seed=args.seed, on_trial=_show,
                             encoder_weights=settings.encoder_weights, cache_dir=settings.cache_dir)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    return _write_results(study, out, "folds")


def _write_results(study, out: Path, steps: str) -> int:
    from emotionnet.training.tune import plot_trials, trials_table

    (out / "trials.md").write_text(trials_table(study, steps))
    try:
        plot_trials(study, out / "trials.png")
    except MissingExtraError as exc:  # the table and the best recipe are written; the picture is optional
        print(f"emotionnet: warning: {out / 'trials.png'} not written: {exc}", file=sys.stderr)
    print()
    print(trials_table(study, steps))
    if (out / "best_recipe.json").is_file():
        print(f"best recipe: {out / 'best_recipe.json'} (emotionnet train ... --recipe {out / 'best_recipe.json'})")
    return 0
