"""One alert per story (issue 14, acceptance 2 and 3), end to end: three feeds on 127.0.0.1
carry copies of five wire stories as syndication delivers them (another URL and guid, a
headline suffix, a credit line, a sentence added, "," against "–"), beside two different
reports on the same topic; `monitor once` in its own process; a webhook receiver verifying
every signature. Exactly one alert per story, each naming every feed that carried it; a copy
arriving in a later cycle alerts nothing and is listed among the story's sources."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from xml.sax.saxutils import escape

import feedparser
import pytest
from sqlmodel import select

from monitor import db
from monitor.models import Alert, Item
from monitor.server import atom_feed, recent_alerts
from tests.feedserver import FeedServer, Route
from tests.servers import WebhookReceiver
from tests.test_rule_lifecycle import Daemon

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

# (headline, body): five wire stories, then two different reports on the same topics.
STORIES = {
    "launch": (
        "North Korea fires ballistic missile into the sea, Seoul says",
        "North Korea fired a ballistic missile off its east coast on Tuesday, South Korea's "
        "military said, the latest in a series of weapons tests that have raised tensions in "
        "the region. The Joint Chiefs of Staff said the missile was launched from the Pyongyang "
        "area and flew about 600 kilometres before landing in the sea. Japan's defence ministry "
        "said it fell outside its exclusive economic zone and that no damage was reported.",
    ),
    "iaea": (
        "IAEA says Iran has expanded uranium enrichment at Fordow",
        "The International Atomic Energy Agency said on Monday that Iran has installed more "
        "advanced centrifuges at its underground Fordow site and is enriching uranium to up to "
        "60 percent purity, according to a confidential report seen by diplomats. The agency "
        "said its inspectors verified the new cascades last week and urged Tehran to restore "
        "the monitoring cameras removed last year.",
    ),
    "drills": (
        "US and South Korea begin largest joint drills in five years",
        "The United States and South Korea began their largest combined military exercises in "
        "five years on Monday, involving tens of thousands of troops, aircraft and warships. "
        "Officials in Seoul said the drills were defensive and would run for eleven days. "
        "Pyongyang has long condemned such exercises as rehearsals for an invasion and has "
        "warned of an overwhelming response.",
    ),
    "sanctions": (
        "EU agrees new sanctions on Iranian drone makers",
        "European Union foreign ministers agreed on Thursday to impose sanctions on eight "
        "Iranian individuals and companies involved in building drones supplied to Russia, "
        "diplomats said. The measures freeze assets and ban travel to the bloc. Iran's foreign "
        "ministry rejected the decision as illegal and said it would respond in kind.",
    ),
    "satellite": (
        "North Korea says it will launch a military reconnaissance satellite",
        "North Korea notified Japan's coast guard that it plans to launch a satellite between "
        "May 31 and June 11, a move that would violate UN resolutions banning the use of "
        "ballistic missile technology. Leader Kim Jong Un has called the reconnaissance "
        "satellite essential to counter what he calls military threats from the United States "
        "and South Korea, and officials in Tokyo said they would shoot down any debris.",
    ),
}
OTHERS = {
    "launch-2": (
        "North Korea fires two short-range missiles, its second launch this month",
        "North Korea launched two short-range ballistic missiles from its west coast early on "
        "Saturday, according to Japan's prime minister's office, a week after an earlier test. "
        "Analysts said the launches appeared aimed at testing a new solid-fuel engine and that "
        "more tests were likely before the anniversary of the founding of the ruling party.",
    ),
    "iaea-2": (
        "IAEA chief to visit Tehran for talks on inspections",
        "Rafael Grossi, head of the International Atomic Energy Agency, will travel to Tehran "
        "next week for talks with Iranian officials on access for inspectors and on "
        "explaining uranium traces found at undeclared sites, the agency said. The visit comes "
        "as Western powers weigh a resolution against Iran at the agency's board of governors.",
    ),
}


def copies(story: str, headline: str, body: str) -> dict[str, tuple[str, str, str]]:
    """What each feed carries of one story: feed -> (headline, body, url)."""
    sentence = " A spokesman added that the situation was being monitored closely."
    return {
        "agg-a": (headline, body, f"https://wire-a.example.org/{story}"),
        "agg-b": (
            f"{headline} | World",
            f"{body} Reporting by Hyonhee Shin; Editing by Ed Davies",
            f"https://news-b.example.com/world/{story}-2026?ref=rss",
        ),
        "agg-c": (
            headline.replace(",", " –"),
            body + sentence,
            f"https://c.example.net/a/{story}",
        ),
    }


def rss(entries: list[tuple[str, str, str, str]]) -> bytes:
    items = "".join(
        f"<item><title>{escape(t)}</title><link>{escape(u)}</link><guid>{escape(g)}</guid>"
        f"<description>{escape(b)}</description></item>"
        for g, t, b, u in entries
    )
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>f</title>"
        f"<link>https://example.org/</link>{items}</channel></rss>"
    ).encode()


def feeds_for(stories: dict[str, tuple[str, str]], cycle: int) -> dict[str, bytes]:
    by_feed: dict[str, list[tuple[str, str, str, str]]] = {"agg-a": [], "agg-b": [], "agg-c": []}
    for story, (headline, body) in stories.items():
        for feed, (t, b, u) in copies(story, headline, body).items():
            by_feed[feed].append((f"{feed}:{story}", t, b, u))
    for story, (headline, body) in OTHERS.items():
        by_feed["agg-b"].append((f"agg-b:{story}", headline, body, f"https://b.example/{story}"))
    if cycle == 2:  # a late copy of the launch story, in a feed that had it under another guid
        t, b, _u = copies("launch", *STORIES["launch"])["agg-c"]
        by_feed["agg-c"].append(("agg-c:launch-late", t + " - Seoul", b, "https://late.example/l"))
    return {f: rss(entries) for f, entries in by_feed.items()}


def monitor(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(config), *args],
        capture_output=True, text=True, timeout=120, env=dict(os.environ), cwd=config.parent,
    )  # fmt: skip


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_one_alert_per_story_naming_every_feed_and_a_late_copy_only_listed(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    with FeedServer() as server, WebhookReceiver(secret=SECRET) as hook:
        for feed, body in feeds_for(STORIES, 1).items():
            server.routes[f"/{feed}.xml"] = Route(body)
        (tmp_path / "watchlist.yaml").write_text(
            "rules:\n  - {id: watch, query: 'North Korea OR Iran OR Pyongyang'}\n"
        )
        feeds = "".join(
            f"  - {{id: {f}, url: '{server.url(f'/{f}.xml')}', backfill: true}}\n"
            for f in ("agg-a", "agg-b", "agg-c")
        )
        config = tmp_path / "monitor.yaml"
        config.write_text(
            f"database: '{url}'\nwatchlist: {tmp_path / 'watchlist.yaml'}\n"
            "poll: {allow_private_networks: true, jitter: 0s}\n"
            f"channels:\n  ops: {{type: webhook, url: '{hook.url}', secret: '{SECRET}'}}\n"
            f"feeds:\n{feeds}"
        )
        first = monitor(config, "once")
        assert first.returncode == 0, first.stdout + first.stderr
        alerts = hook.wait_for(len(STORIES) + len(OTHERS), timeout=30)
        assert all(a.verified for a in alerts)
        by_title = {a.json["item"]["title"]: a.json for a in alerts}
        assert len(by_title) == len(alerts) == len(STORIES) + len(OTHERS), sorted(by_title)
        for story, (headline, _body) in STORIES.items():
            [alert] = [a for t, a in by_title.items() if t.startswith(headline.split(",")[0][:40])]
            named = {alert["item"]["feed"]} | {s.split(" ")[0] for s in alert["also_reported_by"]}
            assert named == {"agg-a", "agg-b", "agg-c"}, (story, alert)
        for _story, (headline, _body) in OTHERS.items():
            assert by_title[headline]["also_reported_by"] == []  # never merged

        for feed, body in feeds_for(STORIES, 2).items():
            server.routes[f"/{feed}.xml"] = Route(body)
        second = monitor(config, "once", "--all")
        assert second.returncode == 0, second.stdout + second.stderr
        assert "1 new items, 0 alerts" in second.stdout + second.stderr
        assert len(hook.requests) == len(alerts)  # the late copy did not alert

        listing = monitor(config, "alerts")
        assert listing.returncode == 0
        assert "https://late.example/l" in listing.stdout.replace("\n", "").replace(" ", "") or (
            "late.example" in listing.stdout
        ), listing.stdout
    engine = db.make_engine(url)
    atom = feedparser.parse(
        atom_feed(recent_alerts(engine, 50), self_url="", now=dt.datetime.now(dt.UTC))
    )
    engine.dispose()
    [launch] = [e for e in atom.entries if STORIES["launch"][0][:30] in e.title]
    assert "late.example/l" in launch.summary and "agg-b" in launch.summary


def test_copies_polled_by_two_workers_on_postgresql_alert_once(tmp_path: Path, pg_url: str) -> None:
    """Acceptance 5: two `monitor run` workers share one PostgreSQL database and twelve feeds,
    each carrying a copy of the same story (the edits of `copies`, in turn); whichever worker
    polls which feed, the story alerts once, and its alert names every other feed."""
    headline, body = STORIES["launch"]
    variants = list(copies("launch", headline, body).values())
    names = [f"wire-{i:02d}" for i in range(12)]
    both_asked = threading.Event()
    with FeedServer() as server, WebhookReceiver(secret=SECRET) as hook:
        for i, name in enumerate(names):
            t, b, u = variants[i % len(variants)]
            # The server answers no one until both workers have asked (two fetches at a time
            # each), then is busy (0.5 s a response): neither worker can take every feed, however
            # slowly the other starts.
            entry = (f"{name}:1", t, b, f"{u}/{name}")
            server.routes[f"/{name}.xml"] = Route(rss([entry]), delay=0.5, gate=both_asked)
        (tmp_path / "watchlist.yaml").write_text("rules:\n  - {id: dprk, query: 'North Korea'}\n")
        feeds = "".join(
            f"  - {{id: {n}, url: '{server.url(f'/{n}.xml')}', backfill: true}}\n" for n in names
        )
        daemons = []
        agents_of_both = {"story-test/w1", "story-test/w2"}
        for w in ("w1", "w2"):
            config = tmp_path / f"{w}.yaml"
            config.write_text(
                f"database: '{pg_url}'\nwatchlist: {tmp_path / 'watchlist.yaml'}\n"
                "poll: {allow_private_networks: true, interval: 1h, jitter: 0s, concurrency: 2,"
                f" user_agent: story-test/{w}}}\n"
                "server: {listen: '127.0.0.1:0'}\n"
                f"channels:\n  ops: {{type: webhook, url: '{hook.url}', secret: '{SECRET}'}}\n"
                f"feeds:\n{feeds}"
            )
            daemons.append(Daemon(config))
        try:
            deadline = time.monotonic() + 60
            while {h.get("user-agent") for h in server.arrived} != agents_of_both:
                assert time.monotonic() < deadline, {h.get("user-agent") for h in server.arrived}
                time.sleep(0.05)
            both_asked.set()
            while {r.path for r in server.requests} != {f"/{n}.xml" for n in names}:
                assert time.monotonic() < deadline, sorted({r.path for r in server.requests})
                time.sleep(0.05)
            engine = db.make_engine(pg_url)
            deadline = time.monotonic() + 30
            while True:  # every copy stored and folded (the last writer may still be at it)
                with db.session(engine) as s:
                    stored = s.exec(select(Item)).all()
                    alerts = s.exec(select(Alert)).all()
                named = {a.item_id for a in alerts}
                if (
                    len(stored) == len(names)
                    and alerts
                    and sum(len(a.also_reported_by) for a in alerts) + len(named) >= len(names)
                ):
                    break
                assert time.monotonic() < deadline, (
                    len(stored),
                    [a.also_reported_by for a in alerts],
                )
                time.sleep(0.05)
            engine.dispose()
            [alert] = alerts
            assert {alert.item_id} | {i.id for i in stored} == {i.id for i in stored}
            assert len(alert.also_reported_by) == len(names) - 1
            agents = {r.headers.get("user-agent") for r in server.requests}
            assert agents == agents_of_both, agents  # both polled
            hook.wait_for(1, timeout=20)
        finally:
            for d in daemons:
                assert d.stop() == 0
    assert len(hook.requests) == 1, [r.json["item"]["feed"] for r in hook.requests]
