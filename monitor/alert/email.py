"""The email channel: one multipart/alternative message (text and HTML) per alert, or per
digest (many alerts, one email; see digest.py), or per feed health change (feedhealth.py:
`[FEED FAILING] gs-wmd: HTTP 500`), via SMTP.

Transport security, decided before a byte of the message or the login leaves:

    tls=True                 implicit TLS from the first byte (port 465); `starttls` is ignored
    starttls=True (default)  STARTTLS is required: a server that does not offer it gets
                             neither AUTH nor the message (retryable error, see below)
    neither                  cleartext, for a local relay; a `username` is then refused
                             (permanent error): a login is never sent without TLS

Outcome of one attempt:

    message accepted                  delivered (recipients refused among several: logged)
    SMTP 5xx (greeting, AUTH, MAIL,   permanent
      RCPT, DATA; 530, 535, 550, 554)
    SMTP 4xx                          retryable
    connection refused/reset, timeout retryable
    TLS handshake or certificate      retryable (an expired certificate is usually renewed)
    STARTTLS not offered              retryable: the offer can come back (a relay restarted
                                      without its key drops STARTTLS; so does a middlebox
                                      that strips it); we never downgrade, and the error
                                      says why, so the operator sees it in `monitor alerts`

The whole attempt has one deadline, `timeout`. QUIT after an accepted message is best-effort:
once the server said 250 to DATA the alert is delivered, whatever happens to the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.policy
import email.utils
import ssl
from collections.abc import Callable, Sequence
from email.message import EmailMessage
from email.parser import BytesParser

import aiosmtplib
import structlog

from monitor.alert import digest, feedhealth, render
from monitor.alert.attempt import attempt, building
from monitor.errors import ConfigError, DeliveryError
from monitor.models import AlertMessage, HealthMessage

log = structlog.get_logger("monitor.alert")

# The only header fields we write. The serialized message is checked against this list
# before it is sent, whatever the email package did with the feed-provided subject.
_HEADERS = (
    "subject",
    "from",
    "to",
    "date",
    "message-id",
    "auto-submitted",
    "mime-version",
    "content-type",
)


class EmailNotifier:
    """Sends each alert as one email to `to` through the SMTP server `host:port`.

    `tls_context` (optional) replaces the default certificate checks, e.g. to trust a private
    CA; `validate_certs=False` accepts any certificate (a test server, never production).
    """

    def __init__(
        self,
        name: str,
        *,
        to: Sequence[str],
        sender: str,
        host: str,
        port: int = 587,
        starttls: bool = True,
        tls: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        validate_certs: bool = True,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.name = name
        self._to = [str(a) for a in to]
        self._sender = sender
        self._env_from = email.utils.parseaddr(sender)[1]
        self._env_to = [email.utils.parseaddr(a)[1] for a in self._to]
        if not self._env_from or not self._env_to or not all(self._env_to):
            raise ConfigError(f"channel {name}: email needs a sender and recipient addresses")
        self._host = host
        self._port = port
        self._tls = tls
        self._starttls = starttls and not tls
        self._username = username
        self._password = password
        self._timeout = timeout
        self._validate_certs = validate_certs
        self._tls_context = tls_context
        self._domain = render.sender_domain(sender)
        self._where = f"email {name} (smtp {host}:{port})"

    # --- the message ----------------------------------------------------------------------

    def message(self, msg: AlertMessage) -> EmailMessage:
        """The email for one alert (not yet sent)."""
        return self._compose(
            subject=render.email_subject(msg),
            date=msg.created_at,
            message_id=render.email_message_id(msg, self._domain),
            text=render.email_text(msg),
            html=render.email_html(msg),
        )

    def health_message(self, msg: HealthMessage) -> EmailMessage:
        """The email for one feed health change (not yet sent)."""
        return self._compose(
            subject=feedhealth.email_subject(msg),
            date=msg.created_at,
            message_id=render.message_id(msg.id, self._domain),
            text=feedhealth.email_text(msg),
            html=feedhealth.email_html(msg),
        )

    def digest_message(
        self,
        digest_id: str,
        msgs: Sequence[AlertMessage],
        window: dt.timedelta,
        *,
        now: dt.datetime | None = None,
    ) -> EmailMessage:
        """The email for a digest (not yet sent): dated `now`, Message-ID from digest_id."""
        now = now or dt.datetime.now(dt.UTC)
        return self._compose(
            subject=digest.digest_subject(msgs, window),
            date=now,
            message_id=render.message_id(digest_id, self._domain),
            text=digest.digest_text(digest_id, msgs, window, now),
            html=digest.digest_html(digest_id, msgs, window, now),
        )

    def _compose(
        self, *, subject: str, date: dt.datetime, message_id: str, text: str, html: str
    ) -> EmailMessage:
        m = EmailMessage(policy=email.policy.SMTP)
        m["Subject"] = subject
        m["From"] = self._sender
        m["To"] = ", ".join(self._to)
        if date.tzinfo is None:
            date = date.replace(tzinfo=dt.UTC)
        m["Date"] = email.utils.format_datetime(date.astimezone(dt.UTC))
        m["Message-ID"] = message_id
        # RFC 3834: keeps vacation responders and the like from answering alerts.
        m["Auto-Submitted"] = "auto-generated"
        m.set_content(text, subtype="plain", cte="quoted-printable")
        m.add_alternative(html, subtype="html", cte="quoted-printable")
        return m

    def message_bytes(self, msg: AlertMessage) -> bytes:
        """The exact bytes sent (CRLF line ends), checked to carry our header fields only."""
        return _checked_bytes(self.message(msg))

    # --- sending ------------------------------------------------------------------------

    async def send(self, msg: AlertMessage) -> None:
        await self._send(lambda: self.message_bytes(msg))

    async def send_health(self, msg: HealthMessage) -> None:
        await self._send(lambda: _checked_bytes(self.health_message(msg)))

    async def send_digest(
        self, digest_id: str, msgs: Sequence[AlertMessage], window: dt.timedelta
    ) -> None:
        """One email listing every alert (see digest.py); an empty digest sends nothing."""
        if msgs:
            await self._send(lambda: _checked_bytes(self.digest_message(digest_id, msgs, window)))

    async def _send(self, build: Callable[[], bytes]) -> None:
        if self._username is not None and not (self._tls or self._starttls):
            raise DeliveryError(
                f"{self._where}: a login is never sent without TLS; set starttls or tls",
                permanent=True,
            )
        with building(self._where, "message", self._scrub):
            raw = build()
        with attempt(self._where, self._timeout, self._scrub, self._classify):
            await self._deliver(raw)

    def _classify(self, exc: Exception) -> DeliveryError | None:
        """SMTP's answers and failures as DeliveryErrors (see the module docstring)."""
        where, scrub = self._where, self._scrub
        if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
            codes = [r.code for r in exc.recipients]
            return DeliveryError(
                f"{where}: every recipient refused: "
                + "; ".join(f"{r.code} {scrub(r.message)}" for r in exc.recipients),
                permanent=all(500 <= c < 600 for c in codes),
            )
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            return DeliveryError(
                f"{where}: {exc.code} {scrub(exc.message)}", permanent=500 <= exc.code < 600
            )
        if isinstance(exc, ssl.SSLError):
            return DeliveryError(f"{where}: TLS failed: {scrub(str(exc))}")
        if isinstance(exc, aiosmtplib.SMTPException | OSError):
            return DeliveryError(f"{where}: {type(exc).__name__}: {scrub(str(exc))}")
        return None

    async def _deliver(self, raw: bytes) -> None:
        smtp = aiosmtplib.SMTP(
            hostname=self._host,
            port=self._port,
            use_tls=self._tls,
            start_tls=False,  # decided below, explicitly: never "if offered"
            validate_certs=self._validate_certs,
            tls_context=self._tls_context,
            timeout=self._timeout,
        )
        try:
            async with asyncio.timeout(self._timeout):
                await smtp.connect()
                if self._starttls:
                    await smtp.ehlo()
                    if not smtp.supports_extension("starttls"):
                        raise DeliveryError(
                            f"{self._where}: the server does not offer STARTTLS, which this "
                            "channel requires; nothing was sent (no login, no message)"
                        )
                    await smtp.starttls()
                    await smtp.ehlo()  # RFC 3207: forget what was said before TLS
                if self._username is not None:
                    if smtp.is_ehlo_or_helo_needed:  # implicit TLS: nothing said yet
                        await smtp.ehlo()
                    if smtp.get_transport_info("sslcontext") is None:  # belt and braces
                        raise DeliveryError(
                            f"{self._where}: refusing to log in without TLS", permanent=True
                        )
                    if not smtp.supports_extension("auth"):
                        raise DeliveryError(
                            f"{self._where}: a username is configured but the server offers "
                            "no AUTH",
                            permanent=True,
                        )
                    await smtp.login(self._username, self._password or "")
                refused, _ = await smtp.sendmail(self._env_from, self._env_to, raw)
            if refused:
                log.warning(
                    "email_recipients_refused",
                    channel=self.name,
                    refused={a: f"{r.code} {self._scrub(r.message)}" for a, r in refused.items()},
                )
            # Delivered. QUIT is politeness: its failure must not turn into a resend.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(smtp.quit(), timeout=min(self._timeout, 5.0))
        finally:
            smtp.close()

    def _scrub(self, text: str) -> str:
        if self._password and len(self._password) > 1:
            text = text.replace(self._password, "***")
        return render.one_line(text, 300)

    async def aclose(self) -> None:
        """Nothing held between sends: one SMTP session per alert."""


def _checked_bytes(message: EmailMessage) -> bytes:
    """The exact bytes to send (CRLF line ends), refused unless they carry our header fields
    only, whatever the email package made of the feed-provided subject."""
    raw = message.as_bytes()
    head = BytesParser(policy=email.policy.compat32).parsebytes(raw, headersonly=True)
    names = sorted(k.lower() for k in head)
    if names != sorted(_HEADERS):
        raise ValueError(f"refusing to send: unexpected header fields {names}")
    return raw
