"""A lazy byte DFA bound to a vocabulary: token masks, computed per state on first use and cached.

The mask of a state walks the vocabulary's token trie over the DFA in a numba
kernel; a dead byte skips its whole subtree. Where the walk meets a state whose
row is not built yet, the kernel returns, the row is built (`LazyDFA.expand`)
and the walk resumes where it stopped. Nothing is precomputed for all states:
compiling is instant and memory grows only with the states visited.

    >>> c = tether.regex(r"[0-9]+").compile(vocab)
    >>> c.mask(c.initial())[vocab.encode_greedy("7")[0]]
    True
"""

from __future__ import annotations

from typing import Any, Callable

import numba
import numpy as np

from ..errors import EmptyLanguage, InvalidState
from ..limits import DEFAULT_LIMITS, Deadline, Limits
from ..vocab import Vocabulary
from .bitmask import bitmask_words
from .dfa import LazyDFA
from .slices import slices
from .stepping import AutomatonConstraint

__all__ = ["DFAConstraint", "fill_trie_mask", "fill_trie_next", "walk"]


@numba.njit(cache=True, nogil=True)
def _trie_kernel(table, byte_class, trie_byte, trie_depth, trie_skip, tok_start, tok_ids, stack, out, nxt,
                 i):  # pragma: no cover - compiled
    """For every token t whose bytes lead from `stack[0]` to a live state s: set bit t of `out`, or
    (when `nxt` is not empty) write nxt[t] = s.

    Starts at trie node `i` (1 for a fresh walk; `stack` holds the states along the
    path above it). Returns the number of trie nodes when done, or the node at
    which it met a row that is not built yet: build row `stack[depth[i] - 1]`, then
    call again with the same `i`. The naive loop it implements:
        for t, data in enumerate(tokens):
            s = state
            for b in data: s = table[s, byte_class[b]] if s >= 0 else -1
            if data and s >= 0: set bit t (or nxt[t] = s)
    """
    n = trie_byte.shape[0]
    rows = table.shape[0]
    states = nxt.shape[0] > 0
    while i < n:
        d = trie_depth[i]
        s = table[stack[d - 1], byte_class[trie_byte[i]]]
        if s < 0:
            if s == -2:
                return i
            i = trie_skip[i]
            continue
        if s >= rows:  # a state added after this table was grown: the caller passes the new one
            return i
        stack[d] = s
        for j in range(tok_start[i], tok_start[i + 1]):
            t = tok_ids[j]
            if states:
                nxt[t] = s
            else:
                out[t >> 5] |= np.uint32(1) << np.uint32(t & 31)
        i += 1
    return n


@numba.njit(cache=True, nogil=True)
def _walk_kernel(table, byte_class, state, data, pos):  # pragma: no cover - compiled
    """Follow data[pos:] from `state`: (state, len(data)) when done, (-1, pos) when a byte is
    dead, or (state, pos) when row `state` must be built first."""
    rows = table.shape[0]
    while pos < data.shape[0]:
        s = table[state, byte_class[data[pos]]]
        if s == -2:
            return state, pos
        if s == -1:
            return -1, pos
        if s >= rows:
            return state, pos
        state = s
        pos += 1
    return state, pos


def walk(dfa: LazyDFA, state: int, data: bytes, deadline: Deadline | None = None) -> int:
    """The DFA state after `data` from `state`, or DEAD; builds the rows it needs."""
    arr = np.frombuffer(data, dtype=np.uint8)
    pos = 0
    while True:
        state, pos = _walk_kernel(dfa.table, dfa.byte_class, np.int32(state), arr, np.int64(pos))
        if state < 0 or pos == len(arr):
            return int(state)
        deadline = deadline or dfa.limits.deadline("building automaton states for a token")
        dfa.expand(int(state), deadline)


def fill_trie_mask(dfa: LazyDFA, vocab: Vocabulary, state: int, out: np.ndarray) -> None:
    """Public wrapper of the mask kernel: checks arrays, then fills `out` (uint32 words).

    Where the state takes a whole vocabulary slice (see `tether.automata.slices`), the
    slice's bits are set at once and only the other tokens are walked.
    """
    if out.dtype != np.uint32 or out.ndim != 1 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a contiguous 1-D uint32 array, got {out.dtype} {out.shape}")
    if out.shape[0] != bitmask_words(vocab.size):
        raise ValueError(f"out has {out.shape[0]} words, vocabulary of {vocab.size} needs {bitmask_words(vocab.size)}")
    if not 0 <= state < dfa.n_states:
        raise InvalidState(f"state {state} is not a state of this DFA ({dfa.n_states} states)")
    trie = vocab.trie
    out[:] = 0
    if dfa.is_wide(state):
        for piece in slices(vocab):
            if dfa.covers(state, piece.intervals, piece.max_chars):
                out |= piece.words
                trie = piece.rest
                break
    _walk_trie(dfa, trie, state, out, _NO_STATES, "a mask")


