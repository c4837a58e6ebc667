"""Rendering one feed health change (HealthMessage) for each channel: pure functions, no I/O.

    webhook   {"type": "feed_health", ...}: SPEC.md's shape, docs/webhook-health.schema.json
    email     subject `[FEED FAILING] gs-wmd: HTTP 500` (STALE, RECOVERED), text and HTML
    apprise   title: the subject; body: the text
    log       one event `feed_health` (log_fields)

The feed's title, URL and last error come from the feed or its server: escaped like an
alert's text (one line, no control characters; HTML-escaped in the HTML part).
"""

from __future__ import annotations

import html
from typing import Any

from monitor.alert.render import header_safe, iso_utc, one_line, safe_link, when
from monitor.models import HealthMessage
from monitor.units import format_duration

LABEL = {"failing": "FAILING", "stale": "STALE", "ok": "RECOVERED"}


def webhook_payload(msg: HealthMessage) -> dict[str, Any]:
    return {
        "type": "feed_health",
        "id": msg.id,
        "created_at": iso_utc(msg.created_at),
        "state": msg.state,
        "previous": msg.previous,
        "feed": {"id": msg.feed, "url": msg.feed_url, "title": msg.feed_title},
        "since": iso_utc(msg.since),
        "consecutive_errors": msg.consecutive_errors,
        "last_status": msg.last_status,
        "last_error": msg.last_error,
        "last_success_at": iso_utc(msg.last_success_at),
        "last_new_at": iso_utc(msg.last_new_at),
    }


def reason(msg: HealthMessage) -> str:
    """What the subject says after the feed id."""
    if msg.state == "failing":
        return one_line(msg.last_error, 120) or f"{msg.consecutive_errors} errors in a row"
    if msg.state == "stale":
        if msg.last_new_at is None:
            return "no new item"
        quiet = format_duration(msg.created_at - msg.last_new_at, exact=False)
        return f"no new item for {quiet}"
    return f"ok again (was {one_line(msg.previous, 20)})"


def email_subject(msg: HealthMessage) -> str:
    """`[FEED FAILING] gs-wmd: HTTP 500`, `[FEED STALE] …`, `[FEED RECOVERED] …`: one line."""
    label = LABEL.get(msg.state, one_line(msg.state, 20).upper())
    return header_safe(f"[FEED {label}] {one_line(msg.feed, 80)}: {reason(msg)}")


def _facts(msg: HealthMessage) -> list[tuple[str, str]]:
    facts = [
        ("Feed", one_line(msg.feed)),
        *([("Title", one_line(msg.feed_title, 200))] if one_line(msg.feed_title) else []),
        ("URL", one_line(msg.feed_url, 500)),
        ("State", f"{one_line(msg.state)} (was {one_line(msg.previous)})"),
        ("Since", when(msg.since)),
        ("Errors in a row", str(msg.consecutive_errors)),
    ]
    if msg.last_status is not None:
        facts.append(("Last HTTP status", str(msg.last_status)))
    if msg.last_error:
        facts.append(("Last error", one_line(msg.last_error, 300)))
    facts.append(("Last success", when(msg.last_success_at)))
    facts.append(("Last new item", when(msg.last_new_at)))
    return facts


def email_text(msg: HealthMessage) -> str:
    facts = _facts(msg)
    width = max(len(label) for label, _ in facts)
    lines = [email_subject(msg), ""]
    lines += [f"{label + ':':<{width + 1}} {value}" for label, value in facts]
    lines += ["", "-- ", f"monitor feed health {one_line(msg.id)}, {when(msg.created_at)}"]
    return "\n".join(lines) + "\n"


def email_html(msg: HealthMessage) -> str:
    esc = html.escape
    rows = []
    for label, value in _facts(msg):
        link = safe_link(value) if label == "URL" else None
        shown = f'<a href="{esc(link, quote=True)}">{esc(value)}</a>' if link else esc(value)
        rows.append(f'<tr><th align="left" valign="top">{esc(label)}</th><td>{shown}</td></tr>')
    subject = esc(email_subject(msg), quote=True)
    return (
        "<!DOCTYPE html>\n"
        f'<html><head><meta charset="utf-8">\n<title>{subject}</title></head>\n<body>\n'
        f"<h2>{subject}</h2>\n<table>\n" + "\n".join(rows) + "\n</table>\n"
        f"<p><small>monitor feed health {esc(one_line(msg.id))}, "
        f"{esc(when(msg.created_at))}</small></p>\n</body></html>\n"
    )


def log_fields(msg: HealthMessage) -> dict[str, Any]:
    return {
        "health_id": msg.id,
        "feed": one_line(msg.feed),
        "state": msg.state,
        "previous": msg.previous,
        "since": iso_utc(msg.since),
        "consecutive_errors": msg.consecutive_errors,
        "last_status": msg.last_status,
        "last_error": one_line(msg.last_error, 300) or None,
        "last_success_at": iso_utc(msg.last_success_at),
        "url": one_line(msg.feed_url, 500),
    }
