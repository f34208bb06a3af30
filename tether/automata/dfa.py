"""Byte-level DFAs as numpy tables, built from a regex tree.

regex tree -> Thompson NFA over code point intervals -> character DFA (subset
construction) -> trimmed to live states -> UTF-8 byte DFA -> minimised
(Hopcroft) with bytes grouped into equivalence classes.

    >>> dfa = ByteDFA.from_regex(r"-?[0-9]+")
    >>> dfa.matches(b"-42"), dfa.n_states
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable

import numba
import numpy as np

from ..errors import ConstraintTooLarge
from ..grammar.regex import Alternation, Chars, Concat, RegexNode, Repeat, parse_regex
from ..limits import DEFAULT_LIMITS, Limits

__all__ = ["ByteDFA"]

DEAD = -1
_MAX_STATES = 100_000  # interim, until the lazy automaton lands


@dataclass(frozen=True)
class ByteDFA:
    """A trimmed, minimal DFA over bytes; every state can still reach acceptance.

    transitions[state, byte_class[b]] is the next state or -1 (dead).
    An empty language has zero states and `initial == -1`.
    """

    transitions: np.ndarray  # int32[n_states, n_classes]
    byte_class: np.ndarray  # int32[256]
    accepting: np.ndarray  # bool[n_states]
    initial: int

    @property
    def n_states(self) -> int:
        return int(self.transitions.shape[0])

    @property
    def is_empty(self) -> bool:
        return self.initial == DEAD

    def step(self, state: int, data: bytes) -> int:
        """The state after `data`, or -1 once a byte leads nowhere."""
        for b in data:
            if state < 0:
                return DEAD
            state = int(self.transitions[state, self.byte_class[b]])
        return state

    def matches(self, data: bytes) -> bool:
        s = self.step(self.initial, data)
        return s >= 0 and bool(self.accepting[s])

    @classmethod
    def from_regex(cls, pattern: str, flags: int = 0, limits: Limits = DEFAULT_LIMITS) -> "ByteDFA":
        return cls.from_tree(parse_regex(pattern, flags), limits)

    @classmethod
    def from_tree(cls, tree: RegexNode, limits: Limits = DEFAULT_LIMITS) -> "ByteDFA":
        nfa = _NFA(limits)
        start, end = nfa.build(tree)
        char_dfa, char_accepting = _determinise(nfa, start, end, limits)
        char_dfa, char_accepting, initial = _trim(char_dfa, char_accepting)
        if initial == DEAD:
            return cls(np.zeros((0, 1), np.int32), np.zeros(256, np.int32), np.zeros(0, bool), DEAD)
        table, accepting = _utf8_expand(char_dfa, char_accepting, limits)
        return _minimise(table, accepting, initial)


# ---------------------------------------------------------------- Thompson NFA


class _NFA:
    """States are ints; `eps[s]` lists epsilon moves, `edges[s]` lists (intervals, target)."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.eps: list[list[int]] = []
        self.edges: list[list[tuple[tuple[tuple[int, int], ...], int]]] = []

    def new(self) -> int:
        if len(self.eps) >= _MAX_STATES:
            raise ConstraintTooLarge("regex automaton states (NFA)", len(self.eps) + 1, _MAX_STATES)
        self.eps.append([])
        self.edges.append([])
        return len(self.eps) - 1

    def build(self, node: RegexNode) -> tuple[int, int]:
        """Return (entry, exit) of a fragment accepting `node`."""
        if isinstance(node, Chars):
            a, b = self.new(), self.new()
            if node.intervals:
                self.edges[a].append((node.intervals, b))
            return a, b
        if isinstance(node, Concat):
            a = b = self.new()
            for part in node.parts:
                pa, pb = self.build(part)
                self.eps[b].append(pa)
                b = pb
            return a, b
        if isinstance(node, Alternation):
            a, b = self.new(), self.new()
            for option in node.options:
                oa, ob = self.build(option)
                self.eps[a].append(oa)
                self.eps[ob].append(b)
            return a, b
        if isinstance(node, Repeat):
            return self.repeat(node)
        raise TypeError(f"unknown regex node {node!r}")

    def repeat(self, node: Repeat) -> tuple[int, int]:
        a = b = self.new()
        for _ in range(node.min):
            pa, pb = self.build(node.node)
            self.eps[b].append(pa)
            b = pb
        if node.max is None:
            pa, pb = self.build(node.node)
            loop = self.new()
            self.eps[b].append(loop)
            self.eps[loop].append(pa)
            self.eps[pb].append(loop)
            return a, loop
        end = self.new()
        self.eps[b].append(end)
        for _ in range(node.max - node.min):
            pa, pb = self.build(node.node)
            self.eps[b].append(pa)
            self.eps[pb].append(end)
            b = pb
        return a, end


