"""Rendering (pure), signing (checked against the standardwebhooks package) and the log
channel."""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
import unicodedata
from pathlib import Path

import jsonschema
import pytest
import structlog
from standardwebhooks import Webhook

from monitor.alert import Notifier, render, signing
from monitor.alert.log import LogNotifier
from monitor.web import parse_retry_after
from tests.servers import make_alert

SCHEMA = json.loads(
    (Path(__file__).parent.parent / "docs" / "webhook-payload.schema.json").read_text()
)
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

HOSTILE_TITLES = [
    "line one\r\nBcc: victim@example.org",
    "=?UTF-8?Q?=0A?=Reply-To: x@y",
    "=?utf-8?b?Cg==?=X-Injected: 1",
    "next\x85line\u2028sep\u2029para\x0bvt\x0cff\x1b[31mred\x00nul",
    "A" * 5000,
    "",
]


# --- webhook payload -------------------------------------------------------------------------


def test_webhook_payload_is_the_spec_shape() -> None:
    assert render.webhook_payload(make_alert(also_reported_by=("Yonhap",))) == {
        "type": "alert",
        "id": "01J0ALERT7QK3Z",
        "created_at": "2019-06-18T16:05:07Z",
        "rule": {"id": "dprk-missile", "name": "North Korea missile activity", "severity": "high"},
        "item": {
            "title": "North Korea fires short-range missiles into sea",
            "url": "https://www.presstv.com/Detail/2019/06/18/598851/North-Korea-missiles",
            "source": "Iran Press TV",
            "feed": "gs-wmd",
            "published_at": "2019-06-18T16:01:00Z",
            "summary": "North Korea has fired a series of short-range missiles.\nSeoul says so.",
        },
        "match": {
            "terms": ["north korea", "missile"],
            "snippet": "…North Korea has fired a series of short-range «missiles» into…",
        },
        "also_reported_by": ["Yonhap"],
    }


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"url": None, "source": None, "published_at": None},
        {"summary": "x" * 10_000, "title": HOSTILE_TITLES[3]},
        {
            "created_at": dt.datetime(
                2024, 2, 29, 23, 59, 59, tzinfo=dt.timezone(dt.timedelta(hours=9))
            )
        },
        {"severity": "critical", "terms": (), "snippet": ""},
        {"title": "\ud800 lone surrogate", "summary": "bad \udfff text"},
    ],
)
def test_webhook_payload_validates_against_the_schema(changes: dict[str, object]) -> None:
    payload = render.webhook_payload(make_alert(**changes))
    jsonschema.Draft202012Validator(
        SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(payload)
    json.dumps(payload, ensure_ascii=False).encode("utf-8")  # always encodable


def test_schema_rejects_other_shapes() -> None:
    payload = render.webhook_payload(make_alert())
    payload["item"]["extra"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(payload, SCHEMA)


def test_timestamps_are_utc_with_z() -> None:
    tokyo = dt.timezone(dt.timedelta(hours=9))
    assert render.iso_utc(dt.datetime(2019, 6, 19, 1, 1, 0, 999, tzinfo=tokyo)) == (
        "2019-06-18T16:01:00Z"
    )
    assert render.iso_utc(dt.datetime(2019, 6, 18, 16, 1)) == "2019-06-18T16:01:00Z"
    assert render.iso_utc(None) is None


def test_summary_is_bounded() -> None:
    summary = render.webhook_payload(make_alert(summary="word " * 2000))["item"]["summary"]
    assert len(summary) == render.SUMMARY_MAX
    assert summary.endswith("…")


# --- email subject -------------------------------------------------------------------------


def test_subject_format() -> None:
    assert render.email_subject(make_alert()) == (
        "[HIGH] North Korea missile activity: North Korea fires short-range missiles into sea"
    )


@pytest.mark.parametrize("title", HOSTILE_TITLES)
def test_subject_is_one_bounded_line_without_encoded_words(title: str) -> None:
    subject = render.email_subject(make_alert(title=title))
    assert subject.startswith("[HIGH] North Korea missile activity: ")
    assert len(subject) <= render.SUBJECT_MAX
    assert not re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", subject)
    assert "=?" not in subject


def test_subject_keeps_non_latin_text() -> None:
    title = "کره شمالی موشک شلیک کرد"  # Persian, with a zero-width non-joiner kept
    assert render.email_subject(make_alert(title=title)).endswith(title)


# --- email bodies --------------------------------------------------------------------------


def test_html_escapes_feed_text_and_links_only_http() -> None:
    msg = make_alert(
        title='<img src=x onerror="alert(1)"> & co',
        summary="<script>alert('x')</script> javascript:alert(1)",
        snippet="a «<b>missile</b>» b",
        source="<i>Press</i>",
        url="javascript:alert(document.cookie)",
    )
    page = render.email_html(msg)
    assert "<script" not in page
    assert "<img" not in page and "<i>" not in page and "<b>" not in page
    assert "javascript:alert(document.cookie)" not in page
    assert "href" not in page
    assert "&lt;script&gt;" in page
    assert "<mark>&lt;b&gt;missile&lt;/b&gt;</mark>" in page
    assert "link omitted" in page


@pytest.mark.parametrize(
    "url",
    [
        "JavaScript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox",
        "//evil.example/x",
        "https://ok.example/a b",
        "https://ok.example/\nx",
    ],
)
def test_no_link_for_non_http_urls(url: str) -> None:
    assert "href" not in render.email_html(make_alert(url=url))


def test_http_link_is_attribute_escaped() -> None:
    page = render.email_html(make_alert(url='https://x.example/?a=1&b="2"'))
    assert 'href="https://x.example/?a=1&amp;b=&quot;2&quot;"' in page


def test_text_part() -> None:
    text = render.email_text(make_alert())
    assert text.startswith("North Korea fires short-range missiles into sea\nhttps://www.presstv")
    assert "Matched:" in text and "north korea, missile" in text
    assert "Source:" in text and "Iran Press TV" in text
    assert "Published: 2019-06-18 16:01:00 UTC" in text
    assert "«missiles»" in text
    assert "\r" not in text and "\x1b" not in render.email_text(make_alert(title="\x1b[2J"))


def test_message_id_is_stable_and_safe() -> None:
    assert render.email_message_id(make_alert()) == "<01J0ALERT7QK3Z@monitor>"  # no domain
    assert render.email_message_id(make_alert(), "Example.ORG") == "<01J0ALERT7QK3Z@example.org>"
    assert render.email_message_id(make_alert(), "bad domain>") == "<01J0ALERT7QK3Z@monitor>"
    assert render.sender_domain("Monitor <alerts@osint.example.org>") == "osint.example.org"
    odd = render.email_message_id(make_alert(id="a b>c@d"))
    assert re.fullmatch(r"<[0-9a-f]{40}@monitor>", odd)
    assert odd == render.email_message_id(make_alert(id="a b>c@d"))


# --- signing -------------------------------------------------------------------------------


def test_signature_verifies_with_standardwebhooks() -> None:
    body = json.dumps(render.webhook_payload(make_alert()), separators=(",", ":")).encode()
    now = int(dt.datetime.now(dt.UTC).timestamp())
    sig = signing.sign(SECRET, "01J0ALERT7QK3Z", now, body)
    assert sig.startswith("v1,")
    headers = {
        "webhook-id": "01J0ALERT7QK3Z",
        "webhook-timestamp": str(now),
        "webhook-signature": sig,
    }
    assert Webhook(SECRET).verify(body, headers) == json.loads(body)
    # ...and equals the reference implementation's signature, byte for byte.
    ts = dt.datetime.fromtimestamp(now, dt.UTC)
    assert sig == Webhook(SECRET).sign("01J0ALERT7QK3Z", ts, body.decode())


def test_signature_covers_id_timestamp_and_body() -> None:
    base = signing.sign(SECRET, "abc", 1674087231, b"{}")
    assert base != signing.sign(SECRET, "abd", 1674087231, b"{}")
    assert base != signing.sign(SECRET, "abc", 1674087232, b"{}")
    assert base != signing.sign(SECRET, "abc", 1674087231, b"{ }")
    assert base == signing.sign(SECRET.removeprefix("whsec_"), "abc", 1674087231, b"{}")


@pytest.mark.parametrize("bad_id", ["", "a.b", "a b", "a\nb"])
def test_signing_refuses_ids_that_break_the_scheme(bad_id: str) -> None:
    with pytest.raises(ValueError):
        signing.sign(SECRET, bad_id, 1, b"")


@pytest.mark.parametrize("bad", ["whsec_", "whsec_not base64!", "hunter2!"])
def test_bad_secret_error_does_not_show_it(bad: str) -> None:
    with pytest.raises(ValueError) as err:
        signing.decode_secret(bad)
    body = bad.removeprefix("whsec_")
    if body:
        assert body not in str(err.value)


# --- Retry-After ---------------------------------------------------------------------------


def test_parse_retry_after() -> None:
    now = dt.datetime(2015, 10, 21, 7, 28, tzinfo=dt.UTC).timestamp()
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now=now) == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("99999999") == 86_400.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-5") is None
    assert parse_retry_after(None) is None


# --- log channel ---------------------------------------------------------------------------


async def test_log_notifier_writes_one_readable_event() -> None:
    notifier = LogNotifier("console")
    assert isinstance(notifier, Notifier)
    with structlog.testing.capture_logs() as logs:
        await notifier.send(make_alert(title="Missiles\nfake log line"))
    await notifier.aclose()
    [event] = logs
    assert event["event"] == "alert"
    assert event["log_level"] == "info"
    assert event["rule"] == "dprk-missile"
    assert event["severity"] == "high"
    assert event["title"] == "Missiles fake log line"
    assert event["url"].startswith("https://www.presstv.com/")
    assert event["source"] == "Iran Press TV"
    assert event["terms"] == ["north korea", "missile"]
    assert "«missiles»" in event["snippet"]
    assert event["channel"] == "console"


def test_the_control_classes_are_exactly_the_categories_they_stand_for() -> None:
    """render's regexes stand for Unicode categories Cc, Zl and Zp (tab and newline kept in
    the multi-line one): every code point agrees."""
    for cp in range(sys.maxunicode + 1):
        ch = chr(cp)
        control = unicodedata.category(ch) in ("Cc", "Zl", "Zp")
        assert bool(render._CONTROL.match(ch)) == control, hex(cp)
        assert bool(render._CONTROL_BUT_LINES.match(ch)) == (control and ch not in "\t\n"), hex(cp)
