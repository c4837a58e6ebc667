"""The worker processes (monitor/workers.py), with real processes: a job's result or exception
comes back, and each limit (CPU, memory, a crash) fails only its job, with the reason, and
the worker is replaced; shared arguments reach each worker once per version."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from monitor.errors import ParseError
from monitor.workers import DEPTH, ByName, Shared, WorkerFailed, WorkerPool

# --- jobs (module level: a worker imports them by name) ---------------------------------------

UNPICKLED = 0  # in a worker: how many Counted values it has received


def _counted() -> Counted:
    global UNPICKLED
    UNPICKLED += 1
    return Counted()


class Counted:
    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (_counted, ())


def whoami(value: Any = None) -> tuple[int, int]:
    return os.getpid(), UNPICKLED


def fails() -> None:
    raise ParseError("not a feed")


def spins() -> None:
    n = 0
    while True:
        n += 1


def hoards() -> bytes:
    return b"x" * (1 << 30)  # 1 GiB, over the 256 MB limit


def crashes() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


class Picky(Exception):
    def __init__(self, a: str, b: str) -> None:  # pickles, but does not unpickle
        super().__init__(f"{a}/{b}")


def raises_picky() -> None:
    raise Picky("a", "b")


def naps(seconds: float) -> int:
    time.sleep(seconds)  # a job that takes wall time without CPU (a hung worker, when long)
    return os.getpid()


# --- tests ------------------------------------------------------------------------------------


@pytest.fixture
async def pool() -> AsyncIterator[WorkerPool]:
    p = WorkerPool(size=1, memory_mb=256, cpu_seconds=1.0)
    await p.start()
    try:
        yield p
    finally:
        await p.close()


async def test_a_result_and_an_exception_come_back_and_the_worker_stays(
    pool: WorkerPool,
) -> None:
    pid, _ = await pool.run(whoami)
    assert pid != os.getpid()
    with pytest.raises(ParseError, match="not a feed"):
        await pool.run(fails)
    assert (await pool.run(whoami))[0] == pid and pool.replaced == 0


@pytest.mark.parametrize(
    ("job", "reason"),
    [
        (spins, "exceeded its 1 s CPU deadline"),
        (hoards, "exceeded its memory limit (256 MB)"),
        (crashes, "the worker crashed (SIGSEGV)"),
    ],
)
async def test_a_breach_fails_its_job_with_the_reason_and_the_worker_is_replaced(
    pool: WorkerPool, job: Any, reason: str
) -> None:
    before, _ = await pool.run(whoami)
    with pytest.raises(WorkerFailed) as failed:
        await pool.run(job)
    assert failed.value.reason == reason
    after, _ = await pool.run(whoami)  # waits for the replacement
    assert after != before and pool.replaced == 1


async def test_a_job_by_name_is_imported_by_the_worker_not_by_the_sender(
    pool: WorkerPool,
) -> None:
    import pickle
    import sys

    job = ByName("tests.test_workers", "whoami")
    assert len(pickle.dumps(job)) < 120  # two names, not the function
    pid, _ = await pool.run(job)
    assert pid != os.getpid()
    # A module the daemon never imported runs in the worker all the same.
    assert "cmath" not in sys.modules
    assert await pool.run(ByName("cmath", "sqrt"), -1) == 1j and "cmath" not in sys.modules


async def test_a_shared_argument_goes_to_a_worker_once_per_version(pool: WorkerPool) -> None:
    for _ in range(3):
        _pid, received = await pool.run(whoami, Shared("w", "v1", Counted()))
    assert received == 1
    _pid, received = await pool.run(whoami, value=Shared("w", "v2", Counted()))
    assert received == 2
    with pytest.raises(WorkerFailed):
        await pool.run(crashes)
    # A new worker holds nothing: it is sent the version again.
    _pid, received = await pool.run(whoami, Shared("w", "v2", Counted()))
    assert received == 1


async def test_a_job_queued_behind_a_breach_runs_on_the_replacement(pool: WorkerPool) -> None:
    """One worker holds DEPTH jobs: the one behind a job that kills it never ran, so it is
    sent to the replacement instead of failing with it."""
    before, _ = await pool.run(whoami)
    results: Any = await asyncio.gather(pool.run(spins), pool.run(whoami), return_exceptions=True)
    breach, behind = results
    assert isinstance(breach, WorkerFailed) and "CPU deadline" in breach.reason
    assert isinstance(behind, tuple) and behind[0] != before and pool.replaced == 1


async def test_the_wall_deadline_runs_from_a_jobs_start_not_from_its_queueing() -> None:
    p = WorkerPool(size=1, memory_mb=256, cpu_seconds=5.0, wall_seconds=1.5)
    try:
        # 0.8 s each, one behind the other: the second ends 1.6 s after it was sent.
        first, second = await asyncio.gather(p.run(naps, 0.8), p.run(naps, 0.8))
        assert first == second and p.replaced == 0
        results: Any = await asyncio.gather(p.run(naps, 30), p.run(naps, 0), return_exceptions=True)
        hung, behind = results
        assert isinstance(hung, WorkerFailed)
        assert hung.reason == "exceeded its 1.5 s wall deadline"
        assert behind != first and p.replaced == 1  # sent again, to the replacement
    finally:
        await p.close()


async def test_a_cancelled_caller_leaves_the_worker_working(pool: WorkerPool) -> None:
    pid, _ = await pool.run(whoami)
    waiting = asyncio.ensure_future(pool.run(naps, 0.3))
    while not any(w.pending for w in pool._workers):  # sent
        await asyncio.sleep(0)
    waiting.cancel()
    assert (await pool.run(whoami))[0] == pid and pool.replaced == 0


async def test_a_reply_that_cannot_be_read_fails_its_job_not_the_pool(pool: WorkerPool) -> None:
    with pytest.raises(WorkerFailed, match="reply could not be read"):
        await asyncio.wait_for(pool.run(raises_picky), 30)
    await asyncio.wait_for(pool.run(whoami), 30)  # the replacement answers
    assert pool.replaced == 1


async def test_close_fails_every_caller_even_one_waiting_for_a_place() -> None:
    p = WorkerPool(size=1, memory_mb=256, cpu_seconds=5.0)
    await p.start()
    callers = [asyncio.ensure_future(p.run(naps, 1.0)) for _ in range(DEPTH + 1)]  # 1 waits
    [worker] = p._workers
    while len(worker.pending) < DEPTH:
        await asyncio.sleep(0)
    await p.close()
    done, waiting = await asyncio.wait(callers, timeout=10)
    assert not waiting
    assert all(isinstance(c.exception(), WorkerFailed) for c in done)
    with pytest.raises(WorkerFailed, match="closed"):
        await p.run(whoami)


async def test_the_workers_start_at_the_first_job_not_before() -> None:
    """A pool starts its processes at its first job (or `start_soon`), not when made."""
    p = WorkerPool(size=2, memory_mb=256, cpu_seconds=1.0)
    try:
        assert p.pids() == []
        first, second = await p.run(whoami), await p.run(whoami)
        assert len(p.pids()) == 2 and first[0] in p.pids() and second[0] in p.pids()
        await p.start()  # idempotent: no more processes
        assert len(p.pids()) == 2
    finally:
        await p.close()
    never = WorkerPool(size=2)
    await never.close()  # closing a pool that never started is fine
    assert never.pids() == []


SCRIPT = """\
import asyncio, os, sys
from pathlib import Path

