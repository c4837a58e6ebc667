"""The commands that run monitor: `run`, `once`, `check`, `db upgrade`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator

import click
from rich.table import Table

from monitor import db, scheduler, schema, workers
from monitor.cli.base import Env, cli, err, out, pass_env


@cli.command()
@pass_env
def run(env: Env) -> None:
    """The daemon: poll, match and deliver until SIGTERM or SIGINT."""
    workers.prestart()  # its imports overlap the configuration's load
    settings, rules = env.settings, env.rules()

    async def main() -> None:
        stop = scheduler.Stop()
        with scheduler.stop_on_signals(stop):
            await scheduler.run_daemon(settings, rules, stop)

    asyncio.run(main())


@cli.command()
@click.option("--all", "everything", is_flag=True, help="Every feed, due or not.")
@pass_env
def once(env: Env, everything: bool) -> None:
    """One cycle over every due feed: fetch, match, deliver, exit."""
    workers.prestart()  # its imports overlap the configuration's load
    settings, rules = env.settings, env.rules()
    with _progress(len(settings.feeds)) as advance:
        report, delivered = asyncio.run(
            scheduler.run_once(settings, rules, everything=everything, on_feed=advance)
        )
    failed = [f for f in report.feeds if not f.ok]
    edited = sum(f.changed for f in report.feeds)
    held = sum(sum(f.held_back.values()) for f in report.feeds)
    out.print(
        f"{len(report.feeds)} feeds polled, {len(failed)} failed, "
        f"{sum(f.new for f in report.feeds)} new items"
        + (f" ({edited} edited)" if edited else "")
        + f", {report.alerts} alerts"
        + (f" ({held} matches held back by cooldowns)" if held else "")
        + f"; deliveries: {delivered.sent} sent, {delivered.failed} to retry,"
        f" {delivered.dead} dead"
    )
    for f in failed:
        out.print(f"  [red]{f.feed_id}[/]: {f.error}", markup=True)


@contextlib.contextmanager
def _progress(total: int) -> Iterator[Callable[[object], None]]:
    """A progress bar on a terminal, advanced once a feed. Elsewhere nothing, and
    rich.progress (40 ms of imports) is not loaded for a cron job's or a container's once."""
    if not err.is_terminal:
        yield lambda _outcome: None
        return
    from rich.progress import Progress

    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("polling", total=total)
        yield lambda _outcome: progress.advance(task)


@cli.command()
@pass_env
def check(env: Env) -> None:
    """Validate monitor.yaml and the watchlist; print the rules."""
    settings = env.settings
    rules = env.rules()
    table = Table(title=f"{len(rules.rules)} rules (watchlist {rules.version})")
    for column in ("id", "severity", "query", "notify", "feeds"):
        table.add_column(column)
    for r in rules.rules:
        table.add_row(
            r.id,
            r.severity,
            r.query_text,
            ", ".join(r.notify) if r.notify is not None else "(all)",
            ", ".join(r.feeds) if r.feeds else "(all)",
        )
    out.print(table)
    out.print(
        f"{env.config}: OK: {len(settings.feeds)} feeds, "
        f"{len(settings.effective_channels)} channels ({', '.join(settings.effective_channels)})"
    )


@cli.group("db")
def db_group() -> None:
    """Database maintenance."""


@db_group.command("upgrade")
@pass_env
def db_upgrade(env: Env) -> None:
    """Apply schema migrations (also done at every start)."""
    engine = db.make_engine(env.settings.database)
    done = schema.upgrade(engine)
    engine.dispose()
    where = db.redact_url(env.settings.database)
    if not done.changed:
        out.print(f"{where}: schema at revision {done.revision}, the newest; nothing to do")
    else:
        was = done.previous or "an empty database"
        out.print(f"{where}: schema upgraded from {was} to {done.revision}")
