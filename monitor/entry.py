"""The `monitor` command's entry point (and `python -m monitor`'s): the process-wide settings
that must come before the commands are imported, then the CLI. Importing monitor.cli (tests,
the forkserver's workers) applies none of them."""

from __future__ import annotations


def main() -> None:
    from monitor import gcpolicy

    gcpolicy.starting()  # before the imports: start-up's objects are not garbage

    from monitor.cli import main as cli_main

    cli_main()
