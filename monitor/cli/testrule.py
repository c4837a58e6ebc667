"""`test-rule`: a dry run of a query or a rule against text, a file or the stored items."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
from rich.text import Text

from monitor.activation import stored_pages
from monitor.cli.base import Env, cli, out, pass_env
from monitor.errors import ConfigError, ExtractError, ParseError, QueryError
from monitor.models import Hit, ItemData, utcnow
from monitor.rules import CompiledQuery, Watchlist, compile_query
from monitor.rules.matcher import in_scope
from monitor.units import parse_duration

_VALUED = ("--rule", "--text", "--title", "--file", "--since", "--limit")


@cli.command("test-rule", context_settings={"ignore_unknown_options": True})
@click.argument("query_words", nargs=-1, type=click.UNPROCESSED, metavar="QUERY")
@click.option("--rule", "rule_id", help="Test a rule of the watchlist instead of a QUERY.")
@click.option("--text", help="Test against this text (the item's content).")
@click.option("--title", help="The title of the --text item (for title: and field scopes).")
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Test against a file, read as the daemon reads it: a feed (each item), an HTML page "
    "(its story, without the site around it) or plain text.",
)
@click.option("--since", help="Test against stored items first seen this recently, e.g. 30d.")
@click.option("--limit", default=50, show_default=True, help="Show at most this many hits.")
@pass_env
def test_rule(
    env: Env,
    query_words: tuple[str, ...],
    rule_id: str | None,
    text: str | None,
    title: str | None,
    path: Path | None,
    since: str | None,
    limit: int,
) -> None:
    """Dry run of a query or rule: shows each hit with the matched terms marked. No alerts.

    A QUERY that starts with "-" goes after "--" (`test-rule -- '-sports missile' --text ...`);
    options may follow it there too."""
    env.read_only = True
    words, given = _split(query_words)
    rule_id = given.get("--rule", rule_id)
    text = given.get("--text", text)
    title = given.get("--title", title)
    since = given.get("--since", since)
    if "--file" in given:
        path = click.Path(exists=True, dir_okay=False, path_type=Path).convert(
            given["--file"], None, None
        )
    if "--limit" in given:
        try:
            limit = int(given["--limit"])
        except ValueError:
            raise click.BadParameter("not a number", param_hint="--limit") from None
    query = " ".join(words) or None
    if (query is None) == (rule_id is None):
        raise click.UsageError("give a QUERY or --rule ID (one of them)")
    sources = sum(x is not None for x in (text or title, path, since))
    if sources != 1:
        raise click.UsageError("give exactly one of --text (and --title), --file or --since")
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
            s.data for page in stored_pages(env.engine(), utcnow() - window) for s in page
        )
    else:
        tags = {}
        candidates = iter(_items_from(text, title, path))
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


def _split(args: tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
    """The words of the QUERY, and the options written after `--` with it."""
    words: list[str] = []
    given: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, value = arg.partition("=")
        if name in _VALUED:
            if not eq:
                if i + 1 >= len(args):
                    raise click.UsageError(f"{name} needs a value")
                value = args[i + 1]
                i += 1
            given[name] = value
        else:
            words.append(arg)
        i += 1
    return words, given


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


def _items_from(text: str | None, title: str | None, path: Path | None) -> list[ItemData]:
    """--text (and --title), or --file read as the daemon reads it: a feed (parse_feed, which
    knows byte-order marks, comments before the root and every feed dialect), else an HTML
    page (the full-text extractor, as for a linked page: its article, title, publisher and
    time; a page it finds no article in is read as a page pasted into a feed, parse_page),
    else plain text."""
    now = utcnow()
    if path is None:
        return [
            ItemData(feed_id="text", guid="text", url=None, title=title or "", content=text or "")
        ]
    # The parse code is imported by the command that reads a file, not by every command.
    from monitor.extract import extract_article
    from monitor.jobs import with_article
    from monitor.parse import looks_like_html, parse_feed, parse_page

    body = path.read_bytes()
    try:
        return parse_feed(body, feed_id=path.name, base_url=None, fetched_at=now).items
    except ParseError:
        pass
    if looks_like_html(body):
        page = parse_page(body, feed_id=path.name, url=None, fetched_at=now)
        try:
            article = extract_article(body, url=None, content_type=None)
        except ExtractError as exc:
            click.echo(f"warning: {path.name}: {exc}; reading it as a page in a feed", err=True)
            return [page]
        bare = ItemData(path.name, page.guid, None, article.title or page.title)
        return [with_article(bare, article)]
    content = body.decode("utf-8", errors="replace")
    return [ItemData(feed_id=path.name, guid="text", url=None, title="", content=content)]


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
