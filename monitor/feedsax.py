"""feedparser's strict parser fed by expat directly: the same calls into feedparser, fewer layers.

feedparser reads a well-formed feed through `xml.sax`: expat calls the stdlib's ExpatParser,
which splits each element's "uri local prefix" name and wraps its attributes, then feedparser's
`startElementNS` matches the namespace against its list and lowercases, and only then calls
`unknown_starttag` (and the same for end tags), which splits the name at its prefix again.
For one document the name an element gets depends only on expat's name and the namespaces
declared so far, so here it is computed once per document and name, with feedparser's own
rules, and the cache is emptied whenever the document declares a namespace
(`track_namespace`). `Reader`, an ExpatParser whose expat handlers do that and then the work
of `unknown_starttag`/`unknown_endtag` (`_starttag`, `_endtag`: the same steps in the same
order), is put first in feedparser's list of SAX drivers by `install()` (feedtune installs
it). `characters` goes straight to `handle_data`, which is all it did.

feedparser as we call it: 3.0 -> 2.6 ms a bench feed, the handlers' name cache alone 3.45 ->
3.27 (A/B in one run). tests/test_feedtune.py parses the corpus and namespace edge cases both
ways and compares every field. This follows feedparser 6.0.x's `parsers/strict.py`, `mixin.py`
and the stdlib's `xml/sax/expatreader.py` (pinned feedparser; the test fails if they move).
"""

from __future__ import annotations

from typing import Any
from xml.sax.expatreader import ExpatParser

import feedparser.api
import feedparser.mixin
import feedparser.parsers.strict

from monitor import feedguard

_Strict = feedparser.parsers.strict._StrictFeedParser
_Mixin = feedparser.mixin._FeedParserMixin
_USERLAND = "http://backend.userland.com/rss"
_XMLNS_OF = {
    ("math", "http://www.w3.org/1998/Math/MathML"),
    ("svg", "http://www.w3.org/2000/svg"),
}
_DRIVERS = feedparser.api.PREFERRED_XML_PARSERS  # the list feedparser hands make_parser
_ME = __name__


def _pair(name: str) -> tuple[Any, ...]:
    """expat's name as the stdlib's reader splits it: (uri, local), or (None, local). Its
    `split()` also splits at a tab or newline inside a URI (`&#9;` is allowed there): then
    more parts, and feedparser fails on them, as it does without us."""
    parts = name.split()
    if len(parts) == 1:
        return None, name
    if len(parts) == 3:
        return parts[0], parts[1]
    return tuple(parts)


def _expat_prefix(parser: Any, namespace: str) -> str | None:
    for prefix, uri in parser.namespaces_in_use.items():
        if prefix and uri == namespace:
            return str(prefix)
    return None


def _start_name(parser: Any, name: tuple[Any, ...]) -> tuple[str, str | None]:
    """(the element's name, the xmlns attribute feedparser adds to it, if any): what
    feedparser's startElementNS works out for expat, which gives it no qualified name (so
    neither a given prefix nor an undeclared one: the prefix comes from the namespace)."""
    namespace, localname = name
    lowernamespace = str(namespace or "").lower()
    if "backend.userland.com/rss" in lowernamespace:
        namespace = lowernamespace = _USERLAND
    prefix = parser._matchnamespaces.get(lowernamespace)
    localname = str(localname).lower()
    xmlns = namespace if (localname, namespace) in _XMLNS_OF else None
    if prefix:
        localname = prefix.lower() + ":" + localname
    elif namespace and (found := _expat_prefix(parser, namespace)):
        localname = found + ":" + localname
    return localname.lower(), xmlns


def _end_name(parser: Any, name: tuple[Any, ...]) -> str:
    """What feedparser's endElementNS works out (no qualified name either)."""
    namespace, localname = name
    prefix = parser._matchnamespaces.get(str(namespace or "").lower())
    if prefix:
        localname = prefix + ":" + localname
    elif namespace and (found := _expat_prefix(parser, namespace)):
        localname = found + ":" + localname
    return str(localname).lower()


def _attr_name(aname: str) -> tuple[tuple[Any, ...], str]:
    """An attribute's (uri, local) pair and qualified name, as the stdlib's reader makes them."""
    parts = aname.split()
    if len(parts) == 1:
        return (None, aname), aname
    if len(parts) == 3:
        return (parts[0], parts[1]), f"{parts[2]}:{parts[1]}"
    return tuple(parts), parts[1]


def _attr_key(parser: Any, pair: tuple[Any, ...]) -> str:
    """An attribute's key in feedparser's attribute dict, by its namespace's prefix."""
    namespace, local = pair
    prefix = parser._matchnamespaces.get((namespace or "").lower(), "")
    if prefix:
        local = prefix + ":" + local
    return str(local).lower()


