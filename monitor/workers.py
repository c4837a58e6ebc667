"""Worker processes for the CPU-bound and untrusted work (parsing feeds, extracting pages): both
cores work, and one hostile feed can neither stall nor take down the daemon.

    pool = WorkerPool(size=2, memory_mb=384, cpu_seconds=10)
    await pool.start()
    parsed = await pool.run(parse_feed, body, feed_id="x", base_url=url, fetched_at=now)
    await pool.close()

- **forkserver** workers: forked from a small single-threaded server process that has
  imported the parsing code once (`PRELOAD`), never from the threaded daemon (a fork there can
  inherit a held lock); a replacement worker costs a fork (~0.1 s), not a new interpreter.
- **Memory**: RLIMIT_AS in each worker. A MemoryError is reported as "parse exceeded its
  memory limit" and the worker is replaced (a process that ran out of memory is not trusted).
- **CPU**: before each job the worker sets its soft RLIMIT_CPU to the CPU it has used plus
  the job's allowance, so the kernel stops a runaway job with SIGXCPU even while a regex in C
  holds the GIL. A wall deadline in the parent catches a worker that hangs without using CPU.
- **Deaths** (the CPU deadline, the wall deadline, a segfault, an exit) fail only that job,
  with the reason (`WorkerFailed`); the worker is replaced in the background. An exception the
  job raises (ParseError) comes back as it is, and the worker is kept.
- One socket pair per worker, the parent's end an asyncio stream: waiting never blocks the
  event loop, and there are no pool threads. Frames: 8-byte length, then a pickle.
- **Shared** arguments (the compiled watchlist) go to each worker once per version, not with
  every job: the worker keeps the last version of each by name.
Rejected (docs/design.md): ProcessPoolExecutor (one dead worker breaks the pool for every later
job; a timed-out job keeps burning CPU), pebble (wall-clock deadlines only: a kill waits out
its SIGTERM grace; a worker is reused after a MemoryError).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import os
import pickle
import resource
import signal
import socket
import struct
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any

import structlog

log = structlog.get_logger("monitor.workers")

PRELOAD = ["monitor.jobs"]  # what the forkserver imports once (feedparser, the rules, ...)
_HEADER = struct.Struct("!Q")
_MAX_REPLY = 256 << 20  # a reply this large is a bug: never allocate it


@dataclass(frozen=True, slots=True)
class Shared:
    """An argument a worker keeps between jobs, sent to it once per `version` (a compiled
    watchlist costs more to pickle than a feed does to parse). The job receives `value`."""

    name: str
    version: str
    value: Any = None
    sent: bool = True  # False: the worker has this version already; value is not in the frame


class WorkerFailed(Exception):
    """The job did not finish: `reason` says which limit it passed, or how its worker died."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- the worker ------------------------------------------------------------------------------


