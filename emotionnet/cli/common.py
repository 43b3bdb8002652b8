"""What every command shares: the error convention and the argument parser."""

from __future__ import annotations

import argparse
import sys

EXIT_OK, EXIT_USAGE, EXIT_SOME_FAILED = 0, 1, 2


class CLIError(Exception):
    """Printed as `emotionnet: error: <what> (<hint>)`; exits with `code`."""

    def __init__(self, what: str, hint: str | None = None, code: int = EXIT_USAGE):
        super().__init__(f"{what} ({hint})" if hint else what)
        self.code = code


class Parser(argparse.ArgumentParser):
    """argparse, but usage errors follow the project's format and exit 1."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"emotionnet: error: {message} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def report_failure(path: str, message: str) -> None:
    """One line on stderr for one bad input of many; the batch goes on."""
    print(f"emotionnet: error: {message}" if path in message else f"emotionnet: error: {path}: {message}",
          file=sys.stderr)


def add_command(subparsers, name: str, help: str, examples: str) -> Parser:
    return subparsers.add_parser(
        name, help=help, description=help, epilog=f"examples:\n{examples}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def load_collection(folders: list[str], manifest: str | None):
    """Records from corpus folders and/or a manifest, or a CLIError saying what is wrong."""
    from emotionnet.corpora import Collection, find_records, read_manifest

    if not folders and not manifest:
        raise CLIError("no data given", "name corpus folders, e.g. ../shared/data, or --manifest CSV")
    collection = Collection()
    try:
        if folders:
            collection.extend(find_records(folders))
        if manifest:
            collection.extend(read_manifest(manifest))
    except (FileNotFoundError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    if not collection.records:
        raise CLIError("no labelled clips found",
                       "folders must follow CREMA-D, RAVDESS, TESS or SAVEE naming; use --manifest for other data")
    return collection


def model_help() -> str:
    """--model's help: every model name with what it is (models/names.py: no torch import, --help stays fast)."""
    from emotionnet.models.names import DEFAULT_MODEL, models_help

    return (f"a model name (default: {DEFAULT_MODEL}), a model file, or an .onnx file 'emotionnet export' wrote. "
            f"Names: {models_help()}").replace("%", "%%")


def add_model_option(parser) -> None:
    """--model NAME|FILE, as every command that runs a model takes it (through `load_model`)."""
    parser.add_argument("--model", metavar="NAME|FILE", help=model_help())


def model_family(name: str):
    """`--arch NAME`: a family of the model registry (imported only when the option is given)."""
    import argparse

    from emotionnet.models.registry import FAMILIES

    if name not in FAMILIES:
        raise argparse.ArgumentTypeError(f"unknown model family {name!r}; choose one of {', '.join(FAMILIES)}")
    return name


def model_settings():
    """What the environment asks of the model (emotionnet/environment.py), read once; a bad value is a CLIError."""
    from emotionnet.environment import EnvironmentSettingError, from_environment

    try:
        return from_environment()
    except EnvironmentSettingError as exc:
        raise CLIError(str(exc), "unset it or give an allowed value") from None


def run_options(settings) -> dict:
    """`train_model`'s (and `tune`'s) cache_dir and checkpoint_seconds from the environment's settings."""
    from emotionnet.training.trainer import CHECKPOINT_SECONDS

    seconds = CHECKPOINT_SECONDS if settings.checkpoint_seconds is None else settings.checkpoint_seconds
    return {"cache_dir": settings.cache_dir, "checkpoint_seconds": seconds}


def load_recognizer(model: str | None, backend: str | None = None):
    """The recognizer for --model NAME|FILE (default: $EMOTIONNET_MODEL, else whisper-base) with the
    environment's options, or a CLIError."""
    from emotionnet import ModelFileError, OnnxBackendError, load_model
    from emotionnet.inference.recognizer import UnknownModelError
    from emotionnet.models.names import DEFAULT_MODEL, RENAMED, available_models

    settings = model_settings()
    model = model or settings.model
    if model in RENAMED:  # one line, not Python's two-line FutureWarning
        print(f"emotionnet: warning: the model name {model!r} is now {RENAMED[model]!r} (the default model is "
              f"{DEFAULT_MODEL})", file=sys.stderr)
        model = RENAMED[model]
    try:
        return load_model(model, backend=backend, **settings.load_options())
    except UnknownModelError:
        raise CLIError(f"unknown model {model!r}", f"the model names: {', '.join(available_models())}; or give a "
                       ".safetensors or .onnx file") from None
    except ModelFileError as exc:
        raise CLIError(str(exc), "pass a model file written by 'emotionnet train'") from None
    except OnnxBackendError as exc:
        hint = "export one with 'emotionnet export --onnx FILE'" if str(model).lower().endswith(".onnx") \
            else "try --backend torch"
        raise CLIError(str(exc), hint) from None
    except ValueError:
        if backend == "torch" and str(model).lower().endswith(".onnx"):
            raise CLIError(f"{model} is an ONNX file", "drop --backend torch, or pass a .safetensors model") from None
        raise


def warn_skipped(collection) -> None:
    """One stderr line for clips left out for their label: a misspelt one is not silently dropped."""
    from emotionnet.labels import LABELS

    if collection.skipped:
        counts = ", ".join(f"{label!r} {n}" for label, n in sorted(collection.skipped.items()))
        print(f"emotionnet: warning: left out {sum(collection.skipped.values())} clip(s) whose label is not "
              f"one of {', '.join(LABELS)}: {counts}", file=sys.stderr)


def encoder_head_recipe(args, family, options: tuple[str, ...]):
    """The encoder-head recipe (training/whisper_recipe.py) of `--recipe` (else the default) with the
    head options in `options` that were given; one line if the encoder's weights are missing or the
    file is not such a recipe."""
    import dataclasses
    import json
    from pathlib import Path

    from emotionnet.models.family import LoadOptions
    from emotionnet.training.whisper_recipe import WhisperRecipe

    family.require(LoadOptions(encoder_weights=model_settings().encoder_weights))  # before any clip is read
    try:
        base = WhisperRecipe.from_dict(json.loads(Path(args.recipe).read_text())) if args.recipe else WhisperRecipe()
    except (OSError, ValueError, TypeError) as exc:
        raise CLIError(f"{args.recipe}: not a usable encoder-head recipe ({exc})") from None
    changes = {name: getattr(args, name) for name in options if getattr(args, name) is not None}
    return dataclasses.replace(base, head=dataclasses.replace(base.head, **changes))
