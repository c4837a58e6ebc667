"""feedparser, the same results for less CPU: faster drop-ins for its hottest code (the
`FeedParserDict` methods, `pop`, the URL joins, the cp1252 table; and, in `monitor.feedsax`,
the strict parser's SAX layer), installed by the parse step (`install()`, idempotent).

A profile of parse_feed over the corpus spends a fifth of feedparser's time in
`FeedParserDict.__getitem__`/`get`/`__contains__` (half a million calls: every key is first
looked up in `keymap` and compared with five special names) and in `copy.deepcopy` of
`contentparams` (once per text element, through the generic `__reduce_ex__` path). The
drop-ins take plain `dict` paths for every key that is neither special nor in `keymap`, and
hand the others to feedparser's own methods, so every answer is the one feedparser gives; the
deep copy rebuilds the dict through `__setitem__`, as `copy` does. And feedparser's URL joins
(`_urljoin`, `make_safe_absolute_uri`: the base joined with itself at every start tag) are
memoized, being pure functions of two strings (2.8% of parse_feed's instructions,
callgrind). `pop` and the cp1252 table: see their comments below. tests/test_feedtune.py
parses the corpus and edge cases both ways and compares the results field by field. These
patch feedparser 6.0.x (pinned in pyproject.toml); `uninstall()` puts feedparser's own back.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import datetime as dt
import functools
import re
import time
from collections.abc import Callable
from typing import Any

import feedparser.datetimes
import feedparser.mixin
import feedparser.namespaces._base
import feedparser.namespaces.dc
import feedparser.urls
from feedparser.datetimes import rfc822
from feedparser.util import FeedParserDict

from monitor import feedsax

_ORIGINAL: dict[str, Any] = {
    name: FeedParserDict.__dict__[name]
    for name in ("__getitem__", "get", "__contains__", "__setitem__")
}
# Keys feedparser's __getitem__ treats specially (the rest are plain dict lookups there too).
_SPECIAL = frozenset(FeedParserDict.keymap) | {
    "category",
    "enclosures",
    "license",
    "updated",
    "updated_parsed",
}
_KEYMAP = FeedParserDict.keymap
_dict_getitem = dict.__getitem__
_dict_get = dict.get
_dict_contains = dict.__contains__
_dict_setitem = dict.__setitem__
_getitem = _ORIGINAL["__getitem__"]
_contains = _ORIGINAL["__contains__"]
_setitem = _ORIGINAL["__setitem__"]


def _fast_getitem(self: FeedParserDict, key: Any) -> Any:
    if key in _SPECIAL:
        return _getitem(self, key)
    return _dict_getitem(self, key)


def _fast_get(self: FeedParserDict, key: Any, default: Any = None) -> Any:
    if key in _SPECIAL:
        try:
            return _getitem(self, key)
        except KeyError:
            return default
    return _dict_get(self, key, default)


def _fast_contains(self: FeedParserDict, key: Any) -> bool:
    if key in _SPECIAL:
        return bool(_contains(self, key))
    return _dict_contains(self, key)


def _fast_setitem(self: FeedParserDict, key: Any, value: Any) -> None:
    if key in _KEYMAP:
        _setitem(self, key, value)
    else:
        _dict_setitem(self, key, value)


def _fast_deepcopy(self: FeedParserDict, memo: dict[int, Any]) -> FeedParserDict:
    # What copy.deepcopy does for a dict subclass (new object, attributes, then each item
    # set through __setitem__), without the generic reduce machinery.
    out = FeedParserDict()
    memo[id(self)] = out
    if self.__dict__:
        out.__dict__.update(copy.deepcopy(self.__dict__, memo))
    for key, value in dict.items(self):
        # copy.deepcopy returns str, int and None themselves (and memoizes nothing for them)
        if type(key) not in _ATOMIC:
            key = copy.deepcopy(key, memo)
        out[key] = value if type(value) in _ATOMIC else copy.deepcopy(value, memo)
    return out


_ATOMIC = frozenset({str, int, bool, float, type(None)})


def _copy_params(params: Any) -> Any:
    """copy.deepcopy(params) as pop makes it (84,000 times a cycle of 2,000 feeds): straight
    to the drop-in for a FeedParserDict, without the generic dispatch (2.8 -> 1.9 us)."""
    if type(params) is FeedParserDict:
        return _fast_deepcopy(params, {})
    return copy.deepcopy(params)


# URL joins: feedparser joins the base URI with itself at every start tag (51,000 calls for
# 300 feeds, a tenth of its time there). Both functions are pure functions of two strings:
# memoized, for strings of a bounded length (a hostile feed's long ones are not kept).
_URL_MODULES = (feedparser.urls, feedparser.mixin, feedparser.namespaces._base)
_URL_SHIPPED = {
    name: getattr(feedparser.urls, name) for name in ("_urljoin", "make_safe_absolute_uri")
}
_URL_LIMIT = 2048  # characters of both arguments together
_URL_ENTRIES = 4096  # joins kept; then the memo starts again


def _memoized(fn: Callable[..., str]) -> Callable[..., str]:
    # A plain dict, looked up first: the hit is the common case (the same base, tag after
    # tag), and the guards cost more than the join's lookup when run on every call.
    cache: dict[tuple[Any, ...], str] = {}

    @functools.wraps(fn)
    def call(*args: Any) -> str:  # fn's own arity: a wrong call fails as it would
        try:
            return cache[args]
        except KeyError:
            pass
        except TypeError:  # an unhashable argument: not a string, never kept
            return fn(*args)
        result = fn(*args)
        if all(a is None or type(a) is str for a in args) and (
            sum(len(a or "") for a in args) <= _URL_LIMIT
        ):
            if len(cache) >= _URL_ENTRIES:
                cache.clear()  # bounded: a feed of ever new URLs starts it again
            cache[args] = result
        return result

    return call


_URL_FAST = {name: _memoized(fn) for name, fn in _URL_SHIPPED.items()}


def _baseless(joined: Callable[..., str]) -> Callable[..., str]:
    """_urljoin with no base (a feed without xml:base, the usual case): urljoin("", uri) is
    uri, and feedparser's fix-up of the URI changes only a "scheme:///..." (slashes after
    "://"). Each entry's link and guid are new URIs, which the memo only misses and stores
    (2.2 us the join, 4.1 with the memo; 0.2 this way)."""

    @functools.wraps(joined)
    def call(base: Any, uri: Any) -> str:
        if not base and type(uri) is str and ":///" not in uri:
            return uri
        return joined(base, uri)

    return call


_URL_FAST["_urljoin"] = _baseless(_URL_FAST["_urljoin"])


def _set_urls(functions: dict[str, Any]) -> None:
    for module in _URL_MODULES:
        for name, fn in functions.items():
            if hasattr(module, name):
                setattr(module, name, fn)


# feedparser maps windows-1252's C1 code points in every text element with
# `str.translate(_cp1252)`; every character the table lacks is a KeyError raised and caught
# inside translate (1.35 us for a 100-letter ASCII title). The same table with each other
# character of the common alphabets mapped to itself translates the same (tested), with
# hits instead of misses (0.54 us; 6.4 -> 2.9 us for accented text).
_CP1252_SHIPPED = feedparser.mixin._cp1252
_IDENTITY_RANGES = ((0, 0x250), (0x370, 0x530), (0x590, 0x700), (0x2000, 0x2070), (0x20A0, 0x20D0))
_CP1252_FAST = {
    c: c for lo, hi in _IDENTITY_RANGES for c in range(lo, hi) if c not in _CP1252_SHIPPED
} | _CP1252_SHIPPED


def _set_cp1252(table: dict[int, Any]) -> None:
    feedparser.mixin._cp1252 = table


# feedparser's pop (the end of every text element) as it ships, but for the work it does for
# nothing: `del` of two keys that are usually absent (two KeyErrors raised and caught), the
# latin-1 round trip and the cp1252 translate of ASCII text (both the identity on it), and the
# FeedParserDict lookups of keys that are plain dict keys. Everything else is feedparser's own
# code, in its order; tests/test_feedtune.py compares the whole corpus parsed both ways.
_mixin = feedparser.mixin


def _fast_pop(self: Any, element: str, strip_whitespace: int = 1) -> Any:
    if not self.elementstack:
        return None
    if self.elementstack[-1][0] != element:
        return None

    element, expecting_text, pieces = self.elementstack.pop()
    for i, v in enumerate(pieces):
        if isinstance(v, bytes):
            pieces[i] = v.decode("utf-8")
    params = self.contentparams

    if self.version == "atom10" and _dict_get(params, "type", "text") == "application/xhtml+xml":
        # remove the enclosing <div>, as feedparser does
        while pieces and len(pieces) > 1 and not pieces[-1].strip():
            del pieces[-1]
        while pieces and len(pieces) > 1 and not pieces[0].strip():
            del pieces[0]
        if (
            pieces
            and (pieces[0] == "<div>" or pieces[0].startswith("<div "))
            and pieces[-1] == "</div>"
        ):
            depth = 0
            for piece in pieces[:-1]:
                if piece.startswith("</"):
                    depth -= 1
                    if depth == 0:
                        break
                elif piece.startswith("<") and not piece.endswith("/>"):
                    depth += 1
            else:
                pieces = pieces[1:-1]

    output = "".join(pieces)
    if strip_whitespace:
        output = output.strip()
    if not expecting_text:
        return output

    if _dict_get(params, "base64", 0):
        with contextlib.suppress(binascii.Error, binascii.Incomplete, UnicodeDecodeError):
            output = base64.decodebytes(output.encode("utf8")).decode("utf8")

    if element in self.can_be_relative_uri and output and (element != "id" or self.guidislink):
        output = self.resolve_uri(output)

    if not _dict_get(params, "base64", 0):
        output = self.decode_entities(element, output)

    plain = not self.version.startswith("atom") and _dict_get(params, "type") == "text/plain"
    if plain and self.looks_like_html(output):
        params["type"] = "text/html"

    params.pop("mode", None)
    params.pop("base64", None)

    content_type = _dict_get(params, "type", "text/html")
    is_htmlish = self.map_content_type(content_type) in self.html_types
    if is_htmlish and self.resolve_relative_uris and element in self.can_contain_relative_uris:
        output = _mixin.resolve_relative_uris(output, self.baseuri, self.encoding, content_type)
    if is_htmlish and self.sanitize_html and element in self.can_contain_dangerous_markup:
        output = _mixin._sanitize_html(output, self.encoding, content_type)

    if self.encoding and isinstance(output, bytes):
        output = output.decode(self.encoding, "ignore")

    # feedparser undoes UTF-8 read as ISO-8859-1, and maps cp1252's C1 code points: both are
    # the identity on ASCII text
    ascii_text = isinstance(output, str) and output.isascii()
    utf8 = self.encoding in ("utf-8", "utf-8_INVALID_PYTHON_3")
    if utf8 and not isinstance(output, bytes) and not ascii_text:
        with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
            output = output.encode("iso-8859-1").decode("utf-8")
    if not isinstance(output, bytes) and not ascii_text:
        output = output.translate(_mixin._cp1252)

    if element in ("category", "tags", "itunes_keywords"):
        return output

    if element == "title" and -1 < self.title_depth <= self.depth:
        return output

    if self.inentry and not self.insource:
        if element == "content":
            self.entries[-1].setdefault(element, [])
            contentparams = _copy_params(self.contentparams)
            contentparams["value"] = output
            self.entries[-1][element].append(contentparams)
        elif element == "link":
            if not self.inimage:
                output = output.replace("&amp;", "&")
                output = _unref(output)
                self.entries[-1][element] = output
                if output:
                    self.entries[-1]["links"][-1]["href"] = output
        else:
            if element == "description":
                element = "summary"
            old_value_depth = self.property_depth_map.setdefault(self.entries[-1], {}).get(element)
            if old_value_depth is None or self.depth <= old_value_depth:
                self.property_depth_map[self.entries[-1]][element] = self.depth
                self.entries[-1][element] = output
            if self.incontent:
                contentparams = _copy_params(self.contentparams)
                contentparams["value"] = output
                self.entries[-1][element + "_detail"] = contentparams
    elif self.infeed or self.insource:
        context = self._get_context()
        if element == "description":
            element = "subtitle"
        context[element] = output
        if element == "link":
            output = _unref(output)
            context[element] = output
            context["links"][-1]["href"] = output
        elif self.incontent:
            contentparams = _copy_params(self.contentparams)
            contentparams["value"] = output
            context[element + "_detail"] = contentparams
    return output


_ENTITY_REF = re.compile("&([A-Za-z0-9_]+);")


def _unref(link: str) -> str:
    """pop's `re.sub("&([A-Za-z0-9_]+);", r"&\\g<1>", link)` on every link: compiled once, and
    not run on a link without "&" (most), where it changes nothing."""
    return _ENTITY_REF.sub(r"&\g<1>", link) if "&" in link else link


_POP_SHIPPED = _mixin._FeedParserMixin.__dict__["pop"]


# Dates: feedparser tries its handlers in turn (W3DTF, then RFC 822, ...), each splitting and
# converting in Python: 5.6-6.9 us a date, one or two an entry. The two forms feeds nearly
# always use, written as their RFCs write them, are read here by one regex and converted as
# both handlers convert ((stamp - offset).utctimetuple()); anything else, or a date that is
# not one (31 February), goes to feedparser's own chain. tests/test_feedtune.py compares the
# two on generated dates of both forms.
_RFC822 = re.compile(
    r"(?:(?:mon|tue|wed|thu|fri|sat|sun), )?(\d{1,2}) ([a-z]{3}) (\d{4}) "
    r"(\d\d):(\d\d):(\d\d) (?:gmt|ut|utc|z|([+-])(\d\d)(\d\d))",
    re.I | re.ASCII,  # as feedparser reads them: ASCII digits, ASCII case
)
_W3DTF = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)t(\d\d):(\d\d):(\d\d)(?:\.\d{1,9})?(?:z|([+-])(\d\d):(\d\d))",
    re.I | re.ASCII,  # as feedparser reads them: ASCII digits, ASCII case
)
_DATES_SHIPPED = {m: m._parse_date for m in (feedparser.namespaces._base, feedparser.namespaces.dc)}
_parse_date_shipped = feedparser.datetimes._parse_date


def _fast_parse_date(value: Any) -> Any:
    return _canonical_date(value) or _parse_date_shipped(value)


def _canonical_date(value: Any) -> time.struct_time | None:
    """The UTC time of a date in either canonical form; None for anything else (or a date
    that is not one), which feedparser's chain then reads."""
    m = (_RFC822.fullmatch(value) or _W3DTF.fullmatch(value)) if type(value) is str else None
    if m is None:
        return None
    if m.re is _RFC822:
        day, mon, year, hh, mm, ss, sign, tzh, tzm = m.groups()
        month = rfc822.months.get(mon.lower(), 0)  # feedparser's own month names
    else:
        year, mon, day, hh, mm, ss, sign, tzh, tzm = m.groups()
        month = int(mon)
    try:
        stamp = dt.datetime(int(year), month, int(day), int(hh), int(mm), int(ss))
        offset = dt.timedelta(hours=int(tzh), minutes=int(tzm)) if sign else dt.timedelta(0)
        return (stamp + offset if sign == "-" else stamp - offset).utctimetuple()
    except (ValueError, OverflowError):
        return None