def _read(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise EOFError
        buf += chunk
    return bytes(buf)


def _resolve(kept: dict[str, tuple[str, Any]], arg: Any) -> Any:
    if not isinstance(arg, Shared):
        return arg
    if arg.sent:
        kept[arg.name] = (arg.version, arg.value)
    version, value = kept[arg.name]
    if version != arg.version:  # the parent's record of what this worker holds is wrong
        raise RuntimeError(f"worker holds {arg.name} {version}, not {arg.version}")
    return value


def _worker(sock: socket.socket, memory: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon decides when workers stop
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for name in PRELOAD:  # imported by the forkserver already; needed under spawn
        __import__(name)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core dump of a killed worker
    if memory:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    kept: dict[str, tuple[str, Any]] = {}  # Shared arguments: name -> (version, value)
    while True:
        try:
            (n,) = _HEADER.unpack(_read(sock, _HEADER.size))
            fn, args, kwargs, cpu = pickle.loads(_read(sock, n))
        except EOFError:
            return
        used = resource.getrusage(resource.RUSAGE_SELF)
        resource.setrlimit(
            resource.RLIMIT_CPU, (math.ceil(used.ru_utime + used.ru_stime + cpu), hard)
        )
        try:
            args = [_resolve(kept, a) for a in args]
            kwargs = {k: _resolve(kept, v) for k, v in kwargs.items()}
            reply: tuple[str, Any] = ("ok", fn(*args, **kwargs))
        except MemoryError:
            reply = ("memory", None)
        except BaseException as exc:  # shipped to the parent, raised there
            reply = ("error", exc)
        try:
            payload = pickle.dumps(reply, pickle.HIGHEST_PROTOCOL)
        except MemoryError:
            reply, payload = ("memory", None), pickle.dumps(("memory", None))
        except Exception as exc:  # a result or exception that does not pickle
            payload = pickle.dumps(("error", RuntimeError(f"unpicklable reply: {exc!r}")))
        sock.sendall(_HEADER.pack(len(payload)) + payload)
        if reply[0] == "memory":
            return


# --- the pool --------------------------------------------------------------------------------


@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    holds: dict[str, str] = field(default_factory=dict)  # Shared name -> version it has

    def frame(self, fn: Callable[..., Any], args: Any, kwargs: Any, cpu: float) -> bytes:
        """The job's frame, Shared arguments in it only if this worker lacks their version
        (it holds them once the frame is written)."""
        args = [self._share(a) for a in args]
        kwargs = {k: self._share(v) for k, v in kwargs.items()}
        payload = pickle.dumps((fn, args, kwargs, cpu), pickle.HIGHEST_PROTOCOL)
        return _HEADER.pack(len(payload)) + payload

    def _share(self, arg: Any) -> Any:
        if not isinstance(arg, Shared):
            return arg
        if self.holds.get(arg.name) == arg.version:
            return Shared(arg.name, arg.version, sent=False)
        self.holds[arg.name] = arg.version
        return arg


def describe_exit(code: int | None, cpu_seconds: float) -> str:
    if code is None:
        return "the worker stopped answering"
    if code == -signal.SIGXCPU:
        return f"exceeded its {cpu_seconds:g} s CPU deadline"
    if code == -signal.SIGKILL:
        return "the worker was killed (SIGKILL)"
    if code < 0:
        return f"the worker crashed ({signal.Signals(-code).name})"
    return f"the worker exited with status {code}"


class WorkerPool:
    """`size` worker processes; `run` waits for a free one (a queue, never a thread)."""

    def __init__(
        self,
        size: int = 2,
        *,
        memory_mb: int = 384,
        cpu_seconds: float = 10.0,
        wall_seconds: float | None = None,
        start_method: str = "forkserver",
    ) -> None:
        self.size = max(1, size)
        self.memory_mb = memory_mb
        self.cpu_seconds = cpu_seconds
        # A CPU second can take several of wall on a shared machine; the wall deadline is a
        # backstop for a worker that hangs without using CPU, not the deadline of record.
        self.wall_seconds = wall_seconds or max(60.0, 6 * cpu_seconds)
        self._context = multiprocessing.get_context(start_method)
        if start_method == "forkserver":
            self._context.set_forkserver_preload(PRELOAD)
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._workers: set[_Worker] = set()
        self._background: set[asyncio.Task[None]] = set()
        self.replaced = 0  # workers replaced after a breach or a death
        self._starting: asyncio.Future[None] | None = None

    async def start(self) -> None:
        """Start the workers (once; `run` calls it too, and waits for them)."""
        self.start_soon()
        assert self._starting is not None
        await asyncio.shield(self._starting)

    def start_soon(self) -> None:
        """Start the workers in the background (inside the event loop): the first parse
        then finds them ready instead of waiting for the forks."""
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start())

    async def _start(self) -> None:
        for w in await asyncio.gather(*(self._spawn() for _ in range(self.size))):
            self._idle.put_nowait(w)

    async def _spawn(self) -> _Worker:
        ours, theirs = socket.socketpair()
        process: BaseProcess = self._context.Process(  # type: ignore[attr-defined]
            target=_worker, args=(theirs, self.memory_mb << 20), daemon=True
        )
        await asyncio.to_thread(_start, process)  # a round trip to the forkserver
        theirs.close()
        reader, writer = await asyncio.open_connection(sock=ours)
        worker = _Worker(process, reader, writer)
        self._workers.add(worker)
        return worker

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """fn(*args, **kwargs) in a worker; WorkerFailed on a breach or a death, else what
        fn returned or raised."""
        await self.start()
        worker = await self._idle.get()
        keep = False
        try:
            worker.writer.write(worker.frame(fn, args, kwargs, self.cpu_seconds))
            try:
                async with asyncio.timeout(self.wall_seconds):
                    await worker.writer.drain()
                    (n,) = _HEADER.unpack(await worker.reader.readexactly(_HEADER.size))
                    if n > _MAX_REPLY:
                        raise WorkerFailed(f"the worker sent a {n}-byte reply")
                    status, value = pickle.loads(await worker.reader.readexactly(n))
            except TimeoutError:
                raise WorkerFailed(f"exceeded its {self.wall_seconds:g} s wall deadline") from None
            except (asyncio.IncompleteReadError, ConnectionError):
                code = await asyncio.to_thread(_join, worker.process, 2.0)
                raise WorkerFailed(describe_exit(code, self.cpu_seconds)) from None
            if status == "memory":
                raise WorkerFailed(f"exceeded its memory limit ({self.memory_mb} MB)")
            keep = True
            if status == "error":
                raise value
            return value
        finally:
            if keep:
                self._idle.put_nowait(worker)
            else:  # its own task: it survives the caller being cancelled
                task = asyncio.get_running_loop().create_task(self._replace(worker))
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    async def _replace(self, worker: _Worker) -> None:
        await self._retire(worker)
        self.replaced += 1
        log.warning("worker_replaced", replaced=self.replaced)
        self._idle.put_nowait(await self._spawn())

    async def _retire(self, worker: _Worker) -> None:
        self._workers.discard(worker)
        if worker.process.is_alive() and worker.process.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.process.pid, signal.SIGKILL)
        await asyncio.to_thread(_join, worker.process, 5.0)
        worker.writer.close()

    async def close(self) -> None:
        if self._starting is not None and not self._starting.done():
            with contextlib.suppress(Exception):
                await self._starting
        for task in list(self._background):
            with contextlib.suppress(Exception):
                await task
        for worker in list(self._workers):
            await self._retire(worker)

    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers if w.process.pid is not None]