# ---------------------------------------------------------------- character DFA

CharDFA = list[list[tuple[int, int, int]]]  # per state: sorted disjoint (lo, hi, target)


def _determinise(nfa: _NFA, start: int, end: int, limits: Limits) -> tuple[CharDFA, list[bool]]:
    closure_cache: dict[int, frozenset[int]] = {}

    def closure_of(s: int) -> frozenset[int]:
        got = closure_cache.get(s)
        if got is None:
            seen, stack = {s}, [s]
            while stack:
                for t in nfa.eps[stack.pop()]:
                    if t not in seen:
                        seen.add(t)
                        stack.append(t)
            got = closure_cache[s] = frozenset(seen)
        return got

    def closure(states: Iterable[int]) -> frozenset[int]:
        out: set[int] = set()
        for s in states:
            out |= closure_of(s)
        return frozenset(out)

    first = closure([start])
    ids = {first: 0}
    order = [first]
    dfa: CharDFA = []
    for current in order:
        events: dict[int, list[tuple[int, int]]] = defaultdict(list)  # point -> (+1/-1, target)
        for s in current:
            for intervals, target in nfa.edges[s]:
                for lo, hi in intervals:
                    events[lo].append((1, target))
                    events[hi + 1].append((-1, target))
        row: list[tuple[int, int, int]] = []
        active: dict[int, int] = defaultdict(int)
        points = sorted(events)
        for p, nxt in zip(points, points[1:]):
            for delta, target in events[p]:
                active[target] += delta
                if not active[target]:
                    del active[target]
            if not active:
                continue
            key = closure(active)
            t = ids.get(key)
            if t is None:
                if len(order) >= _MAX_STATES:
                    raise ConstraintTooLarge("regex automaton states (character DFA)", len(order) + 1, _MAX_STATES)
                t = ids[key] = len(order)
                order.append(key)
            if row and row[-1][2] == t and row[-1][1] == p - 1:
                row[-1] = (row[-1][0], nxt - 1, t)
            else:
                row.append((p, nxt - 1, t))
        dfa.append(row)
    return dfa, [end in s for s in order]


def _trim(dfa: CharDFA, accepting: list[bool]) -> tuple[CharDFA, list[bool], int]:
    """Keep the states that can still reach acceptance, renumbered; initial is -1 if none."""
    reverse: list[list[int]] = [[] for _ in dfa]
    for s, row in enumerate(dfa):
        for _, _, t in row:
            reverse[t].append(s)
    live = {s for s, acc in enumerate(accepting) if acc}
    stack = list(live)
    while stack:
        for s in reverse[stack.pop()]:
            if s not in live:
                live.add(s)
                stack.append(s)
    if 0 not in live:
        return [], [], DEAD
    # Renumber in breadth-first order from the initial state, so state 0 stays initial.
    new_id = {0: 0}
    order = [0]
    for s in order:
        for _, _, t in dfa[s]:
            if t in live and t not in new_id:
                new_id[t] = len(order)
                order.append(t)
    trimmed = [[(lo, hi, new_id[t]) for lo, hi, t in dfa[s] if t in live] for s in order]
    return trimmed, [accepting[s] for s in order], 0


# ---------------------------------------------------------------- UTF-8 expansion

