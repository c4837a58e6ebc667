"""The `monitor` command. The only place that catches MonitorError and picks the exit code:
0 ok, 2 bad configuration or arguments, 1 anything else.

    base.py       the group, its options, Env (configuration and database), the consoles
    daemon.py     run, once, check, db upgrade
    views.py      feeds, alerts
    testrule.py   test-rule
    opmlcmd.py    opml import / export
"""

from __future__ import annotations

import sys

import click

from monitor.cli import daemon, testrule, views
from monitor.cli.base import cli, config_option, err
from monitor.cli.opmlcmd import opml_group
from monitor.errors import ConfigError, MonitorError

cli.add_command(opml_group)
__all__ = ["cli", "daemon", "main", "run_cli", "testrule", "views"]


def _config_everywhere(group: click.Group) -> None:
    """Every command takes --config as well as the group (the SPEC: before or after the
    command's name)."""
    for cmd in group.commands.values():
        cmd.params.append(config_option())
        if isinstance(cmd, click.Group):
            _config_everywhere(cmd)


_config_everywhere(cli)


def main(argv: list[str] | None = None) -> None:
    sys.exit(run_cli(argv))


def run_cli(argv: list[str] | None = None) -> int:
    """Run a command; return its exit code (tests call this in-process)."""
    try:
        cli.main(args=argv, prog_name="monitor", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return 2
    except click.Abort:
        err.print("aborted")
        return 1
    except ConfigError as exc:
        for line in exc.problems:
            err.print(line, markup=False)
        return 2
    except MonitorError as exc:
        err.print(f"error: {exc}", markup=False)
        return exc.exit_code
    return 0
