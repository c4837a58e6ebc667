"""What bench/poll.py and bench/scale.py share: measured child processes, the temporary
monitor.yaml and watchlist, throwaway PostgreSQL databases, and cleanup on every exit.

Why measure from outside: the product is the `monitor` command, so the benches run it as an
operator would (a subprocess, its own config) and time it with a wall clock, sample the peak
RSS of its whole process tree from /proc (a parse pool's workers included), and count the
CPU seconds of every process in that tree. On these shared 2-core machines CPU seconds are
the steadier figure; walls are what a user waits for; both are printed.
"""

from __future__ import annotations

import contextlib
import os
import resource
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from feedserver import die_with_parent

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PYTHON = sys.executable
_script = Path(sys.executable).parent / "monitor"
MONITOR = [str(_script)] if _script.exists() else [sys.executable, "-m", "monitor"]
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


def compile_package() -> None:
    """Bytecode for monitor's own modules, as an installed package has it (pip compiles a
    wheel's modules at install, the image runs compileall). An editable install under
    PYTHONDONTWRITEBYTECODE, as on these machines, would otherwise compile every module at
    every start: 0.5 s of each run measured (1.86 -> 1.2-1.5 s to import the daemon's
    modules), a cost the peer's libraries, compiled when pip installed them, do not pay."""
    subprocess.run([PYTHON, "-m", "compileall", "-q", str(ROOT / "monitor")], check=True)


def machine() -> str:
    one, five, fifteen = os.getloadavg()
    return (
        f"{os.cpu_count()} cores, load average {one:.2f} {five:.2f} {fifteen:.2f}, "
        f"Python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d %H:%M:%S')}"
    )


def stop_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so every `finally` (processes, databases, temp dirs)
    runs whichever way the bench is stopped."""

    def handler(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


# --- process trees -------------------------------------------------------------------------


def tree(pid: int) -> list[int]:
    """pid and all its descendants (Linux /proc/<pid>/task/<tid>/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
    return out


def rss(pids: Sequence[int]) -> int:
    """Resident bytes, summed over the processes (pages they share count once each)."""
    total = 0
    for p in pids:
        with contextlib.suppress(OSError, IndexError, ValueError), open(f"/proc/{p}/statm") as fh:
            total += int(fh.read().split()[1]) * PAGE
    return total


def pss(pids: Sequence[int]) -> int:
    """Proportional set size, summed: a page shared by n of the processes counts 1/n in each
    (the forkserver's workers share what it imported), so the sum is what the tree holds."""
    total = 0
    for p in pids:
        with (
            contextlib.suppress(OSError, IndexError, ValueError),
            open(f"/proc/{p}/smaps_rollup") as fh,
        ):
            for line in fh:
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
    return total


def cpu(pids: Sequence[int]) -> float:
    """CPU seconds of live processes, with their reaped children's."""
    total = 0
    for p in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            with open(f"/proc/{p}/stat") as fh:
                f = fh.read().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return total / TICK


def postgres_cpu(database: str) -> float:
    """CPU seconds of the PostgreSQL backends serving `database` (their process title names
    it): not our children, but on 2 cores their share is part of what scaling out costs.
    Live backends only; the workers keep theirs open in a pool until they stop."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                if f" {database} ".encode() not in fh.read():
                    continue
            with open(f"/proc/{entry}/stat") as fh:
                f = fh.read().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12])
    return total / TICK


class PeakRSS:
    """Samples the summed RSS of some process trees every `every` seconds in a thread, and
    their PSS every `pss_every` seconds.

    PSS is sampled less often because reading it is not free: smaps_rollup walks every
    mapping of every process, 12.5 ms of CPU a sample for the daemon's tree of five in
    cycle 1 (0.1 ms for RSS from statm). Ten a second took an eighth of a core from a run
    that keeps both cores busy, and next to nothing from the one-process peer, whose run
    leaves a core idle: a 2,000-feed cycle 1 measured 1.0-1.7 CPU-s of the bench's own
    against 0.2 without it.

    Start it only after the processes are spawned: preexec_fn and threads do not mix."""

    def __init__(self, roots: Sequence[int], every: float = 0.1, pss_every: float = 1.0) -> None:
        self.roots = list(roots)
        self.every = every
        self.pss_every = pss_every
        self.peak = 0
        self.peak_pss = 0
        self.most_processes = 0
        # Own CPU seconds of every process seen in the trees, at its last sample: worker
        # processes a forkserver starts are never reaped into our RUSAGE_CHILDREN, so that
        # alone would leave out the CPU of the parsing (each process's tail after its last
        # sample, at most `every` seconds, is still missed).
        self.cpu_seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        next_pss = 0.0
        while not self._stop.is_set():
            pids = [p for r in self.roots for p in tree(r)]
            self.peak = max(self.peak, rss(pids))
            if time.monotonic() >= next_pss:
                self.peak_pss = max(self.peak_pss, pss(pids))
                next_pss = time.monotonic() + self.pss_every
            for p in pids:
                with contextlib.suppress(OSError, IndexError, ValueError):
                    with open(f"/proc/{p}/stat") as fh:
                        f = fh.read().rsplit(")", 1)[1].split()
                    self.cpu_seen[p] = (int(f[11]) + int(f[12])) / TICK
            self.most_processes = max(self.most_processes, len(pids))
            self._stop.wait(self.every)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        return self.peak / 1e6

    @property
    def peak_pss_mb(self) -> float:
        return self.peak_pss / 1e6


def spawn(cmd: Sequence[str], log: IO[Any], cwd: Path, env: dict[str, str] | None = None) -> Any:
    """A child in its own session (a terminal's Ctrl-C reaches only the bench, which then
    stops the children in order) that dies with the bench even if the bench is killed."""
    return subprocess.Popen(
        list(cmd),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )


def stop(procs: Sequence[subprocess.Popen[Any]], grace: float = 15) -> list[int | None]:
    """SIGTERM to each, then SIGKILL to whatever is still there after `grace` seconds."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(max(0.1, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            codes.append(None)  # had to be killed
    return codes


@dataclass
class Run:
    """One measured child: wall, peak RSS of its tree, CPU of its tree, exit code, output,
    and the peak PSS of its tree (shared pages shared out)."""

    wall: float
    peak_mb: float
    cpu_s: float
    code: int
    output: str
    peak_pss_mb: float = 0.0


def run_measured(cmd: Sequence[str], cwd: Path, log_path: Path, timeout: float = 600) -> Run:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log_path, "w") as log:
        started = time.perf_counter()
        proc = spawn(cmd, log, cwd)
        try:
            with PeakRSS([proc.pid]) as peak:
                code = proc.wait(timeout)
        finally:
            if proc.poll() is None:
                stop([proc])
        wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    used = max(used, sum(peak.cpu_seen.values()))  # see PeakRSS.cpu_seen
    output = log_path.read_text(errors="replace")
    return Run(wall, peak.peak_mb, used, code, output, peak.peak_pss_mb)


