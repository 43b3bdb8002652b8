"""`emotionnet export`: not written yet (in progress in this change)."""

from emotionnet.cli.common import CLIError, add_command


def add_parser(sub) -> None:
    parser = add_command(sub, "export", "export (in progress)", "  emotionnet export --help")
    parser.set_defaults(run=run)


def run(args) -> int:
    raise CLIError("'export' is not available yet")
