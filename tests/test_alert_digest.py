"""Digests: many alerts as one message, for each channel. Rendering (pure) first, then the
real channels: one email through a real SMTP server (aiosmtpd, STARTTLS), one signed POST to
a real receiver that verifies it with the standardwebhooks package, one log event."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
import structlog
from referencing import Registry, Resource

from monitor import severity
from monitor.alert import Notifier, digest, render
from monitor.alert.apprise import AppriseNotifier
from monitor.alert.email import EmailNotifier
from monitor.alert.log import LogNotifier
from monitor.alert.webhook import WebhookNotifier
from monitor.errors import DeliveryError
from monitor.models import AlertMessage
from tests.servers import SMTPServer, WebhookReceiver, make_alert
from tests.test_alert_email import EXPECTED_HEADERS

DOCS = Path(__file__).parent.parent / "docs"
ALERT_SCHEMA = json.loads((DOCS / "webhook-payload.schema.json").read_text())
DIGEST_SCHEMA = json.loads((DOCS / "webhook-digest.schema.json").read_text())
SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
USER, PASSWORD = "alerts", "s3cret-pw"
HOUR = dt.timedelta(hours=1)
DIGEST_ID = "dgst_5f2c9a0e71b34d6e"
T0 = dt.datetime(2019, 6, 18, 16, 0, tzinfo=dt.UTC)
SEVERITY_CYCLE = ("medium", "medium", "low", "medium", "high", "low", "info", "medium")


def burst(n: int = 500, **changes: object) -> list[AlertMessage]:
    """n distinct alerts over an hour, mixed severities and rules, like a real burst."""
    base = make_alert()
    out = []
    for i in range(n):
        severity = "critical" if i == 17 else SEVERITY_CYCLE[i % len(SEVERITY_CYCLE)]
        fields: dict[str, object] = {
            "id": f"01J0ALERT{i:05d}",
            "created_at": T0 + dt.timedelta(seconds=7 * i),
            "rule_id": f"rule-{i % 7}",
            "rule_name": f"Watch rule {i % 7}",
            "severity": severity,
            "title": f"Story number {i}: North Korea fires short-range missiles",
            "url": f"https://news.example.org/2019/06/18/story-{i}",
            "summary": "North Korea has fired a series of short-range missiles. " * 8,
        }
        out.append(dataclasses.replace(base, **{**fields, **changes}))  # type: ignore[arg-type]
    return out


def validator() -> jsonschema.Draft202012Validator:
    registry: Registry = Registry().with_resource(
        ALERT_SCHEMA["$id"], Resource.from_contents(ALERT_SCHEMA)
    )
    return jsonschema.Draft202012Validator(
        DIGEST_SCHEMA,
        registry=registry,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


# --- rendering ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "text"),
    [
        (dt.timedelta(hours=1), "1h"),
        (dt.timedelta(minutes=30), "30m"),
        (dt.timedelta(minutes=90), "90m"),
        (dt.timedelta(days=1), "1d"),
        (dt.timedelta(hours=36), "36h"),
        (dt.timedelta(seconds=45), "45s"),
        (dt.timedelta(seconds=61), "61s"),
    ],
)
def test_window_is_written_as_in_monitor_yaml(window: dt.timedelta, text: str) -> None:
    from monitor.units import parse_duration

    assert digest.format_window(window) == text
    assert parse_duration(text) == window


def test_a_burst_has_no_window() -> None:
    """Issue 10 #14: a burst digest (many alerts due at once, no `digest:` window) said "15
    alerts in the last 0s" and its webhook had "window": "0s"."""
    msgs = burst(15)
    assert digest.format_window(dt.timedelta(0)) is None
    assert digest.headline(msgs, dt.timedelta(0)).startswith("15 alerts at once (")
    payload = digest.digest_payload(DIGEST_ID, msgs, dt.timedelta(0), dt.datetime.now(dt.UTC))
    assert payload["window"] is None
    validator().validate(payload)


