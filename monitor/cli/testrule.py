"""`test-rule`: a dry run of a query or a rule against text, a file or the stored items."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
from rich.text import Text

from monitor.activation import stored_pages
from monitor.cli.base import Env, cli, out, pass_env
from monitor.errors import ConfigError, ParseError, QueryError
from monitor.models import Hit, ItemData, utcnow
from monitor.parse import html_to_text, parse_feed
from monitor.rules import CompiledQuery, Watchlist, compile_query
from monitor.rules.matcher import in_scope
from monitor.units import parse_duration


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
    matcher, scope = _compile_for_test(watchlist, query, rule_id)
    candidates: Iterator[ItemData]
    if since is not None:
        try:
            window = parse_duration(since)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--since") from None
        tags = {f.id: f.tags for f in settings.feeds}
        candidates = (
            data for page in stored_pages(env.engine(), utcnow() - window) for _id, data in page
        )
    else:
        tags = {}
        candidates = iter(_items_from(text, path))
    total = hits = 0
    for item in candidates:
        total += 1
        if not in_scope(scope, item.feed_id, tags.get(item.feed_id, ())):
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
) -> tuple[CompiledQuery, frozenset[str] | None]:
    if rule_id is not None:
        rule = watchlist.get(rule_id)
        if rule is None:
            known = ", ".join(r.id for r in watchlist.rules)
            raise click.BadParameter(f"no rule {rule_id!r} (rules: {known})", param_hint="--rule")
        return rule.compiled, rule.scope
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
