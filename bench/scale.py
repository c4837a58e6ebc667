"""Scale-out: 1, 2 and 3 `monitor run` workers sharing one PostgreSQL, on the same feeds.

    .venv/bin/python bench/scale.py                      # 2,000 feeds, workers 1,2,3
    .venv/bin/python bench/scale.py --workers 1,2 --feeds 1000

For each worker count N: a fresh PostgreSQL database, N `monitor run` processes started
together with identical configs except `poll.user_agent` (so the feed server can tell who
fetched what) and `server.listen: 127.0.0.1:0`; every feed has `interval: 1h`, so it is due
exactly once in the measured window. The window runs from the moment the workers are
started until the feed server has seen every feed fetched (its /stats), so it includes each
worker's start (imports, migrations under the advisory lock, feed sync): what an operator
adding workers waits for. Printed per N: that wall, feeds/s and the ratio to 1 worker; the
same from the first fetch to the last ("poll window", start-up left out); double fetches
(paths fetched more than once, counted until a few seconds after the last first fetch, which
must be 0: SPEC "without fetching a feed twice in a cycle"); each worker's share of the
fetches; the CPU seconds all workers used until then, and those of the PostgreSQL backends
serving the database; and the workers' summed peak RSS. Then SIGTERM, and the exit codes
(0 expected).

Read it for a 2-core machine: one worker is one Python process, held to about one core by
the GIL; two can use both cores; a third shares them with the other two, PostgreSQL and the
feed server, so it can add little, and the CPU-seconds columns show what scaling out costs.
Exit status 1 on a double fetch, a missing feed, a worker that died or did not stop cleanly.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness
from feedserver import FeedServer
from harness import MONITOR, PeakRSS, machine, pg_database, spawn, stop, write_config

GRACE = 5.0  # seconds after the last first fetch during which a second fetch still counts


@dataclass
class Outcome:
    workers: int
    wall: float  # start -> every feed fetched once
    window: float  # first fetch -> every feed fetched once
    doubles: int
    fetched: int
    shares: list[float]
    cpu_s: float
    pg_cpu_s: float
    peak_mb: float
    codes: list[int | None]
    problems: list[str] = field(default_factory=list)


def run(srv: FeedServer, n: int, folder: Path, timeout: float) -> Outcome:
    problems: list[str] = []
    with pg_database() as url:
        agents = [f"monitor-bench/worker-{i + 1}" for i in range(n)]
        configs = [
            write_config(
                folder,
                database=url,
                urls=srv.urls(),
                user_agent=agents[i],
                name=f"monitor-{n}-{i + 1}.yaml",
            )
            for i in range(n)
        ]
        srv.reset()
        logs = [open(folder / f"worker-{n}-{i + 1}.log", "w") for i in range(n)]  # noqa: SIM115
        procs: list[Any] = []
        try:
            started = time.time()
            for cfg, log in zip(configs, logs, strict=True):
                procs.append(spawn([*MONITOR, "--config", str(cfg), "run"], log, folder))
            with PeakRSS([p.pid for p in procs], every=0.25) as peak:
                stats = srv.stats(brief=True)
                while stats["all_fetched_at"] is None:
                    dead = [i + 1 for i, p in enumerate(procs) if p.poll() is not None]
                    if dead:
                        problems.append(f"{n} workers: worker(s) {dead} exited early")
                        break
                    if time.time() - started > timeout:
                        problems.append(f"{n} workers: not every feed fetched in {timeout:.0f} s")
                        break
                    time.sleep(0.2)
                    stats = srv.stats(brief=True)
                done = stats["all_fetched_at"] or time.time()
                # CPU now, before the grace period: what the window cost.
                cpu_s = harness.cpu([q for p in procs for q in harness.tree(p.pid)])
                pg_cpu_s = harness.postgres_cpu(url.rsplit("/", 1)[1])
                time.sleep(max(0.0, done + GRACE - time.time()))
                stats = srv.stats(brief=True)
        finally:
            codes = stop(procs)
            for log in logs:
                log.close()
    by_agent = stats["by_agent"]
    total = sum(a["requests"] for a in by_agent.values()) or 1
    shares = [by_agent.get(a, {}).get("requests", 0) / total for a in agents]
    strangers = sorted(set(by_agent) - set(agents))
    if strangers:
        problems.append(f"{n} workers: requests from {strangers}")
    if stats["paths_more_than_once"]:
        problems.append(f"{n} workers: double fetches, e.g. {stats['doubles']}")
    if stats["by_status"].get("200", 0) != stats["requests"]:
        problems.append(f"{n} workers: statuses {stats['by_status']}")
    if any(c != 0 for c in codes):
        problems.append(f"{n} workers: exit codes after SIGTERM {codes} (None: killed)")
    first = stats["first_request"] or started
    return Outcome(
        workers=n,
        wall=done - started,
        window=done - first,
        doubles=stats["paths_more_than_once"],
        fetched=stats["paths_fetched"],
        shares=shares,
        cpu_s=cpu_s,
        pg_cpu_s=pg_cpu_s,
        peak_mb=peak.peak_mb,
        codes=codes,
        problems=problems,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--feeds", type=int, default=2000)
    ap.add_argument("--ports", type=int, default=4, help="origins on 127.0.0.1")
    ap.add_argument("--workers", default="1,2,3", help="worker counts to run, e.g. 1,2,3")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per worker count")
    args = ap.parse_args()
    harness.stop_on_sigterm()
    counts = [int(x) for x in args.workers.split(",")]
    harness.compile_package()
    print(machine(), flush=True)
    results: list[Outcome] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp,
        FeedServer(args.feeds, args.ports) as srv,
    ):
        print(f"feed server: {args.feeds:,} feeds on ports {srv.ports}", flush=True)
        for n in counts:
            res = run(srv, n, Path(tmp), args.timeout)
            results.append(res)
            shares = " / ".join(f"{s:.0%}" for s in res.shares)
            print(
                f"{n} worker(s): every feed in {res.wall:.1f} s ({res.window:.1f} s from the "
                f"first fetch), {res.doubles} double fetches, shares {shares}, "
                f"{res.cpu_s:.1f} CPU-s (PostgreSQL {res.pg_cpu_s:.1f}), "
                f"load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    print(f"\n{os.cpu_count()} cores; {args.feeds:,} feeds, each due once (interval 1h)")
    head = (
        f"{'workers':>7} {'wall s':>7} {'feeds/s':>8} {'ratio':>6} {'poll s':>7} "
        f"{'feeds/s':>8} {'ratio':>6} {'doubles':>7} {'CPU s':>6} {'PG CPU':>6} {'RSS MB':>7}  "
        "share per worker"
    )
    print(f"{'':>7} {'from start':^23} {'from first fetch':^23}")
    print(head)
    base = results[0]
    for r in results:
        rate, prate = r.fetched / r.wall, r.fetched / r.window
        print(
            f"{r.workers:>7} {r.wall:>7.1f} {rate:>8.0f} {base.wall / r.wall:>6.2f} "
            f"{r.window:>7.1f} {prate:>8.0f} {base.window / r.window:>6.2f} {r.doubles:>7} "
            f"{r.cpu_s:>6.1f} {r.pg_cpu_s:>6.1f} {r.peak_mb:>7.0f}  "
            + " / ".join(f"{s:.0%}" for s in r.shares)
        )
    print(
        "ratio = feeds/s against the first row. On this machine N processes share "
        f"{os.cpu_count()} cores with PostgreSQL and the feed server: more workers than cores "
        "cannot go faster than the cores allow."
    )
    problems = [p for r in results for p in r.problems]
    if problems:
        print("\nCHECKS FAILED:\n  " + "\n  ".join(problems))
        return 1
    print("checks: every feed fetched exactly once, no double fetch, clean exits: OK")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted: workers, databases and temporary files cleaned up", file=sys.stderr)
        sys.exit(130)
