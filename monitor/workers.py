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
  with the reason (`WorkerFailed`); the worker is replaced in the background, and a job that
  was queued behind it is sent to another worker. An exception the job raises (ParseError)
  comes back as it is, and the worker is kept.
- **Two jobs a worker** (`DEPTH`): the next waits in its socket, so it starts as soon as
  the last reply is sent. The wall deadline runs from a job's start, not its queueing.
- One socket pair per worker, the parent's end an asyncio stream read by a task of its own:
  waiting never blocks the event loop, and there are no pool threads. Frames: 8-byte
  length, then a pickle.
- **Shared** arguments (the compiled watchlist) go to each worker once per version, not with
  every job: the worker keeps the last version of each by name.
Rejected (docs/design.md): ProcessPoolExecutor (one dead worker breaks the pool for every later
job; a timed-out job keeps burning CPU), pebble (wall-clock deadlines only: a kill waits out
its SIGTERM grace; a worker is reused after a MemoryError).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib
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

from monitor.records import pickled_by_fields

log = structlog.get_logger("monitor.workers")

PRELOAD = ["monitor.jobs"]  # what the forkserver imports once (feedparser, the rules, ...)
_HEADER = struct.Struct("!Q")
_MAX_REPLY = 256 << 20  # a reply this large is a bug: never allocate it


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class Shared:
    """An argument a worker keeps between jobs, sent to it once per `version` (a compiled
    watchlist costs more to pickle than a feed does to parse). The job receives `value`."""

    name: str
    version: str
    value: Any = None
    sent: bool = True  # False: the worker has this version already; value is not in the frame


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class ByName:
    """A job named by its module and function, called like it: the frame carries the two
    names and the worker imports the module (the forkserver has, for PRELOAD's). So the
    daemon need not import the parse code to send its first job: it did, on the loop, 0.14 s
    of numpy and feedparser while the workers waited for it; now it does when the first
    reply, which holds the code's classes, arrives, and the workers are busy meanwhile."""

    module: str
    name: str

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(self.module), self.name)(*args, **kwargs)


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

# Jobs in a worker's socket at once: the one it runs and two behind it, so that it starts the
# next the moment it has sent a reply instead of waiting for the daemon's process (whose
# event loop and writer share one GIL) to read that reply and send another. Without it the
# workers waited for their next job in about a tenth of their samples (py-spy, cycle 1);
# with one behind, 0.46-0.54 s each in a 2,000-feed cycle 1 (a job is ~5 ms, and the daemon's
# process can be busy for longer), with two 0.32-0.47 s (docs/design.md). Not more: the jobs
# behind a hostile parse wait out its CPU deadline (the other worker takes the new ones).
DEPTH = 3


class _Resend(Exception):
    """The job was queued behind one that broke its worker: it never ran; send it again."""


