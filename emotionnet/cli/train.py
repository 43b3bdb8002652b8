"""`emotionnet train`: train a model on corpus folders or a manifest."""

from __future__ import annotations

import dataclasses
import json
import os
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
    warn_skipped,
)

EXAMPLES = """  emotionnet train ../shared/data --out emotionnet-crnn.safetensors    the default recipe (the `fast` model's)
  emotionnet train ../shared/data --arch cnn --epochs 20
  emotionnet train --manifest mine.csv --out mine.safetensors
  emotionnet train ../shared/data --arch whisper --out whisper.safetensors   the whisper-base recipe
  emotionnet train ../shared/data --teacher whisper-base    the CRNN, also taught by whisper-base's soft labels
Re-running the same command resumes from OUT.ckpt after an interruption."""


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def add_parser(sub) -> None:
    p = add_command(sub, "train", "Train a model; writes one self-describing .safetensors file.", EXAMPLES)
    p.add_argument("folders", nargs="*", metavar="FOLDER", help="corpus folders (detected by file naming)")
    p.add_argument("--manifest", metavar="CSV", help="CSV with path,emotion[,speaker,corpus,split]")
    p.add_argument("--recipe", metavar="JSON", help="a recipe file (from `emotionnet tune`); the options below override it")
    p.add_argument("--arch", type=model_family, metavar="FAMILY",
                   help="the model family (models/registry.py; default: the recipe's, else crnn, the `fast` model's). "
                        "crnn, cnn, or whisper (a head on the frozen Whisper-base encoder: the whisper-base model; "
                        "its encoder weights are a core dependency)")
    p.add_argument("--out", metavar="FILE", help="model file to write (default: emotionnet-ARCH.safetensors)")
    p.add_argument("--epochs", type=int, help="maximum epochs (early stopping may end sooner)")
    p.add_argument("--batch-size", type=int, help="clips per training step (default 32)")
    p.add_argument("--lr", type=float, help="peak learning rate of the one-cycle schedule")
    p.add_argument("--patience", type=int, help="epochs without a better validation UAR before stopping")
    p.add_argument("--channels", type=_ints, metavar="C1,C2,...", help="conv channel widths, one per block")
    p.add_argument("--window", type=float, help="seconds the model sees at once")
    p.add_argument("--steps-per-epoch", type=int, help="batches per epoch (default: one pass over the clips)")
    p.add_argument("--normalisation", choices=("speaker", "utterance", "global", "none"),
                   help="feature normalisation (default: speaker, per band with the speaker's statistics)")
    p.add_argument("--seed", type=int, help="fixes the weights' initialisation, the data order and augmentation (default 0)")
    p.add_argument("--teacher", metavar="NAME|FILE",
                   help="distil: a model (e.g. whisper-base) whose probabilities are soft labels beside the hard ones")
    p.add_argument("--distillation-weight", type=float, metavar="W",
                   help="the teacher's share of the loss, 0-1 (default 0.5)")
    p.add_argument("--no-augment", action="store_true", help="train without augmentation")
    p.add_argument("--restart", action="store_true", help="ignore OUT.ckpt and start from scratch")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def recipe_from_args(args):
    from emotionnet.training.recipe import Recipe

    recipe = Recipe.read(args.recipe) if args.recipe else Recipe()
    if args.arch:
        recipe.arch = args.arch
    if args.no_augment:
        recipe.augment = False
    fit = recipe.fit
    if args.teacher:
        recipe.teacher = args.teacher
    for name in ("epochs", "lr", "patience", "steps_per_epoch", "batch_size", "seed", "distillation_weight"):
        if getattr(args, name) is not None:
            setattr(fit, name, getattr(args, name))
    if args.channels:
        recipe.hparams["channels"] = args.channels
    if args.window:
        recipe.window, recipe.hop = args.window, args.window / 2  # as the default recipe: hop half the window
    if args.normalisation:
        recipe.features = dataclasses.replace(recipe.features, normalisation=args.normalisation)
    return recipe


def _recipe_arch(path: str | None) -> str | None:
    """The architecture a recipe file names (None without one, or when it cannot be read: reading it reports that)."""
    try:
        return json.loads(Path(path).read_text()).get("arch") if path else None
    except (OSError, ValueError, AttributeError):
        return None


