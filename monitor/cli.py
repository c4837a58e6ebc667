"""The `monitor` command. The only place that catches MonitorError and picks the exit code:
0 ok, 2 bad configuration or arguments, 1 anything else."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import sqlalchemy as sa
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from rich.text import Text
from sqlmodel import col, select

from monitor import __version__, db, logs, scheduler, store
from monitor.errors import ConfigError, MonitorError, ParseError, QueryError
from monitor.models import Alert, Delivery, Feed, Hit, Item, ItemData, utcnow
from monitor.parse import html_to_text, parse_feed
from monitor.rules import CompiledQuery, Watchlist, compile_query
from monitor.settings import DEFAULT_CONFIG, Settings, load_settings
from monitor.units import parse_duration

# Piped output (grep, a file, a test) gets wide tables rather than 80 columns of wrapping.
_WIDTH = None if sys.stdout.isatty() else 200
out = Console(highlight=False, soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class Env:
    """What every command gets. Every command validates both files first (exit 2 on any
    problem), so a broken edit is noticed whichever command runs next."""

    def __init__(self, config: str) -> None:
        self.config = config
        self._loaded: tuple[Settings, Watchlist] | None = None

    def load(self) -> tuple[Settings, Watchlist]:
        if self._loaded is None:
            settings = load_settings(self.config)
            scheduler.check_channels(settings, self.config)
            self._loaded = (settings, scheduler.load_rules(settings))
        return self._loaded

    @property
    def settings(self) -> Settings:
        return self.load()[0]

    def rules(self) -> Watchlist:
        return self.load()[1]

    def engine(self) -> sa.Engine:
        engine = db.make_engine(self.settings.database)
        db.upgrade(engine)
        return engine


pass_env = click.make_pass_decorator(Env)


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


@cli.command()
@pass_env
def run(env: Env) -> None:
    """The daemon: poll, match and deliver until SIGTERM or SIGINT."""
    settings, rules = env.settings, env.rules()

    async def main() -> None:
        stop = asyncio.Event()
        with scheduler.stop_on_signals(stop):
            await scheduler.run_daemon(settings, rules, stop)

    asyncio.run(main())


@cli.command()
@click.option("--all", "everything", is_flag=True, help="Every feed, due or not.")
@pass_env
def once(env: Env, everything: bool) -> None:
    """One cycle over every due feed: fetch, match, deliver, exit."""
    settings, rules = env.settings, env.rules()
    total = len(settings.feeds)
    with Progress(console=err, transient=True, disable=not err.is_terminal) as progress:
        task = progress.add_task("polling", total=total)

        def advance(_outcome: object) -> None:
            progress.advance(task)

        report, delivered = asyncio.run(
            scheduler.run_once(settings, rules, everything=everything, on_feed=advance)
        )
    failed = [f for f in report.feeds if not f.ok]
    out.print(
        f"{len(report.feeds)} feeds polled, {len(failed)} failed, "
        f"{sum(f.new for f in report.feeds)} new items, {report.alerts} alerts; "
        f"deliveries: {delivered.sent} sent, {delivered.failed} to retry, {delivered.dead} dead"
    )
    for f in failed:
        out.print(f"  [red]{f.feed_id}[/]: {f.error}", markup=True)


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


@cli.command()
@pass_env
def feeds(env: Env) -> None:
    """Feed health: last fetch, HTTP status, items, consecutive errors, last error, next due."""
    configured = [f.id for f in env.settings.feeds]
    engine = env.engine()
    with db.session(engine) as s:
        rows = {f.id: f for f in s.exec(select(Feed)).all()}
    table = Table()
    for column in ("feed", "last fetch", "status", "items", "errors", "last error", "next due"):
        table.add_column(column)
    for fid in configured:
        f = rows.get(fid)
        if f is None:
            table.add_row(fid, "never", "", "", "", "", "now")
            continue
        table.add_row(
            fid,
            _ago(f.last_fetch_at),
            str(f.last_status or ""),
            str(f.last_item_count),
            f"[red]{f.consecutive_errors}[/]" if f.consecutive_errors else "0",
            (f.last_error or "")[:80],
            _ago(f.next_due_at),
        )
    out.print(table)


@cli.group(invoke_without_command=True)
@click.option("--limit", default=20, show_default=True, help="How many recent alerts.")
@click.pass_context
def alerts(ctx: click.Context, limit: int) -> None:
    """Recent alerts and their delivery status per channel."""
    if ctx.invoked_subcommand is not None:
        return
    env: Env = ctx.obj
    engine = env.engine()
    with db.session(engine) as s:
        recent = s.exec(
            select(Alert, Item)
            .join(Item, col(Item.id) == col(Alert.item_id))
            .order_by(col(Alert.created_at).desc())
            .limit(limit)
        ).all()
        ids = [a.id for a, _ in recent]
        deliveries = s.exec(select(Delivery).where(col(Delivery.alert_id).in_(ids))).all()
    by_alert: dict[str, list[Delivery]] = {}
    for d in deliveries:
        by_alert.setdefault(d.alert_id, []).append(d)
    table = Table()
    table.add_column("alert", no_wrap=True)
    for column in ("created", "rule", "severity", "title", "deliveries"):
        table.add_column(column)
    for a, item in recent:
        table.add_row(
            a.id,
            _ago(a.created_at),
            a.rule_id,
            a.severity,
            item.title[:60]
            + (f"\n(also: {', '.join(a.also_reported_by)})" if a.also_reported_by else ""),
            "\n".join(_delivery_line(d) for d in sorted(by_alert.get(a.id, []), key=_channel)),
        )
    out.print(table)


def _channel(d: Delivery) -> str:
    return d.channel


def _delivery_line(d: Delivery) -> str:
    colour = {"sent": "green", "dead": "red"}.get(d.status, "yellow")
    line = f"{d.channel}: [{colour}]{d.status}[/] ({d.attempts} attempts)"
    if d.last_error:
        line += f" {d.last_error[:60]}"
    return line


@alerts.command("retry")
@click.argument("alert_id")
@pass_env
def alerts_retry(env: Env, alert_id: str) -> None:
    """Re-queue the dead deliveries of an alert."""
    engine = env.engine()
    with db.session(engine) as s:
        n = store.requeue_delivery(s, alert_id, utcnow())
        s.commit()
    if n == 0:
        raise click.UsageError(f"alert {alert_id} has no dead delivery")
    out.print(f"{n} deliveries of {alert_id} queued again")


@cli.command("test-rule")
@click.argument("query", required=False)
@click.option("--rule", "rule_id", help="Test a rule of the watchlist instead of a QUERY.")
@click.option("--text", help="Test against this text.")
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Test against a file: a feed (each item), an HTML page or plain text.",
)
@click.option("--since", help="Test against stored items first seen this recently, e.g. 30d.")
@click.option("--limit", default=50, show_default=True, help="Show at most this many hits.")
@pass_env
def test_rule(
    env: Env,
    query: str | None,
    rule_id: str | None,
    text: str | None,
    path: Path | None,
    since: str | None,
    limit: int,
) -> None:
    """Dry run of a query or rule: shows each hit with the matched terms marked. No alerts."""
    if (query is None) == (rule_id is None):
        raise click.UsageError("give a QUERY or --rule ID (one of them)")
    if sum(x is not None for x in (text, path, since)) != 1:
        raise click.UsageError("give exactly one of --text, --file or --since")
    settings, watchlist = env.load()
    matcher, feeds = _compile_for_test(watchlist, query, rule_id)
    if since is not None:
        try:
            window = parse_duration(since)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--since") from None
        tags = {f.id: f.tags for f in settings.feeds}
        candidates = _stored_items(env.engine(), utcnow() - window)
    else:
        tags = {}
        candidates = iter(_items_from(text, path))
    total = hits = 0
    for item in candidates:
        total += 1
        if feeds is not None and not _in_feeds(item, feeds, tags.get(item.feed_id, ())):
            continue
        hit = matcher.match(item, tags.get(item.feed_id, ()), rule_id=rule_id or "query")
        if hit is None:
            continue
        hits += 1
        if hits <= limit:
            _show_hit(item, hit)
    shown = f" (first {limit} shown)" if hits > limit else ""
    out.print(f"{hits} of {total} items match{shown}")


def _compile_for_test(
    watchlist: Watchlist, query: str | None, rule_id: str | None
) -> tuple[CompiledQuery, tuple[str, ...] | None]:
    if rule_id is not None:
        rule = watchlist.get(rule_id)
        if rule is None:
            known = ", ".join(r.id for r in watchlist.rules)
            raise click.BadParameter(f"no rule {rule_id!r} (rules: {known})", param_hint="--rule")
        return rule.compiled, rule.feeds
    assert query is not None
    try:
        groups = {name: list(members) for name, members in watchlist.groups.items()}
        return compile_query(query, groups), None
    except QueryError as exc:
        pointer = " " * max(exc.column - 1, 0) + "^"
        raise ConfigError(f"query: {exc}\n  {query}\n  {pointer}") from None


def _items_from(text: str | None, path: Path | None) -> list[ItemData]:
    """--text, or --file as a feed (its items), an HTML page, or plain text."""
    if path is not None:
        body = path.read_bytes()
        head = body[:2048].lstrip().lower()
        if head.startswith((b"<?xml", b"<rss", b"<feed", b"<rdf")):
            try:
                now = utcnow()
                return parse_feed(body, feed_id=path.name, base_url=None, fetched_at=now).items
            except ParseError:
                pass
        text = body.decode("utf-8", errors="replace")
        if head.startswith((b"<!doctype html", b"<html")):
            text = html_to_text(text)
    assert text is not None
    title = path.name if path is not None else "--text"
    return [ItemData(feed_id="text", guid="text", url=None, title=title, content=text)]


def _stored_items(engine: sa.Engine, since: dt.datetime) -> Iterator[ItemData]:
    after = 0
    while True:
        with db.session(engine) as s:
            page = store.items_since(s, since, after_id=after)
        if not page:
            return
        yield from (data for _id, _seen, data in page)
        after = page[-1][0]


def _in_feeds(item: ItemData, feeds: tuple[str, ...], tags: tuple[str, ...]) -> bool:
    return item.feed_id in feeds or any(t in feeds for t in tags)


def _show_hit(item: ItemData, hit: Hit) -> None:
    when = item.published_at.strftime("%Y-%m-%d %H:%M") if item.published_at else ""
    head = Text.assemble((item.title or "(untitled)", "bold"), f"  {item.feed_id} {when}")
    out.print(head)
    if item.url:
        out.print(Text(item.url, style="dim"))
    out.print(Text.assemble("terms: ", (", ".join(hit.terms), "yellow")))
    out.print(highlight(hit.snippet))
    out.print()


def highlight(snippet: str) -> Text:
    """The snippet with each «marked» hit in bold yellow (the marks themselves dropped on a
    terminal, kept when piped so the hits stay visible in plain text)."""
    text = Text()
    keep_marks = not out.is_terminal
    for i, part in enumerate(re.split(r"«([^»]*)»", snippet)):
        if i % 2:
            text.append(f"«{part}»" if keep_marks else part, style="bold yellow")
        else:
            text.append(part)
    return text


@cli.group("opml")
def opml_group() -> None:
    """OPML in and out, as feed entries for monitor.yaml."""


@opml_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--tag", "tags", multiple=True, metavar="TAG", help="Add this tag to every feed (repeatable)."
)
@click.option(
    "--write", is_flag=True, help="Append the new feeds to the --config file instead of printing."
)
@pass_env
def opml_import(env: Env, file: Path, tags: tuple[str, ...], write: bool) -> None:
    """Read an OPML file; print its new feeds as monitor.yaml entries, or --write them.

    Folders become tags. Feeds already configured, outlines without xmlUrl and URLs that are
    not http(s) are skipped and listed on stderr. Only monitor.yaml is read (not the watchlist).
    """
    from monitor import opml

    if any(not t.strip() for t in tags):
        raise click.BadParameter("a tag cannot be empty", param_hint="--tag")
    config = Path(env.config)
    existing: list[tuple[str, str]] = []
    if write or config.exists():
        existing = [(f.id, f.url) for f in load_settings(config).feeds]
    else:
        err.print(f"note: no {config}: ids and URLs are not checked against it", markup=False)
    plan = opml.plan_import(opml.read_opml(file), existing, tags)
    for note in plan.notes:
        err.print(str(note), markup=False)
    skipped = sum(n.skipped for n in plan.notes)
    summary = f"{len(plan.feeds)} new feeds from {file}, {skipped} skipped"
    if not write:
        if plan.feeds:
            click.echo(opml.render_feeds(plan.feeds), nl=False)
        err.print(summary, markup=False)
        return
    if plan.feeds:
        opml.append_to_config(config, plan.feeds, check=load_settings)
    out.print(f"{config}: {summary}; {len(plan.feeds)} added", markup=False)


@opml_group.command("export")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the OPML to this file instead of stdout.",
)
@pass_env
def opml_export(env: Env, output: Path | None) -> None:
    """The configured feeds as OPML 2.0: a folder per first tag, every tag in `category`.

    Local-file feeds are left out (noted on stderr). Only monitor.yaml is read."""
    from urllib.parse import urlsplit

    from monitor import opml
    from monitor.settings import url_secrets

    rows: list[tuple[str, str, tuple[str, ...]]] = []
    for f in load_settings(env.config).feeds:
        if urlsplit(f.url).scheme.lower() not in ("http", "https"):
            err.print(f"{f.id}: left out: a local file, not a URL a reader can fetch", markup=False)
            continue
        if url_secrets(f.url):
            err.print(f"{f.id}: note: its URL carries a credential, exported as is", markup=False)
        rows.append((f.id, f.url, f.tags))
    data = opml.export_opml(rows)
    if output is None:
        click.echo(data, nl=False)
        return
    try:
        output.write_bytes(data)
    except OSError as exc:
        raise MonitorError(f"cannot write {output}: {exc.strerror}") from None
    err.print(f"{output}: {len(rows)} feeds", markup=False)


@cli.group("db")
def db_group() -> None:
    """Database maintenance."""


@db_group.command("upgrade")
@pass_env
def db_upgrade(env: Env) -> None:
    """Apply schema migrations (also done at every start)."""
    engine = db.make_engine(env.settings.database)
    version = db.upgrade(engine)
    out.print(f"{db.redact_url(env.settings.database)}: schema version {version}")


def _ago(when: dt.datetime | None) -> str:
    if when is None:
        return ""
    delta = (when - utcnow()).total_seconds()
    word = "in " if delta > 0 else ""
    suffix = "" if delta > 0 else " ago"
    secs = abs(int(delta))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{word}{secs // size}{unit}{suffix}"
    return f"{word}{secs}s{suffix}"


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