def _set_dates(fn: Callable[[Any], Any] | None) -> None:
    for module, shipped in _DATES_SHIPPED.items():
        module._parse_date = fn or shipped


_FAST: dict[str, Any] = {
    "__getitem__": _fast_getitem,
    "get": _fast_get,
    "__contains__": _fast_contains,
    "__setitem__": _fast_setitem,
    "__deepcopy__": _fast_deepcopy,
}


def install() -> None:
    for name, fn in _FAST.items():
        setattr(FeedParserDict, name, fn)
    _set_urls(_URL_FAST)
    feedsax.install()
    _mixin._FeedParserMixin.pop = _fast_pop
    _set_cp1252(_CP1252_FAST)
    _set_dates(_fast_parse_date)


def uninstall() -> None:
    for name in _FAST:
        if name in _ORIGINAL:
            setattr(FeedParserDict, name, _ORIGINAL[name])
        elif name in FeedParserDict.__dict__:
            delattr(FeedParserDict, name)
    _set_urls(_URL_SHIPPED)
    feedsax.uninstall()
    _mixin._FeedParserMixin.pop = _POP_SHIPPED
    _set_cp1252(_CP1252_SHIPPED)
    _set_dates(None)


def installed() -> bool:
    return FeedParserDict.__dict__.get("get") is _fast_get
