"""The fetcher against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.errors import FetchBlocked, FetchHTTPError, FetchTimeout, FetchTooLarge
from monitor.fetch import Fetcher, FetchLimits, address_allowed
from monitor.web import parse_retry_after
from tests.feedserver import FeedServer, Route

FEED = b"<?xml version='1.0'?><rss version='2.0'><channel><title>t</title></channel></rss>"


def fetcher(**kw: object) -> Fetcher:
    opts: dict[str, object] = {"allow_private_networks": True, "timeout": 5.0}
    opts.update(kw)
    return Fetcher(FetchLimits(**opts))  # type: ignore[arg-type]


async def test_conditional_get_uses_the_etag(feed_server: FeedServer) -> None:
    feed_server.routes["/f"] = Route(FEED)
    f = fetcher()
    first = await f.fetch(feed_server.url("/f"))
    assert first.status == 200 and first.body == FEED and first.etag
    second = await f.fetch(feed_server.url("/f"), etag=first.etag)
    assert second.not_modified and second.status == 304
    assert feed_server.hits("/f")[1].headers["if-none-match"] == first.etag
    await f.aclose()


async def test_gzip_is_decompressed(feed_server: FeedServer) -> None:
    feed_server.routes["/gz"] = Route(FEED, gzip=True)
    f = fetcher()
    result = await f.fetch(feed_server.url("/gz"))
    assert result.body == FEED
    await f.aclose()


async def test_body_cap_applies_after_decompression(feed_server: FeedServer) -> None:
    bomb = b"<rss>" + b" " * 5_000_000
    feed_server.routes["/bomb"] = Route(bomb, gzip=True)  # about 5 KB on the wire
    f = fetcher(max_bytes=1_000_000)
    with pytest.raises(FetchTooLarge):
        await f.fetch(feed_server.url("/bomb"))
    await f.aclose()


async def test_redirects_are_followed_up_to_the_limit(feed_server: FeedServer) -> None:
    feed_server.routes["/final"] = Route(FEED)
    for i in range(7):
        feed_server.routes[f"/r{i}"] = Route(redirect=f"/r{i + 1}")
    feed_server.routes["/r7"] = Route(redirect="/final")
    f = fetcher()
    ok = await f.fetch(feed_server.url("/r4"))  # r4 -> r5 -> r6 -> r7 -> final: 4 redirects
    assert ok.body == FEED and ok.url.endswith("/final")
    with pytest.raises(FetchHTTPError, match="more than 5 redirects"):
        await f.fetch(feed_server.url("/r0"))
    await f.aclose()


async def test_redirect_to_a_file_is_refused(feed_server: FeedServer) -> None:
    feed_server.routes["/evil"] = Route(redirect="file:///etc/passwd")
    f = fetcher()
    with pytest.raises(FetchBlocked):
        await f.fetch(feed_server.url("/evil"))
    await f.aclose()


async def test_slow_drip_hits_the_whole_request_deadline(feed_server: FeedServer) -> None:
    feed_server.routes["/slow"] = Route(FEED, drip=0.05)  # ~4 s for the body, a byte at a time
    f = fetcher(timeout=0.5)
    with pytest.raises(FetchTimeout):
        await f.fetch(feed_server.url("/slow"))
    await f.aclose()


async def test_http_errors_carry_status_and_retry_after(feed_server: FeedServer) -> None:
    feed_server.routes["/busy"] = Route(status=429, headers={"Retry-After": "120"})
    feed_server.routes["/gone"] = Route(status=410)
    f = fetcher()
    with pytest.raises(FetchHTTPError) as busy:
        await f.fetch(feed_server.url("/busy"))
    assert busy.value.status == 429 and busy.value.retry_after == 120
    with pytest.raises(FetchHTTPError) as gone:
        await f.fetch(feed_server.url("/gone"))
    assert gone.value.status == 410
    await f.aclose()


async def test_loopback_is_refused_without_allow_private(feed_server: FeedServer) -> None:
    feed_server.routes["/f"] = Route(FEED)
    f = fetcher(allow_private_networks=False)
    with pytest.raises(FetchBlocked, match="non-public"):
        await f.fetch(feed_server.url("/f"))
    with pytest.raises(FetchBlocked):
        await f.fetch(feed_server.url("/f").replace("127.0.0.1", "localhost"))
    assert feed_server.requests == []  # nothing reached the server
    await f.aclose()


@pytest.mark.parametrize(
    "ip,ok",
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("::1", False),
        ("fe80::1", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
    ],
)
def test_address_policy(ip: str, ok: bool) -> None:
    assert address_allowed(ip) is ok


async def test_local_file_with_validator(tmp_path: Path) -> None:
    path = tmp_path / "feed.xml"
    path.write_bytes(FEED)
    f = fetcher()
    first = await f.fetch(str(path))
    assert first.body == FEED
    again = await f.fetch(str(path), etag=first.etag)
    assert again.not_modified
    await f.aclose()


def test_retry_after_forms() -> None:
    assert parse_retry_after("30") == 30
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10
    assert parse_retry_after("soon") is None


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "127.0.0.2", "0.0.0.0"],
)
async def test_the_guard_holds_in_every_spelling(feed_server: FeedServer, host: str) -> None:
    feed_server.routes["/f"] = Route(FEED)
    port = feed_server.base.rsplit(":", 1)[1]
    f = fetcher(allow_private_networks=False)
    try:
        with pytest.raises(FetchBlocked):
            await f.fetch(f"http://{host}:{port}/f")
    finally:
        await f.aclose()
    assert feed_server.requests == []


async def test_a_redirect_to_a_private_address_is_refused_at_the_hop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The guard is on every hop. Both test servers are on loopback: the first (127.0.0.1)
    stands for a public site, by a policy that allows that one address, and redirects to the
    second (127.0.0.2), which the policy refuses like any private address."""
    import monitor.netguard as guard

    real = guard.address_allowed
    monkeypatch.setattr(guard, "address_allowed", lambda ip: ip == "127.0.0.1" or real(ip))
    with FeedServer(host="127.0.0.2") as inside, FeedServer() as outside:
        inside.routes["/secret"] = Route(FEED)
        outside.routes["/f"] = Route(redirect=inside.url("/secret"))
        f = fetcher(allow_private_networks=False)
        try:
            with pytest.raises(FetchBlocked, match=r"127\.0\.0\.2"):
                await f.fetch(outside.url("/f"))
        finally:
            await f.aclose()
        assert len(outside.requests) == 1 and inside.requests == []


