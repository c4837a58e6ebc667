"""The command line as a user meets it: the demo daemon and its signals, exit codes, and
configuration errors that stop every command before anything is polled."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from monitor.cli import run_cli
from tests.conftest import ROOT
from tests.feedserver import FeedServer, Route

SEED_TITLE = "China president's North Korea visit to send strong message to US"
SEOUL_TITLE = "Seoul says North Korea fired two short-range projectiles into the sea"


def demo_dir(tmp_path: Path) -> Path:
    """A copy of what `make run` uses (config/, seeds/), so relative paths resolve the same."""
    shutil.copytree(ROOT / "config", tmp_path / "config")
    shutil.copytree(ROOT / "seeds", tmp_path / "seeds")
    return tmp_path


def _lines(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _wait_for_alert(lines: queue.Queue[str], deadline: float) -> dict[str, object]:
    seen = []
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        seen.append(line)
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "alert":
            return dict(event)
    raise AssertionError("no alert line within the deadline; got:\n" + "".join(seen[-20:]))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_the_demo_daemon_alerts_on_the_seed_and_stops_cleanly(
    tmp_path: Path, sig: signal.Signals
) -> None:
    cwd = demo_dir(tmp_path)
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={
            **os.environ,
            "MONITOR_CONFIG": "config/monitor.yaml",
            "MONITOR_LISTEN": "127.0.0.1:0",
        },
    )
    try:
        lines = _lines(proc)
        # The seed alert and one more, the demo feed's Seoul item ("... missiles", issue 10
        # #19), in either order: the teaser feed's poll may deliver the seed alert first.
        alerts = [_wait_for_alert(lines, started + 30), _wait_for_alert(lines, started + 30)]
        by_title = {a["title"]: a for a in alerts}
        assert set(by_title) == {SEED_TITLE, SEOUL_TITLE}, alerts
        alert = by_title[SEED_TITLE]
        assert alert["rule"] == "dprk-missile" and alert["source"] == "Iran Press TV"
        assert proc.poll() is None  # it keeps running after the alert
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    rest = []
    while not lines.empty():
        rest.append(lines.get())
    # Only those two.
    others = [json.loads(line) for line in rest if '"event": "alert"' in line]
    assert others == [], others
    assert (cwd / "data" / "monitor.db").exists()
    # The seed alert came through the teaser feed too (full text: its page read from
    # seeds/pages/), as the alert's feed or as a copy of its story, whichever was written
    # first (`monitor alerts` lists every source).
    engine = sa.create_engine(f"sqlite:///{cwd / 'data' / 'monitor.db'}")
    with engine.connect() as conn:
        feed, copies = conn.execute(
            sa.text(
                "SELECT item.feed_id, alert.also_reported_by FROM alert JOIN item "
                "ON item.id = alert.item_id WHERE item.title = :t"
            ),
            {"t": SEED_TITLE},
        ).one()
    engine.dispose()
    assert {feed, *(c.split(" ")[0] for c in json.loads(copies))} == {"seed-demo", "gs-teaser"}


BROKEN_CONFIG = "feeds:\n  - id: wire\n    url: {url}\n    intervall: 5m\n"
BROKEN_RULES = "rules:\n  - id: bad\n    query: 'North Korea +'\n"


@pytest.fixture
def served(feed_server: FeedServer) -> FeedServer:
    feed_server.routes["/wire.xml"] = Route(b"<rss version='2.0'><channel/></rss>")
    return feed_server


COMMANDS = [
    ["run"],
    ["once"],
    ["once", "--all"],
    ["check"],
    ["feeds"],
    ["alerts"],
    ["db", "upgrade"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_an_invalid_monitor_yaml_stops_every_command(
    tmp_path: Path, served: FeedServer, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "monitor.yaml"
    config.write_text(BROKEN_CONFIG.format(url=served.url("/wire.xml")))
    assert run_cli(["--config", str(config), *command]) == 2
    err = capsys.readouterr().err
    assert f"{config}:4:5: unknown key feeds[0].intervall" in err
    assert served.requests == []  # nothing was polled


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_an_invalid_watchlist_stops_every_command(
    tmp_path: Path, served: FeedServer, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "watchlist.yaml"
    rules.write_text(BROKEN_RULES)
    config = tmp_path / "monitor.yaml"
    config.write_text(
        f"database: sqlite:///{tmp_path}/m.db\nwatchlist: {rules}\n"
        f"poll: {{allow_private_networks: true}}\n"
        f"feeds:\n  - {{id: wire, url: '{served.url('/wire.xml')}'}}\n"
    )
    assert run_cli(["--config", str(config), *command]) == 2
    err = capsys.readouterr().err
    assert f"{rules}:3:" in err and "bad" in err
    assert served.requests == []


def test_check_lists_the_rules(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["--config", str(ROOT / "config/monitor.yaml"), "check"]) == 0
    out = capsys.readouterr().out
    assert "dprk-missile" in out and "@dprk + @missile" in out


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["once", "--no-such-flag"]) == 2
    assert run_cli(["no-such-command"]) == 2


def test_retry_of_an_unknown_alert_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "monitor.yaml"
    config.write_text(
        f"database: sqlite:///{tmp_path}/m.db\nwatchlist: {ROOT / 'config/watchlist.yaml'}\n"
    )
    assert run_cli(["--config", str(config), "alerts", "retry", "alrt_nope"]) == 2


def test_rule_dry_run_on_the_seed_article(capsys: pytest.CaptureFixture[str]) -> None:
    config = str(ROOT / "config/monitor.yaml")
    seed = str(ROOT / "seeds/seed-article.txt")
    assert run_cli(["--config", config, "test-rule", "North Korea + missile", "--file", seed]) == 0
    out = capsys.readouterr().out
    assert "«North Korea's» «missile»" in out  # both terms marked
    assert "terms: north korea, missile" in out
    assert "1 of 1 items match" in out
    assert run_cli(["--config", config, "test-rule", "Kimberly", "--file", seed]) == 0
    assert "0 of 1 items match" in capsys.readouterr().out


def test_rule_dry_run_on_a_feed_and_by_rule_id(capsys: pytest.CaptureFixture[str]) -> None:
    config = str(ROOT / "config/monitor.yaml")
    feed = str(ROOT / "seeds/feeds/seed.xml")
    assert run_cli(["--config", config, "test-rule", "--rule", "dprk-missile", "--file", feed]) == 0
    out = capsys.readouterr().out
    assert SEED_TITLE in out and SEOUL_TITLE in out and "2 of 5 items match" in out


def test_rule_dry_run_on_stored_items(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cwd = demo_dir(tmp_path)
    config = str(cwd / "config/monitor.yaml")
    old = os.getcwd()
    os.chdir(cwd)  # the demo config's paths are relative, as for `make run`
    try:
        assert run_cli(["--config", config, "once"]) == 0
        capsys.readouterr()
        assert run_cli(["--config", config, "test-rule", "missile*", "--since", "30d"]) == 0
        out = capsys.readouterr().out
        # the seed-demo feed's 5 items and the teaser feed's one, stored with its page's text
        assert "4 of 6 items match" in out and SEED_TITLE in out
        assert run_cli(["--config", config, "test-rule", "NATO", "--since", "30d"]) == 0
        assert "of 6 items match" in capsys.readouterr().out
    finally:
        os.chdir(old)


def test_rule_dry_run_errors(capsys: pytest.CaptureFixture[str]) -> None:
    config = str(ROOT / "config/monitor.yaml")
    assert run_cli(["--config", config, "test-rule", "North Korea +", "--text", "x"]) == 2
    err = capsys.readouterr().err
    assert "North Korea +\n" in err and "^" in err
    assert run_cli(["--config", config, "test-rule", "x"]) == 2  # no input given
    assert run_cli(["--config", config, "test-rule", "--rule", "nope", "--text", "x"]) == 2
    assert run_cli(["--config", config, "test-rule", "x", "--since", "soon"]) == 2


def test_rule_dry_run_on_a_page_uses_the_extractor(capsys: pytest.CaptureFixture[str]) -> None:
    """--file page.html is read as the daemon reads a linked page: the story, not the sidebar
    (the sidebar page's related links say "missile"; its story does not)."""
    config = str(ROOT / "config/monitor.yaml")
    pages = ROOT / "tests/data/pages"
    seed = str(pages / "globalsecurity_seed.html")
    assert run_cli(["--config", config, "test-rule", "North Korea + missile", "--file", seed]) == 0
    out = capsys.readouterr().out
    assert "1 of 1 items match" in out and "«missile»" in out
    assert "Iran Press TV" in out or "2019-06-18 16:01" in out
    fair = str(pages / "sidebar_missile.html")
    assert run_cli(["--config", config, "test-rule", "missile", "--file", fair]) == 0
    assert "0 of 1 items match" in capsys.readouterr().out
    assert run_cli(["--config", config, "test-rule", "Kaesong", "--file", fair]) == 0
    assert "1 of 1 items match" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "prestarts"),
    [
        (["once", "--all"], True),
        (["--config", "once", "run"], True),  # "once" is the value of --config here
        (["--config=x.yaml", "--log-level", "DEBUG", "once"], True),
        (["check"], False),
        (["--config", "run", "feeds"], False),
        (["--help"], False),
        ([], False),
    ],
)
def test_the_entry_point_launches_the_forkserver_first_for_the_polling_commands(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], prestarts: bool
) -> None:
    import monitor.cli
    from monitor import entry, gcpolicy, workers

    calls: list[str] = []
    monkeypatch.setattr(gcpolicy, "starting", lambda: None)  # this process is the suite's
    monkeypatch.setattr(workers, "prestart", lambda: calls.append("prestart"))
    monkeypatch.setattr(monitor.cli, "main", lambda: calls.append("cli"))
    monkeypatch.setattr(sys, "argv", ["monitor", *argv])
    entry.main()
    assert calls == (["prestart", "cli"] if prestarts else ["cli"])


def test_the_entry_point_knows_every_group_option_that_takes_a_value() -> None:
    import click

    from monitor import entry
    from monitor.cli import cli

    valued = {
        o for p in cli.params if isinstance(p, click.Option) and not p.is_flag for o in p.opts
    }
    assert valued == entry._VALUED
