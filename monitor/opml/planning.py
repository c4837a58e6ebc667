"""Planning an import: ids, tags and duplicates against the configuration."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

from monitor.normalize import strip_accents
from monitor.opml.model import (
    ID_LENGTH,
    Document,
    NewFeed,
    Note,
    Outline,
    Plan,
)

# ---------------------------------------------------------------------------------------------
# Planning: ids, tags, duplicates


def slug_id(text: str) -> str:
    """An id for monitor.yaml: ASCII letters (accents dropped, lower case), digits, `_`, `.`
    and `-`; starts and ends with a letter or digit; at most 64 characters. "" when nothing
    of the text survives (a name in another script: the caller falls back on the URL)."""
    folded = strip_accents(text.casefold()).encode("ascii", "ignore").decode()
    folded = re.sub(r"\b([a-z0-9])\.", r"\1", folded)  # initials: "U.S." -> "us"
    s = re.sub(r"[^a-z0-9_.]+", "-", folded)
    s = re.sub(r"([-_.])[-_.]+", r"\1", s).strip("-_.")
    return s[:ID_LENGTH].rstrip("-_.")


def slug_tag(text: str) -> str:
    """A tag: lower case, accents dropped, words joined by `-`; letters of any script kept
    ("Wire services" -> "wire-services", "Новости" -> "новости")."""
    s = re.sub(r"[\W_]+", "-", strip_accents(text.casefold())).strip("-")
    return s[:ID_LENGTH].rstrip("-")


def url_key(url: str) -> str:
    """What makes two feed URLs the same feed: scheme, host case and default port ignored."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port in (80, 443):
        port = None
    netloc = host if port is None else f"{host}:{port}"
    query = f"?{parts.query}" if parts.query else ""
    return f"{netloc}{parts.path or '/'}{query}"


def _bad_url(url: str) -> str | None:
    """Why this URL cannot be a feed of ours, or None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        return "not a valid URL"
    if parts.scheme.lower() not in ("http", "https"):
        shown = url if len(url) <= 60 else url[:57] + "..."
        return f"not an http(s) URL ({shown})"
    if not parts.hostname:
        return "no host in the URL"
    if any(not ch.isprintable() or ch.isspace() for ch in url):
        return "spaces or control characters in the URL"
    if "${" in url:
        # monitor.yaml expands ${VAR} from the environment: such a URL could carry a secret
        # to whoever serves the feed.
        return "the URL contains ${, which monitor.yaml would expand from the environment"
    return None


def plan_import(
    doc: Document,
    existing: Iterable[tuple[str, str]],
    extra_tags: Sequence[str] = (),
) -> Plan:
    """The new feed entries for a parsed OPML file. `existing`: (id, url) of the feeds already
    configured; their ids are not reused and their URLs are not added again. Tags: the
    folders' and categories' slugs, then `extra_tags` as given."""
    used_ids: set[str] = set()
    known: dict[str, str] = {}
    for fid, url in existing:
        used_ids.add(fid.casefold())
        known.setdefault(url_key(url), fid)
    notes = list(doc.skipped)
    feeds: list[NewFeed] = []
    new_by_key: dict[str, NewFeed] = {}
    for o in doc.outlines:
        reason = _bad_url(o.url)
        if reason is not None:
            notes.append(Note(o.where, o.line, o.name, f"skipped: {reason}"))
            continue
        tags = _unique(slug_tag(t) for t in (*o.folders, *o.categories))
        key = url_key(o.url)
        if key in known:
            reason = f"skipped: already configured as feed {known[key]}"
            notes.append(Note(o.where, o.line, o.name, reason))
        elif key in new_by_key:
            first = new_by_key[key]
            first.tags = _unique([*first.tags, *tags])
            reason = f"same URL as {first.where} (feed {first.id}): tags merged"
            notes.append(Note(o.where, o.line, o.name, reason, skipped=False))
        else:
            fid = _new_id(o, used_ids)
            used_ids.add(fid.casefold())
            feed = NewFeed(fid, o.url, tags, o.name, o.where)
            feeds.append(feed)
            new_by_key[key] = feed
    for feed in feeds:
        feed.tags = _unique([*feed.tags, *(t.strip() for t in extra_tags)])
    notes.sort(key=lambda n: n.line)
    return Plan(feeds, notes)


def _new_id(o: Outline, used: set[str]) -> str:
    """The slug of the outline's text; when taken, of its title; then numbered (`-2`…)."""
    candidates = [c for c in (slug_id(o.name), slug_id(o.title)) if c]
    for candidate in candidates:
        if candidate.casefold() not in used:
            return candidate
    return _unique_id(candidates[0] if candidates else _id_from_url(o.url), used)


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(i for i in items if i))


def _id_from_url(url: str) -> str:
    host = (urlsplit(url).hostname or "").removeprefix("www.")
    return slug_id(host) or "feed"


def _unique_id(base: str, used: set[str]) -> str:
    if base.casefold() not in used:
        return base
    n = 2
    while True:
        suffix = f"-{n}"
        candidate = base[: ID_LENGTH - len(suffix)].rstrip("-_.") + suffix
        if candidate.casefold() not in used:
            return candidate
        n += 1
