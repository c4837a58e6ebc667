"""A test oracle for the matcher's scanner: the same hit table as the Aho-Corasick scanner
(monitor.rules.matcher.ACScanner), found by per-token dict lookups. Every rule case runs with
both, so the automaton can never find more or less than the tokens say."""

from __future__ import annotations

from collections.abc import Iterable

from monitor.rules.nodes import ItemContext, intern_key
from monitor.rules.text import SEP


class DictScanner:
    """The same hit table by per-token dict lookups (no C extension needed)."""

    def __init__(self, keys: Iterable[str]) -> None:
        # first word -> [(key id, words, last word is a prefix)]
        Spec = tuple[int, list[str], bool]
        self.exact: dict[str, list[Spec]] = {}
        self.prefix: dict[int, dict[str, list[Spec]]] = {}
        for key in keys:
            is_prefix = not key.endswith(SEP)
            words = [w for w in key.split(SEP) if w]
            spec = (intern_key(key), words, is_prefix)
            if is_prefix and len(words) == 1:
                self.prefix.setdefault(len(words[0]), {}).setdefault(words[0], []).append(spec)
            else:
                self.exact.setdefault(words[0], []).append(spec)
        self.prefix_lengths = sorted(self.prefix)

    def scan(self, ctx: ItemContext) -> None:
        for f in ctx.present_fields:
            toks = ctx.tokens(f)
            found: set[int] = set()
            for i, tok in enumerate(toks):
                specs = list(self.exact.get(tok, ()))
                for n in self.prefix_lengths:
                    if len(tok) >= n:
                        specs.extend(self.prefix[n].get(tok[:n], ()))
                for key_id, words, is_prefix in specs:
                    if self._rest_ok(toks, i, words, is_prefix):
                        found.add(key_id)
            if found:
                ctx.keys_by_field[f] = found

    @staticmethod
    def _rest_ok(toks: list[str], i: int, words: list[str], is_prefix: bool) -> bool:
        last = len(words) - 1
        for j in range(1, len(words)):
            if i + j >= len(toks):
                return False
            t = toks[i + j]
            if not (t.startswith(words[j]) if (is_prefix and j == last) else t == words[j]):
                return False
        return True
