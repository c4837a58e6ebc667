"""monitor.yaml validation: every problem is FILE:LINE:COL: message, and secrets stay out."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from monitor.errors import ConfigError
from monitor.settings import load_settings

GOOD = """\
database: sqlite:///data/x.db
watchlist: [a.yaml, b.yaml]
poll:
  interval: 5m
  max_bytes: 2MB
feeds:
  - id: gs-wmd
    url: https://www.globalsecurity.org/wmd/library/news/rss.xml
    interval: 90s
    tags: [wmd]
channels:
  ops:
    type: webhook
    url: https://hooks.example.org/monitor
    secret: ${HOOK_SECRET}
  analysts:
    type: email
    to: [analyst@example.org]
    from: monitor@example.org
    smtp: {host: smtp.example.org, port: 587, username: alerts, password: "${SMTP_PW:-x}"}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "monitor.yaml"
    path.write_text(text)
    return path


def test_a_full_config_loads(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, GOOD), env={"HOOK_SECRET": "whsec_abc"})
    assert s.watchlist == ("a.yaml", "b.yaml")
    assert s.poll.interval == dt.timedelta(minutes=5) and s.poll.max_bytes == 2_000_000
    assert s.feed_interval(s.feeds[0]) == dt.timedelta(seconds=90)
    ops = s.channels["ops"]
    assert ops.type == "webhook" and ops.secret == "whsec_abc"
    email = s.channels["analysts"]
    assert (
        email.type == "email"
        and email.smtp.password == "x"
        and email.from_ == "monitor@example.org"
    )


def test_no_channel_means_a_log_channel(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, "feeds: []\n"))
    assert list(s.effective_channels) == ["console"]


@pytest.mark.parametrize(
    "text,where,words",
    [
        ("poll:\n  intervall: 5m\n", "2:3", "unknown key poll.intervall"),
        ("poll:\n  interval: soon\n", "2:13", "not a duration"),
        ("poll:\n  max_bytes: lots\n", "2:14", "not a size"),
        ("feeds:\n  - id: a\n    url: ftp://x/y\n", "3:10", "unsupported URL scheme"),
        ("feeds:\n  - url: http://x/y\n", "2:5", "feeds[0].id: required key is missing"),
        ("feeds:\n  - {id: a, url: 'x'}\n  - {id: a, url: 'y'}\n", "3:10", "'a' appears twice"),
        (
            "channels:\n  ops:\n    type: pager\n",
            "3:11",
            "channels.ops.type: must be one of 'webhook', 'email', 'apprise', 'log'",
        ),
        (
            "channels:\n  ops:\n    type: webhook\n    url: https://h\n    secret: ${NOPE}\n",
            "5:13",
            "environment variable NOPE is not set",
        ),
        ("poll: [\n", "2:1", "YAML syntax"),
        (
            "channels:\n  m:\n    type: email\n    to: [a@b]\n    from: c@d\n    smtp:\n"
            "      host: h\n      starttls: false\n      username: u\n",
            "7:7",
            "never sent without TLS",
        ),
    ],
)
def test_errors_name_file_line_and_column(
    tmp_path: Path, text: str, where: str, words: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_settings(path, env={})
    first = exc.value.problems[0]
    assert first.startswith(f"{path}:{where}: "), first
    assert words in first


def test_a_secret_never_appears_in_an_error(tmp_path: Path) -> None:
    text = "channels:\n  ops:\n    type: webhook\n    url: ${URL}\n    secret: whsec_s3cr3t\n"
    with pytest.raises(ConfigError) as exc:
        load_settings(write(tmp_path, text), env={"URL": "ftp://user:hunter2@host/"})
    assert "hunter2" not in str(exc.value) and "s3cr3t" not in str(exc.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nothere.yaml:1:1: file not found"):
        load_settings(tmp_path / "nothere.yaml")
