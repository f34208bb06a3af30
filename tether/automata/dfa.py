"""A lazy byte DFA: states are derivative terms, built the first time a mask or a step needs them.

Compiling a regex builds only its term (`tether.automata.derivatives`); a state's
row of 256 transitions is filled the first time something reads it, one
derivative per byte class. So compile time is the pattern's size, not its
automaton's; a pattern whose full DFA would be exponential (`(a|b)*a(a|b){30}`)
costs only the states that generation visits. Memory and the time of each step
are bounded by `tether.Limits`.

    >>> dfa = LazyDFA.from_regex(r"-?[0-9]+")
    >>> dfa.matches(b"-42"), dfa.n_states

The table is a numpy array that kernels read directly: `table[s, byte_class[b]]`
is the next state, `DEAD` (-1) where nothing can follow, or `UNEXPANDED` (-2) where row s is
not built yet (the kernel then hands back to `expand`). Every state in the table
can still reach acceptance ("no dead ends"): for plain regexes a derivative is
empty exactly when it is ∅; with assertions, intersections or complements (whose terms may
have an empty language without being ∅), a search decides it.
"""

from __future__ import annotations


import numpy as np

from ..errors import ConstraintTooLarge
from ..grammar.regex import RegexNode, parse_regex
from ..limits import DEFAULT_LIMITS, Deadline, Limits
from .derivatives import BASE_CUTS, EMPTY, HAS_LOOKBEHIND, K_CHARS, K_LIT, NEEDS_SEARCH, NEWLINE, OTHER, START, Terms

__all__ = ["LazyDFA", "DEAD", "UNEXPANDED"]

DEAD = -1
UNEXPANDED = -2
_STATE_BYTES = 160  # per-state bookkeeping besides its row