def fill_trie_next(dfa: LazyDFA, vocab: Vocabulary, state: int, out: np.ndarray) -> None:
    """Public wrapper of the transition kernel: out[t] = the DFA state after token t from `state`, -1 if
    it dies (or has no bytes); builds the rows it needs. `out` is a contiguous int32 array of vocab.size."""
    if out.dtype != np.int32 or out.ndim != 1 or not out.flags.c_contiguous or out.shape[0] != vocab.size:
        raise ValueError(f"out must be a contiguous int32 array of {vocab.size}, got {out.dtype} {out.shape}")
    if not 0 <= state < dfa.n_states:
        raise InvalidState(f"state {state} is not a state of this DFA ({dfa.n_states} states)")
    out[:] = -1
    _walk_trie(dfa, vocab.trie, state, _NO_WORDS, out, "a transition row")


_NO_STATES = np.zeros(0, dtype=np.int32)
_NO_WORDS = np.zeros(0, dtype=np.uint32)


def _walk_trie(dfa: LazyDFA, trie: Any, state: int, out: np.ndarray, nxt: np.ndarray, what: str) -> None:
    """Run the trie kernel from `state`, building the rows it meets unbuilt."""
    stack = np.empty(trie.max_depth + 1, dtype=np.int32)
    stack[0] = state
    i = 1
    deadline = None
    while True:
        i = _trie_kernel(dfa.table, dfa.byte_class, trie.byte, trie.depth, trie.skip, trie.tok_start, trie.tok_ids,
                         stack, out, nxt, np.int64(i))
        if i >= trie.n_nodes:
            return
        deadline = deadline or dfa.limits.deadline(f"building automaton states for {what}")
        dfa.expand(int(stack[trie.depth[i] - 1]), deadline)


class DFAConstraint(AutomatonConstraint):
    """A regular constraint over one vocabulary (see `AutomatonConstraint` for states and caches).

    Masks are cached by mask state (many states share one: see `LazyDFA.mask_state`), and
    every state's lookup of it by state.
    """

    @property
    def dfa(self) -> LazyDFA:
        return self._machine

    def __init__(self, dfa: LazyDFA, vocab: Vocabulary, limits: Limits = DEFAULT_LIMITS, *, source: str = "",
                 parse: Callable[[str], Any] | None = None):
        if dfa.is_empty:
            raise EmptyLanguage("the automaton accepts no string, so nothing could be generated", source=source)
        super().__init__(dfa, vocab, limits, source=source, parse=parse)

    def _setup(self) -> None:
        super()._setup()
        self._masks: dict[int, np.ndarray] = {}
        # The cache budget: 7/8 for masks, 1/8 for (state, token) steps.
        self._cache_limit = max(1, self.limits.mask_cache_bytes * 7 // 8 // (self._words * 4))
        self._depth = int(self.vocab.trie.max_depth)
        self._rows: dict[int, np.ndarray] = {}  # state -> transition row (DINGO)
        self._rows_limit = max(1, self.limits.mask_cache_bytes // 8 // (8 * self.vocab.size))

    def __repr__(self) -> str:
        return f"DFAConstraint({self.source!r}, states built={self.dfa.n_states}, vocab={self.vocab.size})"

    def _walk(self, s: int, data: bytes) -> int:
        return walk(self.dfa, s, data)

    def cache_bytes(self) -> int:
        return super().cache_bytes() + sum(r.nbytes for r in list(self._rows.values()))

    def transitions(self, state: int) -> np.ndarray:
        """Every token's next state at once: int64[vocab.size], the state after token t, or -1 where t is
        not allowed. EOS ids read -1 (EOS does not move; it is allowed where `is_accepting`).

            >>> seven = vocab.encode_greedy("7")[0]
            >>> c.transitions(c.initial())[seven] == c.advance(c.initial(), seven)

        One trie walk per state (what DINGO's dynamic programme reads), cached like masks.
        """
        row = self._rows.get(state)
        if row is not None:
            return row
        raw = np.empty(self.vocab.size, dtype=np.int32)
        fill_trie_next(self.dfa, self.vocab, self._id(state), raw)
        row = np.where(raw >= 0, raw.astype(np.int64) | (self._tag << 32), -1)
        row.setflags(write=False)
        with self._lock:
            self._rows[state] = row
            while len(self._rows) > self._rows_limit:
                del self._rows[next(iter(self._rows))]
        return row

    def _words_for(self, state: int) -> np.ndarray:
        """The packed mask of `state` as int32 words: its mask state's, computed by the kernel once."""
        m = self.dfa.mask_state(self._id(state), self._depth)
        words = self._masks.get(m)
        if words is None:
            words = np.empty(self._words, dtype=np.uint32)
            fill_trie_mask(self.dfa, self.vocab, m, words)
            words = self._with_eos(words, self.dfa.accepting(m))
            with self._lock:
                self.mask_computations += 1
                self._masks[m] = words
                while len(self._masks) > self._cache_limit:  # first in, first out
                    del self._masks[next(iter(self._masks))]
        with self._lock:
            self._cache[state] = words
            if len(self._cache) > 8 * self._cache_limit:  # aliases only: dropping them costs a lookup
                self._cache.clear()
        return words
