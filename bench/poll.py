"""Polling throughput: `monitor once --all` against a 20-line aiohttp + feedparser peer.

    .venv/bin/python bench/poll.py                       # 2,000 feeds x 20 items, 1 round
    .venv/bin/python bench/poll.py --rounds 2 --ports 4 --feeds 2000

The feeds come from bench/feedserver.py in its own process (2,000 feeds of 20 distinct
stories, text from the shared corpus, spread over --ports ports of 127.0.0.1). Each round:

  ours, cycle 1  `monitor --config X once --all` on a fresh SQLite database: every item is
                 new (fetched, parsed, stored, matched against a few realistic rules, alerts
                 written and delivered to a log channel);
  ours, cycle 2  the same command again: every feed answers 304;
  peer           bench/peer.py: aiohttp, Semaphore(concurrency), then feedparser.parse on
                 each body with its defaults, in one process.

Order: peer, then per round ours (cycle 1, cycle 2) and the peer again, so that each of our
runs has a peer run on either side of it; the ratio uses the mean of those two (the machine's
load drifts, and the mean tracks it better than the best). Every run is a subprocess timed
from outside (interpreter start and imports included, on both sides: that is what `once`
costs a user), with the peak RSS of its process tree and the CPU seconds of the tree. The
feed server's counters check that each run fetched every feed exactly once, with the status
expected (200; 304 in cycle 2), and that our fetches carried our User-Agent.
Exit status 1 when a check fails or a run fails.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from feedserver import FeedServer
from harness import (
    BENCH,
    MONITOR,
    PYTHON,
    Run,
    compile_package,
    machine,
    run_measured,
    stop_on_sigterm,
    write_config,
)

UA = "monitor-bench/poll"
_SUMMARY = re.compile(r"(\d+) feeds polled, (\d+) failed, (\d+) new items, (\d+) alerts")


@dataclass
class Result:
    label: str
    run: Run
    items: int
    feeds: int
    failed: int = 0
    alerts: int = 0
    inner_wall: float | None = None  # the peer's own clock, interpreter start excluded

    @property
    def rate(self) -> float:
        return self.items / self.run.wall

    def line(self) -> str:
        r = self.run
        inner = f" ({self.inner_wall:.1f} s inside)" if self.inner_wall else ""
        what = f"{self.items:,} items" if self.items else f"{self.feeds:,} feeds, all 304,"
        per = f"{self.rate:,.0f} items/s" if self.items else f"{self.feeds / r.wall:,.0f} feeds/s"
        return (
            f"{self.label}: {what} in {r.wall:.1f} s{inner} = {per}; "
            f"peak RSS {r.peak_mb:.0f} MB (PSS {r.peak_pss_mb:.0f} MB); CPU {r.cpu_s:.1f} s"
        )


def check(srv: FeedServer, label: str, status: int, agent: str | None) -> list[str]:
    """Every feed fetched exactly once, with `status`, and (ours) by our User-Agent only."""
    s = srv.stats()
    problems = []
    if s["paths_fetched"] != srv.feeds or s["max_per_path"] != 1:
        problems.append(
            f"{label}: {s['paths_fetched']} of {srv.feeds} feeds fetched, "
            f"{s['paths_more_than_once']} more than once (e.g. {list(s['doubles'])[:3]})"
        )
    if s["by_status"] != {str(status): srv.feeds}:
        problems.append(f"{label}: statuses {s['by_status']}, expected {srv.feeds} x {status}")
    if agent is not None and list(s["by_agent"]) != [agent]:
        problems.append(f"{label}: User-Agents {list(s['by_agent'])}, expected only {agent!r}")
    return problems


def ours(srv: FeedServer, folder: Path, label: str, status: int) -> tuple[Result, list[str]]:
    srv.reset()
    cmd = [*MONITOR, "--config", str(folder / "monitor.yaml"), "once", "--all"]
    run = run_measured(cmd, folder, folder / f"{label.replace(' ', '-')}.log")
    if run.code != 0:
        raise RuntimeError(f"{label}: monitor exited {run.code}:\n{run.output[-3000:]}")
    m = _SUMMARY.search(run.output)
    if m is None:
        raise RuntimeError(f"{label}: no summary line in monitor's output:\n{run.output[-2000:]}")
    feeds, failed, new, alerts = map(int, m.groups())
    res = Result(label, run, items=new, feeds=feeds, failed=failed, alerts=alerts)
    problems = check(srv, label, status, UA)
    if failed:
        problems.append(f"{label}: {failed} feeds failed")
    return res, problems


def peer(srv: FeedServer, folder: Path, label: str, concurrency: int) -> tuple[Result, list[str]]:
    srv.reset()
    cmd = [PYTHON, str(BENCH / "peer.py"), str(folder / "urls.txt"), str(concurrency)]
    run = run_measured(cmd, folder, folder / f"{label.replace(' ', '-')}.log")
    if run.code != 0:
        raise RuntimeError(f"{label}: exited {run.code}:\n{run.output[-3000:]}")
    out: dict[str, Any] = json.loads(run.output.strip().splitlines()[-1])
    res = Result(label, run, items=out["items"], feeds=out["feeds"], inner_wall=out["wall"])
    return res, check(srv, label, 200, None)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--feeds", type=int, default=2000)
    ap.add_argument("--ports", type=int, default=4, help="origins on 127.0.0.1")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--per-host", type=int, default=50, help="poll.per_host (at most 50)")
    ap.add_argument("--no-backfill", action="store_true", help="cycle 1 stores without matching")
    ap.add_argument(
        "--stories-off",
        action="store_true",
        help="also run cycle 1 with stories.window 0s (exact copies only), to price the story step",
    )
    args = ap.parse_args()
    stop_on_sigterm()
    compile_package()
    print(machine(), flush=True)
    problems: list[str] = []
    peers: list[Result] = []
    rounds: list[tuple[Result, Result]] = []
    priced: list[tuple[Result, Result]] = []  # (cycle 1, cycle 1 without the story step)
    with (
        tempfile.TemporaryDirectory(prefix="bench_poll_") as tmp,
        FeedServer(args.feeds, args.ports) as srv,
    ):
        info = srv.info
        print(
            f"feed server: {info['feeds']:,} feeds, {info['items']:,} items, "
            f"{info['bytes'] / info['feeds'] / 1e3:.1f} kB a feed "
            f"({info['gzip_bytes'] / info['feeds'] / 1e3:.1f} kB gzipped), ports {srv.ports}, "
            f"built in {info['build_s']:.1f} s",
            flush=True,
        )
        folder = Path(tmp)
        (folder / "urls.txt").write_text("\n".join(srv.urls()) + "\n")
        p, bad = peer(srv, folder, "peer run 1", args.concurrency)
        print(p.line(), flush=True)
        peers.append(p)
        problems += bad

        def workdir(name: str, stories_window: str | None = None) -> Path:
            """A folder with its own SQLite database and a config for it."""
            work = folder / name
            work.mkdir()
            write_config(
                work,
                database=f"sqlite:///{work}/monitor.db",
                urls=srv.urls(),
                user_agent=UA,
                concurrency=args.concurrency,
                per_host=args.per_host,
                backfill=not args.no_backfill,
                stories_window=stories_window,
            )
            return work

        for r in range(1, args.rounds + 1):
            work = workdir(f"round{r}")
            cpu0 = srv.cpu_s()
            c1, bad = ours(srv, work, f"cycle 1 (round {r})", 200)
            print(c1.line() + f"; {c1.alerts:,} alerts", flush=True)
            problems += bad
            c2, bad = ours(srv, work, f"cycle 2 (round {r})", 304)
            print(c2.line(), flush=True)
            problems += bad
            server_cpu = srv.cpu_s() - cpu0
            print(
                f"feed server CPU over both cycles: {server_cpu:.2f} s "
                f"({server_cpu / (c1.run.wall + c2.run.wall):.1%} of their wall)",
                flush=True,
            )
            rounds.append((c1, c2))
            if args.stories_off:
                off = workdir(f"round{r}-nostories", stories_window="0s")
                c0, bad = ours(srv, off, f"cycle 1 without the story step (round {r})", 200)
                print(c0.line(), flush=True)
                problems += bad
                priced.append((c1, c0))
            p, bad = peer(srv, folder, f"peer run {r + 1}", args.concurrency)
            print(p.line(), flush=True)
            peers.append(p)
            problems += bad
    print()
    for r, (c1, c2) in enumerate(rounds):
        around = peers[r : r + 2]
        mean_rate = statistics.mean(p.rate for p in around)
        mean_cpu = statistics.mean(p.items / p.run.cpu_s for p in around)
        mean_rss = statistics.mean(p.run.peak_mb for p in around)
        best = max(p.rate for p in around)
        print(
            f"ratio ours cycle 1 / peer: {c1.rate / mean_rate:.2f} (round {r + 1}; peer "
            f"{mean_rate:,.0f} items/s, mean of the runs before and after; against the "
            f"best of them {c1.rate / best:.2f})"
        )
        print(
            f"  items per CPU-second, ours / peer: {c1.items / c1.run.cpu_s / mean_cpu:.2f}; "
            f"peak RSS ours / peer: {c1.run.peak_mb / mean_rss:.2f}"
            f"; cycle 2 (all 304): {c2.run.wall:.1f} s wall, {c2.run.cpu_s:.1f} CPU-s, "
            f"{c2.run.wall / c1.run.wall:.0%} of cycle 1's wall"
        )
    for r, (c1, c0) in enumerate(priced):
        print(
            f"story step: cycle 1 wall with it / without it: {c1.run.wall / c0.run.wall:.2f}, "
            f"CPU-s {c1.run.cpu_s / c0.run.cpu_s:.2f} (round {r + 1})"
        )
    if problems:
        print("\nCHECKS FAILED:\n  " + "\n  ".join(problems))
        return 1
    print(
        "\nserver counters: every run fetched every feed exactly once (ours: all 200, "
        "then all 304, with our User-Agent only): OK"
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted: feed server, runs and temporary files cleaned up", file=sys.stderr)
        sys.exit(130)
