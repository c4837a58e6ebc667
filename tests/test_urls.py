"""The fast path of canonical_url gives what the general one gives.

`_plain` handles the URL nearly every item carries (lower-case http(s) scheme and host, no
port, no user, nothing to encode) without urlsplit; `_general` handles every URL. Checked
against each other over generated URLs (hypothesis) and over every link of the corpus.
"""

from __future__ import annotations

import io
from pathlib import Path

import feedparser
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.normalize import urls as U

CORPUS = Path(__file__).parent / "data" / "corpus"
SETTINGS = settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))

_SCHEMES = st.sampled_from(["http://", "https://", "HTTP://", "Https://", "ftp://", "http:/", ""])
_HOSTS = st.sampled_from(
    [
        "example.org",
        "a",
        "1.2.3.4",
        "www.google.com",
        "news.google.com",
        "google.com",
        "Example.ORG",
        "example.org.",
        "ex-ample.org",
        "-x.org",
        "x..org",
        "example.org:80",
        "example.org:443",
        "example.org:8080",
        "example.org:x",
        "user:pw@example.org",
        "[::1]",
        "bücher.de",
        "xn--bcher-kva.de",
        "exa%41mple.org",
        "",
    ]
)
_PIECES = st.sampled_from(
    [
        "/",
        "/a",
        "/a/b.html",
        "//x",
        "/é",
        "/%20",
        "/ ",
        "/\t",
        "/\n",
        "/\x00",
        "/\x7f",
        '/"',
        "/<",
        "/|",
        "/\\",
        "/^",
        "/`",
        "/{}",
        "/[x]",
        "?",
        "?a=1",
        "?utm_source=rss",
        "?UTM_Medium=x",
        "&",
        "&b=2",
        "&partner=rss",
        "&ref=RSS",
        "=",
        "?url=https://publisher.org/x",
        "#",
        "#frag",
        "#a b",
        "#x?y",
        "@",
        ":",
        ";p",
        "a",
        "A",
        " ",
    ]
)
URLS = st.builds(
    lambda scheme, host, pieces: scheme + host + "".join(pieces),
    _SCHEMES,
    _HOSTS,
    st.lists(_PIECES, max_size=6),
)


@SETTINGS
@given(URLS)
def test_the_fast_url_path_gives_what_the_general_one_gives(url: str) -> None:
    fast = U._plain(url)
    if fast is not None:
        assert fast == U._general(url, None)


def _corpus_links() -> list[str]:
    links = []
    for path in sorted(CORPUS.glob("*.xml")):
        parsed = feedparser.parse(
            io.BytesIO(path.read_bytes()), sanitize_html=False, resolve_relative_uris=False
        )
        for entry in parsed.entries:
            links += [link.get("href", "") for link in entry.get("links", [])]
            links += [entry.get("link", ""), entry.get("id", "")]
    return [link.strip() for link in links if link and link.strip()]


def test_the_fast_url_path_reads_the_corpus_as_the_general_one_does() -> None:
    links = _corpus_links()
    fast = {link: U._plain(link) for link in links}
    taken = {link: url for link, url in fast.items() if url is not None}
    assert len(fast) > 1000
    assert len(taken) > 0.9 * len(fast)  # the usual link takes it
    assert {link: url for link, url in taken.items() if url != U._general(link, None)} == {}


@pytest.mark.parametrize(
    "url",
    [
        "HTTPS://example.org/",  # upper-case scheme: lower-cased
        "https://Example.org/",  # upper-case host: lower-cased
        "https://example.org./x",  # trailing dot: removed
        "https://example.org:443/x",  # default port: removed
        "https://u@example.org/x",  # user: kept
        "https://example.org/a b",  # a space: encoded
        "https://www.google.com/url?url=https://publisher.org/x",  # a wrapper: unwrapped
        "/relative",  # needs the base
        "https://[::1]/x",
    ],
)
def test_urls_the_general_path_must_change_go_to_it(url: str) -> None:
    assert U._plain(url) is None


def test_the_fast_path_drops_tracking_parameters_and_the_fragment() -> None:
    url = "https://example.org/a?utm_source=rss&id=7&fbclid=x#top"
    assert U._plain(url) == U.canonical_url(url, None) == "https://example.org/a?id=7"
    assert U._plain("https://example.org") == "https://example.org/"
    assert U._plain("https://example.org?utm_medium=x") == "https://example.org/"