def prestart() -> None:
    """Launch the forkserver now, in the background, so that its import of the parsing code
    (PRELOAD: a third of a CPU-second) runs on another core while this process is still
    starting (its own imports, the configuration, the schema). Without it the forkserver is
    launched by the first worker's start, and the cycle's first parse waits for that
    import. Costs that third of a CPU-second in a cycle that turns out to have nothing to
    parse, on the core the daemon is not using."""
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(PRELOAD)
    forkserver.ensure_running()


_MAIN_LOCK = threading.Lock()


def _start(process: BaseProcess) -> None:
    """process.start(), without making the child run the daemon's __main__ again.

    multiprocessing re-runs the parent's __main__ in every child unless it was started with
    `python -m` (then it is skipped). For the `monitor` console script that is the whole CLI:
    sqlalchemy, aiohttp, the scheduler... about a CPU-second and tens of MB in each worker,
    none of it used (jobs are functions of monitor.jobs, pickled by name). So __main__ looks
    like `-m`'s while the child's start data is made: no file to run."""
    main = sys.modules.get("__main__")
    with _MAIN_LOCK:
        hide = main is not None and main.__spec__ is None and "__file__" in vars(main)
        path = vars(main).pop("__file__") if hide else None
        try:
            process.start()
        finally:
            if hide:
                main.__file__ = path  # type: ignore[union-attr]


def _join(process: BaseProcess, timeout: float) -> int | None:
    process.join(timeout)
    return process.exitcode