def test_subject_counts_severities_and_names_rules() -> None:
    subject = digest.digest_subject(burst(), HOUR)
    assert subject.startswith(
        "[monitor] 500 alerts in the last 1h (1 CRITICAL, 62 HIGH, 250 MEDIUM, 125 LOW, 62 INFO): "
    )
    assert "Watch rule 3" in subject  # rule 3 raised the critical alert: named first
    assert subject.split(": ", 1)[1].startswith("Watch rule 3")
    assert len(subject) <= render.SUBJECT_MAX
    one = digest.digest_subject([make_alert()], dt.timedelta(minutes=30))
    assert one == "[monitor] 1 alert in the last 30m (1 HIGH): North Korea missile activity"


@pytest.mark.parametrize(
    "rule_name",
    ["Rule\r\nBcc: victim@example.org", "=?UTF-8?Q?=0A?=Reply-To: x@y", "R" * 500, "a\u2028b"],
)
def test_subject_is_one_bounded_line_without_encoded_words(rule_name: str) -> None:
    subject = digest.digest_subject(burst(3, rule_name=rule_name), HOUR)
    assert len(subject) <= render.SUBJECT_MAX
    assert not re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", subject)
    assert "=?" not in subject


def test_order_is_most_severe_first_then_as_given() -> None:
    msgs = burst(20)
    ordered = digest.ordered(msgs)
    assert ordered[0].severity == "critical"
    ranks = [-severity.rank(m.severity) for m in ordered]
    assert ranks == sorted(ranks)
    highs = [m.id for m in ordered if m.severity == "high"]
    assert highs == [m.id for m in msgs if m.severity == "high"]


def test_webhook_payload_validates_and_holds_every_alert() -> None:
    msgs = burst()
    created = dt.datetime(2019, 6, 18, 17, 0, 3, 500, tzinfo=dt.UTC)
    payload = digest.digest_payload(DIGEST_ID, msgs, HOUR, created)
    validator().validate(payload)
    assert payload["type"] == "digest" and payload["id"] == DIGEST_ID
    assert payload["created_at"] == "2019-06-18T17:00:03Z"
    assert payload["window"] == "1h" and payload["count"] == 500
    assert [a["id"] for a in payload["alerts"]] == [m.id for m in msgs]  # order kept
    first = render.webhook_payload(msgs[0])
    assert payload["alerts"][0]["item"]["summary"] == first["item"]["summary"][:500]
    assert {k: v for k, v in payload["alerts"][0].items() if k != "item"} == {
        k: v for k, v in first.items() if k != "item"
    }
    for alert in payload["alerts"][:3]:
        jsonschema.Draft202012Validator(ALERT_SCHEMA).validate(alert)
    size = len(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode())
    assert size < 1_000_000, size  # nginx's default client_max_body_size is 1 MB


