"""The webhook channel against a real HTTP receiver that verifies every signature with the
standardwebhooks package; a few transport-level cases with httpx.MockTransport."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from monitor import __version__
from monitor.alert import Notifier, render
from monitor.alert.webhook import WebhookNotifier
from monitor.errors import ConfigError, DeliveryError
from tests.servers import Reply, WebhookReceiver, make_alert

SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET) as r:
        yield r


@pytest.fixture
async def notifier(receiver: WebhookReceiver) -> AsyncIterator[WebhookNotifier]:
    n = WebhookNotifier("ops", receiver.url, SECRET, timeout=5)
    yield n
    await n.aclose()


async def test_delivers_signed_json(receiver: WebhookReceiver, notifier: WebhookNotifier) -> None:
    assert isinstance(notifier, Notifier)
    msg = make_alert()
    before = int(time.time())
    await notifier.send(msg)
    [req] = receiver.wait_for(1)
    assert req.verified, req.verify_error
    assert req.method == "POST" and req.path == "/hook"
    assert req.json == render.webhook_payload(msg)
    assert req.headers["content-type"] == "application/json"
    assert req.headers["user-agent"] == f"monitor/{__version__}"
    assert req.headers["webhook-id"] == msg.id
    assert before <= int(req.headers["webhook-timestamp"]) <= int(time.time())
    assert req.headers["webhook-signature"].startswith("v1,")


async def test_non_ascii_payload_is_signed_over_the_exact_bytes(
    receiver: WebhookReceiver, notifier: WebhookNotifier
) -> None:
    msg = make_alert(title="Пхеньян запустил ракету «Хвасон-18»", source="كوريا الشمالية")
    await notifier.send(msg)
    [req] = receiver.wait_for(1)
    assert req.verified, req.verify_error
    assert req.json["item"]["title"] == msg.title


async def test_retries_keep_the_webhook_id(
    receiver: WebhookReceiver, notifier: WebhookNotifier
) -> None:
    receiver.script(500, Reply(503, {"Retry-After": "7"}), 200)
    msg = make_alert()
    with pytest.raises(DeliveryError) as first:
        await notifier.send(msg)
    assert not first.value.permanent and first.value.retry_after is None
    assert "HTTP 500" in str(first.value)
    with pytest.raises(DeliveryError) as second:
        await notifier.send(msg)
    assert not second.value.permanent and second.value.retry_after == 7.0
    await notifier.send(msg)
    reqs = receiver.wait_for(3)
    assert [r.reply for r in reqs] == [500, 503, 200]
    assert {r.headers["webhook-id"] for r in reqs} == {msg.id}
    assert all(r.verified for r in reqs), [r.verify_error for r in reqs]
    assert reqs[0].body == reqs[2].body


@pytest.mark.parametrize(
    ("reply", "retry_after"),
    [
        (Reply(429, {"Retry-After": "30"}), 30.0),
        (Reply(429, {"Retry-After": "Thu, 01 Jan 1970 00:00:00 GMT"}), 0.0),
        (Reply(429), None),
        (Reply(408), None),
        (Reply(502, body=b"upstream down"), None),
        (Reply(504, {"Retry-After": "garbage"}), None),
    ],
)
async def test_retryable_statuses(
    receiver: WebhookReceiver, notifier: WebhookNotifier, reply: Reply, retry_after: float | None
) -> None:
    receiver.script(reply)
    with pytest.raises(DeliveryError) as err:
        await notifier.send(make_alert())
    assert not err.value.permanent
    assert err.value.retry_after == retry_after
    assert f"HTTP {reply.status}" in str(err.value)


async def test_retry_after_http_date_in_the_future(
    receiver: WebhookReceiver, notifier: WebhookNotifier
) -> None:
    from email.utils import formatdate

    receiver.script(Reply(429, {"Retry-After": formatdate(time.time() + 90, usegmt=True)}))
    with pytest.raises(DeliveryError) as err:
        await notifier.send(make_alert())
    assert err.value.retry_after is not None and 80 <= err.value.retry_after <= 91


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 413, 422])
async def test_other_4xx_are_permanent(
    receiver: WebhookReceiver, notifier: WebhookNotifier, status: int
) -> None:
    receiver.script(Reply(status, body=b'{"error":"nope"}'))
    with pytest.raises(DeliveryError) as err:
        await notifier.send(make_alert())
    assert err.value.permanent
    assert f"HTTP {status}" in str(err.value)
    assert '{"error":"nope"}' in str(err.value)  # the receiver's word, for the operator


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_redirects_are_not_followed(
    receiver: WebhookReceiver, notifier: WebhookNotifier, status: int
) -> None:
    with WebhookReceiver(secret=SECRET) as elsewhere:
        receiver.script(Reply(status, {"Location": elsewhere.url + "?token=s3cr3t"}))
        with pytest.raises(DeliveryError) as err:
            await notifier.send(make_alert())
        assert err.value.permanent
        assert "redirects are not followed" in str(err.value)
        assert "s3cr3t" not in str(err.value)
        assert len(receiver.wait_for(1)) == 1
        assert elsewhere.requests == []


async def test_timeout_is_retryable_and_bounded(receiver: WebhookReceiver) -> None:
    receiver.script(Reply(200, delay=30))
    notifier = WebhookNotifier("ops", receiver.url, SECRET, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(DeliveryError) as err:
        await notifier.send(make_alert())
    await notifier.aclose()
    assert time.monotonic() - started < 5
    assert not err.value.permanent
    assert "no answer within 0.3s" in str(err.value)


async def test_connection_refused_is_retryable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Nothing listens on that port now.
    notifier = WebhookNotifier("ops", f"http://127.0.0.1:{port}/hook", SECRET, timeout=5)
    with pytest.raises(DeliveryError) as err:
        await notifier.send(make_alert())
    await notifier.aclose()
    assert not err.value.permanent
    assert "ConnectError" in str(err.value)


async def test_errors_never_show_the_secret_or_url_credentials(receiver: WebhookReceiver) -> None:
    url = receiver.url.replace("http://", "http://alerts:pa55w0rd@") + "/T0K3N?key=k3y"
    notifier = WebhookNotifier("ops", url, SECRET, timeout=5)
    receiver.script(Reply(500, body=f"echo {url} {SECRET}".encode()))
    with pytest.raises(DeliveryError) as err:
        await notifier.send(make_alert())
    await notifier.aclose()
    text = str(err.value)
    for secret in ("pa55w0rd", "alerts:", "T0K3N", "k3y", SECRET, SECRET[6:]):
        assert secret not in text
    assert f"127.0.0.1:{receiver.port}" in text


async def test_unsigned_without_secret(receiver: WebhookReceiver) -> None:
    notifier = WebhookNotifier("ops", receiver.url, None)
    await notifier.send(make_alert())
    await notifier.aclose()
    [req] = receiver.wait_for(1)
    assert "webhook-signature" not in req.headers
    assert req.headers["webhook-id"] == make_alert().id
    assert "webhook-timestamp" in req.headers
    assert not req.verified


async def test_wrong_secret_does_not_verify(receiver: WebhookReceiver) -> None:
    notifier = WebhookNotifier("ops", receiver.url, "whsec_" + "QUJD" * 8)
    await notifier.send(make_alert())
    await notifier.aclose()
    [req] = receiver.wait_for(1)
    assert not req.verified


async def test_alert_id_with_a_dot_is_refused_before_sending(
    receiver: WebhookReceiver, notifier: WebhookNotifier
) -> None:
    with pytest.raises(DeliveryError) as err:
        await notifier.send(make_alert(id="rule.42"))
    assert err.value.permanent
    assert receiver.requests == []


@pytest.mark.parametrize("secret", ["whsec_!!!not-base64!!!", "whsec_", ""])
def test_bad_secret_is_a_config_error_without_the_secret(secret: str) -> None:
    with pytest.raises(ConfigError) as err:
        WebhookNotifier("ops", "https://hooks.example.org/x", secret)
    assert "not-base64" not in str(err.value)
    assert "channel ops" in str(err.value)


@pytest.mark.parametrize("url", ["ftp://x.example/", "hooks.example.org/x", "http://"])
def test_bad_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        WebhookNotifier("ops", url, None)


# --- transport-level cases (no server needed) ----------------------------------------------


async def test_network_error_is_retryable_and_scrubbed() -> None:
    url = "https://user:hunter22@hooks.example.org/services/T0K3N"

    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {request.url} with {SECRET}", request=request)

    notifier = WebhookNotifier("ops", url, SECRET, transport=httpx.MockTransport(fail))
    with pytest.raises(DeliveryError) as err:
        await notifier.send(make_alert())
    await notifier.aclose()
    assert not err.value.permanent
    text = str(err.value)
    assert "hunter22" not in text and "T0K3N" not in text and SECRET[6:] not in text
    assert "https://hooks.example.org" in text


async def test_unexpected_exception_becomes_delivery_error() -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("bug")

    notifier = WebhookNotifier(
        "ops", "https://hooks.example.org/x", None, transport=httpx.MockTransport(boom)
    )
    with pytest.raises(DeliveryError) as err:
        await notifier.send(make_alert())
    await notifier.aclose()
    assert not err.value.permanent
    assert "RuntimeError" in str(err.value)


async def test_success_codes_via_mock_transport() -> None:
    seen: list[httpx.Request] = []

    def ok(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    notifier = WebhookNotifier(
        "ops", "https://hooks.example.org/x", SECRET, transport=httpx.MockTransport(ok)
    )
    await notifier.send(make_alert())
    await notifier.aclose()
    assert seen[0].headers["webhook-id"] == make_alert().id
