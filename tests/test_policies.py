"""The policies written once: the severity scale, the duration notation, web URLs."""

from __future__ import annotations

import datetime as dt

import pytest

from monitor import severity
from monitor.units import format_duration, parse_duration
from monitor.web import is_web_url, origin


def test_severity_scale() -> None:
    assert severity.SEVERITIES == ("info", "low", "medium", "high", "critical")
    assert severity.rank("critical") == 4 and severity.rank("HIGH") == 3
    assert severity.rank("bogus") == -1
    assert severity.at_least("high", "medium") and not severity.at_least("low", "medium")
    levels = ["low", "critical", "bogus", "high", "low"]
    assert severity.most_severe_first(levels, str) == ["critical", "high", "low", "low", "bogus"]


@pytest.mark.parametrize(
    ("seconds", "exact", "shown"),
    [
        (0, True, "0s"),
        (45, True, "45s"),
        (5400, True, "90m"),
        (86400, True, "1d"),
        (6000, True, "100m"),
        (6000, False, "1h"),
        (59.6, True, "1m"),
        (-3, True, "0s"),
    ],
)
def test_format_duration(seconds: float, exact: bool, shown: str) -> None:
    assert format_duration(dt.timedelta(seconds=seconds), exact=exact) == shown


def test_format_duration_reads_back() -> None:
    for text in ("30s", "10m", "90m", "1h", "7d"):
        assert format_duration(parse_duration(text)) in (text, "1w")


def test_web_urls() -> None:
    assert is_web_url("https://e.org/x") and is_web_url("HTTP://e.org")
    for bad in (None, "", "ftp://e.org/", "/local/path", "https://", "https://e.org]/x"):
        assert not is_web_url(bad)
    assert origin("https://user:pw@hooks.e.org:8443/T0/secret?token=1") == (
        "https://hooks.e.org:8443"
    )
    assert origin("http://[::1]:80/x") == "http://[::1]:80"
