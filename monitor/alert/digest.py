"""Rendering a digest (many alerts in one message) for each channel: pure functions, no I/O.

A digest must stay readable and deliverable when a burst brings hundreds of alerts, so:

- order: most severe first, then in the order the alerts were raised (stable);
- email and Apprise text: the first DIGEST_FULL alerts in full (rule, title and link, source,
  feed, published, terms, snippet bounded to DIGEST_SNIPPET_MAX); every further alert on one
  line with its link; past DIGEST_LIST_MAX alerts, a count only ("and N more");
- webhook JSON: every alert, each the single-alert payload with its summary bounded to
  DIGEST_SUMMARY_MAX, so that 500 alerts stay well under the 1 MB body limit common in
  reverse proxies (nginx's default `client_max_body_size`);
- the same escaping rules as render.py: feed text is untrusted everywhere.
"""

from __future__ import annotations

import datetime as dt
import html
from collections import Counter
from collections.abc import Sequence
from typing import Any

from monitor import severity
from monitor.alert import render
from monitor.models import AlertMessage
from monitor.units import format_duration

DIGEST_FULL = 50
"""Alerts shown in full in a digest email or chat message; the rest get one line each."""

DIGEST_LIST_MAX = 1000
"""Alerts listed at all (in full or on one line); past this, only their number is given."""

DIGEST_SNIPPET_MAX = 300
"""Characters of each snippet in a digest email."""

DIGEST_SUMMARY_MAX = 500
"""Characters of each item summary in a digest webhook (the single-alert payload has 2000)."""

TITLE_MAX = 300
"""Characters of a title in a digest line."""

LINK_MAX = 1000
"""A longer URL is not linked in a digest email (tracking URLs can run to many kilobytes)."""


def ordered(msgs: Sequence[AlertMessage]) -> list[AlertMessage]:
    """Most severe first; within a severity, the order given (the order they were raised)."""
    return severity.most_severe_first(msgs, lambda m: m.severity)


def format_window(window: dt.timedelta) -> str | None:
    """`1h`, `30m`, `90m`, `2d`, `45s`, in the notation of monitor.yaml; None for a digest
    that has no window (a burst: many alerts due at once)."""
    return format_duration(window) if window > dt.timedelta(0) else None


def severity_counts(msgs: Sequence[AlertMessage]) -> list[tuple[str, int]]:
    """[(severity, count)], most severe first."""
    counts = Counter(render.one_line(m.severity, 20).lower() or "alert" for m in msgs)
    return sorted(counts.items(), key=lambda kv: (-severity.rank(kv[0]), kv[0]))


def headline(msgs: Sequence[AlertMessage], window: dt.timedelta) -> str:
    """`500 alerts in the last 1h (3 HIGH, 497 MEDIUM)`; a burst: `15 alerts at once (…)`."""
    n = len(msgs)
    counts = ", ".join(f"{count} {sev.upper()}" for sev, count in severity_counts(msgs))
    noun = "alert" if n == 1 else "alerts"
    shown = format_window(window)
    span = f"in the last {shown}" if shown else "at once"
    return f"{n} {noun} {span}" + (f" ({counts})" if counts else "")


def digest_subject(msgs: Sequence[AlertMessage], window: dt.timedelta) -> str:
    """`[monitor] 500 alerts in the last 1h (3 HIGH, 497 MEDIUM): Rule A, Rule B, …`: one
    line, at most render.SUBJECT_MAX characters, no `=?` (render.header_safe). Rule names
    come most severe first, then the busiest."""
    by_rule: dict[str, tuple[int, int]] = {}
    for m in msgs:
        name = render.one_line(m.rule_name or m.rule_id, 80)
        rank, count = by_rule.get(name, (1, 0))
        by_rule[name] = (min(rank, -severity.rank(m.severity)), count + 1)
    rules = sorted(by_rule, key=lambda r: (by_rule[r][0], -by_rule[r][1], r))
    subject = f"[monitor] {headline(msgs, window)}"
    if rules:
        subject += ": " + ", ".join(rules)
    return render.header_safe(subject)


# --- webhook -----------------------------------------------------------------------------


def digest_payload(
    digest_id: str, msgs: Sequence[AlertMessage], window: dt.timedelta, created_at: dt.datetime
) -> dict[str, Any]:
    """The webhook JSON body of a digest (docs/webhook-digest.schema.json). The alerts keep
    the order given; each is the single-alert payload, summary bounded to DIGEST_SUMMARY_MAX."""
    return {
        "type": "digest",
        "id": digest_id,
        "created_at": render.iso_utc(created_at),
        "window": format_window(window),
        "count": len(msgs),
        "alerts": [render.webhook_payload(m, summary_max=DIGEST_SUMMARY_MAX) for m in msgs],
    }


# --- email and text ----------------------------------------------------------------------


def _label(msg: AlertMessage) -> str:
    level = render.one_line(msg.severity, 20).upper() or "ALERT"
    return f"[{level}] {render.one_line(msg.rule_name or msg.rule_id, 80)}"


def _title(msg: AlertMessage) -> str:
    return render.one_line(msg.title, TITLE_MAX) or "(no title)"


