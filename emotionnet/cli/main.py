"""`emotionnet COMMAND ...`: the command line. Each command lives in its own module."""

from __future__ import annotations

import argparse
import sys

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


if __name__ == "__main__":
    sys.exit(main())
