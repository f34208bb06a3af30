"""DINGO's dynamic programme: the most likely tokens for the positions a diffusion step unmasks,
such that the whole sequence can still end in the language.

    >>> slots = [Slot.fixed(t0), Slot.choose(logp_1), Slot.masked(), Slot.choose(logp_3)]
    >>> best = best_assignment(constraint, constraint.initial(), slots, tail=12)   # best.tokens, best.logprob

A block of a masked diffusion LM's output is a row of slots: tokens already decoded (`fixed`),
positions this step unmasks, each with the model's log-probabilities (`choose`), and positions
that stay masked (`masked`: one real token later, any of them, or end-of-text padding). The
programme runs over (position, state) of a regular constraint, the state set growing position by
position: a chosen slot moves each state along every token's transition (`DFAConstraint.transitions`,
one trie walk per state) keeping the best score per next state; a masked slot moves it to every
state one token reaches, at no cost. After the block, `tail` more masked positions follow (the
rest of the output): the final state must reach acceptance within that many tokens (EOS pads
the remainder). Maximising the sum of chosen log-probabilities over that set is exactly
DINGO (Suresh et al. 2025); cost O(slots · |Q| · |V|). End of text is a state of its own
(`END`): reached by an EOS id from an accepting state, left only by more EOS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

__all__ = ["Slot", "Assignment", "Transitions", "best_assignment", "END"]

END = -2  # the state after end of text (constraint states are non-negative)


@dataclass(frozen=True)
class Slot:
    """One position of a block: `fixed` (a token), `choose` (log-probabilities over the vocabulary) or `masked`."""

    kind: str
    token: int | None = None
    logprobs: np.ndarray | None = field(default=None, compare=False)

    @classmethod
    def fixed(cls, token: int) -> "Slot":
        return cls("fixed", token=int(token))

    @classmethod
    def choose(cls, logprobs: np.ndarray) -> "Slot":
        return cls("choose", logprobs=np.asarray(logprobs, dtype=np.float64))

    @classmethod
    def masked(cls) -> "Slot":
        return cls("masked")


@dataclass(frozen=True)
class Assignment:
    """The programme's answer: a token per `choose` slot (in slot order), their summed log-probability,
    and the state after the block (`END` after end of text)."""

    tokens: tuple[int, ...]
    logprob: float
    state: Any


class Transitions:
    """What the programme reads of a regular constraint, memoised per state: next states, successor
    sets, and token distances to acceptance.

        >>> moves = Transitions(constraint); moves.successors(constraint.initial())
    """

    def __init__(self, constraint: Any):
        if not hasattr(constraint, "transitions"):
            raise TypeError(f"DINGO needs a regular constraint (a regex, or a JSON Schema / grammar without "
                            f"recursion, whose engine is 'dfa'); {type(constraint).__name__} has no transitions "
                            f"row: use sampler=tether.samplers.GrammarDiffusion() for context-free constraints")
        self.constraint = constraint
        self.eos = np.array(sorted(constraint.vocab.eos_ids), dtype=np.int64)
        self._succ: dict[Any, np.ndarray] = {}
        self._groups: dict[Any, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._distance: dict[Any, int] = {END: 0}  # exact token distances to acceptance
        self._beyond: dict[Any, int] = {}  # the largest budget known not to suffice

    def row(self, state: Any) -> np.ndarray:
        return self.constraint.transitions(state)

    def accepting(self, state: Any) -> bool:
        return state == END or self.constraint.is_accepting(state)

    def successors(self, state: Any) -> np.ndarray:
        """The states one token (EOS included) leads to from `state`, as an int64 array."""
        succ = self._succ.get(state)
        if succ is None:
            if state == END:
                succ = np.array([END], dtype=np.int64)
            else:
                row = self.row(state)
                succ = np.unique(row[row >= 0])
                if self.constraint.is_accepting(state) and self.eos.size:
                    succ = np.append(succ, END)
            self._succ[state] = succ
        return succ

    def groups(self, state: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(tokens sorted by next state, group starts, next state per group): the allowed non-EOS tokens of `state`."""
        g = self._groups.get(state)
        if g is None:
            row = self.row(state)
            tokens = np.flatnonzero(row >= 0)
            order = np.argsort(row[tokens], kind="stable")
            tokens = tokens[order]
            keys = row[tokens]
            starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if keys.size else np.zeros(0, np.int64)
            g = self._groups[state] = (tokens, starts, keys[starts])
        return g

    def within(self, state: Any, budget: int) -> bool:
        """Whether `state` reaches acceptance within `budget` more tokens (a breadth-first search, memoised)."""
        known = self._distance.get(state)
        if known is not None:
            return known <= budget
        if budget <= self._beyond.get(state, -1):
            return False
        if self.accepting(state):
            self._distance[state] = 0
            return True
        seen, level = {state}, [state]
        for depth in range(1, budget + 1):
            nxt = []
            for q in level:
                for s in self.successors(q).tolist():
                    if s in seen:
                        continue
                    if self.accepting(s):
                        self._distance[state] = depth
                        return True
                    seen.add(s)
                    nxt.append(s)
            if not nxt:
                break
            level = nxt
        self._beyond[state] = budget
        return False


