"""What every constraint over an automaton of int states shares: tagged states, memoised token
steps, and one-copy masks. `DFAConstraint` (a regex) and `CFGConstraint` (a grammar) fill in
how a token's bytes walk the automaton and how a state's mask is computed.

    >>> class MyConstraint(AutomatonConstraint):
    ...     def _walk(self, s, data): ...;  def _words_for(self, state): ...
"""

from __future__ import annotations

import operator
import threading
from collections import OrderedDict
from typing import Any, Callable

import numpy as np

from ..errors import InvalidState, TokenRejected, VocabularyError
from ..limits import DEFAULT_LIMITS, Limits
from ..vocab import Vocabulary
from .bitmask import bitmask_words
from .constraint import Constraint

__all__ = ["AutomatonConstraint", "PerVocabulary", "as_token_id", "copy_into"]

DEAD = -1
_STEP_BYTES = 128  # a (state, token) -> state dict entry, keys and value included


def as_token_id(token: Any) -> int:
    """A token id as a Python int: ints and numpy/torch integer scalars; anything else is a TypeError."""
    if type(token) is int:
        return token
    if isinstance(token, bool):
        raise TypeError(f"a token id must be an integer, got the bool {token!r}")
    try:
        return operator.index(token)
    except TypeError:
        raise TypeError(f"a token id must be an integer, got {type(token).__name__} {token!r}") from None