def test_digest_schema_rejects_other_shapes() -> None:
    payload = digest.digest_payload(DIGEST_ID, burst(2), HOUR, T0)
    for broken in (
        {**payload, "extra": 1},
        {**payload, "window": "1 hour"},
        {**payload, "alerts": []},
        {**payload, "alerts": [{**payload["alerts"][0], "type": "digest"}]},
        {**payload, "id": "dgst.1"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            validator().validate(broken)


def test_text_lists_every_alert_and_bounds_the_details() -> None:
    msgs = burst(snippet="…fired «missiles» " + "x" * 5000)
    text = digest.digest_text(DIGEST_ID, msgs, HOUR, T0)
    assert text.startswith("500 alerts in the last 1h (1 CRITICAL, 62 HIGH")
    for m in msgs:
        assert f"{m.title}" in text and m.url is not None and m.url in text
    assert text.count("«missiles»") == digest.DIGEST_FULL
    assert "450 more:" in text
    assert max(len(line) for line in text.splitlines()) <= digest.DIGEST_SNIPPET_MAX + 3
    assert "\r" not in text
    assert f"monitor digest {DIGEST_ID}, 500 alerts" in text


def test_text_for_chat_is_one_line_per_alert() -> None:
    text = digest.digest_text(DIGEST_ID, burst(30), HOUR, T0, full=0)
    lines = text.splitlines()
    assert lines[0].startswith("30 alerts in the last 1h")
    listed = [line for line in lines if re.match(r"\d+\. \[", line)]
    assert len(listed) == 30
    assert listed[0].startswith("1. [CRITICAL] Watch rule 3: Story number 17")
    assert listed[0].endswith("<https://news.example.org/2019/06/18/story-17>")


def test_more_than_the_list_limit_are_counted() -> None:
    msgs = burst(digest.DIGEST_LIST_MAX + 5)
    text = digest.digest_text(DIGEST_ID, msgs, HOUR, T0)
    page = digest.digest_html(DIGEST_ID, msgs, HOUR, T0)
    assert "...and 5 more; see `monitor alerts`." in text
    assert "...and 5 more; see <code>monitor alerts</code>." in page


def test_html_escapes_feed_text_and_links_only_http() -> None:
    hostile = make_alert(
        title='<script>alert("t")</script><img src=x onerror=alert(1)>',
        url="javascript:alert(document.cookie)",
        source="<i>Press</i>",
        feed="gs-wmd",
        terms=("<b>missile</b>",),
        snippet="a «<b>missile</b>» b",
        also_reported_by=("<script>x</script>",),
    )
    later = burst(digest.DIGEST_FULL + 1, url="data:text/html,<script>alert(1)</script>")
    page = digest.digest_html(DIGEST_ID, [hostile, *later], HOUR, T0)
    assert "<script" not in page and "<img" not in page and "<i>" not in page
    assert "javascript:" not in page and "data:text" not in page
    assert "href" not in page  # no alert has an http(s) url
    assert "&lt;script&gt;" in page
    assert "<mark>&lt;b&gt;missile&lt;/b&gt;</mark>" in page
    good = digest.digest_html(DIGEST_ID, burst(60), HOUR, T0)
    assert good.count('<a href="https://news.example.org/') == 60
    assert '<ol start="51">' in good
    assert good.count("<mark>missiles</mark>") == digest.DIGEST_FULL


def test_overlong_urls_are_not_linked() -> None:
    url = "https://news.example.org/?" + "t=1&" * 300
    page = digest.digest_html(DIGEST_ID, [make_alert(url=url)], HOUR, T0)
    assert "href" not in page


# --- email ---------------------------------------------------------------------------------


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    with SMTPServer(starttls=True, auth={USER: PASSWORD}) as server:
        yield server


def email_notifier(server: SMTPServer) -> EmailNotifier:
    return EmailNotifier(
        "analysts",
        to=["analyst@example.org"],
        sender="monitor <monitor@example.org>",
        host=server.host,
        port=server.port,
        username=USER,
        password=PASSWORD,
        timeout=10,
        tls_context=server.client_context(),
    )


async def test_500_alerts_make_one_email_listing_all(smtp: SMTPServer) -> None:
    notifier = email_notifier(smtp)
    msgs = burst()
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    await notifier.send_digest(DIGEST_ID, msgs, HOUR)
    [mail] = smtp.wait_for(1)
    assert mail.tls and mail.login == USER
    m = mail.message
    assert len(m.get_all("Subject") or []) == 1
    assert str(m["Subject"]).startswith("[monitor] 500 alerts in the last 1h (1 CRITICAL")
    assert m["Message-ID"] == f"<{DIGEST_ID}@example.org>"  # the sender's domain
    assert before <= m["Date"].datetime <= dt.datetime.now(dt.UTC)
    assert sorted(k.lower() for k in m) == sorted(EXPECTED_HEADERS)
    text_part = m.get_body(preferencelist=("plain",))
    html_part = m.get_body(preferencelist=("html",))
    assert text_part is not None and html_part is not None
    text, page = text_part.get_content(), html_part.get_content()
    for msg in msgs:
        assert msg.title in text and msg.title in page
        assert f'href="{msg.url}"' in page
    assert len(mail.raw) < 400_000, len(mail.raw)  # measured: about 170 kB


async def test_digest_resend_keeps_the_message_id(smtp: SMTPServer) -> None:
    notifier = email_notifier(smtp)
    await notifier.send_digest(DIGEST_ID, burst(3), HOUR)
    await notifier.send_digest(DIGEST_ID, burst(3), HOUR)
    first, second = smtp.wait_for(2)
    assert first.message["Message-ID"] == second.message["Message-ID"]


async def test_digest_subject_cannot_add_a_header(smtp: SMTPServer) -> None:
    msgs = burst(2, rule_name="=?UTF-8?Q?=0A?=Reply-To: x@y\r\nBcc: v@example.org")
    await email_notifier(smtp).send_digest(DIGEST_ID, msgs, HOUR)
    [mail] = smtp.wait_for(1)
    assert mail.message["Reply-To"] is None and mail.message["Bcc"] is None
    assert mail.rcpt_tos == ["analyst@example.org"]


async def test_digest_smtp_errors_map_like_single_alerts() -> None:
    with SMTPServer(starttls=True, auth={USER: PASSWORD}, replies=["554 5.7.1 no"]) as server:
        with pytest.raises(DeliveryError) as err:
            await email_notifier(server).send_digest(DIGEST_ID, burst(2), HOUR)
        assert err.value.permanent and "554" in str(err.value)


async def test_empty_digest_sends_nothing(smtp: SMTPServer) -> None:
    await email_notifier(smtp).send_digest(DIGEST_ID, [], HOUR)
    with WebhookReceiver(secret=SECRET) as hook:
        webhook = WebhookNotifier("ops", hook.url, SECRET, timeout=5)
        await webhook.send_digest(DIGEST_ID, [], HOUR)
        await webhook.aclose()
        assert hook.requests == []
    with structlog.testing.capture_logs() as logs:
        await LogNotifier("console").send_digest(DIGEST_ID, [], HOUR)
    assert logs == [] and smtp.messages == []


# --- webhook -------------------------------------------------------------------------------


async def test_webhook_digest_is_one_signed_post() -> None:
    with WebhookReceiver(secret=SECRET, responses=[500, 200]) as hook:
        notifier = WebhookNotifier("ops", hook.url, SECRET, timeout=10)
        msgs = burst()
        before = int(time.time())
        with pytest.raises(DeliveryError) as err:
            await notifier.send_digest(DIGEST_ID, msgs, HOUR)
        assert not err.value.permanent and "HTTP 500" in str(err.value)
        await notifier.send_digest(DIGEST_ID, msgs, HOUR)
        await notifier.aclose()
        first, second = hook.wait_for(2)
    for req in (first, second):
        assert req.verified, req.verify_error
        assert req.headers["webhook-id"] == DIGEST_ID
    validator().validate(second.json)
    assert second.json["count"] == 500 and len(second.json["alerts"]) == 500
    assert [a["id"] for a in second.json["alerts"]] == [m.id for m in msgs]
    created = dt.datetime.strptime(second.json["created_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert before <= created.replace(tzinfo=dt.UTC).timestamp() <= time.time()


async def test_webhook_digest_id_with_a_dot_is_refused_before_sending() -> None:
    with WebhookReceiver(secret=SECRET) as hook:
        notifier = WebhookNotifier("ops", hook.url, SECRET, timeout=5)
        with pytest.raises(DeliveryError) as err:
            await notifier.send_digest("dgst.1", burst(2), HOUR)
        await notifier.aclose()
        assert err.value.permanent and hook.requests == []


# --- log -----------------------------------------------------------------------------------


async def test_log_digest_is_one_event() -> None:
    notifier = LogNotifier("console")
    msgs = burst(5, title="Missiles\nforged: line")
    with structlog.testing.capture_logs() as logs:
        await notifier.send_digest(DIGEST_ID, msgs, HOUR)
    [event] = logs
    assert event["event"] == "alert_digest" and event["log_level"] == "info"
    assert event["channel"] == "console" and event["digest_id"] == DIGEST_ID
    assert event["count"] == 5 and event["window"] == "1h"
    assert event["severities"] == {"high": 1, "medium": 3, "low": 1}
    assert [a["id"] for a in event["alerts"]] == [m.id for m in msgs]
    assert event["alerts"][0]["title"] == "Missiles forged: line"


def test_every_channel_implements_the_protocol() -> None:
    notifiers: list[object] = [
        LogNotifier("console"),
        EmailNotifier("e", to=["a@example.org"], sender="m@example.org", host="127.0.0.1"),
        WebhookNotifier("hook", "https://hooks.example.org/x", None),
        AppriseNotifier("chat", ["json://127.0.0.1:9/x"]),
    ]
    assert all(isinstance(n, Notifier) for n in notifiers)
