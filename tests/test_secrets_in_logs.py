"""Secrets never reach the log: a daemon configured with an SMTP password, webhook secrets, a
token in a webhook path, credentials in feed URLs and a password in the database URL runs
against real servers (deliveries that succeed and deliveries that fail, a feed that fails),
and no line it prints contains any of them. Then the redaction processor itself, which
catches what the code would let through."""

from __future__ import annotations

import base64
import json
import logging
import secrets
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
import structlog
from sqlalchemy.engine import make_url

from monitor import logs
from tests.feedserver import FeedServer, Route
from tests.servers import SMTPServer, WebhookReceiver
from tests.test_server import Daemon, rss

STORY = ("North Korea fires a missile into the sea", "https://example.org/news/launch")


def token(n: int = 12) -> str:
    return secrets.token_urlsafe(n).replace("-", "x").replace("_", "y")


def test_no_log_line_of_a_run_configured_with_secrets_contains_them(
    tmp_path: Path, db_url: str
) -> None:
    webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    other_secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    smtp_password = "smtp-" + token()
    wrong_password = "wrong-" + token()
    path_token = "hooktok" + token()
    feed_password = "feedpw" + token()
    query_token = "qtok" + token()
    db_password = "db@pw#" + token()  # characters a URL must encode
    secret_values = [
        webhook_secret,
        other_secret,
        smtp_password,
        wrong_password,
        path_token,
        feed_password,
        query_token,
    ]
    database = db_url
    if db_url.startswith("postgresql"):  # trust auth: the server ignores the password
        database = make_url(db_url).set(password=db_password).render_as_string(False)
        secret_values.append(db_password)

    with (
        FeedServer() as feeds,
        WebhookReceiver(secret=webhook_secret, path=f"/hooks/T01/B02/{path_token}") as hook,
        WebhookReceiver(secret=other_secret, default=500) as failing_hook,
        SMTPServer(starttls=True, auth={"alerts": smtp_password}) as smtp,
    ):
        feeds.routes["/wire.xml"] = Route(rss(STORY))
        host = feeds.base.removeprefix("http://")
        (tmp_path / "watchlist.yaml").write_text(
            "rules:\n  - {id: dprk, query: 'North Korea + missile', severity: high}\n"
        )
        config = tmp_path / "monitor.yaml"
        config.write_text(
            f"""\
database: "{database}"
watchlist: {tmp_path / "watchlist.yaml"}
poll: {{allow_private_networks: true}}
feeds:
  - {{id: wire, url: "http://reader:{feed_password}@{host}/wire.xml", backfill: true}}
  - {{id: gone, url: "http://{host}/gone.xml?token={query_token}"}}
channels:
  ops: {{type: webhook, url: "{hook.url}", secret: "${{MONITOR_WEBHOOK_SECRET}}"}}
  backup: {{type: webhook, url: "{failing_hook.url}", secret: "{other_secret}"}}
  mail:
    type: email
    to: [analyst@example.org]
    from: monitor@example.org
    smtp: {{host: {smtp.host}, port: {smtp.port}, starttls: true, username: alerts,
            password: "${{SMTP_PASSWORD}}", validate_certs: false}}
  mail-wrong:
    type: email
    to: [analyst@example.org]
    from: monitor@example.org
    smtp: {{host: {smtp.host}, port: {smtp.port}, starttls: true, username: alerts,
            password: "{wrong_password}", validate_certs: false}}
  console: {{type: log}}
server: {{listen: "127.0.0.1:0"}}
"""
        )
        env = {"MONITOR_WEBHOOK_SECRET": webhook_secret, "SMTP_PASSWORD": smtp_password}
        daemon = Daemon(config, env)
        try:
            daemon.wait_event("feed_failed")  # gone.xml: 404
            [ok] = hook.wait_for(1, timeout=20)
            assert ok.verified
            failing_hook.wait_for(1, timeout=20)
            smtp.wait_for(1, timeout=20)
            failed = daemon.wait_events("delivery_retry", "delivery_dead")
            assert failed["delivery_retry"]["channel"] == "backup"  # HTTP 500: later again
            assert failed["delivery_dead"]["channel"] == "mail-wrong"  # login refused: final
        finally:
            code = daemon.stop()
    assert code == 0
    lines = daemon.raw
    events = [json.loads(line) for line in lines]  # every line is one JSON object
    names = {e["event"] for e in events}
    expected = {"started", "feed_failed", "alert", "delivered", "delivery_retry", "delivery_dead"}
    assert expected | {"stopped"} <= names
    if database != db_url:
        [started] = [e for e in events if e["event"] == "started"]
        assert started["database"].startswith("postgresql+psycopg://postgres:***@")

    forms = {f for s in secret_values for f in (s, quote(s, safe=""), quote_plus(s))}
    leaks = [(form, line) for line in lines for form in forms if form in line]
    assert leaks == [], f"{len(leaks)} secret(s) in the log, first: {leaks[0]}"


def test_the_redaction_processor_replaces_known_secrets_everywhere(
    capsys: pytest.CaptureFixture[str],
) -> None:
    password = "pa ss@w/rd" + token()
    other = "whsec_" + token()
    logs.configure("INFO", json=True)
    try:
        logs.redact([password, other, "abc"])  # too short to redact: left alone
        log = structlog.get_logger("monitor.test")
        log.info("plain", detail=f"login {password} refused", nested={"list": [other, 1]})
        log.info("encoded", url=f"smtp://alerts:{quote(password, safe='')}@mail.example.org")
        log.info("form", body=f"password={quote_plus(password)}")
        try:
            raise RuntimeError(f"library said {password}")
        except RuntimeError:
            log.exception("failed")
        logging.getLogger("aiosmtplib").warning("stdlib record with %s", other)
        log.info("short", word="abc")
    finally:
        logs.redact(())
    out = capsys.readouterr().out
    assert password not in out and other not in out
    assert quote(password, safe="") not in out and quote_plus(password) not in out
    events = {e["event"]: e for e in map(json.loads, out.splitlines())}
    assert events["plain"]["detail"] == "login [REDACTED] refused"
    assert events["plain"]["nested"] == {"list": ["[REDACTED]", 1]}
    assert events["encoded"]["url"] == "smtp://alerts:[REDACTED]@mail.example.org"
    assert events["form"]["body"] == "password=[REDACTED]"
    assert "library said [REDACTED]" in str(events["failed"]["exception"])
    assert events["stdlib record with [REDACTED]"]["level"] == "warning"
    assert events["short"]["word"] == "abc"


def test_settings_name_their_secrets() -> None:
    from monitor.settings import Settings

    settings = Settings.model_validate(
        {
            "database": "postgresql+psycopg://monitor:db%40pw@db.internal/monitor",
            "feeds": [
                {"id": "a", "url": "https://u:feedpw@example.org/rss?api_key=k3y&page=2"},
                {"id": "b", "url": "https://example.org/plain.xml"},
            ],
            "channels": {
                "chat": {"type": "webhook", "url": "https://hooks.example.org/T1/B2/tok3n"},
                "ops": {"type": "webhook", "url": "https://ops.example.org/", "secret": "whsec_x1"},
                "mail": {
                    "type": "email",
                    "to": ["a@example.org"],
                    "from": "m@example.org",
                    "smtp": {"host": "smtp.example.org", "username": "u", "password": "smtppw"},
                },
            },
        }
    )
    assert settings.secrets() == {
        "db@pw",
        "db%40pw",
        "feedpw",
        "k3y",
        "https://hooks.example.org/T1/B2/tok3n",
        "whsec_x1",
        "smtppw",
    }
