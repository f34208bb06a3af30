"""Constraint states of a serving engine's batch rows, and the one packed bitmask they fill.

    >>> rows = BatchRows(constraint.vocab)
    >>> rows.add(0, constraint, output_ids, stop_ids={2}); rows.sync()
    >>> rows.apply(logits)             # every constrained row masked in one vectorised step

What every engine integration shares (Hugging Face `generate`, vLLM's V1 and V2 model
runners, llama.cpp): a row's state advances by the tokens the engine sampled for it; the
engine's stop ids are allowed exactly where the text so far is complete, and only they once
the constraint is finished; a row that emitted a stop id, or whose token the constraint
rejects (an engine may sample outside the mask, e.g. beam search keeping -inf candidates),
is offered only the stop ids from then on, so no row is ever fully masked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable, Iterable, Sequence

import numpy as np

from ..automata.bitmask import allocate_bitmask, apply_bitmask
from ..automata.constraint import Constraint
from ..errors import TokenRejected, VocabularyError
from ..samplers.base import check_vocab
from ..vocab import Vocabulary

__all__ = ["BatchRows", "StopIds", "step", "fill_row", "ENDED", "DEAD"]


class _End:
    """A row's state once it can only end: it emitted a stop id, or went astray."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


ENDED = _End("ended")
DEAD = _End("dead")


class StopIds:
    """The ids an engine stops on, laid out for masking: a row allowing only them, the bitmask
    words that hold any EOS id (the engine's or the vocabulary's), and those words with every
    EOS bit cleared. Built once per distinct set of stop ids."""

    def __init__(self, stop: Iterable[int], vocab: Vocabulary):
        self.ids = tuple(dict.fromkeys(int(t) for t in stop)) or tuple(vocab.eos_ids)
        outside = [t for t in self.ids if not 0 <= t < vocab.size]
        if outside:
            raise VocabularyError(f"stop ids {outside} outside the vocabulary's {vocab.size:,} ids")
        self.eos = frozenset(self.ids) | frozenset(vocab.eos_ids)
        row = allocate_bitmask(1, vocab.size)[0].view(np.uint32)
        for t in self.ids:
            row[t >> 5] |= np.uint32(1) << np.uint32(t & 31)
        self.row = row.view(np.int32)
        self.words = np.array(sorted({t >> 5 for t in self.eos}), dtype=np.intp)
        keep = np.full(len(self.words), 0xFFFFFFFF, dtype=np.uint32)
        for t in self.eos:
            keep[np.searchsorted(self.words, t >> 5)] &= ~(np.uint32(1) << np.uint32(t & 31))
        self.keep = keep.view(np.int32)


def step(constraint: Constraint, parent: Hashable, token: int, stop: StopIds) -> Hashable:
    """The state after `token`; never raises for a row that ended or went astray."""
    if isinstance(parent, _End):
        return parent
    if token in stop.eos:
        return ENDED if constraint.is_accepting(parent) else DEAD
    if not 0 <= token < constraint.vocab.size:  # a padded logit column
        return DEAD
    try:
        return constraint.advance(parent, token)
    except TokenRejected:
        return DEAD


def fill_row(constraint: Constraint, state: Hashable, row: np.ndarray, stop: StopIds) -> None:
    """The bitmask row of `state`: the constraint's mask with exactly `stop`'s ids as its ends."""
    if isinstance(state, _End) or constraint.is_finished(state):
        row[:] = stop.row
        return
    constraint.fill_bitmask(state, row)
    # The constraint allows its vocabulary's EOS ids in accepting states; what must be allowed
    # there is what the engine stops on, and nowhere else.
    row[stop.words] &= stop.keep
    if constraint.is_accepting(state):
        row[stop.words] |= stop.row[stop.words]


@dataclass
class _Row:
    constraint: Constraint
    stop: StopIds
    state: Hashable
    tokens: Sequence[int] | None  # the engine's live list of this row's output ids, when it shares one
    consumed: int = 0
    history: list[int] = field(default_factory=list)