_UTF8_LENGTHS = ((0, 0x7F, 0x00), (0x80, 0x7FF, 0xC0), (0x800, 0xFFFF, 0xE0), (0x10000, 0x10FFFF, 0xF0))


def _utf8_expand(dfa: CharDFA, accepting: list[bool], limits: Limits) -> tuple[np.ndarray, np.ndarray]:
    """Turn code point transitions into byte transitions through shared intermediate states.

    Intermediate states are memoised by what remains to be read, so e.g. every
    "any continuation byte, then state t" is built once.
    """
    rows: list[dict[int, int]] = [dict() for _ in dfa]
    memo: dict[tuple, int] = {}

    def new_state() -> int:
        if len(rows) >= _MAX_STATES:
            raise ConstraintTooLarge("regex automaton states (byte DFA)", len(rows) + 1, _MAX_STATES)
        rows.append({})
        return len(rows) - 1

    def split(items: list[tuple[int, int, int]], shift: int) -> dict[int, list[tuple[int, int, int]]]:
        """Group items by their digit above `shift` bits, re-based below it."""
        out: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
        size = 1 << shift
        for lo, hi, t in items:
            for d in range(lo >> shift, (hi >> shift) + 1):
                base = d << shift
                out[d].append((max(lo, base) - base, min(hi, base + size - 1) - base, t))
        return out

    def continuation(items: tuple[tuple[int, int, int], ...], k: int) -> int:
        """A state that reads k continuation bytes and lands on each item's target."""
        key = (k, items)
        got = memo.get(key)
        if got is not None:
            return got
        state = memo[key] = new_state()
        for digit, sub in split(list(items), 6 * (k - 1)).items():
            if k == 1:
                rows[state][0x80 | digit] = sub[0][2]
            else:
                rows[state][0x80 | digit] = continuation(tuple(sub), k - 1)
        return state

    for q, row in enumerate(dfa):
        for n, (base_lo, base_hi, lead) in enumerate(_UTF8_LENGTHS, start=1):
            items = [(max(lo, base_lo), min(hi, base_hi), t) for lo, hi, t in row if lo <= base_hi and hi >= base_lo]
            if not items:
                continue
            if n == 1:
                for lo, hi, t in items:
                    for b in range(lo, hi + 1):
                        rows[q][b] = t
                continue
            for digit, sub in split(items, 6 * (n - 1)).items():
                rows[q][lead | digit] = continuation(tuple(sub), n - 1)

    table = np.full((len(rows), 256), DEAD, dtype=np.int32)
    for s, row in enumerate(rows):
        if row:
            keys = np.fromiter(row.keys(), dtype=np.int64, count=len(row))
            table[s, keys] = np.fromiter(row.values(), dtype=np.int32, count=len(row))
    acc = np.zeros(len(rows), dtype=bool)
    acc[: len(accepting)] = accepting
    return table, acc


# ---------------------------------------------------------------- minimisation


