"""The daemon's process collects garbage less often once started (gcpolicy.py): the `monitor`
command's entry point sets the thresholds before its imports and freezes what start-up made;
importing the CLI, as tests and the parse workers do, changes neither."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from monitor import gcpolicy
from tests.feedserver import FeedServer, Route

# Runs a command as `monitor` does and reports the collector's state as the process ends.
REPORT = (
    "import atexit, gc, json, sys; "
    "atexit.register(lambda: print(json.dumps([gc.get_threshold(), gc.get_freeze_count()]),"
    " file=sys.stderr)); "
    "sys.argv = ['monitor', *sys.argv[1:]]; "
)


def _state(code: str, *args: str, cwd: Path) -> tuple[list[int], int]:
    done = subprocess.run(
        [sys.executable, "-c", REPORT + code, *args],
        capture_output=True, text=True, timeout=120, cwd=cwd,
    )  # fmt: skip
    last = done.stderr.strip().splitlines()[-1]
    threshold, frozen = json.loads(last)
    return threshold, frozen


def test_once_runs_with_the_thresholds_and_start_up_frozen(tmp_path: Path) -> None:
    feed = (
        b"<?xml version='1.0'?><rss version='2.0'><channel><title>c</title>"
        b"<item><title>North Korea test</title><link>https://e.example.org/1</link></item>"
        b"</channel></rss>"
    )
    with FeedServer() as server:
        server.routes["/f.xml"] = Route(feed)
        (tmp_path / "watchlist.yaml").write_text("rules:\n  - {id: dprk, query: 'North Korea'}\n")
        (tmp_path / "monitor.yaml").write_text(
            f"database: 'sqlite:///{tmp_path}/m.db'\nwatchlist: watchlist.yaml\n"
            "poll: {allow_private_networks: true}\n"
            f"feeds:\n  - {{id: f, url: '{server.url('/f.xml')}'}}\n"
        )
        threshold, frozen = _state(
            "from monitor.entry import main; main()",
            "--config", str(tmp_path / "monitor.yaml"), "once", "--all",
            cwd=tmp_path,
        )  # fmt: skip
        assert server.hits("/f.xml"), "the cycle ran"
    assert tuple(threshold) == gcpolicy.THRESHOLD
    assert frozen > 10_000  # the modules and the configuration, at least


def test_importing_the_cli_changes_nothing(tmp_path: Path) -> None:
    threshold, frozen = _state(
        "import gc; default = gc.get_threshold(); import monitor.cli; "
        "assert gc.get_threshold() == default, gc.get_threshold()",
        cwd=tmp_path,
    )
    assert tuple(threshold) != gcpolicy.THRESHOLD
    assert frozen == 0


def test_settle_does_nothing_in_a_process_that_did_not_start_as_monitor() -> None:
    before = gcpolicy.gc.get_freeze_count()
    gcpolicy.settle()
    assert gcpolicy.gc.get_freeze_count() == before
