"""Rendering one AlertMessage for each channel: pure functions, no I/O.

Everything that comes from a feed (title, url, source, summary, snippet, also_reported_by) is
untrusted. The rules here:

- webhook JSON: the values as they are (JSON escaping is enough), summary bounded;
- email subject: one line, no control characters, bounded, and no `=?` (an RFC 2047
  encoded-word in a feed title could otherwise be decoded by the email package into a line
  break and a forged header: see `email_subject`);
- email HTML: every feed string through `html.escape`; a link only for http/https URLs;
- plain text and log lines: control characters removed (terminal escapes, forged log lines).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import hashlib
import html
import re
from collections.abc import Mapping
from typing import Any

from monitor.models import AlertMessage
from monitor.web import is_web_url

SUBJECT_MAX = 200
"""Characters in an email subject; longer titles end with an ellipsis."""

SUMMARY_MAX = 2000
"""Characters of the item summary sent in a webhook or an email; the story is at the url."""

_ONE_LINE_SPACE = re.compile(r"\s+")
_MARK = re.compile(r"«([^«»]*)»")


def iso_utc(value: dt.datetime | None) -> str | None:
    """`2019-06-18T16:01:00Z`: UTC, whole seconds, Z. A naive value is taken as UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _valid_unicode(text: str) -> str:
    # Lone surrogates (from broken feeds) cannot be encoded as UTF-8 and would make the
    # whole delivery fail; they become U+FFFD.
    return text.encode("utf-8", "replace").decode("utf-8") if _has_surrogates(text) else text


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


# Cc: C0/C1 controls (CR, LF, ESC, NEL...); Zl/Zp: U+2028/U+2029 line and paragraph
# separators, which some readers treat as line breaks. Cf (format characters: joiners, bidi
# marks) is kept: Arabic and Persian titles need them. As one character class, these three
# categories exactly (Unicode keeps them stable; a test checks every code point): a regex,
# not a category lookup a character, which cost a tenth of a second of a cycle's alerts.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_BUT_LINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")  # \t, \n kept


def source_line(copy: Mapping[str, Any]) -> str:
    """One copy of a story, as `monitor alerts` and /alerts.atom list it:
    `feed (publisher) url, first seen 2026-12-01 09:00 UTC`."""
    who = str(copy.get("feed") or "?")
    if copy.get("publisher"):
        who += f" ({copy['publisher']})"
    parts = [who, str(copy.get("url") or "")]
    seen = copy.get("first_seen")
    if seen:
        with contextlib.suppress(ValueError):
            when = dt.datetime.fromisoformat(str(seen)).astimezone(dt.UTC)
            parts.append(f"first seen {when:%Y-%m-%d %H:%M} UTC")
    return one_line(" ".join(p for p in parts if p))


def one_line(text: str | None, limit: int | None = None) -> str:
    """Text on a single line: every control character and run of whitespace becomes one
    space; bounded to `limit` characters (the last one an ellipsis)."""
    if not text:
        return ""
    text = _CONTROL.sub(" ", _valid_unicode(text))
    text = _ONE_LINE_SPACE.sub(" ", text).strip()
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def multi_line(text: str | None, limit: int | None = None) -> str:
    """Text whose line breaks are kept (\\n only); other control characters removed."""
    if not text:
        return ""
    text = _valid_unicode(text).replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL_BUT_LINES.sub("", text)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def safe_link(url: str | None) -> str | None:
    """The url if it may be shown as a link (absolute http/https, one line), else None."""
    if not url:
        return None
    if _CONTROL.search(url) or any(ch.isspace() for ch in url):
        return None
    return url if is_web_url(url) else None


# --- webhook -----------------------------------------------------------------------------


def webhook_payload(msg: AlertMessage, *, summary_max: int = SUMMARY_MAX) -> dict[str, Any]:
    """The webhook JSON body, exactly the shape in SPEC.md and docs/webhook-payload.schema.json.

    `summary_max` is lower inside a digest (see digest.py), which carries many of these."""
    return {
        "type": "alert",
        "id": msg.id,
        "created_at": iso_utc(msg.created_at),
        "rule": {"id": msg.rule_id, "name": msg.rule_name, "severity": msg.severity},
        "item": {
            "title": _valid_unicode(msg.title),
            "url": _valid_unicode(msg.url) if msg.url else None,
            "source": _valid_unicode(msg.source) if msg.source else None,
            "feed": msg.feed,
            "published_at": iso_utc(msg.published_at),
            "summary": multi_line(msg.summary, summary_max),
        },
        "match": {
            "terms": [_valid_unicode(t) for t in msg.terms],
            "snippet": _valid_unicode(msg.snippet),
            **({"held_back": msg.held_back} if msg.held_back else {}),
        },
        "also_reported_by": [_valid_unicode(s) for s in msg.also_reported_by],
    }


# --- email -------------------------------------------------------------------------------


def header_safe(text: str, limit: int = SUBJECT_MAX) -> str:
    """A header value built from feed text: one line, at most `limit` characters, and no
    `=?` (see `email_subject`)."""
    text = one_line(text, limit)
    while "=?" in text:
        text = text.replace("=?", "= ?")
    return text