class _Names:
    """One document's names, each computed once: elements' at their start and end tags, and
    attributes' (pair and qualified name by expat's name; feedparser's key by pair). Emptied
    whenever the document declares a namespace."""

    __slots__ = ("attrs", "ends", "keys", "starts", "tags")

    def __init__(self) -> None:
        self.starts: dict[str, tuple[str, str | None]] = {}
        self.ends: dict[str, str] = {}
        self.attrs: dict[str, tuple[tuple[Any, ...], str]] = {}
        self.keys: dict[tuple[Any, ...], str] = {}
        self.tags: dict[str, tuple[str, str]] = {}  # feedparser's name -> (prefix_, suffix)

    def clear(self) -> None:
        for cache in (self.starts, self.ends, self.attrs, self.keys, self.tags):
            cache.clear()


def _start(parser: Any, names: _Names, name: str, attrs: dict[str, str]) -> None:
    named = names.starts.get(name)
    if named is None:
        named = names.starts[name] = _start_name(parser, _pair(name))
    localname, xmlns = named
    attrs_d, parser.decls = parser.decls, {}
    if xmlns:
        attrs_d["xmlns"] = xmlns
    if attrs:
        _add_attributes(parser, names, attrs, attrs_d)
    _starttag(parser, names, localname, list(attrs_d.items()))


def _add_attributes(
    parser: Any, names: _Names, attrs: dict[str, str], attrs_d: dict[str, Any]
) -> None:
    """What the stdlib's AttributesNSImpl and feedparser's two loops over it put in the
    attribute dict: by (uri, local) pair, a later attribute of the same pair replacing the
    value; then by qualified name, each one's value that of its first pair."""
    values: dict[tuple[Any, ...], str] = {}
    qnames: dict[tuple[Any, ...], str] = {}
    for aname, value in attrs.items():
        named = names.attrs.get(aname)
        if named is None:
            named = names.attrs[aname] = _attr_name(aname)
        pair, qname = named
        values[pair] = value
        qnames[pair] = qname
    for pair, value in values.items():
        key = names.keys.get(pair)
        if key is None:
            key = names.keys[pair] = _attr_key(parser, pair)
        attrs_d[key] = value
    first: dict[str, str] = {}
    for pair, qname in qnames.items():
        first.setdefault(qname, values[pair])
    for qname in qnames.values():
        attrs_d[str(qname).lower()] = first[qname]


def _end(parser: Any, names: _Names, name: str) -> None:
    localname = names.ends.get(name)
    if localname is None:
        localname = names.ends[name] = _end_name(parser, _pair(name))
    _endtag(parser, names, localname)


def _split(parser: Any, names: _Names, tag: str) -> tuple[str, str]:
    """feedparser's (prefix + "_", suffix) of a tag, by the namespaces matched so far."""
    got = names.tags.get(tag)
    if got is None:
        prefix, suffix = tag.split(":", 1) if ":" in tag else ("", tag)
        prefix = parser.namespacemap.get(prefix, prefix)
        got = names.tags[tag] = (prefix + "_" if prefix else "", suffix)
    return got


# feedparser's unknown_starttag and unknown_endtag (mixin.py) in its order, for the strict
# parser, but for the namespace split of a tag (once a document and tag: `_split`), the
# attribute passes that find nothing when there are none, and a method call each. 51,000
# calls of each on 6,000 bench items: feedparser as we call it 144 -> 136.5 us an item
# (A/B in one run). The depth bound is feedguard's, as in its wrapper of feedparser's.
_mixin = feedparser.mixin


def _starttag(self: Any, names: _Names, tag: str, attrs: list[tuple[str, Any]]) -> Any:
    feedguard.check_depth(self)
    self.depth += 1
    if attrs:
        attrs = [self._normalize_attributes(attr) for attr in attrs]
        attrs_d = dict(attrs)
        baseuri = attrs_d.get("xml:base", attrs_d.get("base")) or self.baseuri
        lang = attrs_d.get("xml:lang", attrs_d.get("lang"))
    else:
        attrs_d, baseuri, lang = {}, self.baseuri, None
    if isinstance(baseuri, bytes):
        baseuri = baseuri.decode(self.encoding, "ignore")
    if self.baseuri:
        self.baseuri = _mixin.make_safe_absolute_uri(self.baseuri, baseuri) or self.baseuri
    else:
        self.baseuri = _mixin._urljoin(self.baseuri, baseuri)
    if lang == "":
        lang = None
    elif lang is None:
        lang = self.lang
    if lang and tag in ("feed", "rss", "rdf:RDF"):
        self.feeddata["language"] = lang.replace("_", "-")
    self.lang = lang
    self.basestack.append(self.baseuri)
    self.langstack.append(lang)
    for prefix, uri in attrs:
        if prefix.startswith("xmlns:"):
            self.track_namespace(prefix[6:], uri)
        elif prefix == "xmlns":
            self.track_namespace(None, uri)
    if self.incontent:
        params = self.contentparams
        if not params.get("type", "xml").endswith("xml"):
            if tag in ("xhtml:div", "div"):
                return None  # typepad does this 10/2007
            params["type"] = "application/xhtml+xml"
        if params.get("type") == "application/xhtml+xml":
            return _inline_starttag(self, tag, attrs)
    prefix, suffix = _split(self, names, tag)
    if not prefix and tag not in ("title", "link", "description", "name"):
        self.intextinput = 0
    if not prefix and tag not in ("title", "link", "description", "url", "href", "width", "height"):
        self.inimage = 0
    try:
        method = getattr(self, "_start_" + prefix + suffix)
        return method(attrs_d)
    except AttributeError:
        unknown_tag = prefix + suffix
        if len(attrs_d) == 0:
            return self.push(unknown_tag, 1)
        self._get_context()[unknown_tag] = attrs_d
        return None


