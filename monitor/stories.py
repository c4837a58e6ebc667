"""Near-duplicate stories (placeholder-free minimal version; replaced by the measured one)."""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass

from monitor.models import ItemData
from monitor.normalize.text import strip_accents

PERMS = 64
BANDS, ROWS = 16, 4
_P = (1 << 61) - 1
_COEF = [
    (int.from_bytes(hashlib.blake2b(b"a%d" % i, digest_size=8).digest(), "big") % _P or 1,
     int.from_bytes(hashlib.blake2b(b"b%d" % i, digest_size=8).digest(), "big") % _P)
    for i in range(PERMS)
]  # fmt: skip
_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class Sketch:
    bands: tuple[str, ...]
    signature: tuple[int, ...]
    numbers: str = ""  # the title's numbers: another number, another event

    def dumps(self) -> bytes:
        return struct.pack(f"<{PERMS}Q", *self.signature) + self.numbers.encode()

    @classmethod
    def loads(cls, data: bytes) -> Sketch:
        sig = struct.unpack(f"<{PERMS}Q", data[: PERMS * 8])
        return cls(_bands(sig), sig, data[PERMS * 8 :].decode())


def _bands(sig: tuple[int, ...]) -> tuple[str, ...]:
    return tuple(
        f"{b:02d}:" + hashlib.blake2b(struct.pack(f"<{ROWS}Q", *sig[b * ROWS : (b + 1) * ROWS]),
                                      digest_size=6).hexdigest()
        for b in range(BANDS)
    )  # fmt: skip


def sketch(title: str, text: str) -> Sketch | None:
    words = _WORD.findall(strip_accents(f"{title} {text}".lower()))
    if len(words) < 8:
        return None
    shingles = {" ".join(words[i : i + 3]) for i in range(len(words) - 2)}
    hashes = [
        int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "big") for s in shingles
    ]
    sig = tuple(min((a * h + b) % _P for h in hashes) for a, b in _COEF)
    return Sketch(_bands(sig), sig, " ".join(sorted(set(re.findall(r"\d+", title)))))


def same_story(a: Sketch, b: Sketch) -> bool:
    if a.numbers != b.numbers:
        return False
    same = sum(x == y for x, y in zip(a.signature, b.signature, strict=True))
    return same / PERMS >= 0.5


def item_sketch(item: ItemData) -> Sketch | None:
    """The story step's sketch of an item: its title and its text."""
    return sketch(item.title, f"{item.summary}\n{item.content}")
