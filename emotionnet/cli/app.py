"""`emotionnet app`: not written yet (in progress in this change)."""

from emotionnet.cli.common import CLIError, add_command


def add_parser(sub) -> None:
    parser = add_command(sub, "app", "app (in progress)", "  emotionnet app --help")
    parser.set_defaults(run=run)


def run(args) -> int:
    raise CLIError("'app' is not available yet")
