"""Full text end to end (issue 13): a teaser feed on a local server whose items link to local
pages, polled by `monitor once` in this process (worker processes, a real database, a webhook
receiver verifying signatures). The story body is matched, the sidebar is not, a 30 MB page is
cut at the cap, a redirect to a private address is refused, a failed page leaves the item as
the feed gave it with the reason, pages are fetched for new items only, politely, once per
URL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from monitor import db
from monitor.cli import run_cli
from monitor.fulltext import are_teasers
from monitor.models import ItemData
from tests.conftest import ROOT
from tests.feedserver import FeedServer, Route
from tests.servers import WebhookReceiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PAGES = ROOT / "tests" / "data" / "pages"
SEED_TITLE = "China president's North Korea visit to send strong message to US"
HTML = "text/html; charset=utf-8"


def teaser_feed(items: list[tuple[str, str, str]]) -> bytes:
    """An RSS feed of (title, link, one sentence) items, no dates, no source."""
    body = "".join(
        f"<item><title>{t}</title><link>{link}</link><guid>{link}</guid>"
        f"<description>{d}</description></item>"
        for t, link, d in items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Teasers'
        f"</title><link>https://example.org/</link><description>d</description>{body}"
        "</channel></rss>"
    ).encode()


def write_config(
    tmp_path: Path, db_url: str, hook: WebhookReceiver, feeds: str, poll: str = ""
) -> Path:
    rules = tmp_path / "watchlist.yaml"
    rules.write_text(
        "rules:\n  - {id: dprk-missile, name: North Korea missile activity,"
        " query: North Korea + missile, severity: high}\n"
    )
    path = tmp_path / "monitor.yaml"
    path.write_text(
        f"""\
database: {db_url}
watchlist: {rules}
poll: {{timeout: 20s{poll}}}
feeds:
{feeds}
channels:
  ops: {{type: webhook, url: "{hook.url}", secret: "{SECRET}"}}