def best_assignment(constraint: Any, state: Any, slots: Sequence[Slot], *, tail: int = 0,
                    moves: Transitions | None = None) -> Assignment | None:
    """The most likely tokens for the `choose` slots such that, from `state`, the block (and then
    `tail` more tokens) can end in the language; None if no assignment can.

    `moves` carries memoised transitions across calls (pass the same one for one constraint).
    Ties go to the lowest token id.
    """
    moves = moves or Transitions(constraint)
    c = constraint
    eos = moves.eos
    eos_set = frozenset(eos.tolist())
    # layers[i]: state -> (score, previous state, token chosen or None)
    frontier: dict[Any, float] = {state: 0.0}
    layers: list[dict[Any, tuple[float, Any, int | None]]] = []
    for slot in slots:
        layer: dict[Any, tuple[float, Any, int | None]] = {}

        def offer(nq: Any, score: float, q: Any, token: int | None) -> None:
            old = layer.get(nq)
            if old is None or score > old[0] or (score == old[0] and token is not None and old[2] is not None
                                                 and token < old[2]):
                layer[nq] = (score, q, token)

        for q, score in frontier.items():
            if slot.kind == "masked":
                for nq in moves.successors(q).tolist():
                    offer(nq, score, q, None)
            elif slot.kind == "fixed":
                t = slot.token
                if t in eos_set:
                    if moves.accepting(q):
                        offer(END, score, q, t)
                elif q != END and c.allows(q, t):
                    offer(c.advance(q, t), score, q, t)
            else:
                logp = slot.logprobs
                if moves.accepting(q) and eos.size:
                    e = int(eos[np.argmax(logp[eos])])
                    if np.isfinite(logp[e]):
                        offer(END, score + float(logp[e]), q, e)
                if q == END:
                    continue
                tokens, starts, keys = moves.groups(q)
                if not tokens.size:
                    continue
                vals = logp[tokens]
                best = np.maximum.reduceat(vals, starts)
                # the first (lowest-id) token reaching each group's maximum
                hit = vals == np.repeat(best, np.diff(np.r_[starts, tokens.size]))
                first = np.minimum.reduceat(np.where(hit, tokens, np.iinfo(np.int64).max), starts)
                for nq, v, t in zip(keys.tolist(), best.tolist(), first.tolist()):
                    if v != -np.inf:
                        offer(nq, score + v, q, t)
        if not layer:
            return None
        layers.append(layer)
        frontier = {q: entry[0] for q, entry in layer.items()}
    finals = [(score, q) for q, score in frontier.items() if moves.within(q, tail)]
    if not finals:
        return None
    score, q = max(finals, key=lambda f: (f[0], -_order(f[1])))
    end_state = q
    chosen: list[int] = []
    for slot, layer in zip(reversed(slots), reversed(layers)):
        _, prev, token = layer[q]
        if slot.kind == "choose":
            chosen.append(int(token))
        q = prev
    return Assignment(tuple(reversed(chosen)), float(score), end_state)


def _order(state: Any) -> int:
    """A deterministic tie-break between final states (END last)."""
    return int(state) if state != END else 1 << 62
