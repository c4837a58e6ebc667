"""What every command shares: the `monitor` group and its options, the consoles, and `Env`,
which loads the configuration the one way (monitor.config) and opens the database."""

from __future__ import annotations

import datetime as dt
import sys

import click
from rich.console import Console

from monitor import __version__, db, logs, schema
from monitor.config import Config, load_config
from monitor.models import utcnow
from monitor.rules import Watchlist
from monitor.settings import DEFAULT_CONFIG, Settings
from monitor.units import format_duration

# Piped output (grep, a file, a test) gets wide tables rather than 80 columns of wrapping.
_WIDTH = None if sys.stdout.isatty() else 200
out = Console(highlight=False, soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class Env:
    """What every command gets. Every command validates both files first (exit 2 on any
    problem), so a broken edit is noticed whichever command runs next. The read-only
    commands (feeds, alerts, test-rule) say `read_only`: they send nothing, so a channel
    whose ${VAR} is unset is a warning for them, not a reason to refuse."""

    def __init__(self, config: str) -> None:
        self.config = config
        self.read_only = False
        self._loaded: Config | None = None

    def load(self) -> tuple[Settings, Watchlist]:
        if self._loaded is None:
            self._loaded = load_config(self.config, read_only=self.read_only)
            for warning in self._loaded.warnings:
                err.print(f"warning: {warning}", markup=False)
        return self._loaded.settings, self._loaded.watchlist

    @property
    def settings(self) -> Settings:
        return self.load()[0]

    def rules(self) -> Watchlist:
        return self.load()[1]

    def engine(self) -> db.Engine:
        engine = db.make_engine(self.settings.database)
        schema.upgrade(engine)
        return engine


pass_env = click.make_pass_decorator(Env)


def _set_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    env = ctx.find_object(Env)
    if env is not None and value is not None:
        env.config = value


def config_option() -> click.Option:
    """`--config` on a command, after its name as before it (`monitor once --config x`)."""
    return click.Option(
        ["--config"],
        expose_value=False,
        is_eager=True,
        callback=_set_config,
        help="monitor.yaml to use (env MONITOR_CONFIG); the same as before the command.",
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    default=DEFAULT_CONFIG,
    envvar="MONITOR_CONFIG",
    show_default=True,
    help="monitor.yaml to use (env MONITOR_CONFIG).",
)
@click.option("--log-level", default="INFO", show_default=True, help="DEBUG, INFO, WARNING…")
@click.version_option(__version__, prog_name="monitor")
@click.pass_context
def cli(ctx: click.Context, config: str, log_level: str) -> None:
    """Poll RSS/Atom feeds, match watchlist rules, send alerts."""
    logs.configure(log_level.upper())
    ctx.obj = Env(config)


def ago(when: dt.datetime | None) -> str:
    """`5m ago`, `in 2h`: how far from now, in the largest unit reached."""
    if when is None:
        return ""
    delta = (when - utcnow()).total_seconds()
    shown = format_duration(abs(int(delta)), exact=False)
    return f"in {shown}" if delta > 0 else f"{shown} ago"