class BatchRows:
    """The tether constraint state of each row of an engine's persistent batch.

        >>> rows = BatchRows(vocab)
        >>> rows.add(3, tether.regex(r"[0-9]+").compile(vocab), output_ids, stop_ids=[0])
        >>> rows.sync(); rows.apply(logits)

    Rows without a constraint are left alone. `add` overwrites a row (engines reuse
    slots), `move` and `swap` follow the engine's reordering, `sync` advances every row
    by the tokens appended to its output list since the last call (`feed` when the engine
    hands new tokens instead of a live list), and `apply` fills one packed int32 bitmask
    for the constrained rows and masks them in one step.
    """

    def __init__(self, vocab: Vocabulary):
        self.vocab = vocab
        self._rows: dict[int, _Row] = {}
        self._stops: dict[frozenset[int], StopIds] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, row: int) -> bool:
        return row in self._rows

    def add(self, row: int, constraint: Constraint, tokens: Sequence[int] | None = None, *,
            stop_ids: Iterable[int] = ()) -> None:
        """Put a request with `constraint` at `row`, its output so far in `tokens` (a live list
        the engine appends to, or None when tokens will come through `feed`)."""
        check_vocab(self.vocab, constraint.vocab)
        key = frozenset(int(t) for t in stop_ids)
        stop = self._stops.get(key)
        if stop is None:
            stop = self._stops[key] = StopIds(sorted(key), self.vocab)
        self._rows[row] = _Row(constraint, stop, constraint.initial(), tokens)

    def remove(self, row: int) -> None:
        self._rows.pop(row, None)

    def move(self, source: int, target: int) -> None:
        """The request at `source` moves to `target`, replacing whatever was there."""
        moved = self._rows.pop(source, None)
        if moved is None:
            self._rows.pop(target, None)
        else:
            self._rows[target] = moved

    def swap(self, a: int, b: int) -> None:
        ra, rb = self._rows.pop(a, None), self._rows.pop(b, None)
        if ra is not None:
            self._rows[b] = ra
        if rb is not None:
            self._rows[a] = rb

    def sync(self) -> None:
        """Advance every row that shares a live token list by the tokens appended to it."""
        for r in self._rows.values():
            if r.tokens is not None and len(r.tokens) > r.consumed:
                self._advance(r, r.tokens[r.consumed:])

    def feed(self, row: int, tokens: Sequence[int]) -> None:
        """Advance `row` by `tokens`, the ones sampled for it since the last feed."""
        self._advance(self._rows[row], tokens)

    def consumed(self, row: int) -> int:
        """How many output tokens `row` has advanced by."""
        return self._rows[row].consumed

    def state(self, row: int) -> Hashable:
        return self._rows[row].state

    def text(self, row: int) -> bytes:
        """The bytes of the tokens `row` has advanced by (stop ids included)."""
        return self.vocab.decode(self._rows[row].history)

    def apply(self, logits, rows: Sequence[int] | None = None) -> None:
        """Mask `logits` (torch, batch x V) in place: each constrained row to its allowed ids.

        `rows` maps logits rows to batch rows when they differ (by default logits row i is
        batch row i); rows without a constraint are untouched."""
        if not self._rows:
            return
        batch_rows = range(logits.shape[0]) if rows is None else rows
        indices = [i for i, b in enumerate(batch_rows) if b in self._rows]
        if not indices:
            return
        bitmask = allocate_bitmask(len(indices), self.vocab.size)
        filled: dict[tuple[int, Hashable, int], int] = {}  # rows in one state share a fill
        for k, i in enumerate(indices):
            r = self._rows[batch_rows[i]]
            key = (id(r.constraint), r.state, id(r.stop))
            if key in filled:
                bitmask[k] = bitmask[filled[key]]
                continue
            filled[key] = k
            fill_row(r.constraint, r.state, bitmask[k], r.stop)
        apply_bitmask(logits, bitmask, indices=indices)

    def _advance(self, r: _Row, tokens: Sequence[int]) -> None:
        state = r.state
        for t in tokens:
            state = step(r.constraint, state, int(t), r.stop)
            r.history.append(int(t))
        r.state = state
        r.consumed += len(tokens)
