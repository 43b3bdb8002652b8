"""`emotionnet evaluate`: the report of a model on labelled clips."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from emotionnet.cli.common import (
    EXIT_SOME_FAILED,
    CLIError,
    add_command,
    add_model_option,
    load_collection,
    load_recognizer,
    model_settings,
    warn_skipped,
)
from emotionnet.extras import MissingExtraError

EXAMPLES = """  emotionnet evaluate ../shared/data                      test split of every corpus found
  emotionnet evaluate ../shared/data/RAVDESS --split val
  emotionnet evaluate ../shared/data --split v2           split protocol v2 (seven corpora), as older reports
  emotionnet evaluate ../shared/data --split v2:val       its validation split
  emotionnet evaluate --manifest mine.csv --model my.safetensors --out report/
  emotionnet evaluate ../shared/data --context speaker    each clip read against its speaker's clips
  emotionnet evaluate ../shared/data --json > report.json
Every clip is scored alone by default, as a user's clip arrives. With --context speaker a
model that reads a speaker's context (a speaker-normalised CRNN; whisper-base with a
context_alpha) reads each clip against all its speaker's clips in the split
(the speaker comes from the corpus naming or the manifest): an emotion-balanced context
that no real recording has, so it flatters the figures."""


def add_parser(sub) -> None:
    p = add_command(sub, "evaluate", "Score a model on labelled clips: UAR, accuracy, macro-F1, confusion.", EXAMPLES)
    p.add_argument("folders", nargs="*", metavar="FOLDER", help="corpus folders (detected by file naming)")
    p.add_argument("--manifest", metavar="CSV", help="CSV with path,emotion[,speaker,corpus,split]")
    add_model_option(p)
    p.add_argument("--backend", choices=("torch", "onnx"), help="run the network with torch (default) or onnxruntime")
    p.add_argument("--split", type=split_choice, metavar="[VERSION:]PART",
                   help="PART test|val|train|all (default: test for corpora, all for a manifest without a split "
                        f"column); VERSION the split protocol, {'|'.join(PROTOCOLS)} (default {PROTOCOLS[-1]}: "
                        "each version adds corpora, the earlier ones' lists unchanged); 'v2' alone is v2's default part")
    p.add_argument("--context", choices=("clip", "speaker"), default="clip",
                   help="score each clip alone, as a user's arrives (default), or read it against all its "
                        "speaker's clips (models that read a speaker's context)")
    p.add_argument("--out", metavar="DIR", help="write DIR/report.json and DIR/confusion.png")
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    p.set_defaults(run=run)


PROTOCOLS = ("v1", "v2", "v3")  # emotionnet.corpora.PROTOCOL_CORPORA's keys (here: --help imports no corpora)
PARTS = ("test", "val", "train", "all")


def split_choice(text: str) -> tuple[str | None, str | None]:
    """`--split` as (protocol version or None, part or None): `test`, `v2` or `v2:val`."""
    if ":" in text:
        version, part = text.split(":", 1)
    else:
        version, part = (text, None) if text in PROTOCOLS else (None, text)
    if (version is not None and version not in PROTOCOLS) or (part is not None and part not in PARTS):
        raise argparse.ArgumentTypeError(f"{text!r}: expected one of {', '.join(PARTS)}, a version "
                                         f"({', '.join(PROTOCOLS)}), or VERSION:PART such as v2:val")
    return version, part


def run(args) -> int:
    from emotionnet.corpora import SPLIT_NAME, select
    from emotionnet.evaluation.evaluate import default_split, evaluate_records, format_report, plot_confusion

    collection = load_collection(args.folders, args.manifest)
    warn_skipped(collection)
    protocol, split = args.split or (None, None)
    protocol = protocol or SPLIT_NAME
    split = split or default_split(collection.records, manifest_only=not args.folders)
    try:
        records = select(collection.records, split, protocol)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if not records:
        raise CLIError(f"no clips in the {split} split", "try --split all")
    recognizer = load_recognizer(args.model, args.backend)
    try:
        result = evaluate_records(recognizer, records, split, dict(collection.skipped), collection.excluded,
                                  progress=not args.json, context=args.context, protocol=protocol,
                                  cache_dir=model_settings().cache_dir)
    except ValueError as exc:  # no clip could be scored: each failure is on its own line above
        raise CLIError(str(exc), "every clip failed to load; see the lines above", EXIT_SOME_FAILED) from None
    if args.out:
        out = Path(args.out)
        try:
            out.mkdir(parents=True, exist_ok=True)
            (out / "report.json").write_text(json.dumps(result, indent=2))
            try:
                plot_confusion(result, out / "confusion.png")
            except MissingExtraError as exc:  # the report is written; the picture is optional
                print(f"emotionnet: warning: {out / 'confusion.png'} not written: {exc}", file=sys.stderr)
        except OSError as exc:
            raise CLIError(f"{out}: cannot write the report ({exc.strerror or exc})", "choose another --out") from None
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    return 0