# Every process that runs this file leaves its pid here (a console script's imports run so).
Path(os.environ["MARKS"], str(os.getpid())).touch()

if __name__ == "__main__":
    from monitor.workers import WorkerPool

    async def main() -> None:
        pool = WorkerPool(size=2, cpu_seconds=5)
        pids = {await pool.run(os.getpid) for _ in range(6)}
        await pool.close()
        print(len(pids), "__file__" in vars(sys.modules["__main__"]))

    asyncio.run(main())
"""


def test_a_worker_does_not_run_the_daemons_script_again(tmp_path: Any) -> None:
    """Started as a script (as the `monitor` console script is), the daemon's __main__ is not
    run again in each worker: its imports (the whole CLI) cost a CPU-second and tens of MB
    there, for nothing. And __main__ keeps its __file__."""
    import subprocess
    import sys

    marks = tmp_path / "marks"
    marks.mkdir()
    script = tmp_path / "daemon_script.py"
    script.write_text(SCRIPT)
    out = subprocess.run(
        [sys.executable, str(script)],
        env={**os.environ, "MARKS": str(marks)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.split() == ["2", "True"], out.stderr
    assert [p.name for p in marks.iterdir()] != [] and len(list(marks.iterdir())) == 1


def test_an_item_crosses_the_pipe_whole() -> None:
    """ItemData pickles as its constructor's arguments (records.py): every field comes back,
    a field added later included."""
    import dataclasses
    import datetime as dt
    import pickle

    from monitor.records import ItemData

    values: dict[str, Any] = {}
    for f in dataclasses.fields(ItemData):
        values[f.name] = {
            "categories": ("a", "b"),
            "published_at": dt.datetime(2026, 12, 2, 7, 0, tzinfo=dt.UTC),
        }.get(f.name, f"value of {f.name}")
    item = ItemData(**values)
    back = pickle.loads(pickle.dumps(item, pickle.HIGHEST_PROTOCOL))
    assert back == item and type(back) is ItemData
    assert [getattr(back, f.name) for f in dataclasses.fields(ItemData)] == list(values.values())


def test_what_crosses_the_pipe_pickles_without_asking_for_its_fields(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A parse's reply and a job's frame are dataclasses pickled as their constructors'
    arguments (records.pickled_by_fields): each comes back equal and of its type, and neither
    side asks `dataclasses.fields()` for every object as a frozen dataclass's own way does."""
    import dataclasses
    import datetime as dt
    import pickle

    from monitor.records import Article, Hit, ItemData, PageRead, ParsedAndMatched, ParsedFeed
    from monitor.stories import Sketch
    from monitor.workers import ByName, Shared

    item = ItemData("f", "g", "https://example.org/a", "A title", categories=("a",))
    hit = Hit("rule", ("term",), "a «term»")
    sketch = Sketch(("07:3fa9c2d41b0e",), (1, 2), (3,), 5, frozenset({7}), (9,))
    article = Article("The text.", "A title", "Wire", dt.datetime(2026, 12, 3, tzinfo=dt.UTC))
    objects = [
        item,
        hit,
        sketch,
        ParsedFeed("Feed", [item], None),
        ParsedAndMatched(ParsedFeed(None, [item], "bozo"), {"g": [hit]}, "v1", {"g": sketch}),
        PageRead(article, item, [hit], "v1", None),
        Shared("watchlist", "v1", None, sent=False),
        ByName("monitor.jobs", "parse_and_match"),
        dt.datetime(2026, 12, 3, tzinfo=dt.UTC),
    ]
    asked: list[object] = []
    real = dataclasses.fields
    monkeypatch.setattr(dataclasses, "fields", lambda x: asked.append(x) or real(x))
    back = pickle.loads(pickle.dumps(objects, pickle.HIGHEST_PROTOCOL))
    assert back == objects and [type(b) for b in back] == [type(o) for o in objects]
    assert asked == []