class AutomatonConstraint(Constraint):
    """A constraint whose states are the int states of an automaton, bound to one vocabulary.

    A state carries a tag of its automaton in the bits above 32, so a state from another
    constraint is an `InvalidState`, not a silent wrong answer. Subclasses implement `_walk(s,
    data)` (the automaton state after `data`, or DEAD) and `_words_for(state)` (the packed int32
    mask, stored in `_cache`).
    Thread-safe: caches are dicts whose single reads and writes are atomic. Picklable: the
    caches are left behind and refill on use.
    """

    _PICKLED = ("_machine", "vocab", "limits", "source", "_parse", "_tag")

    def __init__(self, automaton: Any, vocab: Vocabulary, limits: Limits = DEFAULT_LIMITS, *, source: str = "",
                 parse: Callable[[str], Any] | None = None):
        self._machine = automaton
        self.vocab = vocab
        self.limits = limits
        self.source = source
        self._parse = parse
        self._tag = (id(automaton) & 0xFFFFF) + 1
        self._setup()

    def _setup(self) -> None:
        vocab = self.vocab
        self._eos = tuple(vocab.eos_ids)
        self._eos_set = frozenset(self._eos)
        self._words = bitmask_words(vocab.size)
        self._lock = threading.Lock()
        # (state, token) -> next state (DEAD if not allowed): token walks repeat across
        # sequences and AWRS checks, and a dict hit is ~20x cheaper than a kernel call.
        self._steps: dict[tuple[int, int], int] = {}
        self._steps_limit = max(1024, self.limits.mask_cache_bytes // 8 // _STEP_BYTES)
        self._cache: dict[int, np.ndarray] = {}  # state -> packed mask
        self.mask_computations = 0

    def __getstate__(self) -> dict:
        return {name: getattr(self, name) for name in self._PICKLED}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._setup()

    def parse(self, text: str) -> Any:
        return self._parse(text) if self._parse is not None else text

    # The automaton: `initial`, `n_states`, `accepting(s)` and `is_finished(s)` over its int states.

    def n_states(self) -> int:
        return self._machine.n_states

    def initial(self) -> int:
        return self._state(self._machine.initial)

    def is_accepting(self, state: int) -> bool:
        return self._machine.accepting(self._id(state))

    def is_finished(self, state: int) -> bool:
        return self._machine.is_finished(self._id(state))

    def _walk(self, s: int, data: bytes) -> int:
        raise NotImplementedError

    def _words_for(self, state: int) -> np.ndarray:
        raise NotImplementedError

    # -- states: the automaton's state id in the low 32 bits, this automaton's tag above

    def _state(self, s: int) -> int:
        return (self._tag << 32) | s

    def _id(self, state: Any) -> int:
        if type(state) is not int or state >> 32 != self._tag or not 0 <= (state & 0xFFFFFFFF) < self.n_states():
            raise InvalidState(f"{state!r} is not a state of {self!r}: states come from its initial() and advance()")
        return state & 0xFFFFFFFF

    # -- one token

    def _next(self, state: int, token_id: int) -> int:
        """The state after a non-EOS token, or DEAD if it is not allowed."""
        key = (state, token_id)
        nxt = self._steps.get(key)
        if nxt is not None:
            return nxt
        if not 0 <= token_id < self.vocab.size:
            raise VocabularyError(f"token id {token_id} is outside the vocabulary of {self.vocab.size:,} ids")
        data = self.vocab[token_id]
        s = self._walk(self._id(state), data) if data else DEAD
        nxt = DEAD if s < 0 else self._state(s)
        if len(self._steps) >= self._steps_limit:
            self._steps.clear()
        self._steps[key] = nxt
        return nxt

    def allows(self, state: int, token_id: int) -> bool:
        token_id = token_id if type(token_id) is int else as_token_id(token_id)
        if token_id in self._eos_set:
            return self.is_accepting(state)
        return self._next(state, token_id) >= 0

    def advance(self, state: int, token_id: int) -> int:
        nxt = self._steps.get((state, token_id))  # the common case, inlined: a memoised step
        if nxt is not None and nxt >= 0:
            return nxt
        token_id = token_id if type(token_id) is int else as_token_id(token_id)
        if token_id in self._eos_set:
            if self.is_accepting(state):
                return state
            raise TokenRejected(state, token_id, None)
        nxt = self._next(state, token_id)
        if nxt < 0:
            raise TokenRejected(state, token_id, self.vocab[token_id])
        return nxt

    # -- masks

    def cache_bytes(self) -> int:
        return sum(w.nbytes for w in list(self._cache.values())) + len(self._steps) * _STEP_BYTES

    def _with_eos(self, words: np.ndarray, accepting: bool) -> np.ndarray:
        if accepting:
            for t in self._eos:
                words[t >> 5] |= np.uint32(1) << np.uint32(t & 31)
        return words.view(np.int32)

    def fill_bitmask(self, state: int, row: Any) -> None:
        words = self._cache.get(state)  # the hot path: a lock-free dict read and one copy
        if words is None:
            words = self._words_for(state)
        if type(row) is np.ndarray and row.dtype == np.int32 and row.shape == words.shape:
            row[...] = words
            return
        copy_into(row, words)


def copy_into(row: Any, words: np.ndarray) -> None:
    """Copy a mask into a bitmask row that is not a plain int32 numpy row: a torch int32 tensor."""
    shape = tuple(getattr(row, "shape", ()))
    dtype = str(getattr(row, "dtype", type(row).__name__))
    if type(row).__module__.startswith("torch") and dtype == "torch.int32" and shape == words.shape:
        import torch

        row.copy_(torch.from_numpy(words))
        return
    raise ValueError(f"bitmask row must be int32[{words.shape[0]}] (numpy or torch), got {dtype}{list(shape)}")


class PerVocabulary:
    """The compiled constraints of one specification, by vocabulary fingerprint (the `keep` most
    recently used): compiling again for the same vocabulary returns the same constraint, caches
    and all. Thread-safe; pickles empty.

        >>> self._compiled = PerVocabulary(); c = self._compiled.get(vocab, lambda: make(vocab))
    """

    def __init__(self, keep: int = 8):
        self.keep = keep
        self._by: OrderedDict[str, Constraint] = OrderedDict()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        return {"keep": self.keep}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["keep"])

    def get(self, vocab: Vocabulary, make: Callable[[], Constraint]) -> Constraint:
        if not isinstance(vocab, Vocabulary):
            raise TypeError(f"compile() needs a tether.Vocabulary, got {type(vocab).__name__}")
        with self._lock:
            compiled = self._by.get(vocab.fingerprint)
            if compiled is None:
                compiled = self._by[vocab.fingerprint] = make()
                while len(self._by) > self.keep:
                    self._by.popitem(last=False)
            else:
                self._by.move_to_end(vocab.fingerprint)
            return compiled