def _link(msg: AlertMessage) -> str | None:
    link = render.safe_link(msg.url)
    return link if link and len(link) <= LINK_MAX else None


def _details(msg: AlertMessage) -> str:
    """`Iran Press TV · feed gs-wmd · 2019-06-18 16:01:00 UTC · north korea, missile`"""
    parts = [
        render.one_line(msg.source, 100) or "unknown source",
        f"feed {render.one_line(msg.feed, 100)}",
        render.when(msg.published_at),
    ]
    if msg.terms:
        parts.append("matched " + ", ".join(render.one_line(t, 60) for t in msg.terms[:20]))
    if msg.also_reported_by:
        others = [render.one_line(s, 60) for s in msg.also_reported_by[:10]]
        more = len(msg.also_reported_by) - len(others)
        parts.append("also " + ", ".join(others) + (f" and {more} more" if more > 0 else ""))
    return " · ".join(parts)


def _snippet(msg: AlertMessage) -> str:
    return render.one_line(msg.snippet, DIGEST_SNIPPET_MAX)


def _footer(digest_id: str, n: int, created_at: dt.datetime) -> str:
    return (
        f"monitor digest {render.one_line(digest_id, 100)}, {n} alert{'s' if n != 1 else ''}, "
        f"created {render.when(created_at)}"
    )


def digest_text(
    digest_id: str,
    msgs: Sequence[AlertMessage],
    window: dt.timedelta,
    created_at: dt.datetime,
    *,
    full: int = DIGEST_FULL,
) -> str:
    """The text/plain part (and the Apprise body, with `full=0`: one line per alert, which
    suits chat services and survives their truncation, most severe first)."""
    items = ordered(msgs)
    lines = [headline(msgs, window), ""]
    for i, m in enumerate(items[:full], 1):
        link = _link(m)
        lines.append(f"{i}. {_label(m)}")
        lines.append(f"   {_title(m)}")
        if link:
            lines.append(f"   {link}")
        lines.append(f"   {_details(m)}")
        snippet = _snippet(m)
        if snippet:
            lines.append(f"   {snippet}")
        lines.append("")
    rest = items[full:DIGEST_LIST_MAX] if full < DIGEST_LIST_MAX else []
    if rest and full > 0:
        lines += [f"{len(rest)} more:", ""]
    for i, m in enumerate(rest, len(items[:full]) + 1):
        link = _link(m)
        lines.append(f"{i}. {_label(m)}: {_title(m)}" + (f" <{link}>" if link else ""))
    if len(items) > DIGEST_LIST_MAX:
        lines += ["", f"...and {len(items) - DIGEST_LIST_MAX} more; see `monitor alerts`."]
    if rest:
        lines.append("")
    lines += ["-- ", _footer(digest_id, len(items), created_at)]
    return "\n".join(lines) + "\n"


def digest_html(
    digest_id: str, msgs: Sequence[AlertMessage], window: dt.timedelta, created_at: dt.datetime
) -> str:
    """The text/html part: every feed string escaped, links only for http(s) URLs, marked
    terms as <mark>; no styles, no images, so 500 alerts stay a few hundred kilobytes."""
    esc = html.escape
    items = ordered(msgs)

    def title_html(m: AlertMessage) -> str:
        link = _link(m)
        title = esc(_title(m), quote=True)
        return f'<a href="{esc(link, quote=True)}">{title}</a>' if link else title

    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{esc(digest_subject(msgs, window), quote=True)}</title></head>",
        "<body>",
        f"<h2>{esc(headline(msgs, window))}</h2>",
    ]
    full = items[:DIGEST_FULL]
    if full:
        parts.append("<ol>")
        for m in full:
            snippet = _snippet(m)
            quote = f"<br>\n<q>{render.html_snippet(snippet)}</q>" if snippet else ""
            parts.append(
                f"<li><p><b>{esc(_label(m))}</b><br>\n{title_html(m)}<br>\n"
                f"<small>{esc(_details(m))}</small>{quote}</p></li>"
            )
        parts.append("</ol>")
    rest = items[DIGEST_FULL:DIGEST_LIST_MAX]
    if rest:
        parts.append(f"<h3>{len(rest)} more</h3>")
        parts.append(f'<ol start="{DIGEST_FULL + 1}">')
        parts += [f"<li>{esc(_label(m))}: {title_html(m)}</li>" for m in rest]
        parts.append("</ol>")
    if len(items) > DIGEST_LIST_MAX:
        more = len(items) - DIGEST_LIST_MAX
        parts.append(f"<p>...and {more} more; see <code>monitor alerts</code>.</p>")
    parts.append(f"<p><small>{esc(_footer(digest_id, len(items), created_at))}</small></p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def log_entries(msgs: Sequence[AlertMessage]) -> list[dict[str, str]]:
    """What the log channel lists for each alert of a digest: id, rule, severity, title."""
    return [
        {
            "id": m.id,
            "rule": render.one_line(m.rule_id, 100),
            "severity": render.one_line(m.severity, 20),
            "title": render.one_line(m.title, 120),
        }
        for m in msgs
    ]
