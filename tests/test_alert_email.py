"""The email channel against a real SMTP server (aiosmtpd) with STARTTLS, implicit TLS and
AUTH, using certificates from a CA made at test time (trustme)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from monitor.alert import Notifier, render
from monitor.alert.email import EmailNotifier
from monitor.errors import DeliveryError
from tests.servers import SMTPServer, make_alert

USER, PASSWORD = "alerts", "s3cret-pw"
EXPECTED_HEADERS = [
    "subject",
    "from",
    "to",
    "date",
    "message-id",
    "auto-submitted",
    "mime-version",
    "content-type",
]


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    with SMTPServer(starttls=True, auth={USER: PASSWORD}) as server:
        yield server


def notifier_for(server: SMTPServer, **kw: Any) -> EmailNotifier:
    args: dict[str, Any] = {
        "to": ["analyst@example.org", "Duty Officer <duty@example.org>"],
        "sender": "monitor <monitor@example.org>",
        "host": server.host,
        "port": server.port,
        "username": USER,
        "password": PASSWORD,
        "timeout": 5,
        "tls_context": server.client_context(),
    }
    args.update(kw)
    return EmailNotifier("analysts", **args)


async def test_starttls_login_and_multipart_message(smtp: SMTPServer) -> None:
    notifier = notifier_for(smtp)
    assert isinstance(notifier, Notifier)
    msg = make_alert()
    await notifier.send(msg)
    await notifier.aclose()
    [mail] = smtp.wait_for(1)
    assert mail.tls and mail.login == USER
    assert [(a.login, a.tls, a.success) for a in smtp.auth_attempts] == [(USER, True, True)]
    assert mail.mail_from == "monitor@example.org"
    assert mail.rcpt_tos == ["analyst@example.org", "duty@example.org"]
    m = mail.message
    assert m["Subject"] == (
        "[HIGH] North Korea missile activity: North Korea fires short-range missiles into sea"
    )
    assert m["Message-ID"] == "<01J0ALERT7QK3Z@example.org>"  # the sender's domain
    assert m["From"] == "monitor <monitor@example.org>"
    assert "duty@example.org" in m["To"]
    assert m["Date"].datetime.isoformat() == "2019-06-18T16:05:07+00:00"
    assert m["Auto-Submitted"] == "auto-generated"
    assert m.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in m.iter_parts()] == ["text/plain", "text/html"]
    text = m.get_body(preferencelist=("plain",))
    html = m.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    assert text.get_content().replace("\r\n", "\n") == render.email_text(msg)
    assert html.get_content().replace("\r\n", "\n") == render.email_html(msg)
    assert sorted(k.lower() for k in m) == sorted(EXPECTED_HEADERS)


async def test_message_id_is_the_same_on_resend(smtp: SMTPServer) -> None:
    notifier = notifier_for(smtp)
    await notifier.send(make_alert())
    await notifier.send(make_alert())
    first, second = smtp.wait_for(2)
    message_id = "<01J0ALERT7QK3Z@example.org>"
    assert first.message["Message-ID"] == second.message["Message-ID"] == message_id


async def test_self_signed_certificate_with_validate_certs_off(smtp: SMTPServer) -> None:
    notifier = notifier_for(smtp, tls_context=None, validate_certs=False)
    await notifier.send(make_alert())
    [mail] = smtp.wait_for(1)
    assert mail.tls and mail.login == USER


async def test_untrusted_certificate_sends_nothing(smtp: SMTPServer) -> None:
    notifier = notifier_for(smtp, tls_context=None, validate_certs=True)
    with pytest.raises(DeliveryError) as err:
        await notifier.send(make_alert())
    assert not err.value.permanent
    assert "TLS failed" in str(err.value) or "CERTIFICATE" in str(err.value).upper()
    assert smtp.auth_attempts == [] and smtp.messages == []


async def test_implicit_tls() -> None:
    with SMTPServer(implicit_tls=True, auth={USER: PASSWORD}) as server:
        notifier = notifier_for(server, tls=True)  # starttls=True by default: ignored
        await notifier.send(make_alert())
        [mail] = server.wait_for(1)
        assert mail.tls and mail.login == USER


async def test_cleartext_relay_without_login() -> None:
    with SMTPServer() as server:
        notifier = notifier_for(server, starttls=False, username=None, password=None)
        await notifier.send(make_alert())
        [mail] = server.wait_for(1)
        assert not mail.tls and mail.login is None


# --- header injection ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "title",
    [
        "Missile test\r\nBcc: victim@example.org\r\nX-Evil: 1",
        "Missile test\nReply-To: x@y",
        "=?UTF-8?Q?=0A?=Reply-To: x@y",
        "a =?utf-8?b?DQpYLUV2aWw6IDE=?= b",
        "Missile\x85test\u2028Reply-To: x@y",
        "Ракетный пуск " * 30 + "\r\nReply-To: x@y",
    ],
)
async def test_title_can_never_add_a_header(smtp: SMTPServer, title: str) -> None:
    await notifier_for(smtp).send(make_alert(title=title))
    [mail] = smtp.wait_for(1)
    m = mail.message
    assert sorted(k.lower() for k in m) == sorted(EXPECTED_HEADERS)
    assert len(m.get_all("Subject") or []) == 1
    assert m["Reply-To"] is None and m["Bcc"] is None and m["X-Evil"] is None
    subject = str(m["Subject"]).strip()  # a header folded after "Subject:" unfolds to " ..."
    assert "\n" not in subject and "\r" not in subject
    assert subject.startswith("[HIGH] North Korea missile activity: ")
    assert mail.rcpt_tos == ["analyst@example.org", "duty@example.org"]


async def test_encoded_word_title_arrives_as_literal_text(smtp: SMTPServer) -> None:
    await notifier_for(smtp).send(make_alert(title="=?UTF-8?Q?=0A?=Reply-To: x@y"))
    [mail] = smtp.wait_for(1)
    assert str(mail.message["Subject"]).endswith(": = ?UTF-8?Q?=0A?=Reply-To: x@y")


async def test_html_part_has_no_script_or_javascript_link(smtp: SMTPServer) -> None:
    msg = make_alert(
        summary='<script>alert("x")</script> fired <a href="javascript:evil()">x</a>',
        url="javascript:alert(document.domain)",
        title="<script>t()</script>",
    )
    await notifier_for(smtp).send(msg)
    [mail] = smtp.wait_for(1)
    html_part = mail.message.get_body(preferencelist=("html",))
    assert html_part is not None
    html = html_part.get_content()
    assert "<script" not in html.lower()
    assert "<a " not in html  # the item url is not http(s): no link at all
    assert 'href="javascript' not in html.lower()
    assert "&lt;script&gt;" in html


async def test_serialized_headers_are_checked_before_sending(
    smtp: SMTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # If the subject ever reached the email package raw, the header check still stops it
    # (Python 3.11's email package turns this encoded-word into a real line break).
    monkeypatch.setattr(render, "email_subject", lambda msg: "=?UTF-8?Q?=0A?=Reply-To: x@y")
    with pytest.raises(DeliveryError) as err:
        await notifier_for(smtp).send(make_alert())
    assert err.value.permanent
    assert "unexpected header" in str(err.value)
    assert smtp.messages == [] and smtp.auth_attempts == []


# --- transport security policy -------------------------------------------------------------


async def test_no_starttls_offered_means_no_login_and_no_message() -> None:
    # The server offers AUTH in the clear (auth_require_tls=False): a trap for a client
    # that would log in anyway.
    with SMTPServer(starttls=False, auth={USER: PASSWORD}, auth_require_tls=False) as server:
        notifier = notifier_for(server)
        with pytest.raises(DeliveryError) as err:
            await notifier.send(make_alert())
        assert not err.value.permanent  # documented: the offer can come back; never downgrade
        assert "does not offer STARTTLS" in str(err.value)
        assert server.auth_attempts == []
        assert server.messages == []


async def test_the_cleartext_auth_trap_is_real() -> None:
    # The server above would record a cleartext login: a client that only "uses STARTTLS
    # when offered" (aiosmtplib's default) falls into it.
    import aiosmtplib

    with SMTPServer(starttls=False, auth={USER: PASSWORD}, auth_require_tls=False) as server:
        client = aiosmtplib.SMTP(hostname=server.host, port=server.port, timeout=5)
        await client.connect()
        await client.login(USER, PASSWORD)
        await client.quit()
        assert [(a.login, a.tls) for a in server.auth_attempts] == [(USER, False)]


async def test_no_starttls_offered_without_login_still_refuses() -> None:
    with SMTPServer(starttls=False) as server:
        notifier = notifier_for(server, username=None, password=None)
        with pytest.raises(DeliveryError):
            await notifier.send(make_alert())
        assert server.messages == []


async def test_login_without_any_tls_is_a_permanent_config_error() -> None:
    with SMTPServer(starttls=False, auth={USER: PASSWORD}, auth_require_tls=False) as server:
        notifier = notifier_for(server, starttls=False, tls=False)
        with pytest.raises(DeliveryError) as err:
            await notifier.send(make_alert())
        assert err.value.permanent
        assert "never sent without TLS" in str(err.value)
        assert server.auth_attempts == [] and server.messages == []


async def test_wrong_password_is_permanent_and_not_echoed(smtp: SMTPServer) -> None:
    notifier = notifier_for(smtp, password="wrong-pw-123")
    with pytest.raises(DeliveryError) as err:
        await notifier.send(make_alert())
    assert err.value.permanent
    assert "535" in str(err.value)
    assert "wrong-pw-123" not in str(err.value)
    assert smtp.messages == []


@pytest.mark.parametrize(
    ("reply", "permanent"),
    [
        ("451 4.3.0 Try again later", False),
        ("452 4.3.1 Insufficient system storage", False),
        ("554 5.7.1 Message rejected", True),
        ("552 5.3.4 Message too big", True),
    ],
)
async def test_smtp_reply_codes(reply: str, permanent: bool) -> None:
    with SMTPServer(starttls=True, auth={USER: PASSWORD}, replies=[reply]) as server:
        notifier = notifier_for(server)
        with pytest.raises(DeliveryError) as err:
            await notifier.send(make_alert())
        assert err.value.permanent is permanent
        assert reply[:3] in str(err.value)
        await notifier.send(make_alert())  # the next attempt is accepted
        assert len(server.wait_for(1)) == 1


async def test_connection_refused_is_retryable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    notifier = EmailNotifier(
        "analysts", to=["a@example.org"], sender="m@example.org", host="127.0.0.1", port=port
    )
    with pytest.raises(DeliveryError) as err:
        await notifier.send(make_alert())
    assert not err.value.permanent


async def test_silent_server_times_out() -> None:
    # A listener that never says hello.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        notifier = EmailNotifier(
            "analysts",
            to=["a@example.org"],
            sender="m@example.org",
            host="127.0.0.1",
            port=s.getsockname()[1],
            timeout=0.3,
        )
        with pytest.raises(DeliveryError) as err:
            await notifier.send(make_alert())
    assert not err.value.permanent