@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    holds: dict[str, str] = field(default_factory=dict)  # Shared name -> version it has
    # The replies awaited, one a job sent, in the order sent: (status, value) when it comes.
    pending: collections.deque[asyncio.Future[tuple[str, Any]]] = field(
        default_factory=collections.deque
    )
    head_since: float = 0.0  # loop time at which pending[0] started: its wall deadline's start
    alive: bool = True
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def frame(self, fn: Callable[..., Any], args: Any, kwargs: Any, cpu: float) -> bytes:
        """The job's frame, Shared arguments in it only if this worker lacks their version
        (it holds them once the frame is written: it reads its frames in order)."""
        sending: dict[str, str] = {}
        args = [self._share(a, sending) for a in args]
        kwargs = {k: self._share(v, sending) for k, v in kwargs.items()}
        payload = pickle.dumps((fn, args, kwargs, cpu), pickle.HIGHEST_PROTOCOL)
        self.holds.update(sending)  # only once the frame exists (an argument may not pickle)
        return _HEADER.pack(len(payload)) + payload

    def _share(self, arg: Any, sending: dict[str, str]) -> Any:
        if not isinstance(arg, Shared):
            return arg
        if self.holds.get(arg.name) == arg.version:
            return Shared(arg.name, arg.version, sent=False)
        sending[arg.name] = arg.version
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
    """`size` worker processes, DEPTH jobs each at most; `run` waits for room in one (a
    queue, never a thread). Each worker's replies are read by a task of its own, in order."""

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
        # backstop for a worker that hangs without using CPU, not the deadline of record. It
        # runs from the moment the job starts, not from when it was queued behind another.
        self.wall_seconds = wall_seconds or max(60.0, 6 * cpu_seconds)
        self._context = multiprocessing.get_context(start_method)
        if start_method == "forkserver":
            self._context.set_forkserver_preload(PRELOAD)
        # A worker once per free place; None once closed (whoever takes it puts it back).
        self._room: asyncio.Queue[_Worker | None] = asyncio.Queue()
        self._workers: set[_Worker] = set()
        self._readers: set[asyncio.Task[None]] = set()  # one a worker
        self._replacing: set[asyncio.Task[None]] = set()
        self.replaced = 0  # workers replaced after a breach or a death
        self._starting: asyncio.Future[None] | None = None
        self._closing = False

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
        for w in await asyncio.gather(*(self._spawn(at_start=True) for _ in range(self.size))):
            self._serve(w)

    async def _spawn(self, *, at_start: bool = False) -> _Worker:
        ours, theirs = socket.socketpair()
        process: BaseProcess = self._context.Process(  # type: ignore[attr-defined]
            target=_worker, args=(theirs, self.memory_mb << 20), daemon=True
        )
        if at_start:
            # On the loop's own thread: a round trip to the forkserver, 3-6 ms. From a thread
            # it took 0.3 s at the start of a cycle, a GIL hand-over at every one of its
            # system calls while the loop's first fetches held the GIL, and the first bodies
            # waited for it. (The forkserver has long finished its imports by now: they are
            # a part of the daemon's own, started before them.)
            _start(process)
        else:
            await asyncio.to_thread(_start, process)  # a replacement: never block the loop
        theirs.close()
        reader, writer = await asyncio.open_connection(sock=ours)
        worker = _Worker(process, reader, writer)
        self._workers.add(worker)
        return worker

    def _serve(self, worker: _Worker) -> None:
        """The worker's places in the queue, and the task that reads its replies (its own:
        it survives any caller's cancellation)."""
        for _ in range(DEPTH):
            self._room.put_nowait(worker)
        task = asyncio.get_running_loop().create_task(self._read_replies(worker))
        self._readers.add(task)
        task.add_done_callback(self._readers.discard)

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """fn(*args, **kwargs) in a worker; WorkerFailed on a breach or a death, else what
        fn returned or raised. A job queued behind one that broke its worker is sent to
        another: only the job that was running fails."""
        if self._closing:
            raise WorkerFailed("the worker pool is closed")
        await self.start()
        loop = asyncio.get_running_loop()
        while True:
            worker = await self._room.get()
            if worker is None:
                self._room.put_nowait(None)
                raise WorkerFailed("the worker pool is closed")
            if not worker.alive:
                continue  # a dead worker's place: its replacement brings its own
            try:
                frame = worker.frame(fn, args, kwargs, self.cpu_seconds)
            except BaseException:
                self._room.put_nowait(worker)
                raise
            reply: asyncio.Future[tuple[str, Any]] = loop.create_future()
            if not worker.pending:
                worker.head_since = loop.time()
            worker.pending.append(reply)
            worker.arrived.set()
            worker.writer.write(frame)
            try:
                with contextlib.suppress(ConnectionError):
                    await worker.writer.drain()  # a dead worker's reader fails or resends it
                status, value = await reply
            except _Resend:
                continue
            except BaseException:
                reply.cancel()  # a cancelled caller: its reply is dropped when it comes
                raise
            if status == "error":
                raise value
            return value

    async def _read_replies(self, worker: _Worker) -> None:
        loop = asyncio.get_running_loop()
        failure: WorkerFailed | None = None
        while failure is None:
            if not worker.pending:
                worker.arrived.clear()
                await worker.arrived.wait()
                continue
            try:
                left = worker.head_since + self.wall_seconds - loop.time()
                async with asyncio.timeout(max(left, 0.001)):
                    (n,) = _HEADER.unpack(await worker.reader.readexactly(_HEADER.size))
                    if n > _MAX_REPLY:
                        raise WorkerFailed(f"the worker sent a {n}-byte reply")
                    body = await worker.reader.readexactly(n)
                status, value = pickle.loads(body)
            except TimeoutError:
                failure = WorkerFailed(f"exceeded its {self.wall_seconds:g} s wall deadline")
            except (asyncio.IncompleteReadError, ConnectionError):
                worker.alive = False  # no more jobs for it while it is reaped
                code = await asyncio.to_thread(_join, worker.process, 2.0)
                failure = WorkerFailed(describe_exit(code, self.cpu_seconds))
            except WorkerFailed as exc:
                failure = exc
            except Exception as exc:  # a reply that does not unpickle (an odd exception)
                # Never let this task die: its worker's jobs would wait for ever.
                failure = WorkerFailed(f"the worker's reply could not be read ({exc!r})")
            else:
                if status == "memory":  # the worker exits after saying so
                    failure = WorkerFailed(f"exceeded its memory limit ({self.memory_mb} MB)")
                    break
                reply = worker.pending.popleft()
                worker.head_since = loop.time()
                if not reply.done():  # not given up by a cancelled caller
                    reply.set_result((status, value))
                self._room.put_nowait(worker)
        worker.alive = False
        head, *behind = worker.pending  # not empty: a failure comes only from reading a reply
        worker.pending.clear()
        if not head.done():
            head.set_exception(failure)
        for reply in behind:  # never ran: sent again, elsewhere
            if not reply.done():
                reply.set_exception(_Resend())
        task = asyncio.get_running_loop().create_task(self._replace(worker))
        self._replacing.add(task)  # close() waits for it: a fork is not cut off halfway
        task.add_done_callback(self._replacing.discard)

    async def _replace(self, worker: _Worker) -> None:
        await self._retire(worker)
        if self._closing:
            return
        self.replaced += 1
        log.warning("worker_replaced", replaced=self.replaced)
        new = await self._spawn()
        if not self._closing:  # else close() retires it with the others
            self._serve(new)

    async def _retire(self, worker: _Worker) -> None:
        worker.alive = False
        self._workers.discard(worker)
        if worker.process.is_alive() and worker.process.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.process.pid, signal.SIGKILL)
        await asyncio.to_thread(_join, worker.process, 5.0)
        worker.writer.close()

    async def close(self) -> None:
        self._closing = True
        if self._starting is not None and not self._starting.done():
            with contextlib.suppress(Exception):
                await self._starting
        await asyncio.gather(*self._replacing, return_exceptions=True)
        for task in list(self._readers):
            task.cancel()
        for task in list(self._readers):
            with contextlib.suppress(BaseException):
                await task
        for worker in list(self._workers):
            for reply in worker.pending:
                if not reply.done():
                    reply.set_exception(WorkerFailed("the worker pool is closed"))
            await self._retire(worker)
        self._room.put_nowait(None)  # wakes whoever waits for a place
        # A reader that failed while this waited started a replacement: it stops at once.
        await asyncio.gather(*self._replacing, return_exceptions=True)

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
