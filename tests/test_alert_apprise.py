"""The Apprise channel against real local receivers: Apprise's `json://` and `form://` services
POST to a WebhookReceiver on 127.0.0.1 (no secret: it records without verifying). URLs of
other services (Slack, Telegram, ...) appear only in validation tests and are never sent to."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from urllib.parse import parse_qs

import apprise
import pytest

from monitor.alert import Notifier, digest, render
from monitor.alert.apprise import (
    AppriseNotifier,
    apprise_secrets,
    describe_apprise_url,
    validate_apprise_urls,
)
from monitor.errors import DeliveryError
from tests.servers import Reply, WebhookReceiver, make_alert
from tests.test_alert_digest import DIGEST_ID, HOUR, burst


def json_url(hook: WebhookReceiver, extra: str = "") -> str:
    return f"json://127.0.0.1:{hook.port}{hook.path}{extra}"


async def test_alert_arrives_with_title_and_body() -> None:
    with WebhookReceiver() as hook:
        notifier = AppriseNotifier("chat", [json_url(hook)], timeout=10)
        assert isinstance(notifier, Notifier)
        msg = make_alert(title="Missiles <b>&</b> «more»", summary="<script>x</script>")
        await notifier.send(msg)
        await notifier.aclose()
        [req] = hook.wait_for(1)
    assert req.path == "/hook"
    assert req.json["title"] == render.email_subject(msg)
    assert req.json["message"] == render.email_text(msg).strip()
    assert req.json["type"] == "warning"  # severity high


async def test_form_service_and_severity_types() -> None:
    with WebhookReceiver() as hook:
        url = f"form://127.0.0.1:{hook.port}/form"
        notifier = AppriseNotifier("chat", [url], timeout=10)
        await notifier.send(make_alert(severity="critical"))
        await notifier.send(make_alert(severity="low"))
        first, second = hook.wait_for(2)
    fields = parse_qs(first.body.decode())
    assert fields["title"] == [render.email_subject(make_alert(severity="critical"))]
    assert "North Korea fires short-range missiles into sea" in fields["message"][0]
    assert fields["type"] == ["failure"]
    assert parse_qs(second.body.decode())["type"] == ["info"]


async def test_digest_is_one_message_most_severe_first() -> None:
    msgs = burst()
    with WebhookReceiver() as hook:
        # overflow=upstream: the whole body, as a receiver without a length limit gets it.
        notifier = AppriseNotifier("chat", [json_url(hook, "?overflow=upstream")], timeout=10)
        await notifier.send_digest(DIGEST_ID, msgs, HOUR)
        [req] = hook.wait_for(1)
    assert req.json["title"] == digest.digest_subject(msgs, HOUR)
    body = req.json["message"]
    assert body.startswith("500 alerts in the last 1h (1 CRITICAL, 62 HIGH, 250 MEDIUM")
    assert body.splitlines()[2].startswith("1. [CRITICAL] Watch rule 3: Story number 17")
    for m in msgs:
        assert f": {m.title} <{m.url}>" in body
    assert req.json["type"] == "failure"  # the worst severity in the digest


async def test_long_digest_is_truncated_by_default_not_refused() -> None:
    with WebhookReceiver() as hook:
        notifier = AppriseNotifier("chat", [json_url(hook)], timeout=10)
        await notifier.send_digest(DIGEST_ID, burst(), HOUR)
        [req] = hook.wait_for(1)
    body = req.json["message"]
    assert body.startswith("500 alerts in the last 1h")
    assert "1. [CRITICAL] Watch rule 3: Story number 17" in body
    assert len(body) <= 32_768  # Apprise's limit for json://; the head survives


async def test_failure_is_retryable_and_says_why() -> None:
    with WebhookReceiver(responses=[500, 200]) as hook:
        notifier = AppriseNotifier("chat", [json_url(hook)], timeout=10)
        with pytest.raises(DeliveryError) as err:
            await notifier.send(make_alert())
        assert not err.value.permanent and err.value.retry_after is None
        assert str(err.value).startswith("apprise chat: JSON (urls[0]): failed")
        if hasattr(apprise, "AppriseResult"):  # Apprise 2 says why; 1.x only that it failed
            assert "error=500" in str(err.value)
        await notifier.send(make_alert())
        assert [r.reply for r in hook.wait_for(2)] == [500, 200]


async def test_a_retry_skips_the_urls_that_already_succeeded() -> None:
    with WebhookReceiver() as good, WebhookReceiver(responses=[503, 503]) as bad:
        notifier = AppriseNotifier("chat", [json_url(good), json_url(bad)], timeout=10)
        for _ in range(2):
            with pytest.raises(DeliveryError) as err:
                await notifier.send(make_alert())
            assert not err.value.permanent
            assert "JSON (urls[1])" in str(err.value) and "urls[0]" not in str(err.value)
            assert "(1 of 2 delivered, not repeated on retry)" in str(err.value)
        await notifier.send(make_alert())
        assert len(good.requests) == 1
        assert [r.reply for r in bad.wait_for(3)] == [503, 503, 200]
        # Once delivered everywhere, the alert is forgotten: a later send goes to both.
        await notifier.send(make_alert())
        assert len(good.wait_for(2)) == 2 and len(bad.wait_for(4)) == 4


async def test_timeout_is_retryable_and_bounded() -> None:
    with WebhookReceiver(responses=[Reply(200, delay=30)]) as hook:
        notifier = AppriseNotifier("chat", [json_url(hook)], timeout=0.5)
        started = time.monotonic()
        with pytest.raises(DeliveryError) as err:
            await notifier.send(make_alert())
        assert time.monotonic() - started < 5
        assert not err.value.permanent
        assert "no answer within 0.5s" in str(err.value)


async def test_connection_refused_is_retryable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    notifier = AppriseNotifier("chat", [f"json://127.0.0.1:{port}/hook"], timeout=10)
    with pytest.raises(DeliveryError) as err:
        await notifier.send(make_alert())
    assert not err.value.permanent


# --- URLs Apprise cannot use -----------------------------------------------------------------

BAD = [
    "slack://",  # no tokens
    "bogus://x",  # no such service
    "https://hooks.example.org/x",  # not an Apprise notification URL
    "",
    "json://127.0.0.1/a json://127.0.0.1/b",  # two URLs in one string
    "file:///etc/apprise.yml",  # a configuration URL, not a service
]
GOOD = [
    "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#alerts",
    "tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/12315544/",
    "discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js",
    "ntfy://monitor-alerts-7f3a",
    "mailtos://alerts:pa55word@mail.example.org?to=analyst@example.org",
    "json://127.0.0.1:8080/hook",
]


def test_validate_returns_the_bad_urls_in_order() -> None:
    assert validate_apprise_urls(GOOD) == []
    assert validate_apprise_urls([GOOD[0], *BAD, GOOD[1]]) == BAD


def test_describe_names_the_scheme_only() -> None:
    assert describe_apprise_url(GOOD[0], 2) == "urls[2] (slack://…)"
    assert describe_apprise_url("T0K3N") == "not a URL"
    assert describe_apprise_url("x y!://secret") == "not a URL"


async def test_a_bad_url_is_permanent_and_nothing_is_sent() -> None:
    with WebhookReceiver() as hook:
        notifier = AppriseNotifier("chat", [json_url(hook), "slack://T0K3Nsecret"], timeout=10)
        for send in (
            notifier.send(make_alert()),
            notifier.send_digest(DIGEST_ID, burst(2), HOUR),
        ):
            with pytest.raises(DeliveryError) as err:
                await send
            assert err.value.permanent
            assert "urls[1] (slack://…)" in str(err.value)
            assert "T0K3Nsecret" not in str(err.value)
        await asyncio.sleep(0.2)
        assert hook.requests == []


async def test_no_urls_is_permanent() -> None:
    with pytest.raises(DeliveryError) as err:
        await AppriseNotifier("chat", []).send(make_alert())
    assert err.value.permanent


# --- secrets ---------------------------------------------------------------------------------


async def test_secrets_never_reach_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = ["hunter2pw", "Sekr1tB3arer", "qtok7731", "pathT0K3N"]
    with WebhookReceiver(responses=[Reply(500, body=b"nope")], path="/pathT0K3N") as hook:
        url = (
            f"json://alerts:hunter2pw@127.0.0.1:{hook.port}/pathT0K3N"
            "?+X-Api-Key=Key%20Sekr1tB3arer&-token=qtok7731"
        )
        notifier = AppriseNotifier(
            "chat", [url, "bogus://alerts:hunter2pw@x/pathT0K3N"], timeout=10
        )
        with pytest.raises(DeliveryError) as bad:
            await notifier.send(make_alert())
        notifier = AppriseNotifier("chat", [url], timeout=10)
        with pytest.raises(DeliveryError) as failed:
            await notifier.send(make_alert())
        [req] = hook.wait_for(1)
    # The secrets were really sent (so a leak would have had something to leak)...
    assert req.headers["x-api-key"] == "Key Sekr1tB3arer"
    assert req.headers["authorization"].startswith("Basic ")
    assert "token=qtok7731" in req.path
    # ...and appear in no error text and no log record.
    for text in [str(bad.value), str(failed.value), *(r.getMessage() for r in caplog.records)]:
        for secret in secrets:
            assert secret not in text, text
    assert any(r.name == "apprise" for r in caplog.records)  # Apprise did log


def test_apprise_secrets_cover_every_part() -> None:
    found = apprise_secrets(
        ["json://u5er:p%40ss@host.example:8080/p4th/T0K3N?-token=q1w2e3&+X-Key=Bearer%20abcd"]
    )
    for part in ("u5er", "p%40ss", "p@ss", "host.example", "p4th", "T0K3N", "q1w2e3", "abcd"):
        assert part in found
    assert "json" not in found and "8080" not in found and "token" not in found