class LazyDFA:
    """A byte-level DFA built on demand from a regex term; thread-safe, picklable.

    states: ints from 0; `initial` is 0. `accepting(s)`, `row(s)` (expanding it),
    `step(s, data)` and `matches(data)` are the Python view; kernels read `table`.
    """

    def __init__(self, terms: Terms, root: int, limits: Limits = DEFAULT_LIMITS):
        self.terms = terms
        self.limits = limits
        self._lock = terms.lock  # one per term store: automata sharing it grow it in turn
        # Bytes that no part of the pattern tells apart share a column: a{200000} needs
        # 3 columns per state, not 256.
        self.byte_class, self._class_bytes = _byte_classes(terms, root)
        self.table = np.full((64, len(self._class_bytes)), UNEXPANDED, dtype=np.int32)
        self._state_term: list[int] = []
        self._state_prev: list[int] = []
        self._accepting: list[bool] = []
        self._finished: dict[int, bool] = {}
        self._ids: dict[int, int] = {}
        self._live: dict[int, bool] = {}
        self._raw: dict[int, np.ndarray] = {}
        self._mask_states: dict[tuple[int, int], int] = {}
        self.initial = self._state(root, START)

    @classmethod
    def from_regex(cls, pattern: str, flags: int = 0, limits: Limits = DEFAULT_LIMITS) -> "LazyDFA":
        deadline = limits.deadline("parsing the regex")
        return cls.from_tree(parse_regex(pattern, flags, deadline=deadline), limits, deadline)

    @classmethod
    def from_tree(cls, tree: RegexNode, limits: Limits = DEFAULT_LIMITS,
                  deadline: Deadline | None = None) -> "LazyDFA":
        terms = Terms()
        root = terms.from_tree(tree, deadline or limits.deadline("building the regex automaton"))
        return cls(terms, root, limits)

    # ------------------------------------------------------------------ pickling

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = self.terms.lock

    # ------------------------------------------------------------------ states

    @property
    def n_states(self) -> int:
        """States built so far (the automaton grows as it is used)."""
        return len(self._state_term)

    @property
    def is_empty(self) -> bool:
        """Whether the language is empty (the initial state cannot reach acceptance)."""
        return not self.is_live(self.initial)

    def accepting(self, state: int) -> bool:
        return self._accepting[state]

    @property
    def row_bytes(self) -> int:
        return self.table.shape[1] * 4

    def nbytes(self, *, terms: bool = True) -> int:
        """Memory held: the table and states, and the term store unless `terms=False` (automata
        sharing one store count it once)."""
        return self.table.nbytes + _STATE_BYTES * self.n_states + (self.terms.approx_bytes() if terms else 0)

    def _state(self, term: int, prev: int) -> int:
        """The state of (term, what precedes it), created if new; `prev` matters only to lookbehinds."""
        if not self.terms.flags[term] & HAS_LOOKBEHIND:
            prev = OTHER
        key = term * 3 + prev
        s = self._ids.get(key)
        if s is not None:
            return s
        s = len(self._state_term)
        if s >= self.table.shape[0]:
            self._grow()
        self._ids[key] = s
        self._state_term.append(term)
        self._state_prev.append(prev)
        self._accepting.append(self.terms.accepts_here(term, prev))
        return s

    def covers(self, s: int, intervals: tuple, length: int) -> bool:
        """Whether every string of up to `length` characters of `intervals` is a live prefix from s."""
        term = self._state_term[s]
        return not self.terms.flags[term] & NEEDS_SEARCH and self.terms.covers(term, intervals, length)

    def is_wide(self, s: int) -> bool:
        """Whether most bytes may start a string from s (a cheap pre-test for `covers`)."""
        return bin(self.terms.first[self._state_term[s]]).count("1") > 128

    def may_accept_within(self, s: int, intervals: tuple, budget: int = 256) -> bool:
        """Whether some string of characters of `intervals` may lead from s to acceptance: a search
        over the bytes their UTF-8 encodings use (an over-approximation; True past `budget` states)."""
        wanted = [b for b in range(0x80) if any(lo <= b <= hi for lo, hi in intervals)]
        if intervals and intervals[-1][1] >= 0x80:
            wanted += range(0x80, 0xF5)
        classes = sorted({int(self.byte_class[b]) for b in wanted})
        seen, stack = {s}, [s]
        while stack:
            u = stack.pop()
            row = self.row(u)
            for c in classes:
                t = int(row[c])
                if t >= 0 and t not in seen:
                    if self._accepting[t] or len(seen) >= budget:
                        return True
                    seen.add(t)
                    stack.append(t)
        return False

    def mask_state(self, s: int, depth: int) -> int:
        """A state whose token mask equals s's for tokens of at most `depth` bytes: s itself, or
        the state of its clamped term (see `Terms.clamp`), which many states share."""
        key = (s, depth)
        got = self._mask_states.get(key)
        if got is None:
            with self._lock:
                term = self.terms.clamp(self._state_term[s], depth)
                got = s if term == self._state_term[s] else self._state(term, self._state_prev[s])
                self._mask_states[key] = got
        return got

    def _check_memory(self, rows: int) -> None:
        """Raise if an automaton with `rows` table rows would pass `Limits.automaton_bytes`."""
        figure = rows * self.row_bytes + _STATE_BYTES * self.n_states + self.terms.approx_bytes()
        if figure > self.limits.automaton_bytes:
            raise ConstraintTooLarge("building automaton states", figure, self.limits.automaton_bytes,
                                     unit="bytes", limit_name="automaton_bytes")

    def _grow(self) -> None:
        rows = self.table.shape[0] * 2
        self._check_memory(rows)
        table = np.full((rows, self.table.shape[1]), UNEXPANDED, dtype=np.int32)
        table[: self.table.shape[0]] = self.table
        self.table = table  # readers holding the old array see UNEXPANDED and come back

    # ------------------------------------------------------------------ rows

    def _raw_row(self, s: int, deadline: Deadline) -> np.ndarray:
        """Row s before liveness pruning: successor states per byte class, DEAD where the derivative is ∅."""
        row = self._raw.get(s)
        if row is not None:
            return row
        terms = self.terms
        term, prev = self._state_term[s], self._state_prev[s]
        classes = terms.classes(term)
        targets = np.empty(len(classes), dtype=np.int32)
        first = terms.first[term]
        for i, (lo, _) in enumerate(classes):
            if not first >> lo & 1:  # derive would say ∅ too: most classes of a row, so spare the call
                targets[i] = DEAD
                continue
            d = terms.derive(term, lo, prev, deadline)
            targets[i] = DEAD if d == EMPTY else self._state(d, NEWLINE if lo == 10 else OTHER)
        deadline.check_now()  # once per state: a step of many states is stopped on time
        if len(classes) == 1:
            row = np.full(len(self._class_bytes), targets[0], dtype=np.int32)
        else:
            lengths = np.fromiter((hi - lo + 1 for lo, hi in classes), dtype=np.int64, count=len(classes))
            row = np.repeat(targets, lengths)[self._class_bytes]
        self._raw[s] = row
        return row

    def expand(self, s: int, deadline: Deadline | None = None) -> None:
        """Build row s of the table (a no-op when it is built)."""
        if self.table[s, 0] != UNEXPANDED:
            return
        with self._lock:
            if self.table[s, 0] != UNEXPANDED:
                return
            deadline = deadline or self.limits.deadline("building automaton states")
            row = self._raw_row(s, deadline)
            if self.terms.flags[self._state_term[s]] & NEEDS_SEARCH:  # else every successor is live
                row = row.copy()
                for t in np.unique(row):
                    if t >= 0 and not self.is_live(int(t), deadline):
                        row[row == t] = DEAD
            self.table[s] = row
            self._raw.pop(s, None)
            self._check_memory(self.table.shape[0])

    def row(self, s: int) -> np.ndarray:
        self.expand(s)
        return self.table[s]

    def is_finished(self, s: int) -> bool:
        """Accepting, and no byte may follow."""
        got = self._finished.get(s)
        if got is None:
            got = self._finished[s] = bool(self._accepting[s] and (self.row(s) < 0).all())
        return got

    def _successors(self, s: int, deadline: Deadline):
        """The states one byte leads to from s, each once. An unbuilt row is derived one class
        at a time, so a liveness search that stops at the first live successor builds no row."""
        row = self.table[s] if self.table[s, 0] != UNEXPANDED else self._raw.get(s)
        if row is not None:
            yield from (t for t in np.unique(row).tolist() if t >= 0)
            return
        deadline.check_now()
        terms = self.terms
        term, prev = self._state_term[s], self._state_prev[s]
        first = terms.first[term]
        seen = set()
        for lo, _ in terms.classes(term):
            if first >> lo & 1:
                d = terms.derive(term, lo, prev, deadline)
                if d != EMPTY:
                    t = self._state(d, NEWLINE if lo == 10 else OTHER)
                    if t not in seen:
                        seen.add(t)
                        yield t

    def is_live(self, s: int, deadline: Deadline | None = None) -> bool:
        """Whether acceptance is reachable from s. Only states with assertions, intersections or
        complements need a search: any other state's term is ∅ exactly when its language is
        empty, and ∅ is never a state."""
        term = self._state_term[s]
        if not self.terms.flags[term] & NEEDS_SEARCH:
            return term != EMPTY  # only a pattern's own term can be ∅: derivatives never make ∅ a state
        known = self._live.get(s)
        if known is not None:
            return known
        if self._accepting[s]:
            return True
        with self._lock:
            deadline = deadline or self.limits.deadline("deciding which automaton states are live")
            flags = self.terms.flags
            parent, stack = {s: -1}, [s]  # parent: the state each was found from, to mark a path live
            shortest = self.terms.min_bytes
            while stack:
                u = stack.pop()
                found = []
                for t in self._successors(u, deadline):
                    if t in parent or self._live.get(t) is False:
                        continue
                    if self._accepting[t] or self._live.get(t) or not flags[self._state_term[t]] & NEEDS_SEARCH:
                        # Live, and so is every state on the way here: the next search stops at them.
                        while u >= 0:
                            self._live[u] = True
                            u = parent[u]
                        return True
                    parent[t] = u
                    found.append(t)
                # Depth first along the shortest way to an end: a live state's search then follows
                # about one path (the quickest way to close an object), not every long string.
                found.sort(key=lambda t: -shortest[self._state_term[t]])
                stack.extend(found)
            for u in parent:  # none of them reaches acceptance
                self._live[u] = False
            return False

    # ------------------------------------------------------------------ reading text

    def step(self, state: int, data: bytes) -> int:
        """The state after `data`, or DEAD once a byte leads nowhere."""
        classes = self.byte_class
        for b in data:
            if state < 0:
                return DEAD
            state = int(self.row(state)[classes[b]])
        return state

    def matches(self, data: bytes) -> bool:
        s = self.step(self.initial, data) if self.is_live(self.initial) else DEAD
        return s >= 0 and self._accepting[s]


def _byte_classes(terms: Terms, root: int) -> tuple[np.ndarray, np.ndarray]:
    """(class of each byte, a byte of each class): the coarsest split that every character
    set of the pattern respects, with each UTF-8 continuation byte apart where any set is
    not ASCII (the tails that derivatives make tell them apart)."""
    cuts = BASE_CUTS
    seen, stack = {root}, [root]
    multibyte = False
    while stack:
        t = stack.pop()
        cuts |= terms.cuts[t]
        if terms.kind[t] == K_CHARS and terms.a[t][-1][1] >= 0x80:
            multibyte = True
        elif terms.kind[t] == K_LIT:  # its derivatives read every one of its bytes
            for b in set(terms.a[t][terms.b[t]:]):
                cuts |= (1 << b) | (1 << (b + 1))
        for child in terms.children(t):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    if multibyte:
        cuts |= ((1 << 0xC0) - 1) ^ ((1 << 0x80) - 1)
    bounds = [b for b in range(257) if cuts >> b & 1]
    byte_class = np.empty(256, dtype=np.int32)
    for c, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
        byte_class[lo:hi] = c
    return byte_class, np.array(bounds[:-1], dtype=np.int64)
