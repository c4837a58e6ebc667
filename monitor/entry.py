"""The `monitor` command's entry point (and `python -m monitor`'s): the process-wide settings
that must come before the commands are imported, then the CLI. Importing monitor.cli (tests,
the forkserver's workers) applies none of them."""

from __future__ import annotations

import sys

_POLLING = frozenset({"once", "run"})  # the commands that parse feeds in worker processes
# The group's options that take a value (cli/base.py; tests/test_cli.py checks they agree):
# read here without importing click or the CLI, which is the point of reading them early.
_VALUED = frozenset({"--config", "--log-level"})


def main() -> None:
    from monitor import gcpolicy

    gcpolicy.starting()  # before the imports: start-up's objects are not garbage
    if command(sys.argv[1:]) in _POLLING:
        # The forkserver's import of the parsing code runs on the other core while this
        # process imports the CLI and what it runs (2.2 s of one core on a slow machine,
        # which the command's own prestart came after).
        from monitor import workers

        workers.prestart()

    from monitor.cli import main as cli_main

    cli_main()


def command(argv: list[str]) -> str | None:
    """The name of the command in `argv` (the first word that is not a group option)."""
    words = iter(argv)
    for word in words:
        if word in _VALUED:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None