# --- monitor's configuration -----------------------------------------------------------------

WATCHLIST = """\
groups:
  dprk: ["North Korea", DPRK, Pyongyang, "Kim Jong-un"]
  missile: [missile*, ICBM, SLBM, "ballistic missile", Hwasong*]
  russia: [Russia*, Kremlin, Putin, Moscow]
rules:
  - id: dprk-missile
    name: North Korea missile activity
    query: "@dprk + @missile"
    severity: high
  - id: xi-kim
    query: '"Xi Jinping" NEAR/15 (Kim OR Pyongyang) -basketball'
    fields: [title, summary]
  - id: sanctions
    all: ["North Korea", sanctions]
    none: [basketball]
  - id: russia-ukraine
    query: "@russia + (Ukraine OR Crimea OR Donbas OR Kyiv)"
    severity: medium
  - id: iran-nuclear
    query: "Iran + (nuclear OR uranium OR IAEA OR enrichment)"
    severity: medium
  - id: nato-exercise
    query: "NATO NEAR/10 (exercise* OR drill*)"
    severity: low
  - id: bombers
    query: '"Air Force" + (B-52 OR bomber* OR B-2)'
    severity: low
  - id: houthi-shipping
    query: "Houthi* + (ship* OR tanker* OR \\"Red Sea\\")"
    severity: high
"""


def write_config(
    folder: Path,
    *,
    database: str,
    urls: Sequence[str],
    user_agent: str,
    concurrency: int = 50,
    per_host: int = 50,
    interval: str = "1h",
    backfill: bool = True,
    name: str = "monitor.yaml",
    stories_window: str | None = None,
) -> Path:
    """monitor.yaml and its watchlist in `folder`; returns the config's path.

    `backfill: true` on every feed makes the first poll match the items and write alerts,
    as every later poll of a known feed does; without it a new feed's items are only stored
    and cycle 1 would skip matching altogether."""
    watchlist = folder / "watchlist.yaml"
    if not watchlist.exists():
        watchlist.write_text(WATCHLIST)
    lines = [
        f"database: {database}",
        f"watchlist: {watchlist}",
        "poll:",
        f"  interval: {interval}",
        "  jitter: 0s",
        f"  concurrency: {concurrency}",
        f"  per_host: {per_host}",
        "  allow_private_networks: true",
        f'  user_agent: "{user_agent}"',
        "server: {listen: 127.0.0.1:0}",
        *([f"stories: {{window: {stories_window}}}"] if stories_window else []),
        "channels:",
        "  console: {type: log}",
        "feeds:",
    ]
    flag = ", backfill: true" if backfill else ""
    lines += [f"  - {{id: f{n}, url: '{u}'{flag}}}" for n, u in enumerate(urls)]
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


# --- PostgreSQL ------------------------------------------------------------------------------

PG_ADMIN = os.environ.get("MONITOR_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")


@contextlib.contextmanager
def pg_database(prefix: str = "bench_scale") -> Iterator[str]:
    """A fresh database for one run, dropped afterwards (connections forced closed)."""
    import psycopg

    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        host = PG_ADMIN.split("://", 1)[1].rsplit("/", 1)[0]
        yield f"postgresql+psycopg://{host}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
