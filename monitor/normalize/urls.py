"""Canonical URLs: absolute, no tracking parameters, no fragment, redirect wrappers unwrapped."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from urllib.parse import parse_qsl, unquote, urljoin, urlsplit, urlunsplit

from monitor.normalize.text import MAX_URL
from monitor.web import is_web_url

UTC = dt.UTC

# --- URLs --------------------------------------------------------------------------------
# Query parameters that only say where a click came from. Removed from canonical URLs so that
# the same story reached through different feeds or campaigns is one URL (cross-feed dedup).
# Matched case-insensitively on the parameter name.
TRACKING_PARAMS: frozenset[str] = frozenset(
    {
        # Google Analytics / Ads, Facebook, Microsoft, Mailchimp, HubSpot, Marketo
        "gclid",
        "gclsrc",
        "dclid",
        "gbraid",
        "wbraid",
        "fbclid",
        "msclkid",
        "yclid",
        "twclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "_hsenc",
        "_hsmi",
        "mkt_tok",
        "_ga",
        "_gl",
        # AT Internet (BBC and others)
        "at_medium",
        "at_campaign",
        "at_custom1",
        "at_custom2",
        "at_custom3",
        "at_custom4",
        "at_link",
        "at_link_id",
        "at_link_origin",
        "at_link_type",
        "at_format",
        "at_bbc_team",
        "at_ptr_name",
        # publishers' own campaign tags seen in real feeds
        "ocid",  # MSN
        "cmpid",  # many CMSs
        "wt_mc",  # heise
        "wt.mc_id",
        "wt_zmc",
        "xtor",  # Le Monde and other AT/XiTi users
        "maca",  # Deutsche Welle
        "traffic_source",  # Al Jazeera
        "feedtype",  # Reuters (feedType=RSS&feedName=worldNews)
        "feedname",
        "emc",  # New York Times (emc=rss&partner=rss)
        "smid",
        "smtyp",
        "cid",
        "ito",  # Financial Times style
        "rss",  # ?rss=1 (Science)
        "ref_src",
        "rss_id",
        "src",
        "ns_campaign",
        "ns_mchannel",
        "ns_source",
        "ns_linkname",
        "ns_fee",
    }
)
TRACKING_PREFIXES: tuple[str, ...] = ("utm_", "pk_", "mtm_", "hsa_", "oly_")
# A parameter removed only with this exact value (the name alone is too common to drop).
TRACKING_PAIRS: frozenset[tuple[str, str]] = frozenset(
    {("partner", "rss"), ("ref", "rss"), ("from", "rss"), ("source", "rss"), ("oc", "5")}
)

_GOOGLE_HOSTS = frozenset({"google.com", "www.google.com", "news.google.com"})


def _is_tracking(name: str, value: str) -> bool:
    key = unquote(name).strip().lower()
    if key in TRACKING_PARAMS or key.startswith(TRACKING_PREFIXES):
        return True
    return (key, unquote(value).strip().lower()) in TRACKING_PAIRS


def _unwrap_google(parts: tuple[str, str, str, str, str]) -> str | None:
    """The publisher URL inside a Google redirect, or None when it is not one we can read.

    - `https://www.google.com/url?...&url=https://publisher/...` (Google Alerts): the `url` (or
      `q`) parameter.
    - `https://news.google.com/[__i/rss/rd/]articles/CBMi...` (Google News RSS): the token is a
      base64url protobuf whose field 4 is the article URL (the older, unencrypted format; newer
      tokens are opaque and the Google URL is kept).
    """
    _scheme, host, path, query, _frag = parts
    if host not in _GOOGLE_HOSTS:
        return None
    if path == "/url":
        params = dict(parse_qsl(query))
        target = params.get("url") or params.get("q")
        if target and is_web_url(target):
            return target
        return None
    if host == "news.google.com" and "/articles/" in path:
        token = path.rsplit("/articles/", 1)[1].split("/", 1)[0]
        return _google_news_token(token)
    return None


def _google_news_token(token: str) -> str | None:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    # 0x08 <varint>  (field 1) then 0x22 <varint length> <url>  (field 4, bytes)
    if len(raw) < 4 or raw[0] != 0x08:
        return None
    i = 2
    while i < len(raw) and raw[i - 1] & 0x80:  # skip the rest of field 1's varint
        i += 1
    if i >= len(raw) or raw[i] != 0x22:
        return None
    i += 1
    length = shift = 0
    while i < len(raw):
        byte = raw[i]
        i += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    url_bytes = raw[i : i + length]
    if len(url_bytes) != length:
        return None
    try:
        url = url_bytes.decode("ascii")
    except UnicodeDecodeError:
        return None
    if is_web_url(url) and url.isprintable() and " " not in url:
        return url
    return None


# The ASCII characters RFC 3986 never allows in a URL (space, quote mark, < > ` { } | \ ^)
# are percent-encoded, so the URL is safe to put in a webhook, an email or an Atom link.
# Everything else stays as the feed wrote it: letters beyond ASCII too (an IRI, as browsers
# show it), so that no URL a release before this one stored changes its form (an item known
# by its URL would otherwise be new again after an upgrade).
_UNSAFE = re.compile(r'[\x00-\x20"<>`{}|\\^\x7f]')


def _escape(text: str) -> str:
    return _UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", text)


# The URL nearly every feed item carries: lower-case http(s) scheme and host (no port, no
# user, no trailing dot, no IDN), then path, query and fragment with no character urlsplit
# removes or _escape encodes. For it the canonical form is a slice and the query filter, and
# the general path below (urlsplit, hostname, urlunsplit) is a third of a feed item's
# normalize time. Anything else, and Google's wrappers, take the general path; the two
# agree on every URL the fast one accepts (tests/test_urls.py: generated URLs, the corpus).
_PLAIN = re.compile(
    r"(https?://([a-z0-9](?:[a-z0-9.-]*[a-z0-9])?))"  # scheme://host
    r'((?:/[^?#\x00-\x20"<>`{}|\\^\x7f]*)?)'  # path
    r'(?:\?([^#\x00-\x20"<>`{}|\\^\x7f]*))?'  # query
    r"(?:#[^\x00-\x20\x7f]*)?"  # fragment (dropped)
)


def _plain(url: str) -> str | None:
    """canonical_url of a plain URL (see _PLAIN), or None when it is not one."""
    match = _PLAIN.fullmatch(url)
    if match is None:
        return None
    origin, host, path, query = match.groups()
    if host in _GOOGLE_HOSTS:
        return None
    query = _query(query) if query else ""
    result = f"{origin}{path or '/'}?{query}" if query else f"{origin}{path or '/'}"
    return result if len(result) <= MAX_URL else None


def _query(query: str) -> str:
    """The query without its tracking parameters; the others keep their order and encoding."""
    return "&".join(
        _escape(piece)
        for piece in query.split("&")
        if piece and not _is_tracking(*piece.partition("=")[::2])
    )


def canonical_url(url: str | None, base: str | None) -> str | None:
    """The URL analysts should open and dedup should compare, or None if there is none.

    Absolute against `base`; only http and https (anything else, e.g. `javascript:` or
    `mailto:`, gives None); scheme and host lower-cased, default port and fragment removed;
    tracking parameters removed (the others keep their order and their encoding); characters
    a URL may not carry percent-encoded; Google redirect wrappers replaced by the URL they
    point to. A malformed URL gives None, never an exception.
    """
    if not url:
        return None
    url = url.strip()
    if not url or len(url) > MAX_URL * 4:
        return None
    plain = _plain(url)
    return plain if plain is not None else _general(url, base)


def _general(url: str, base: str | None) -> str | None:
    """canonical_url of any stripped URL: urlsplit, Google's wrappers, ports, users, IDNs."""
    try:  # a malformed link ("https://e.org]/x", "//[") spoils the link, never its item
        if base and not urlsplit(url).scheme:
            url = urljoin(base, url)
    except ValueError:
        return None
    for _ in range(3):  # a redirect may wrap another one; bounded
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            return None
        host = parts.hostname.rstrip(".")
        inner = _unwrap_google((scheme, host, parts.path, parts.query, parts.fragment))
        if inner is None:
            break
        url = inner
    netloc = host
    if ":" in netloc:  # IPv6 literal
        netloc = f"[{netloc}]"
    if parts.username or parts.password:
        netloc = parts.netloc.rsplit("@", 1)[0] + "@" + netloc
    if port is not None and port != {"http": 80, "https": 443}[scheme]:
        netloc = f"{netloc}:{port}"
    query = _query(parts.query)
    path = _escape(parts.path) or "/"
    result = urlunsplit((scheme, netloc, path, query, ""))
    return result if len(result) <= MAX_URL else None
