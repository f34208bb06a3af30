"""Fill in the middle: whether text with holes can be completed into the language, and a completion.

    >>> tether.infill(['{"name":"', None, '","age":', None, '}'], tether.json_schema(Person))
    Infill(text='{"name":"","age":0}', holes=('', '0'))

Text with holes, s0 ? s1 ? ... sn, stands for the regular language s0 Σ* s1 Σ* ... sn. It meets
the constraint's language exactly when some path through the constraint's states spells it, and
the search for one is lazy: the fixed pieces are walked, each hole is a breadth-first search over
the states one more byte reaches (distinct states only), and every state the search reaches is
tried against the next piece at once, so the first witness ends it (Mündler et al. 2025's check
for CFG-constrained diffusion, on tether's parser states). Holes are filled left to right, each
with the shortest text that lets the rest complete (first among fillings of at most 2 bytes
per hole, then 8, then any). Works for every constraint: regular ones
(whose states are few) and context-free ones (a bound on visited states keeps the search finite).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import ConstraintTooLarge, TokenRejected
from .constraint import Constraint

__all__ = ["Infill", "Hole", "infill", "Completer", "MAX_STATES"]

MAX_STATES = 50_000  # states one search may visit before it gives up (ConstraintTooLarge)


@dataclass(frozen=True)
class Hole:
    """A hole of `least` to `most` bytes (None: no upper bound); `Hole()` is any text, empty included.

    `tokens`: the filling must also split into exactly that many of the vocabulary's tokens (at
    most that many with `padded`, the rest being end-of-text padding): a run of masked positions.
    """

    least: int = 0
    most: int | None = None
    tokens: int | None = None
    padded: bool = False


@dataclass(frozen=True)
class Infill:
    """A completion: the whole text and what each hole became."""

    text: str
    holes: tuple[str, ...]


def infill(parts: Sequence[str | bytes | None], spec: Any, *, max_states: int = MAX_STATES) -> Infill | None:
    """A completion of `parts` (text, with None for each hole: any text, empty included) in the
    language of `spec`, or None if there is none.

        >>> tether.infill(["SELECT ", None, " FROM singer"], tether.sql(db=conn)).holes
        ('Name',)

    `spec`: a spec (`tether.regex(...)`, `tether.lark(...)`, `tether.sql(...)`, ...), searched over
    bytes, or a compiled `Constraint`, searched over its vocabulary's one-byte tokens. Raises
    `ConstraintTooLarge` when more than `max_states` states were visited without an answer
    (a context-free language whose holes admit ever deeper nesting).
    """
    completer = Completer(_byte_level(spec), max_states=max_states)
    found = completer.complete([p.encode("utf-8") if isinstance(p, str) else p for p in parts])
    if found is None:
        return None
    holes = tuple(h.decode("utf-8", errors="replace") for h in found)
    text = b"".join(p if p is not None else b"" for p in _interleave(parts, found))
    return Infill(text.decode("utf-8", errors="replace"), holes)


def _interleave(parts: Sequence[Any], holes: Sequence[bytes]) -> Iterator[bytes]:
    it = iter(holes)
    for p in parts:
        yield next(it) if p is None else (p.encode("utf-8") if isinstance(p, str) else bytes(p))


def _byte_level(spec: Any) -> Constraint:
    if isinstance(spec, Constraint):
        return spec
    if hasattr(spec, "compile"):
        from .walk import byte_vocabulary

        return spec.compile(byte_vocabulary())
    raise TypeError(f"expected a constraint or a spec such as tether.regex(...), got {type(spec).__name__}")


class Completer:
    """The search behind `infill`, over one constraint; its memo of byte steps is kept across calls
    (the CFG-constrained diffusion sampler asks many questions of one constraint).

        >>> Completer(c).complete([b"[1,", None, b"]"])     # [b''] ... or None
    """

    def __init__(self, constraint: Constraint, *, max_states: int = MAX_STATES):
        self.constraint = constraint
        self.max_states = max_states
        vocab = constraint.vocab
        # byte -> a token id spelling exactly that byte (-1 where the vocabulary has none)
        self.byte_ids = np.full(256, -1, dtype=np.int64)
        for t in range(vocab.size - 1, -1, -1):
            data = vocab[t]
            if data is not None and len(data) == 1:
                self.byte_ids[data[0]] = t
        self._has_byte = self.byte_ids >= 0
        self._next: dict[Any, list[tuple[int, Any]]] = {}

    def steps(self, state: Any) -> list[tuple[int, Any]]:
        """(byte, next state) for every byte allowed after `state`, memoised."""
        out = self._next.get(state)
        if out is None:
            mask = self.constraint.mask(state)
            ids = self.byte_ids[self._has_byte]
            byte_values = np.flatnonzero(self._has_byte)
            ok = mask[ids]
            out = [(int(b), self.constraint.advance(state, int(t))) for b, t in zip(byte_values[ok], ids[ok])]
            if len(self._next) > 4 * self.max_states:
                self._next.clear()
            self._next[state] = out
        return out

    def feed(self, state: Any, data: bytes) -> Any | None:
        """The state after `data` (spelled byte by byte), or None where it leaves the language."""
        c = self.constraint
        for b in data:
            t = int(self.byte_ids[b])
            if t < 0 or not c.allows(state, t):
                return None
            try:
                state = c.advance(state, t)
            except TokenRejected:
                return None
        return state

    def complete(self, parts: Sequence[bytes | Hole | None], *, start: Any = None) -> list[bytes] | None:
        """The hole fillings of a completion of `parts` from `start` (the initial state by default),
        or None. A part is text, None (a hole: any text) or a `Hole` with bounds on its bytes."""
        state = self.constraint.initial() if start is None else start
        segments: list[tuple[Hole, bytes]] = []  # a hole and the text after it
        first = b""
        for p in parts:
            if p is None or isinstance(p, Hole):
                segments.append((p or Hole(), b""))
            elif segments:
                hole, text = segments[-1]
                segments[-1] = (hole, text + p)
            else:
                first += p
        state = self.feed(state, first)
        if state is None:
            return None
        budget = [self.max_states]
        # Short fillings first: searches with every hole capped at a few bytes are small, and find
        # a short witness even where an uncapped search of the first hole would spend the budget
        # on states that the next piece never fits. Only the uncapped search can prove there is none.
        for cap in _CAPS:
            found = self._search(state, segments, 0, budget, cap)
            if found is not None or cap is None:
                return found
        return None

    def _search(self, state: Any, segments: list[tuple["Hole", bytes]], i: int, budget: list[int],
                cap: int | None) -> list[bytes] | None:
        if i == len(segments):
            return [] if self.constraint.is_accepting(state) else None
        hole, text = segments[i]
        last = i == len(segments) - 1
        most = hole.most
        if cap is not None:  # this round's cap counts bytes past the hole's least
            most = hole.least + cap if most is None else min(most, hole.least + cap)
        for filled, reached in self._reach(state, hole.least, budget, most):
            if hole.tokens is not None and not self._splits(filled, hole.tokens, hole.padded):
                continue
            after = self.feed(reached, text)
            if after is None:
                continue
            if last and not self.constraint.is_accepting(after):
                continue
            rest = self._search(after, segments, i + 1, budget, cap)
            if rest is not None:
                return [filled] + rest
        return None

    def _splits(self, data: bytes, tokens: int, padded: bool) -> bool:
        """Whether `data` is the concatenation of exactly `tokens` tokens (at most, if `padded`).

        Counts between the fewest and the most tokens that spell it are taken as reachable (true
        of vocabularies with every single byte, where a token can be cut into shorter ones)."""
        if not data:
            return padded or tokens == 0
        trie = self.constraint.vocab.trie
        n = len(data)
        fewest = [n + 1] * (n + 1)
        most = [-1] * (n + 1)
        fewest[0] = most[0] = 0
        for i in range(n):
            if most[i] < 0:
                continue
            node = 0
            for j in range(i, n):
                node = trie.child(node, data[j])
                if node < 0:
                    break
                if trie.tok_start[node] < trie.tok_start[node + 1]:
                    fewest[j + 1] = min(fewest[j + 1], fewest[i] + 1)
                    most[j + 1] = max(most[j + 1], most[i] + 1)
        if most[n] < 0:
            return False
        return fewest[n] <= tokens and (padded or tokens <= most[n])

    def _reach(self, state: Any, need: int, budget: list[int], cap: int | None) -> Iterator[tuple[bytes, Any]]:
        """(bytes, state) for every distinct (state, length below `need`) reachable from `state` by
        at least `need` and at most `cap` bytes, shortest first."""
        seen = set()
        queue = deque([(b"", state)])
        while queue:
            path, s = queue.popleft()
            if len(path) >= need:
                yield path, s
            if cap is not None and len(path) >= cap:
                continue
            for b, nxt in self.steps(s):
                key = (nxt, min(len(path) + 1, need))  # before `need` bytes, how many were taken matters
                if key in seen:
                    continue
                seen.add(key)
                budget[0] -= 1
                if budget[0] < 0:
                    raise ConstraintTooLarge("searching for a completion of the holes", self.max_states,
                                             self.max_states, unit="states",
                                             hint="pass max_states=... or give more fixed text")
                queue.append((path + bytes([b]), nxt))


_CAPS = (2, 8, None)  # byte caps per hole of the successive searches
