"""How each channel shows a feed health change: the webhook payload (SPEC's shape, checked
against docs/webhook-health.schema.json), the email subject and parts, Apprise's title and
body, the log event; feed-provided text kept on one line and escaped. Real receivers: a
verifying webhook receiver, Apprise's json:// service posting to one, structlog's capture."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import jsonschema
import pytest
import structlog

from monitor.alert import Notifier, feedhealth
from monitor.alert.apprise import AppriseNotifier
from monitor.alert.email import EmailNotifier
from monitor.alert.log import LogNotifier
from monitor.alert.webhook import WebhookNotifier
from monitor.models import HealthMessage
from tests.servers import WebhookReceiver

SCHEMA = json.loads(
    (Path(__file__).parent.parent / "docs" / "webhook-health.schema.json").read_text()
)
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
T = dt.datetime(2026, 12, 1, 9, 30, 15, 123, tzinfo=dt.UTC)

FAILING = HealthMessage(
    id="fhlt_0001",
    created_at=T,
    state="failing",
    previous="ok",
    feed="gs-wmd",
    feed_url="https://www.globalsecurity.org/wmd/library/news/rss.xml",
    feed_title="GlobalSecurity <WMD> News",
    since=T,
    consecutive_errors=3,
    last_status=500,
    last_error="HTTP 500",
    last_success_at=T - dt.timedelta(hours=1),
    last_new_at=T - dt.timedelta(hours=2),
)
STALE = dataclasses.replace(
    FAILING,
    state="stale",
    consecutive_errors=0,
    last_status=200,
    last_error=None,
    last_new_at=T - dt.timedelta(days=6, hours=3),
)
RECOVERED = dataclasses.replace(STALE, state="ok", previous="failing", last_new_at=T)


@pytest.mark.parametrize("msg", [FAILING, STALE, RECOVERED], ids=lambda m: m.state)
def test_the_webhook_payload_is_the_specs(msg: HealthMessage) -> None:
    payload = feedhealth.webhook_payload(msg)
    jsonschema.Draft202012Validator(
        SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(payload)
    assert payload["feed"] == {"id": "gs-wmd", "url": msg.feed_url, "title": msg.feed_title}
    assert payload["created_at"] == "2026-12-01T09:30:15Z"
    assert (payload["state"], payload["previous"]) == (msg.state, msg.previous)


def test_subjects() -> None:
    assert feedhealth.email_subject(FAILING) == "[FEED FAILING] gs-wmd: HTTP 500"
    assert feedhealth.email_subject(STALE) == "[FEED STALE] gs-wmd: no new item for 6d"
    assert feedhealth.email_subject(RECOVERED) == "[FEED RECOVERED] gs-wmd: ok again (was failing)"
    forged = dataclasses.replace(FAILING, last_error="HTTP 500\r\nBcc: victim@example.org =?x?=")
    subject = feedhealth.email_subject(forged)
    assert "\n" not in subject and "\r" not in subject and "=?" not in subject


def test_the_email_is_escaped_and_carries_the_facts() -> None:
    mail = EmailNotifier(
        "ops", to=["a@example.org"], sender="monitor@example.org", host="127.0.0.1"
    ).health_message(FAILING)
    assert mail["Subject"] == "[FEED FAILING] gs-wmd: HTTP 500"
    assert mail["Message-ID"] == "<fhlt_0001@example.org>"
    html_part = mail.get_body(("html",))
    text_part = mail.get_body(("plain",))
    assert html_part is not None and text_part is not None
    html = html_part.get_content()
    assert "GlobalSecurity &lt;WMD&gt; News" in html and "<WMD>" not in html
    assert f'<a href="{FAILING.feed_url}">' in html
    text = text_part.get_content()
    for fact in ("gs-wmd", "failing (was ok)", "HTTP 500", "2026-12-01 08:30:15 UTC"):
        assert fact in text


async def test_a_webhook_channel_posts_it_signed() -> None:
    with WebhookReceiver(secret=SECRET) as hook:
        notifier = WebhookNotifier("ops", hook.url, SECRET, timeout=10)
        assert isinstance(notifier, Notifier)
        await notifier.send_health(FAILING)
        await notifier.aclose()
        [req] = hook.wait_for(1)
    assert req.verified and req.headers["webhook-id"] == "fhlt_0001"
    assert req.json == feedhealth.webhook_payload(FAILING)


async def test_apprise_gets_the_subject_and_the_text() -> None:
    with WebhookReceiver() as hook:
        notifier = AppriseNotifier("chat", [f"json://127.0.0.1:{hook.port}/hook"], timeout=10)
        await notifier.send_health(STALE)
        await notifier.send_health(RECOVERED)
        first, second = hook.wait_for(2)
    assert first.json["title"] == feedhealth.email_subject(STALE)
    assert first.json["message"] == feedhealth.email_text(STALE).strip()
    assert (first.json["type"], second.json["type"]) == ("warning", "success")


async def test_the_log_channel_writes_one_event() -> None:
    with structlog.testing.capture_logs() as logs:
        await LogNotifier("console").send_health(FAILING)
    [event] = logs
    assert event["event"] == "feed_health" and event["log_level"] == "warning"
    assert (event["feed"], event["state"], event["last_error"]) == ("gs-wmd", "failing", "HTTP 500")
