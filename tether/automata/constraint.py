"""The Constraint contract every compiled constraint keeps, and a mutable matcher over it.

A compiled constraint is immutable, vocabulary-specific and shareable; the
per-sequence state is a small hashable value, so forking a beam or a particle
is free.

    >>> c = tether.regex(r"[0-9]+").compile(vocab)
    >>> s = c.advance(c.initial(), vocab.encode_greedy("42")[0])
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Hashable, Sequence

import numpy as np

from ..vocab import Vocabulary
from .bitmask import allocate_bitmask, unpack_bitmask

__all__ = ["Constraint", "Matcher"]

State = Hashable


class Constraint(ABC):
    """A language over token sequences, compiled for one vocabulary.

    Invariants (checked by the test-suite for every implementation):
    sound (only strings of the language), complete (every spellable string is
    reachable), no dead ends (every allowed token keeps acceptance reachable),
    and `fill_bitmask` agrees with `allows` on every token id.
    EOS ids are allowed exactly in accepting states; special and padding ids never.
    """

    vocab: Vocabulary

    @abstractmethod
    def initial(self) -> State:
        """The state before any token."""

    @abstractmethod
    def allows(self, state: State, token_id: int) -> bool:
        """Whether `token_id` may come next: the one-token check samplers use."""

    @abstractmethod
    def advance(self, state: State, token_id: int) -> State:
        """The state after `token_id`; raises `TokenRejected` if it is not allowed.

        An EOS id in an accepting state leaves the state unchanged.
        """

    @abstractmethod
    def is_accepting(self, state: State) -> bool:
        """Whether the text so far is a complete member of the language."""

    @abstractmethod
    def fill_bitmask(self, state: State, row: np.ndarray) -> None:
        """Write the allowed ids into `row`, an int32 array of ceil(vocab.size / 32) words.

        Bit i % 32 of word i // 32 is set iff token i is allowed (the layout
        XGrammar and vLLM use).
        """

    def mask(self, state: State) -> np.ndarray:
        """A bool array of length `vocab.size`: True where the token is allowed."""
        row = allocate_bitmask(1, self.vocab.size)[0]
        self.fill_bitmask(state, row)
        return unpack_bitmask(row, self.vocab.size)

    def is_finished(self, state: State) -> bool:
        """Accepting and no token but EOS can follow: generation must stop here."""
        return False

    def parse(self, text: str) -> object:
        """The value a complete output stands for (the text itself for a regex; an object for JSON)."""
        return text

    def advance_many(self, state: State, token_ids: Sequence[int]) -> State:
        for t in token_ids:
            state = self.advance(state, int(t))
        return state

    def matcher(self) -> "Matcher":
        """A mutable cursor over this constraint, in the style of XGrammar/llguidance matchers."""
        return Matcher(self)


class Matcher:
    """A mutable per-sequence cursor: consume, fill the next bitmask, roll back.

        >>> m = constraint.matcher(); m.consume(token_id)
        >>> m.fill_next_bitmask(bitmask[0])
    """

    def __init__(self, constraint: Constraint):
        self.constraint = constraint
        self._states: list[State] = [constraint.initial()]
        self._ended = False

    @property
    def state(self) -> State:
        return self._states[-1]

    def consume(self, token_id: int) -> None:
        """Advance by one token; raises `TokenRejected` (and keeps the state) if it is not allowed."""
        if self._ended:
            raise ValueError("the matcher already consumed EOS; roll back or reset first")
        nxt = self.constraint.advance(self.state, token_id)
        self._states.append(nxt)
        self._ended = token_id in self.constraint.vocab.eos_ids

    def fill_next_bitmask(self, row: np.ndarray) -> None:
        if self._ended:
            row[:] = 0
        else:
            self.constraint.fill_bitmask(self.state, row)

    def rollback(self, n: int = 1) -> None:
        if n < 0 or n >= len(self._states):
            raise ValueError(f"cannot roll back {n} tokens; {len(self._states) - 1} consumed")
        if n:
            del self._states[-n:]
            self._ended = False

    def is_accepting(self) -> bool:
        return self._ended or self.constraint.is_accepting(self.state)

    def is_finished(self) -> bool:
        return self._ended or self.constraint.is_finished(self.state)

    def reset(self) -> None:
        del self._states[1:]
        self._ended = False