async def test_max_age_and_a_permanent_move_are_passed_back(feed_server: FeedServer) -> None:
    feed_server.routes["/new"] = Route(FEED, headers={"Cache-Control": "public, max-age=900"})
    feed_server.routes["/old"] = Route(redirect=feed_server.url("/new"))  # a 301
    feed_server.routes["/moved-for-now"] = Route(
        status=302, headers={"Location": feed_server.url("/new")}
    )
    f = fetcher()
    try:
        moved = await f.fetch(feed_server.url("/old"))
        assert moved.moved_to == feed_server.url("/new") and moved.max_age == 900
        temporary = await f.fetch(feed_server.url("/moved-for-now"))
        assert temporary.moved_to is None and temporary.body == FEED
        direct = await f.fetch(feed_server.url("/new"))
        assert direct.moved_to is None
    finally:
        await f.aclose()


async def test_the_user_agent_names_monitor_and_its_version(feed_server: FeedServer) -> None:
    from monitor import __version__
    from monitor.settings import PollSettings

    feed_server.routes["/f"] = Route(FEED)
    f = fetcher(user_agent=PollSettings().user_agent)
    await f.fetch(feed_server.url("/f"))
    await f.aclose()
    [request] = feed_server.requests
    assert request.headers["user-agent"].startswith(f"monitor/{__version__} ")
