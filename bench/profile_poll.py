"""Where a cycle's CPU goes, in every process of the tree (py-spy: threads and workers too).

    .venv/bin/pip install py-spy
    .venv/bin/python bench/profile_poll.py --feeds 2000 --out /tmp/prof

Serves the feeds as bench/poll.py does, runs cycle 1 and cycle 2 of `monitor once --all` under
`py-spy record --subprocesses`, and prints for each cycle the functions with the most samples
(self and total), per process role (main thread, other threads, workers). cProfile sees one
thread of one process; this sees them all.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
from pathlib import Path

from feedserver import FeedServer
from harness import MONITOR, compile_package, write_config

UA = "monitor-bench/poll"
_LINE = re.compile(r"^(.*) (\d+)$")


def record(cmd: list[str], out: Path, rate: int) -> None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    subprocess.run(
        [
            spy,
            "record",
            "--subprocesses",
            "--threads",
            "--format",
            "raw",
            "--rate",
            str(rate),
            "--nonblocking",
            "-o",
            str(out),
            "--",
            *cmd,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def report(path: Path, top: int) -> None:
    selfs: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    totals: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    per_role: collections.Counter[str] = collections.Counter()
    for line in path.read_text().splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        stack, n = m.group(1).split(";"), int(m.group(2))
        # py-spy's roots: 'process PID:"cmd"' (a worker's under its parents'), then
        # 'thread (TID): name'
        procs = [f for f in stack if f.startswith("process ")]
        threads = [f for f in stack if f.startswith("thread (")]
        worker = any("forkserver" in p for p in procs)
        thread = threads[-1].split(": ", 1)[-1] if threads else "?"
        role = "workers" if worker else f"daemon {re.sub(r'_[0-9]+$', '', thread)}"
        frames = [f for f in stack if not f.startswith(("process ", "thread ("))]
        per_role[role] += n
        if frames:
            selfs[role][frames[-1]] += n
            for f in set(frames):
                totals[role][f] += n
    all_n = sum(per_role.values()) or 1
    for role, n in per_role.most_common():
        print(f"\n== {role}: {n} samples ({n / all_n:.0%})")
        print("  self:")
        for f, c in selfs[role].most_common(top):
            print(f"    {c / n:6.1%}  {f}")
        print("  total:")
        for f, c in totals[role].most_common(top):
            print(f"    {c / n:6.1%}  {f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--feeds", type=int, default=2000)
    ap.add_argument("--ports", type=int, default=4)
    ap.add_argument("--rate", type=int, default=200, help="samples a second")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    compile_package()
    work = args.out
    work.mkdir(parents=True, exist_ok=True)
    for f in work.glob("monitor.db*"):
        f.unlink()
    with FeedServer(args.feeds, args.ports) as srv:
        write_config(work, database=f"sqlite:///{work}/monitor.db", urls=srv.urls(), user_agent=UA)
        cmd = [*MONITOR, "--config", str(work / "monitor.yaml"), "once", "--all"]
        for cycle in (1, 2):
            out = work / f"cycle{cycle}.txt"
            record(cmd, out, args.rate)
            print(f"\n######## cycle {cycle} ({out})")
            report(out, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