@numba.njit(cache=True, nogil=True)
def _hopcroft_kernel(full, accepting):  # pragma: no cover - compiled
    """Coarsest partition of a total DFA's states into equivalence classes (Hopcroft).

    full: int32[n, k] transitions (no dead moves: the caller adds a sink). Returns
    (block id per state, number of blocks). Blocks live in `elems` as ranges
    [first, end); [first, mid) holds the states marked by the current splitter.
    """
    n, k = full.shape
    starts = np.zeros(k * n + 1, np.int64)
    for s in range(n):
        for c in range(k):
            starts[c * n + full[s, c] + 1] += 1
    for i in range(k * n):
        starts[i + 1] += starts[i]
    sources = np.empty(n * k, np.int32)
    fill = starts[:-1].copy()
    for s in range(n):
        for c in range(k):
            key = c * n + full[s, c]
            sources[fill[key]] = s
            fill[key] += 1

    elems = np.empty(n, np.int32)
    loc = np.empty(n, np.int32)
    blk = np.empty(n, np.int32)
    first = np.empty(n + 1, np.int32)
    end = np.empty(n + 1, np.int32)
    mid = np.empty(n + 1, np.int32)
    in_work = np.zeros(n + 1, np.bool_)
    work = np.empty(n + 1, np.int32)
    n_work = 0
    n_blocks = 0
    p = 0
    for flag in (True, False):
        start = p
        for s in range(n):
            if accepting[s] == flag:
                elems[p] = s
                loc[s] = p
                blk[s] = n_blocks
                p += 1
        if p > start:
            first[n_blocks] = start
            end[n_blocks] = p
            mid[n_blocks] = start
            work[n_work] = n_blocks
            in_work[n_blocks] = True
            n_work += 1
            n_blocks += 1

    touched = np.empty(n, np.int32)
    splitter = np.empty(n, np.int32)
    while n_work > 0:
        n_work -= 1
        a = work[n_work]
        in_work[a] = False
        m = end[a] - first[a]
        for i in range(m):
            splitter[i] = elems[first[a] + i]
        for c in range(k):
            n_touched = 0
            for i in range(m):
                key = c * n + splitter[i]
                for j in range(starts[key], starts[key + 1]):
                    s = sources[j]
                    b = blk[s]
                    if loc[s] < mid[b]:
                        continue
                    if mid[b] == first[b]:
                        touched[n_touched] = b
                        n_touched += 1
                    pos = loc[s]
                    other = elems[mid[b]]
                    elems[pos] = other
                    loc[other] = pos
                    elems[mid[b]] = s
                    loc[s] = mid[b]
                    mid[b] += 1
            for ti in range(n_touched):
                b = touched[ti]
                if mid[b] == end[b]:
                    mid[b] = first[b]
                    continue
                new = n_blocks
                n_blocks += 1
                first[new] = first[b]
                end[new] = mid[b]
                mid[new] = first[new]
                first[b] = end[new]
                mid[b] = first[b]
                for q in range(first[new], end[new]):
                    blk[elems[q]] = new
                if in_work[b] or end[new] - first[new] <= end[b] - first[b]:
                    add = new
                else:
                    add = b
                if not in_work[add]:
                    work[n_work] = add
                    in_work[add] = True
                    n_work += 1
    return blk, n_blocks


def _minimise(table: np.ndarray, accepting: np.ndarray, initial: int) -> ByteDFA:
    """Merge equivalent states (Hopcroft, over byte classes, with an explicit sink for dead moves)."""
    classes, byte_class = _byte_classes(table)
    n, k = classes.shape
    sink = n
    full = np.ascontiguousarray(np.vstack([np.where(classes < 0, sink, classes),
                                           np.full((1, k), sink)]), dtype=np.int32)
    acc = np.append(accepting, False)
    block_of, n_blocks = _hopcroft_kernel(full, acc)
    # One representative per block; renumber breadth-first from the initial state, dropping the sink's block.
    rep = np.empty(n_blocks, dtype=np.int64)
    rep[block_of[::-1]] = np.arange(n, -1, -1)
    sink_block = int(block_of[sink])
    block_trans = block_of[full[rep]]  # int[n_blocks, k]
    new_id = np.full(n_blocks, -1, dtype=np.int64)
    order = [int(block_of[initial])]
    new_id[order[0]] = 0
    for b in order:
        for t in block_trans[b].tolist():
            if t != sink_block and new_id[t] < 0:
                new_id[t] = len(order)
                order.append(t)
    order_arr = np.array(order, dtype=np.int64)
    trans = np.where(block_trans[order_arr] == sink_block, DEAD, new_id[block_trans[order_arr]]).astype(np.int32)
    accepting_min = acc[rep[order_arr]]
    cols, remap = _byte_classes(trans)  # bytes that now behave alike share a class
    return ByteDFA(cols, remap[byte_class], accepting_min, 0)


def _byte_classes(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group identical columns: (table of the distinct columns, column -> its class)."""
    ids: dict[bytes, int] = {}
    column_class = np.array([ids.setdefault(col.tobytes(), len(ids)) for col in np.ascontiguousarray(table.T)],
                            dtype=np.int32)
    firsts = np.unique(column_class, return_index=True)[1]
    return np.ascontiguousarray(table[:, firsts], dtype=np.int32), column_class
