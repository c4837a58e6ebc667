"""feedparser, the same results for less CPU: faster drop-ins for the hottest methods of its
`FeedParserDict`, installed by the parse step (`install()`, idempotent).

A profile of parse_feed over the corpus spends a fifth of feedparser's time in
`FeedParserDict.__getitem__`/`get`/`__contains__` (half a million calls: every key is first
looked up in `keymap` and compared with five special names) and in `copy.deepcopy` of
`contentparams` (once per text element, through the generic `__reduce_ex__` path). The
drop-ins take plain `dict` paths for every key that is neither special nor in `keymap`, and
hand the others to feedparser's own methods, so every answer is the one feedparser gives; the
deep copy rebuilds the dict through `__setitem__`, as `copy` does. And feedparser's URL joins
(`_urljoin`, `make_safe_absolute_uri`: the base joined with itself at every start tag) are
memoized, being pure functions of two strings (2.8% of parse_feed's instructions,
callgrind). The strict parser is driven by expat directly (`monitor.feedsax`, installed
here too). tests/test_feedtune.py parses the corpus both ways and compares the results
field by field. These patch feedparser 6.0.x (pinned in pyproject.toml); `uninstall()` puts
feedparser's own back.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

import feedparser.mixin
import feedparser.namespaces._base
import feedparser.urls
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

# URL joins: feedparser joins the base URI with itself at every start tag (51,000 calls for
# 300 feeds, a tenth of its time there). Both functions are pure functions of two strings:
# memoized, for strings of a bounded length (a hostile feed's long ones are not kept).
_URL_MODULES = (feedparser.urls, feedparser.mixin, feedparser.namespaces._base)
_URL_SHIPPED = {
    name: getattr(feedparser.urls, name) for name in ("_urljoin", "make_safe_absolute_uri")
}
_URL_LIMIT = 2048  # characters of both arguments together


_URL_ENTRIES = 4096


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
    _set_cp1252(_CP1252_FAST)


def uninstall() -> None:
    for name in _FAST:
        if name in _ORIGINAL:
            setattr(FeedParserDict, name, _ORIGINAL[name])
        elif name in FeedParserDict.__dict__:
            delattr(FeedParserDict, name)
    _set_urls(_URL_SHIPPED)
    feedsax.uninstall()
    _set_cp1252(_CP1252_SHIPPED)


def installed() -> bool:
    return FeedParserDict.__dict__.get("get") is _fast_get