"""
    )
    return path


def items(db_url: str) -> dict[str, dict[str, Any]]:
    engine = db.make_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT title, content, source, published_at, page_status, page_error FROM item"
            )
        ).mappings()
        out = {r["title"]: dict(r) for r in rows}
    engine.dispose()
    return out


@pytest.fixture
def public_loopback(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """127.0.0.1 stands for the public internet (the test servers live there); every other
    private address, 127.0.0.2 included, is refused by the guard as in production."""
    import monitor.netguard as guard

    real = guard.address_allowed
    monkeypatch.setattr(guard, "address_allowed", lambda ip: ip == "127.0.0.1" or real(ip))
    yield


def test_the_story_is_matched_not_the_teaser_nor_the_sidebar(
    tmp_path: Path, db_url: str, public_loopback: None, capsys: pytest.CaptureFixture[str]
) -> None:
    huge = (
        (PAGES / "wire_service.html")
        .read_bytes()
        .replace(
            b"</body>", b"<div class='comments'>" + b"<p>more comments</p>" * 1_600_000 + b"</div>"
        )
    )
    assert len(huge) > 30_000_000
    with (
        FeedServer() as site,
        FeedServer(host="127.0.0.2") as inside,
        WebhookReceiver(secret=SECRET) as hook,
    ):
        inside.routes["/admin"] = Route(b"<html><p>internal</p></html>", content_type=HTML)
        site.routes["/seed.htm"] = Route((PAGES / "globalsecurity_seed.html").read_bytes(),
                                         content_type=HTML)  # fmt: skip
        site.routes["/fair.htm"] = Route((PAGES / "sidebar_missile.html").read_bytes(),
                                         content_type=HTML)  # fmt: skip
        site.routes["/huge.htm"] = Route(huge, content_type=HTML)
        site.routes["/moved.htm"] = Route(redirect=inside.url("/admin"))
        site.routes["/teasers.xml"] = Route(
            teaser_feed(
                [
                    (SEED_TITLE, site.url("/seed.htm"),
                     "Chinese President Xi Jinping is set to travel to North Korea this week."),
                    ("Seoul trade fair draws record crowds for shipbuilding pavilion",
                     site.url("/fair.htm"), "North Korea trade came up at a seminar."),
                    ("South Korea says North fired ballistic missile into sea off east coast",
                     site.url("/huge.htm"), "The JCS said the launch came before drills."),
                    ("Pyongyang statement on the peninsula", site.url("/moved.htm"),
                     "North Korea issued a statement."),
                    ("A story that is gone", site.url("/gone.htm"), "North Korea said."),
                ]
            )
        )  # fmt: skip
        config = write_config(
            tmp_path,
            db_url,
            hook,
            f'  - {{id: teasers, url: "{site.url("/teasers.xml")}", backfill: true, '
            "full_text: true}",
            poll=", max_bytes: 2MB",
        )
        assert run_cli(["--config", str(config), "once"]) == 0
        sent = hook.wait_for(2)
        by_title = {r.json["item"]["title"]: r.json for r in sent}
        # The seed story: its title says North Korea, only its body says missile.
        seed = by_title[SEED_TITLE]
        assert "«missile" in seed["match"]["snippet"] and "«North Korea" in seed["match"]["snippet"]
        assert seed["match"]["snippet"] not in SEED_TITLE
        assert seed["item"]["source"] == "Iran Press TV"
        assert seed["item"]["published_at"] == "2019-06-18T16:01:00Z"
        # The 30 MB page, cut at 2 MB: its story (at the top) is read, and alerts.
        assert "South Korea says North fired ballistic missile into sea off east coast" in by_title
        assert all(r.verified for r in sent) and len(sent) == 2
        # The sidebar's "missile" and the private address raised nothing; nothing reached it.
        assert inside.requests == []
        stored = items(db_url)
        fair = stored["Seoul trade fair draws record crowds for shipbuilding pavilion"]
        assert fair["page_status"] == "ok" and "missile" not in fair["content"].lower()
        assert "Kaesong industrial zone" in fair["content"]
        moved = stored["Pyongyang statement on the peninsula"]
        assert moved["page_status"] == "failed"
        assert (
            moved["page_error"].startswith("FetchBlocked:") and "127.0.0.2" in moved["page_error"]
        )
        assert moved["content"] == ""  # as the feed gave it: a summary, no content
        gone = stored["A story that is gone"]
        assert gone["page_status"] == "failed" and gone["page_error"] == "FetchHTTPError: HTTP 404"
        # A second cycle: the feed's items are not new; no page is fetched again, no alert.
        pages_before = [r.path for r in site.requests if r.path.endswith(".htm")]
        assert sorted(pages_before) == sorted(
            ["/seed.htm", "/fair.htm", "/huge.htm", "/moved.htm", "/gone.htm"]
        )
        assert run_cli(["--config", str(config), "once", "--all"]) == 0
        assert [r.path for r in site.requests if r.path.endswith(".htm")] == pages_before
        assert len(hook.requests) == 2
    capsys.readouterr()


def test_pages_are_fetched_politely_and_once_per_url(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """50 teaser items on one host: never more than per_host page requests at once. A story
    linked from two feeds is fetched once and alerts once. (SQLite only: the database plays
    no part in politeness; the test above runs on both.)"""
    db_url = sqlite_url
    with FeedServer() as site, WebhookReceiver(secret=SECRET) as hook:
        story = (PAGES / "wordpress_blog.html").read_bytes()
        many = []
        for n in range(50):
            site.routes[f"/p/{n}"] = Route(story.replace(b"Sohae", b"Sohae%d" % n),
                                           content_type=HTML, pause=0.02)  # fmt: skip
            many.append((f"Imagery {n}", site.url(f"/p/{n}"), "New construction seen."))
        site.routes["/seed.htm"] = Route((PAGES / "globalsecurity_seed.html").read_bytes(),
                                         content_type=HTML)  # fmt: skip
        site.routes["/many.xml"] = Route(teaser_feed(many))
        for name in ("a", "b"):
            site.routes[f"/{name}.xml"] = Route(
                teaser_feed([(SEED_TITLE, site.url("/seed.htm"), "Xi to visit North Korea.")])
            )
        feeds = "\n".join(
            f'  - {{id: {name}, url: "{site.url(f"/{name}.xml")}", backfill: true, '
            "full_text: auto}"
            for name in ("many", "a", "b")
        )
        config = write_config(
            tmp_path, db_url, hook, feeds, poll=", per_host: 2, allow_private_networks: true"
        )
        assert run_cli(["--config", str(config), "once"]) == 0
        page_hits = [r for r in site.requests if r.path.startswith("/p/")]
        assert len(page_hits) == 50
        assert site.peak <= 2  # feeds and pages together, on this one host
        assert len(site.hits("/seed.htm")) == 1
        sent = hook.wait_for(50 + 1)
        seed = [r.json for r in sent if r.json["item"]["title"] == SEED_TITLE]
        assert len(seed) == 1  # the wordpress story's "ballistic missile" + "North Korea" too
        assert len(sent) == 51
    stored = items(db_url)
    assert stored[SEED_TITLE]["page_status"] == "ok"
    assert stored["Imagery 7"]["source"] == "Open Source Watch"
    capsys.readouterr()


def test_auto_fetches_pages_only_for_teasers() -> None:
    def item(n: int, words: int) -> ItemData:
        return ItemData("f", f"g{n}", f"https://example.org/{n}", "t", summary="word " * words)

    assert are_teasers([item(n, 12) for n in range(10)])
    assert not are_teasers([item(n, 400) for n in range(10)])
    assert are_teasers([item(0, 400), item(1, 10)])  # half of them: teasers
    assert not are_teasers([item(0, 400), item(1, 400), item(2, 10)])
    assert not are_teasers([ItemData("f", "g", None, "t", summary="short")])  # no link: no page


@pytest.mark.parametrize(
    ("name", "teasers"),
    [
        ("japantimes_north_korea", True),
        ("af_mil_news_2016_missile", True),
        ("nytimes_world_mock", True),
        ("reuters_msn_pool_2026_reserialized", False),  # whole stories in the feed
        ("guardian_world_mock", False),  # paragraph-long summaries
    ],
)
def test_auto_on_real_feeds(name: str, teasers: bool) -> None:
    import datetime as dt

    from monitor.parse import parse_feed

    body = (ROOT / "tests" / "data" / "corpus" / f"{name}.xml").read_bytes()
    parsed = parse_feed(body, feed_id=name, base_url=None, fetched_at=dt.datetime.now(dt.UTC))
    assert are_teasers(parsed.items) is teasers


async def test_a_slow_site_holds_a_poll_back_for_one_deadline_at_most(
    feed_server: FeedServer,
) -> None:
    """The pages of one poll get one fetch deadline in all: six pages of 0.6 s each, one at a
    time (per_host 1), under a 1 s deadline: the first is read, the rest keep the feed's
    text with the reason, and the poll goes on after about a second, not 3.6."""
    import asyncio
    import time
    from functools import partial

    from monitor.fetch import Fetcher, FetchLimits
    from monitor.fulltext import PageCache, Pages, read_pages
    from monitor.rules import load_watchlist

    page = (PAGES / "wire_service.html").read_bytes()
    todo = []
    for n in range(6):
        feed_server.routes[f"/slow/{n}"] = Route(page, content_type=HTML, pause=0.6)
        todo.append(ItemData("f", f"g{n}", feed_server.url(f"/slow/{n}"), f"Story {n}"))
    fetcher = Fetcher(FetchLimits(timeout=1.0, per_host=1, allow_private_networks=True))

    async def run(fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(partial(fn, *args, **kwargs))

    watchlist = load_watchlist([ROOT / "config" / "watchlist.yaml"])
    # trafilatura is imported on the first extraction (a second, more on a busy machine):
    # not inside the timed budget, which is about the fetches.
    from monitor.extract import extract_article

    extract_article(page, url=feed_server.url("/slow/0"), content_type=HTML)
    started = time.monotonic()
    try:
        done = await read_pages(
            Pages(fetcher, run, PageCache()), todo, feed_tags=(), watchlist=watchlist,
            budget=1.0,
        )  # fmt: skip
    finally:
        await fetcher.aclose()
    assert time.monotonic() - started < 2.5
    assert done.results == {"ok": 1, "deadline": 5}
    assert done.items["g0"].page_status == "ok" and "ballistic missile" in done.items["g0"].content
    late = done.items["g5"]
    assert late.page_status == "failed" and late.page_error == "deadline: page not read within 1s"
    assert late.content == ""  # as the feed gave it
    assert [h.rule_id for h in done.hits["g0"]] == ["dprk-missile"]


def test_an_edited_teaser_has_its_page_read_again(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An item whose feed text changed is an edited story: its page is fetched again (not
    taken from the cache) and stays its content; an unchanged item's page never is."""
    with FeedServer() as site, WebhookReceiver(secret=SECRET) as hook:
        page = (PAGES / "paywall.html").read_bytes()
        site.routes["/story.htm"] = Route(page, content_type=HTML)
        link = site.url("/story.htm")
        site.routes["/f.xml"] = Route(teaser_feed([("Carrier group", link, "Taiwan tracks.")]))
        config = write_config(
            tmp_path, sqlite_url, hook,
            f'  - {{id: f, url: "{site.url("/f.xml")}", backfill: true, full_text: true}}',
            poll=", allow_private_networks: true",
        )  # fmt: skip
        assert run_cli(["--config", str(config), "once", "--all"]) == 0
        assert len(site.hits("/story.htm")) == 1
        site.routes["/story.htm"] = Route(page.replace(b"Shandong", b"Fujian"), content_type=HTML)
        site.routes["/f.xml"] = Route(
            teaser_feed([("Carrier group", link, "Taiwan tracks a carrier.")])
        )
        assert run_cli(["--config", str(config), "once", "--all"]) == 0
        assert len(site.hits("/story.htm")) == 2
        stored = items(sqlite_url)["Carrier group"]
        assert stored["page_status"] == "ok" and "carrier Fujian" in stored["content"]
        assert run_cli(["--config", str(config), "once", "--all"]) == 0
        assert len(site.hits("/story.htm")) == 2  # unchanged: not fetched
    capsys.readouterr()
