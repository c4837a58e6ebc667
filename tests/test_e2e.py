"""End to end, with real parts only: the `monitor` command in its own process, feeds from an
HTTP server on 127.0.0.1, a webhook receiver verifying Standard Webhooks signatures, an
aiosmtpd server with STARTTLS and login, and a real database (SQLite file and PostgreSQL).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.feedserver import FeedServer, Route
from tests.servers import SMTPServer, WebhookReceiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SEED_TITLE = "China president's North Korea visit to send strong message to US"
NEW_ITEM = b"""<item><title>North Korea test-fires a new missile off its east coast</title>
<link>https://example.org/news/dprk-launch?utm_source=rss</link>
<guid>urn:example:dprk-launch-1</guid><pubDate>Mon, 30 Nov 2026 09:00:00 GMT</pubDate>
<description>&lt;p&gt;Seoul said North Korea fired a ballistic missile.&lt;/p&gt;</description>
</item>"""


def other_feed(extra: bytes = b"") -> bytes:
    return (
        b"""<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>
<title>Wire</title><link>https://example.org/</link><description>d</description>
<item><title>Old story on North Korea and a missile</title><link>https://example.org/old</link>
<guid>urn:example:old</guid><pubDate>Sun, 29 Nov 2026 09:00:00 GMT</pubDate>
<description>An older North Korea missile item, there before monitor first polled.</description>
</item>"""
        + extra
        + b"</channel></rss>"
    )


@pytest.fixture
def parts(
    tmp_path: Path, db_url: str
) -> Iterator[tuple[FeedServer, WebhookReceiver, SMTPServer, Path]]:
    with (
        FeedServer() as feeds,
        WebhookReceiver(secret=SECRET) as hook,
        SMTPServer(starttls=True, auth={"alerts": "pw-for-e2e"}) as smtp,
    ):
        feeds.routes["/seed.xml"] = Route((ROOT / "seeds/feeds/seed.xml").read_bytes(), gzip=True)
        feeds.routes["/wire.xml"] = Route(other_feed())
        ca = tmp_path / "ca.pem"
        smtp.ca.cert_pem.write_to_path(str(ca))
        # The mission's literal rule (the demo's uses groups and also takes the Seoul item).
        rules = tmp_path / "watchlist.yaml"
        rules.write_text(
            "rules:\n  - {id: dprk-missile, name: North Korea missile activity,"
            " query: North Korea + missile, severity: high}\n"
        )
        config = tmp_path / "monitor.yaml"
        config.write_text(
            f"""\
database: {db_url}
watchlist: {rules}
poll: {{allow_private_networks: true, timeout: 10s}}
feeds:
  - {{id: seed-demo, url: "{feeds.url("/seed.xml")}", backfill: true}}
  - {{id: wire, url: "{feeds.url("/wire.xml")}"}}
channels:
  ops: {{type: webhook, url: "{hook.url}", secret: "${{HOOK_SECRET}}"}}
  analysts:
    type: email
    to: [analyst@example.org]
    from: monitor@example.org
    smtp:
      host: {smtp.host}
      port: {smtp.port}
      starttls: true
      username: alerts
      password: ${{SMTP_PASSWORD}}
      ca_file: {ca}       # the test server's private CA (issue 10 #26)
"""
        )
        yield feeds, hook, smtp, config


def monitor(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(HOOK_SECRET=SECRET, SMTP_PASSWORD="pw-for-e2e")
    env.pop("SSL_CERT_FILE", None)  # the private CA is trusted through smtp.ca_file alone
    return subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=config.parent,
    )


def test_poll_match_alert_once_then_never_again(parts) -> None:  # type: ignore[no-untyped-def]
    feeds, hook, smtp, config = parts

    first = monitor(config, "once")
    assert first.returncode == 0, first.stderr
    [request] = hook.wait_for(1)
    assert request.verified, request.verify_error
    payload = request.json
    assert payload["type"] == "alert" and payload["id"] == request.headers["webhook-id"]
    assert payload["rule"] == {
        "id": "dprk-missile",
        "name": "North Korea missile activity",
        "severity": "high",
    }
    assert payload["item"]["title"] == SEED_TITLE
    assert payload["item"]["source"] == "Iran Press TV"
    assert payload["item"]["published_at"] == "2019-06-18T16:01:00Z"
    assert payload["item"]["feed"] == "seed-demo"
    assert "utm_" not in payload["item"]["url"]
    assert payload["match"]["terms"] == ["north korea", "missile"]
    assert "«" in payload["match"]["snippet"]

    [mail] = smtp.wait_for(1)
    assert mail.tls and mail.login == "alerts"
    msg = mail.message
    assert msg["Subject"] == f"[HIGH] North Korea missile activity: {SEED_TITLE}"
    assert payload["id"] in msg["Message-ID"]
    kinds = sorted(part.get_content_type() for part in msg.walk() if not part.is_multipart())
    assert kinds == ["text/html", "text/plain"]

    # The wire feed was new: its old item was recorded, not alerted (no flood on first poll).
    # Polling again, due or not, in new processes (a restart each time), sends nothing.
    for args in (("once",), ("once", "--all"), ("once", "--all")):
        again = monitor(config, *args)
        assert again.returncode == 0, again.stderr
    assert len(hook.requests) == 1 and len(smtp.messages) == 1

    # A new matching item alerts exactly once, on both channels.
    feeds.routes["/wire.xml"] = Route(other_feed(NEW_ITEM))
    assert monitor(config, "once", "--all").returncode == 0
    assert monitor(config, "once", "--all").returncode == 0
    requests = hook.wait_for(2)
    assert len(requests) == 2 and all(r.verified for r in requests)
    assert requests[1].json["item"]["title"].startswith("North Korea test-fires")
    assert requests[1].json["item"]["url"] == "https://example.org/news/dprk-launch"
    assert len(smtp.wait_for(2)) == 2

    listing = monitor(config, "alerts")
    assert listing.returncode == 0 and "dprk-missile" in listing.stdout
    assert listing.stdout.count("sent") >= 4  # two alerts, two channels each
    health = monitor(config, "feeds")
    assert health.returncode == 0 and "seed-demo" in health.stdout and "wire" in health.stdout
