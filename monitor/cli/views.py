"""The read-only commands: `feeds` (feed health) and `alerts` (recent alerts, deliveries)."""

from __future__ import annotations

import datetime as dt

import click
from rich.markup import escape
from rich.table import Table

from monitor import db, store
from monitor.alert.render import source_line
from monitor.cli.base import Env, ago, cli, out, pass_env
from monitor.metrics import feed_state
from monitor.models import Alert, Delivery, utcnow
from monitor.units import format_duration


@cli.command()
@pass_env
def feeds(env: Env) -> None:
    """Feed health: state, last fetch, HTTP status, items, consecutive errors, last error,
    current interval, next due."""
    env.read_only = True
    configured = {f.id: env.settings.feed_interval(f) for f in env.settings.feeds}
    engine = env.engine()
    with db.session(engine) as s:
        rows = store.feeds_by_id(s)
    table = Table()
    columns = (
        "feed", "state", "last fetch", "status", "items", "errors", "last error", "interval",
        "next due",
    )  # fmt: skip
    for column in columns:
        table.add_column(column)
    for fid, every in configured.items():
        f = rows.get(fid)
        if f is None:
            table.add_row(fid, "never", "never", "", "", "", "", format_duration(every), "now")
            continue
        interval = dt.timedelta(seconds=f.interval_s) if f.interval_s else every
        table.add_row(
            fid,
            _STATE.get(state := feed_state(f.last_fetch_at, f.health), state),
            ago(f.last_fetch_at),
            str(f.last_status or ""),
            str(f.last_item_count),
            f"[red]{f.consecutive_errors}[/]" if f.consecutive_errors else "0",
            escape((f.last_error or "")[:80]),
            format_duration(interval, exact=False),
            ago(f.next_due_at),
        )
    out.print(table)


_STATE = {"ok": "[green]ok[/]", "failing": "[red]failing[/]", "stale": "[yellow]stale[/]"}


@cli.group(invoke_without_command=True)
@click.option("--limit", default=20, show_default=True, help="How many recent alerts.")
@click.pass_context
def alerts(ctx: click.Context, limit: int) -> None:
    """Recent alerts and their delivery status per channel."""
    if ctx.invoked_subcommand is not None:
        return
    env: Env = ctx.obj
    env.read_only = True
    engine = env.engine()
    with db.session(engine) as s:
        recent = store.recent_alerts(s, limit, with_deliveries=True)
        holding = store.held_back_now(s)
    table = Table()
    table.add_column("alert", no_wrap=True)
    for column in ("created", "rule", "severity", "title", "deliveries"):
        table.add_column(column)
    for r in recent:
        a = r.alert
        table.add_row(
            a.id,
            ago(a.created_at),
            a.rule_id,
            a.severity,
            r.item.title[:60]
            + _also(a)
            + (f"\n(cooldown held back {_matches(a.held_back)} before it)" if a.held_back else ""),
            "\n".join(_delivery_line(d) for d in r.deliveries),
        )
    out.print(table)
    for rule_id, n in sorted(holding.items()):
        out.print(f"rule {rule_id}: its cooldown has held back {_matches(n)} since its last alert")


def _also(a: Alert) -> str:
    """The story's other sources: each copy's feed, url and first sighting."""
    if a.sources:
        return "".join(f"\n+ {source_line(c)}" for c in a.sources)
    return f"\n(also: {', '.join(a.also_reported_by)})" if a.also_reported_by else ""


def _matches(n: int) -> str:
    return f"{n} match" if n == 1 else f"{n} matches"


def _delivery_line(d: Delivery) -> str:
    colour = {"sent": "green", "dead": "red"}.get(d.status, "yellow")
    tries = "1 attempt" if d.attempts == 1 else f"{d.attempts} attempts"
    line = f"{d.channel}: [{colour}]{d.status}[/] ({tries})"
    if d.last_error:
        line += f" {d.last_error[:60]}"
    return line


@alerts.command("retry")
@click.argument("alert_id")
@pass_env
def alerts_retry(env: Env, alert_id: str) -> None:
    """Re-queue the dead deliveries of an alert."""
    env.read_only = True  # it sends nothing itself: the daemon does
    engine = env.engine()
    with db.session(engine) as s:
        n = store.requeue_delivery(s, alert_id, utcnow())
        s.commit()
    if n == 0:
        raise click.UsageError(f"alert {alert_id} has no dead delivery")
    out.print(f"{n} deliveries of {alert_id} queued again")
