"""`emotionnet predict`: not written yet (in progress in this change)."""

from emotionnet.cli.common import CLIError, add_command


def add_parser(sub) -> None:
    parser = add_command(sub, "predict", "predict (in progress)", "  emotionnet predict --help")
    parser.set_defaults(run=run)


def run(args) -> int:
    raise CLIError("'predict' is not available yet")
