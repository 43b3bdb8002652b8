"""`emotionnet COMMAND ...`: the command line. Each command lives in its own module."""

from __future__ import annotations

import argparse
import sys
import warnings

from emotionnet import __version__
from emotionnet.cli import app, batch, evaluate, export, listen, predict, serve, train, tune
from emotionnet.cli.common import CLIError, Parser
from emotionnet.extras import MissingExtraError

COMMANDS = (predict, evaluate, train, tune, export, listen, app, serve, batch)

EXAMPLES = """examples:
  emotionnet predict speech.wav              emotion of one file, with a bar per class
  emotionnet predict recordings/ --json      one JSON line per audio file under a folder
  emotionnet listen                          live from the microphone
  emotionnet app                             record in the browser
  emotionnet serve                           HTTP + WebSocket service on 127.0.0.1:8000
  emotionnet batch recordings/ --out results.parquet   many files, a process per core (--engine ray: a cluster)
  emotionnet evaluate ../shared/data         test-split report on the corpora
  emotionnet train ../shared/data --out my.safetensors
"""


def build_parser() -> Parser:
    parser = Parser(prog="emotionnet", description="Recognise emotion in speech: "
                    "angry, disgust, fear, happy, neutral, sad.",
                    epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"emotionnet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning(warnings.showwarning)
            return args.run(args) or 0
    except CLIError as exc:
        print(f"emotionnet: error: {exc}", file=sys.stderr)
        return exc.code
    except MissingExtraError as exc:  # an optional package this command needs
        print(f"emotionnet: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("emotionnet: interrupted", file=sys.stderr)
        return 130


def _show_warning(python_way):
    """The package's own warnings (a truncated file, integer-scale samples) as one line each in the
    command line's format; others as Python prints them (`python_way`)."""

    def show(message, category, *where, **more) -> None:
        if category.__module__.startswith("emotionnet."):
            print(f"emotionnet: warning: {message}", file=sys.stderr)
        else:
            python_way(message, category, *where, **more)

    return show


if __name__ == "__main__":
    sys.exit(main())