def run_encoder_head(args, family, collection) -> int:
    """The encoder-head recipe (the whisper-base model's): encoder states cached (the slow, resumable
    part), then the head."""
    from emotionnet.evaluation.evaluate import format_report
    from emotionnet.training.whisper_recipe import train_whisper_model

    out = Path(args.out or f"emotionnet-{family.name}.safetensors")
    recipe = encoder_head_recipe(args, family, ("epochs", "lr", "steps_per_epoch", "batch_size", "seed"))
    settings = model_settings()
    meta = train_whisper_model(collection, out, recipe, encoder_weights=settings.encoder_weights,
                               cache_dir=settings.cache_dir,
                               sources=[*args.folders, *([args.manifest] if args.manifest else [])],
                               progress=not args.quiet)
    return _show_result(out, meta, format_report)


def _family(args):
    """The family to train: --arch, else the recipe file's, else the default recipe's."""
    from emotionnet.models.registry import get_family
    from emotionnet.models.spec import DEFAULT_ARCH

    return get_family(args.arch or _recipe_arch(args.recipe) or DEFAULT_ARCH)


def run(args) -> int:
    from emotionnet.evaluation.evaluate import format_report
    from emotionnet.training.recipe import train_model

    if (args.batch_size is not None and args.batch_size < 1) or (args.epochs is not None and args.epochs < 1):
        raise CLIError("--batch-size and --epochs must be at least 1")
    try:
        family = _family(args)
    except ValueError as exc:
        raise CLIError(f"{args.recipe}: {exc}") from None
    collection = load_collection(args.folders, args.manifest)
    warn_skipped(collection)
    if family.recipe == "encoder-head":
        return run_encoder_head(args, family, collection)
    try:
        recipe = recipe_from_args(args)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    try:
        recipe.spec.window_hop()  # the one window rule, before any clip is read
    except ValueError as exc:
        raise CLIError(f"--window: {exc}") from None
    if not 0 <= recipe.fit.distillation_weight <= 1:
        raise CLIError("--distillation-weight must be between 0 and 1")
    settings = model_settings()
    load_options = settings.load_options()  # the teacher's, as any model the command line loads
    if recipe.teacher:
        _check_teacher(recipe.teacher, load_options)
    out = Path(args.out or f"emotionnet-{recipe.arch}.safetensors")
    checkpoint = out.with_name(out.name + ".ckpt")
    folder = out.parent.resolve()
    if not folder.is_dir() or not os.access(folder, os.W_OK):  # found now, not after hours of training
        raise CLIError(f"{out}: cannot write there ({folder} is not a writable folder)", "choose another --out")
    if args.restart and checkpoint.exists():
        checkpoint.unlink()

    def show(epoch: int, m: dict) -> None:
        print(f"epoch {epoch:3d}  loss {m['loss']:.3f}  val UAR {m['uar']:.3f}  acc {m['val_accuracy']:.3f}  "
              f"{m['seconds']:.0f} s", flush=True)

    print(f"training {recipe.arch} on {len(collection.records)} clips {collection.per_corpus()}", flush=True)
    try:
        meta = train_model(collection, out, recipe, callbacks=[show], progress=not args.quiet,
                           sources=[*args.folders, *([args.manifest] if args.manifest else [])],
                           load_options=load_options, **run_options(settings))
    except KeyboardInterrupt:
        saved = f"saved {checkpoint}; re-run the same command to resume" if checkpoint.exists() else "nothing saved"
        print(f"emotionnet: interrupted ({saved})", file=sys.stderr)
        return 130
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    except OSError as exc:
        raise CLIError(f"{exc.filename or out}: {exc.strerror or exc}", "check the path and free disk space") from None
    return _show_result(out, meta, format_report)


def _check_teacher(teacher: str, load_options: dict) -> None:
    """Load the teacher now (with the run's options), so a wrong name or file, or missing encoder weights,
    stop the run before any clip is read."""
    from emotionnet.inference.recognizer import load_model
    from emotionnet.models.file import ModelFileError

    try:
        load_model(teacher, **load_options)
    except (ModelFileError, ValueError, OSError) as exc:
        raise CLIError(f"--teacher: {exc}") from None


def _show_result(out: Path, meta: dict, format_report) -> int:
    print(f"\nwrote {out} ({meta['model']['parameters']:,} parameters, best epoch "
          f"{meta['training']['best_epoch']}, {meta['training']['wall_seconds']:.0f} s)")
    for name, figures in meta["metrics"].items():
        print()
        print(format_report({"model": out.name, "split": name,
                             "data": {"clips": figures["overall"]["n"]}, **figures}))
    return 0
