"""The Constraint contract every compiled constraint keeps, and a mutable matcher over it.

A compiled constraint is immutable, vocabulary-specific and shareable; the
per-sequence state is a small hashable value, so forking a beam or a particle
is free.

    >>> c = tether.regex(r"[0-9]+").compile(vocab)
    >>> s = c.advance(c.initial(), vocab.encode_greedy("42")[0])
"""

from __future__ import annotations

from abc import ABC, abstractmethod
import os
from typing import Any, Hashable, Sequence

import numpy as np

from ..errors import TokenRejected, VocabularyError
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

    def cache_bytes(self) -> int:
        """Bytes held now by this constraint's caches (masks, memoised steps); they grow as states are visited."""
        return 0

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
    """A mutable per-sequence cursor: consume, fill the next bitmask, roll back, jump forward.

        >>> m = constraint.matcher(); m.consume(token_id)
        >>> m.fill_next_bitmask(bitmask, index=0); m.forced_tokens()

    The methods of XGrammar's and llguidance's matchers, over any `Constraint`:
    `accept_string`, `validate_tokens`, `forced_bytes` / `forced_tokens` (jump-forward
    decoding) and `fill_next_bitmask(bitmask, index)`.
    """

    def __init__(self, constraint: Constraint):
        self.constraint = constraint
        self._states: list[State] = [constraint.initial()]
        self._ended = False

    @property
    def state(self) -> State:
        return self._states[-1]

    @property
    def consumed(self) -> int:
        """How many tokens were consumed since the start (what `rollback` can undo)."""
        return len(self._states) - 1

    def consume(self, token_id: int) -> None:
        """Advance by one token; raises `TokenRejected` (and keeps the state) if it is not allowed."""
        if self._ended:
            raise ValueError("the matcher already consumed EOS; roll back or reset first")
        nxt = self.constraint.advance(self.state, token_id)
        self._states.append(nxt)
        self._ended = token_id in self.constraint.vocab.eos_ids

    def accept_string(self, text: str | bytes) -> bool:
        """Consume `text` (tokenized by longest match) if the language allows it here; else change nothing.

        States depend on bytes only, so any tokenization of the same text reaches the same state.
        Returns whether the text was consumed; each of its tokens counts for `rollback`.
        """
        if self._ended:
            return False
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        try:
            ids = self.constraint.vocab.encode_greedy(data)
        except VocabularyError:
            return False
        n = self.validate_tokens(ids)
        if n < len(ids):
            return False
        for t in ids:
            self.consume(t)
        return True

    def validate_tokens(self, token_ids: Sequence[int]) -> int:
        """How many of `token_ids`, from the first, the constraint accepts from here (nothing is consumed)."""
        c, state, eos = self.constraint, self.state, self.constraint.vocab.eos_ids
        if self._ended:
            return 0
        for n, t in enumerate(token_ids):
            if not c.allows(state, t):
                return n
            if t in eos:
                return n + 1  # nothing may follow an end of sequence
            state = c.advance(state, t)
        return len(token_ids)

    def forced_bytes(self, limit: int = 4096) -> bytes:
        """The bytes every continuation from here starts with (at most `limit`): b"" where EOS or a choice is next.

        Found token by token: all allowed tokens share a first run of bytes, which is forced; after
        stepping over it (a longest-match tokenization, allowed because the language is prefix-closed),
        the same question is asked again.
        """
        if self._ended:
            return b""
        c, vocab, state, out = self.constraint, self.constraint.vocab, self.state, b""
        while len(out) < limit:
            mask = c.mask(state)
            if c.is_accepting(state) or not mask.any():
                break
            allowed = [vocab[int(t)] for t in np.flatnonzero(mask)]
            run = os.path.commonprefix([b for b in allowed if b])
            if not run:
                break
            out += run
            try:
                for t in vocab.encode_greedy(run):
                    state = c.advance(state, t)
            except TokenRejected:  # a constraint that also judges tokenization: stop at what is known
                break
        return out[:limit]

    def forced_tokens(self, limit: int = 4096) -> list[int]:
        """`forced_bytes` as a token run the caller may append without a model call (jump-forward).

        The run is the longest-match tokenization of the forced bytes, each token allowed in turn;
        its last token may end where a model would have continued a longer token, so samplers that
        care about tokenization re-score after it.
        """
        data = self.forced_bytes(limit)
        return self.constraint.vocab.encode_greedy(data) if data else []

    def fill_next_bitmask(self, bitmask: Any, index: int = 0) -> None:
        """Write the allowed next ids into row `index` of `bitmask` (int32 numpy or torch, (batch, words) or (words,))."""
        row = bitmask if getattr(bitmask, "ndim", 1) == 1 else bitmask[index]
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