def _inline_starttag(self: Any, tag: str, attrs: list[tuple[str, Any]]) -> Any:
    """An element inside XHTML content: kept as markup in the text."""
    if ":" in tag:
        prefix, tag = tag.split(":", 1)
        namespace = self.namespaces_in_use.get(prefix, "")
        if tag == "math" and namespace == "http://www.w3.org/1998/Math/MathML":
            attrs.append(("xmlns", namespace))
        if tag == "svg" and namespace == "http://www.w3.org/2000/svg":
            attrs.append(("xmlns", namespace))
    if tag == "svg":
        self.svgOK += 1
    return self.handle_data(f"<{tag}{self.strattrs(attrs)}>", escape=0)


def _endtag(self: Any, names: _Names, tag: str) -> None:
    prefix, suffix = _split(self, names, tag)
    if suffix == "svg" and self.svgOK:
        self.svgOK -= 1
    try:
        if self.svgOK:
            raise AttributeError()
        method = getattr(self, "_end_" + prefix + suffix)
        method()
    except AttributeError:
        self.pop(prefix + suffix)
    if self.incontent:
        params = self.contentparams
        if not params.get("type", "xml").endswith("xml"):
            if tag in ("xhtml:div", "div"):
                return
            params["type"] = "application/xhtml+xml"
        if params.get("type") == "application/xhtml+xml":
            self.handle_data(f"</{tag.split(':')[-1]}>", escape=0)
    # xml:base and xml:lang going out of scope
    if self.basestack:
        self.basestack.pop()
        if self.basestack and self.basestack[-1]:
            self.baseuri = self.basestack[-1]
    if self.langstack:
        self.langstack.pop()
        if self.langstack:
            self.lang = self.langstack[-1]
    self.depth -= 1


class Reader(ExpatParser):
    """The stdlib's expat reader, its element handlers replaced for feedparser's strict
    parser (any other content handler gets the stdlib's)."""

    def reset(self) -> None:
        super().reset()
        # The stdlib's reader keeps these undeclared (typeshed does not know them).
        handler, expat = getattr(self, "_cont_handler"), getattr(self, "_parser")  # noqa: B009
        if getattr(self, "_namespaces") and isinstance(handler, _Strict):  # noqa: B009
            names = handler.__dict__["_feedsax"] = _Names()  # for _track_namespace to empty
            expat.StartElementHandler = lambda name, attrs: _start(handler, names, name, attrs)
            expat.EndElementHandler = lambda name: _end(handler, names, name)
            # One call per run of text instead of one per line and per entity (188,000 ->
            # 98,000 calls on 6,000 bench items; 3-5% of the parse): handle_data only appends.
            expat.buffer_text = True


def create_parser(*args: Any, **kwargs: Any) -> Reader:
    """The SAX driver's entry point (xml.sax.make_parser imports this module by name)."""
    return Reader(*args, **kwargs)


_shipped_track_namespace = _Mixin.track_namespace
_shipped_characters = _Strict.__dict__["characters"]


def _track_namespace(self: Any, prefix: Any, uri: Any) -> None:
    # A new namespace can change any element's name: the document's names start again.
    if (names := self.__dict__.get("_feedsax")) is not None:
        names.clear()
    _shipped_track_namespace(self, prefix, uri)


def install() -> None:
    if _ME not in _DRIVERS:
        _DRIVERS.insert(0, _ME)
    _Mixin.track_namespace = _track_namespace
    _Strict.characters = _Mixin.handle_data


def uninstall() -> None:
    while _ME in _DRIVERS:
        _DRIVERS.remove(_ME)
    _Mixin.track_namespace = _shipped_track_namespace
    _Strict.characters = _shipped_characters


def installed() -> bool:
    return _ME in _DRIVERS
