"""A byte DFA bound to a vocabulary: token masks, lazily computed per state and cached.

The mask of a state walks the vocabulary's token trie over the DFA in a numba
kernel; a dead byte skips its whole subtree. Nothing is precomputed for all
states, so compiling is instant and memory grows only with the states visited.

    >>> c = tether.regex(r"[0-9]+").compile(vocab)
    >>> c.mask(c.initial())[vocab.encode_greedy("7")[0]]
    True
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import numba
import numpy as np

from ..errors import TokenRejected
from ..limits import DEFAULT_LIMITS, Limits
from ..vocab import Vocabulary
from .bitmask import bitmask_words
from .constraint import Constraint
from .dfa import DEAD, ByteDFA

__all__ = ["DFAConstraint", "fill_trie_mask"]


@numba.njit(cache=True, nogil=True)
def _trie_mask_kernel(transitions, byte_class, state, trie_byte, trie_depth, trie_skip,
                      tok_start, tok_ids, stack, out):  # pragma: no cover - compiled
    """Set bit t of `out` for every token t whose bytes lead from `state` to a live state.

    The naive loop it implements (and that the tests compare against):
        for t, data in enumerate(tokens):
            s = state
            for b in data: s = transitions[s, byte_class[b]] if s >= 0 else -1
            if data and s >= 0: set bit t
    """
    out[:] = 0
    stack[0] = state
    n = trie_byte.shape[0]
    i = 1
    while i < n:
        d = trie_depth[i]
        s = transitions[stack[d - 1], byte_class[trie_byte[i]]]
        if s < 0:
            i = trie_skip[i]
            continue
        stack[d] = s
        for j in range(tok_start[i], tok_start[i + 1]):
            t = tok_ids[j]
            out[t >> 5] |= np.uint32(1) << np.uint32(t & 31)
        i += 1


@numba.njit(cache=True, nogil=True)
def _walk_kernel(transitions, byte_class, state, data):  # pragma: no cover - compiled
    """The state after `data` from `state`, or -1."""
    for b in data:
        state = transitions[state, byte_class[b]]
        if state < 0:
            return -1
    return state


def fill_trie_mask(dfa: ByteDFA, vocab: Vocabulary, state: int, out: np.ndarray) -> None:
    """Public wrapper of the mask kernel: checks arrays, then fills `out` (uint32 words)."""
    if out.dtype != np.uint32 or out.ndim != 1 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a contiguous 1-D uint32 array, got {out.dtype} {out.shape}")
    if out.shape[0] != bitmask_words(vocab.size):
        raise ValueError(f"out has {out.shape[0]} words, vocabulary of {vocab.size} needs {bitmask_words(vocab.size)}")
    if not 0 <= state < dfa.n_states:
        raise ValueError(f"state {state} is not a state of this DFA ({dfa.n_states} states)")
    trie = vocab.trie
    stack = np.empty(trie.max_depth + 1, dtype=np.int32)
    _trie_mask_kernel(dfa.transitions, dfa.byte_class, np.int32(state), trie.byte, trie.depth, trie.skip,
                      trie.tok_start, trie.tok_ids, stack, out)


class DFAConstraint(Constraint):
    """A regular constraint over one vocabulary; states are DFA state ids (ints).

    Thread-safe: the mask cache is guarded by a lock; the step memo is a dict
    whose reads and writes are atomic, and everything else is read-only.
    """

    def __init__(self, dfa: ByteDFA, vocab: Vocabulary, limits: Limits = DEFAULT_LIMITS, *, source: str = "",
                 parse: Callable[[str], Any] | None = None):
        if dfa.is_empty:
            raise ValueError("cannot compile an empty language")
        self.dfa = dfa
        self.vocab = vocab
        self.limits = limits
        self.source = source
        self._parse = parse
        self._eos = tuple(vocab.eos_ids)
        self._eos_set = frozenset(self._eos)
        self._words = bitmask_words(vocab.size)
        self._cache: dict[int, np.ndarray] = {}
        self._cache_limit = max(1, limits.mask_cache_bytes // (self._words * 4))
        self._lock = threading.Lock()
        self._accepting = dfa.accepting.tolist()
        self._finished = (dfa.accepting & (dfa.transitions < 0).all(axis=1)).tolist()
        # (state, token) -> next state: token walks repeat across sequences and AWRS checks,
        # and a dict hit is ~20x cheaper than a kernel call.
        self._steps: dict[tuple[int, int], int] = {}
        self._steps_limit = 1 << 20
        self.mask_computations = 0

    def __repr__(self) -> str:
        return f"DFAConstraint({self.source!r}, states={self.dfa.n_states}, vocab={self.vocab.size})"

    def parse(self, text: str) -> Any:
        return self._parse(text) if self._parse is not None else text

    def initial(self) -> int:
        return self.dfa.initial

    def is_accepting(self, state: int) -> bool:
        return self._accepting[state]

    def is_finished(self, state: int) -> bool:
        return self._finished[state]

    def _next(self, state: int, token_id: int) -> int:
        """The state after a non-EOS token, or -1 if it is not allowed."""
        key = (state, token_id)
        nxt = self._steps.get(key)
        if nxt is not None:
            return nxt
        if not 0 <= token_id < self.vocab.size:
            raise IndexError(f"token id {token_id} outside the vocabulary of {self.vocab.size}")
        if not 0 <= state < self.dfa.n_states:
            raise ValueError(f"{state!r} is not a state of {self!r}")
        data = self.vocab[token_id]
        if data:
            nxt = int(_walk_kernel(self.dfa.transitions, self.dfa.byte_class, np.int32(state),
                                   np.frombuffer(data, dtype=np.uint8)))
        else:
            nxt = DEAD
        if len(self._steps) >= self._steps_limit:
            self._steps.clear()
        self._steps[key] = nxt
        return nxt

    def allows(self, state: int, token_id: int) -> bool:
        if token_id in self._eos_set:
            return self.is_accepting(state)
        return self._next(state, token_id) >= 0

    def advance(self, state: int, token_id: int) -> int:
        nxt = self._steps.get((state, token_id))  # the common case, inlined: a memoised step
        if nxt is not None and nxt >= 0:
            return nxt
        if token_id in self._eos_set:
            if self.is_accepting(state):
                return state
            raise TokenRejected(state, token_id, None)
        nxt = self._next(state, token_id)
        if nxt < 0:
            raise TokenRejected(state, token_id, self.vocab[token_id])
        return nxt

    def _words_for(self, state: int) -> np.ndarray:
        """The packed mask of `state` as int32 words, computed by the kernel and cached."""
        words = np.empty(self._words, dtype=np.uint32)
        fill_trie_mask(self.dfa, self.vocab, state, words)
        if self.dfa.accepting[state]:
            for t in self._eos:
                words[t >> 5] |= np.uint32(1) << np.uint32(t & 31)
        words = words.view(np.int32)
        with self._lock:
            self.mask_computations += 1
            self._cache[state] = words
            while len(self._cache) > self._cache_limit:  # first in, first out
                del self._cache[next(iter(self._cache))]
        return words

    def fill_bitmask(self, state: int, row: np.ndarray) -> None:
        words = self._cache.get(state)  # the hot path: a lock-free dict read and one copy
        if words is None:
            words = self._words_for(state)
        if row.shape != words.shape or row.dtype is not words.dtype:
            raise ValueError(f"bitmask row must be int32[{self._words}], got {row.dtype}{list(row.shape)}")
        row[...] = words