def email_subject(msg: AlertMessage) -> str:
    """`[HIGH] North Korea missile activity: <title>`, one line, at most SUBJECT_MAX characters.

    `=?` is written `= ?`: on the Pythons we run on (3.11.7 here), the email package decodes
    RFC 2047 encoded-words found in a header value it is given, so a title such as
    `=?UTF-8?Q?=0A?=Reply-To: x@y` would become a line break and a second header on the
    wire. With the `=?` broken, no encoded-word can ever start inside our text.
    """
    severity = one_line(msg.severity, 20).upper() or "ALERT"
    rule = one_line(msg.rule_name or msg.rule_id, 80)
    title = one_line(msg.title) or "(no title)"
    return header_safe(f"[{severity}] {rule}: {title}")


_ID_ATOM = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")


def email_message_id(msg: AlertMessage, domain: str = "monitor") -> str:
    """`<{alert id}@{domain}>`: the same on every resend, so mail clients and archives can
    drop duplicates. An id that is not a plain dot-atom is replaced by its SHA-256."""
    return message_id(msg.id, domain)


def message_id(key: str, domain: str = "monitor") -> str:
    """`<{key}@{domain}>` for an alert or digest id (SHA-256 of it when not a dot-atom). The
    domain is the sender's (RFC 5322 3.6.4: the right side should be a domain the sender
    owns); `monitor` when it has none that is a dot-atom."""
    left = key if len(key) <= 128 and _ID_ATOM.fullmatch(key) else ""
    if not left:
        left = hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:40]
    right = domain if domain and len(domain) <= 253 and _ID_ATOM.fullmatch(domain) else "monitor"
    return f"<{left}@{right.lower()}>"


def sender_domain(address: str) -> str:
    """The domain of `monitor@example.org` or `Monitor <monitor@example.org>`."""
    _name, addr = email.utils.parseaddr(address)
    return addr.rpartition("@")[2] if "@" in addr else ""


def when(value: dt.datetime | None) -> str:
    iso = iso_utc(value)
    return iso.replace("T", " ").replace("Z", " UTC") if iso else "unknown"


def _facts(msg: AlertMessage) -> list[tuple[str, str]]:
    """The labelled lines both email bodies show, as plain text (escaped later for HTML)."""
    facts = [
        ("Rule", f"{one_line(msg.rule_name)} ({one_line(msg.rule_id)})"),
        ("Severity", one_line(msg.severity)),
        *([("Source", one_line(msg.source))] if one_line(msg.source) else []),
        ("Feed", one_line(msg.feed)),
        ("Published", when(msg.published_at)),
        ("Matched", ", ".join(one_line(t) for t in msg.terms)),
    ]
    if msg.held_back:
        n = msg.held_back
        facts.append(
            ("Cooldown", f"held back {n} more {'match' if n == 1 else 'matches'} of this rule "
             "since its previous alert")
        )  # fmt: skip
    if msg.also_reported_by:
        facts.append(("Also reported by", ", ".join(one_line(s) for s in msg.also_reported_by)))
    return facts


def email_text(msg: AlertMessage) -> str:
    """The text/plain part."""
    link = safe_link(msg.url)
    lines = [one_line(msg.title) or "(no title)"]
    if link:
        lines.append(link)
    elif msg.url:
        lines.append("(link omitted: not an http/https URL)")
    lines.append("")
    width = max(len(label) for label, _ in _facts(msg))
    lines += [f"{label + ':':<{width + 1}} {value}" for label, value in _facts(msg)]
    snippet = multi_line(msg.snippet)
    if snippet:
        lines += ["", snippet]
    summary = multi_line(msg.summary, SUMMARY_MAX)
    if summary:
        lines += ["", summary]
    lines += ["", "-- ", f"monitor alert {one_line(msg.id)}, created {when(msg.created_at)}"]
    return "\n".join(lines) + "\n"


def html_text(text: str) -> str:
    """Escaped text with line breaks kept as <br>."""
    return "<br>\n".join(html.escape(line, quote=True) for line in text.split("\n"))


def html_snippet(snippet: str) -> str:
    """The snippet escaped, with the matcher's «marks» shown as <mark>."""
    out: list[str] = []
    pos = 0
    for m in _MARK.finditer(snippet):
        out.append(html_text(snippet[pos : m.start()]))
        out.append(f"<mark>{html_text(m.group(1))}</mark>")
        pos = m.end()
    out.append(html_text(snippet[pos:]))
    return "".join(out)


def email_html(msg: AlertMessage) -> str:
    """The text/html part. Every feed-provided string is escaped; only http/https links."""
    esc = html.escape
    title = esc(one_line(msg.title) or "(no title)", quote=True)
    link = safe_link(msg.url)
    heading = f'<a href="{esc(link, quote=True)}">{title}</a>' if link else title
    rows = "\n".join(
        f'<tr><th align="left" valign="top">{esc(label)}</th><td>{esc(value)}</td></tr>'
        for label, value in _facts(msg)
    )
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{esc(email_subject(msg), quote=True)}</title></head>",
        "<body>",
        f"<h2>{heading}</h2>",
    ]
    if msg.url and not link:
        parts.append("<p><em>(link omitted: not an http/https URL)</em></p>")
    parts.append(f"<table>\n{rows}\n</table>")
    snippet = multi_line(msg.snippet)
    if snippet:
        parts.append(f"<blockquote>{html_snippet(snippet)}</blockquote>")
    summary = multi_line(msg.summary, SUMMARY_MAX)
    if summary:
        parts.append(f"<p>{html_text(summary)}</p>")
    parts.append(
        f"<p><small>monitor alert {esc(one_line(msg.id))}, "
        f"created {esc(when(msg.created_at))}</small></p>"
    )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
