"""The story step (SPEC "Stories"): which story each new item belongs to, so that a rule
alerts once per story and every copy is named on that alert.

In order of cost, for each new item, against the items of the last `stories.window`:
1. the same canonical URL, or the same content hash (an exact copy): that item's story;
2. a near copy: the items sharing an LSH band key with it (`stories.sketch`, computed in the
   worker that parsed the feed) are the candidates (the MAX_CANDIDATES sharing most bands);
   of those `stories.same_story` accepts, the most alike (`stories.similarity`) gives its
   story;
3. else the item starts a story, named by its own content hash (the key alerts already
   used for exact copies, so stories and alerts written before this step still fold).
Items of one batch see each other (a copy in the same cycle folds too). On PostgreSQL the
step holds a transaction-level advisory lock, so that two workers writing two copies at the
same moment cannot both start the story.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import chain, repeat

from sqlmodel import Session

from monitor.records import Sketch
from monitor.sketch import same_story, similarity
from monitor.store import stories as index
from monitor.store.items import StoredItem

MAX_CANDIDATES = 20  # compared per new item, most shared bands first: a bounded cost


def assign(
    session: Session,
    new: Sequence[StoredItem],
    sketches: Mapping[int, Sketch | None],
    now: dt.datetime,
    window: dt.timedelta,
) -> dict[int, str]:
    """{item id: story} for new items, recorded in the window's index."""
    if not new:
        return {}
    if window <= dt.timedelta(0):
        return {it.id: it.data.content_hash for it in new}
    since = now - window
    index.lock(session)
    state = _Window(session, new, sketches, since)
    out: dict[int, str] = {}
    members: list[index.Member] = []
    for it in new:
        sketch = sketches.get(it.id)
        story = state.exact(it) or (state.near(it.id, sketch) if sketch else None)
        story = story or it.data.content_hash
        out[it.id] = story
        member = index.Member(
            it.id, story, it.data.url, it.data.content_hash, sketch.dumps() if sketch else None
        )
        state.add(member, sketch)
        members.append(member)
    index.add(session, members, {i: s.bands for i, s in sketches.items() if s is not None}, now)
    return out


class _Window:
    """The candidates of a batch, read in a few queries, and the batch's own items."""

    def __init__(
        self,
        session: Session,
        new: Sequence[StoredItem],
        sketches: Mapping[int, Sketch | None],
        since: dt.datetime,
    ) -> None:
        urls = [it.data.url for it in new if it.data.url]
        known = sorted(index.exact(session, urls, [it.data.content_hash for it in new], since),
                       key=lambda m: m.item_id)  # fmt: skip
        self.by_url: dict[str, str] = {}
        self.by_hash: dict[str, str] = {}
        for m in known:
            if m.url:
                self.by_url.setdefault(m.url, m.story)
            self.by_hash.setdefault(m.content_hash, m.story)
        bands = {b for s in sketches.values() if s is not None for b in s.bands}
        self.bands = index.by_bands(session, bands, since) if bands else {}
        ids = {i for ids in self.bands.values() for i in ids}
        self.members = {m.item_id: m for m in index.members(session, ids, since)}
        self.sketches: dict[int, Sketch | None] = {}

    def exact(self, it: StoredItem) -> str | None:
        if it.data.url and it.data.url in self.by_url:
            return self.by_url[it.data.url]
        return self.by_hash.get(it.data.content_hash)

    def near(self, item_id: int, sketch: Sketch) -> str | None:
        # Counted in C (chain, map, Counter): ~20 band hits an item, 90,000 bands a cycle.
        shared = Counter(chain.from_iterable(map(self.bands.get, sketch.bands, repeat(()))))
        shared.pop(item_id, None)
        ranked = sorted(shared.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_CANDIDATES]
        best: tuple[float, int] | None = None
        for other_id, _n in ranked:
            other = self._sketch(other_id)
            if other is not None and same_story(sketch, other):
                score = (similarity(sketch, other), -other_id)  # the most alike; then the first
                best = max(best, score) if best else score
        return self.members[-best[1]].story if best else None

    def _sketch(self, item_id: int) -> Sketch | None:
        if item_id not in self.sketches:
            m = self.members.get(item_id)
            self.sketches[item_id] = Sketch.loads(m.sketch) if m and m.sketch else None
        return self.sketches[item_id]

    def add(self, m: index.Member, sketch: Sketch | None) -> None:
        if m.url:
            self.by_url.setdefault(m.url, m.story)
        self.by_hash.setdefault(m.content_hash, m.story)
        self.members[m.item_id] = m
        self.sketches[m.item_id] = sketch
        for b in sketch.bands if sketch else ():
            self.bands.setdefault(b, []).append(m.item_id)
