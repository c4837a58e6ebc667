"""The daemon's process and Python's cyclic garbage collector.

A poll cycle brings tens of thousands of objects into the daemon's process at once (each feed's
items unpickled from a worker, then rows for the writer) and keeps them until they are
written. With the collector's defaults (a collection every 700 allocations) that is about a
thousand collections a 2,000-feed cycle, several of them full ones that walk every object the
process holds: the imported modules, the configuration of every feed, SQLAlchemy's caches.
They hold the GIL, so the event loop and the writer both wait: 1.4-1.6 s of a cycle's 9 CPU-s
in that process (bench/poll.py, measured with gc.callbacks; docs/design.md).

Start-up, too, makes objects that live as long as the process (modules, the configuration):
some 280 collections (0.2 s) on the one core start-up has. So:
- `starting()`, at the command's entry point before the commands are imported (entry.py),
  sets the thresholds below;
- `settle()`, once that process has started (configuration loaded, the stages built):
  `gc.freeze()` moves everything alive into a permanent generation that collections skip;
  what was loaded at start-up lives as long as the process anyway.
The thresholds: gen0 collects every THRESHOLD[0] allocations instead of 700, and the older
generations less often: a cycle's items are short-lived garbage without reference cycles
(freed by reference counting), so collecting them sooner only costs time.

The collector stays on: reference cycles made later are still found, only later. With this,
the same cycle, start-up included, ran 37 collections taking 0.23 s in all, against about
1,150 taking 1.4-1.6 s. A young collection walks everything allocated since the last (the
writer's row lists of a batch, 90,000 band rows of the story step): at 10,000 they were 44
collections of 13-53 ms each, 0.42-0.44 s holding the GIL, and the parse workers ran dry
during the longest; at 50,000, 5 collections, 0.08-0.12 s (docs/design.md).
"""

from __future__ import annotations

import gc

THRESHOLD = (50_000, 20, 20)
_started = False  # by starting(): this process is the `monitor` command, not a test


def starting() -> None:
    global _started
    _started = True
    gc.set_threshold(*THRESHOLD)


def settle() -> None:
    """Call once the process has started; calling again freezes what was made since. Only in
    a process that called `starting()`: a test suite building the stages again and again
    would freeze every earlier test's garbage for good."""
    if not _started:
        return
    # No gc.collect() first: it would cost a tenth of a second on the critical path to free
    # the few hundred objects start-up left in cycles; they stay frozen, a few kB.
    gc.freeze()
