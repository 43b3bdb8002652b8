"""`emotionnet listen`: not written yet (in progress in this change)."""

from emotionnet.cli.common import CLIError, add_command


def add_parser(sub) -> None:
    parser = add_command(sub, "listen", "listen (in progress)", "  emotionnet listen --help")
    parser.set_defaults(run=run)


def run(args) -> int:
    raise CLIError("'listen' is not available yet")
