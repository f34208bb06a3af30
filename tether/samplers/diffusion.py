"""Decoding masked diffusion LMs: unconstrained, DINGO for regular constraints, and CFG-constrained
unmasking for context-free ones.

    >>> mdlm = tether.models.mdlm.default()
    >>> tether.generate(mdlm, "", tether.regex(r"[0-9]{3}-[0-9]{4}"), sampler=DINGO(steps=16)).text
    >>> tether.generate(mdlm, "", tether.sql(ddl=ddl), sampler=GrammarDiffusion(steps=32), max_tokens=48).text

The output is `max_tokens` positions after the prompt (or `length`), all masked at first.
They are decoded in blocks of `block_size` from left to right (semi-autoregressive; one block by
default), each block in `steps / blocks` denoising steps: every step scores the whole sequence in
one model call and unmasks the most confident masked positions of the block (`order="confidence"`,
by the model's top probability there) or random ones (`order="random"`), as many as are left
over the steps left. End of text is a token like any other: the model may choose it for
positions it leaves unused, and everything after it is padding.

- `Diffusion` unmasks the model's choice (the most likely token, or a sample at `temperature`)
  and enforces nothing: its output is COMPLETE when it is in the constraint's language, else
  INVALID (the baseline constrained decoding is measured against).
- `DINGO` (regular constraints) picks, for the positions a step unmasks, the most likely tokens
  such that the whole output can still end in the language (`tether.samplers.dingo`): the
  positions still masked stand for any token, and the final state must accept within the
  positions left. Its output is always in the language. With `temperature > 0` the model's
  log-probabilities get Gumbel noise before the maximisation (a perturbed maximum, not an exact
  draw from the constrained distribution).
- `GrammarDiffusion` (any constraint, meant for context-free ones) proposes the model's token
  for each position it unmasks and keeps it only if the partial output, holes included, can still
  be completed into the language (`tether.automata.infill`); a rejected token is replaced by the
  next most likely, up to `max_rejections`; past that the remaining positions are filled left to
  right, each with the most likely token that keeps a completion possible. A masked position
  followed by text must hold at least one byte; how many it may hold is not bounded, so a
  completion the check found may need more positions than are left: such an output ends DEAD.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .._optional import require

torch = require("torch", "tether.samplers.diffusion")

from ..errors import TokenRejected
from .base import Generation, SamplerStats, Status, check_vocab
from .dingo import END, Slot, Transitions, best_assignment

__all__ = ["Diffusion", "DINGO", "GrammarDiffusion", "is_diffusion_model"]


def is_diffusion_model(model: Any) -> bool:
    """Whether `model` is a masked diffusion LM (`logprobs` over all positions and a `mask_id`)."""
    return all(hasattr(model, a) for a in ("vocab", "mask_id", "logprobs", "prompt_ids"))


@dataclass
class Diffusion:
    """Masked-diffusion decoding without a constraint (see the module doc for the schedule).

    steps: denoising steps in all (default: one per position). block_size: positions per
    semi-autoregressive block (default: all in one). order: "confidence" or "random".
    temperature: 0 unmasks the most likely token, more samples. length: positions to decode
    (default `max_tokens`). seed: for sampling and random order.
    """

    steps: int | None = None
    block_size: int | None = None
    order: str = "confidence"
    temperature: float = 0.0
    length: int | None = None
    seed: int | None = None

    diffusion = True  # what `tether.generate` checks to route a diffusion model here

    def __post_init__(self) -> None:
        if self.order not in ("confidence", "random"):
            raise ValueError(f"order must be 'confidence' or 'random', got {self.order!r}")
        for name in ("steps", "block_size", "length"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")

    # -- the shared loop

    def run(self, model: Any, prompts: Sequence[Sequence[int]], constraint: Any, max_tokens: int, *,
            n: int = 1) -> list[Generation]:
        """`n` generations per prompt (grouped by prompt); the copies of one prompt share model calls."""
        if not is_diffusion_model(model):
            raise TypeError(f"{type(self).__name__} decodes masked diffusion LMs (with logprobs and mask_id), got "
                            f"{type(model).__name__}; for an autoregressive model use Greedy, Sample, "
                            f"BeamSearch or SMC")
        for name, value in (("max_tokens", max_tokens), ("n", n)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        check_vocab(model.vocab, constraint.vocab)
        length = self.length or max_tokens
        limit = getattr(model, "context_length", None)
        if limit and max(len(p) for p in prompts) + length > limit:
            from ..errors import ContextLengthExceeded

            raise ContextLengthExceeded(max(len(p) for p in prompts), length, int(limit))
        rng = np.random.default_rng(self.seed)
        self._prepare(constraint)
        out: list[Generation] = []
        for prompt in prompts:
            out.extend(self._decode(model, list(prompt), constraint, length, n, rng))
        return out

    def _prepare(self, constraint: Any) -> None:
        """Per-run setup of a constrained variant (memoised transitions, a completion search)."""

    def _decode(self, model: Any, prompt: list[int], constraint: Any, length: int, n: int,
                rng: np.random.Generator) -> list[Generation]:
        mask_id = int(model.mask_id)
        seqs = [_Sequence(length, mask_id) for _ in range(n)]
        stats = [SamplerStats() for _ in range(n)]
        block = self.block_size or length
        starts = list(range(0, length, block))
        steps = self.steps or length
        per_block = max(1, math.ceil(steps / len(starts)))
        p = len(prompt)
        for b in starts:
            stop = min(b + block, length)
            for k in range(per_block):
                live = [i for i, s in enumerate(seqs) if s.alive and s.masked(b, stop)]
                if not live:
                    break
                batch = torch.tensor([prompt + seqs[i].tokens for i in live], dtype=torch.long)
                t0 = time.perf_counter()
                logp = model.logprobs(batch)[:, p:, :].float().cpu().numpy().astype(np.float64)
                seconds = time.perf_counter() - t0
                for row, i in enumerate(live):
                    st = stats[i]
                    st.add_model_call(seconds, 1 / len(live))
                    st.steps += 1
                    s = seqs[i]
                    masked = s.masked(b, stop)
                    count = math.ceil(len(masked) / (per_block - k)) if k < per_block - 1 else len(masked)
                    chosen = self._positions(logp[row], masked, count, rng, constraint)
                    t1 = time.perf_counter()
                    self._unmask(s, chosen, logp[row], constraint, b, stop, rng, st)
                    st.constraint_seconds += time.perf_counter() - t1
            for s in seqs:
                if s.alive:
                    self._block_done(s, constraint, b, stop)
        return [self._finish(s, constraint, st) for s, st in zip(seqs, stats)]

    def _positions(self, logp: np.ndarray, masked: list[int], count: int, rng: np.random.Generator,
                   constraint: Any) -> list[int]:
        if self.order == "random":
            return sorted(rng.choice(masked, size=count, replace=False).tolist())
        confidence = logp[masked].max(axis=1)
        best = np.argsort(-confidence, kind="stable")[:count]
        return sorted(masked[j] for j in best)

    def _noisy(self, logp: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The scores a choice maximises: log-probabilities, tempered and Gumbel-perturbed when sampling."""
        if self.temperature == 0:
            return logp
        return logp / self.temperature + rng.gumbel(size=logp.shape)

    # -- what each variant decides

    def _unmask(self, s: "_Sequence", chosen: list[int], logp: np.ndarray, constraint: Any, b: int, stop: int,
                rng: np.random.Generator, stats: SamplerStats) -> None:
        for i in chosen:
            scores = self._noisy(logp[i], rng)
            s.set(i, int(np.argmax(scores)), float(logp[i][int(np.argmax(scores))]))

    def _block_done(self, s: "_Sequence", constraint: Any, b: int, stop: int) -> None:
        """Called when a block is fully decoded."""

    def _finish(self, s: "_Sequence", constraint: Any, stats: SamplerStats) -> Generation:
        vocab = constraint.vocab
        eos = set(vocab.eos_ids)
        ids = list(s.tokens)
        body = ids[: next((j for j, t in enumerate(ids) if t in eos), len(ids))]
        stats.tokens = len(body)
        text = vocab.decode(body).decode("utf-8", errors="replace")
        if not s.alive:
            return Generation(ids, text, Status.DEAD, s.logprob, None, stats)
        status = Status.COMPLETE if _accepts(constraint, body) else Status.INVALID
        value = constraint.parse(text) if status is Status.COMPLETE else None
        return Generation(ids, text, status, s.logprob, value, stats)


class _Sequence:
    """One output being denoised: its tokens (the mask id where still masked) and log-probability."""

    def __init__(self, length: int, mask_id: int):
        self.mask_id = mask_id
        self.tokens = [mask_id] * length
        self.scores = [0.0] * length  # each unmasked position's log-probability
        self.logprob = 0.0
        self.alive = True
        self.state: Any = None  # the constraint state after the decoded blocks (DINGO)

    def masked(self, start: int, stop: int) -> list[int]:
        return [i for i in range(start, stop) if self.tokens[i] == self.mask_id]

    def set(self, i: int, token: int, logprob: float) -> None:
        self.tokens[i] = token
        self.scores[i] = logprob
        self.logprob += logprob

    def unset(self, i: int) -> None:
        self.logprob -= self.scores[i]
        self.tokens[i], self.scores[i] = self.mask_id, 0.0


def _accepts(constraint: Any, ids: Sequence[int]) -> bool:
    state = constraint.initial()
    try:
        for t in ids:
            state = constraint.advance(state, t)
    except TokenRejected:
        return False
    return constraint.is_accepting(state)


@dataclass
class DINGO(Diffusion):
    """Masked-diffusion decoding under a regular constraint: every step's unmasking is DINGO's most
    likely assignment that can still end in the language (see the module doc).

        >>> tether.generate(mdlm, "", tether.regex(r"[0-9]{3}"), sampler=DINGO(steps=8), max_tokens=8).text
    """

    def _prepare(self, constraint: Any) -> None:
        self._moves = Transitions(constraint)  # raises the TypeError naming GrammarDiffusion for a CFG

    def _unmask(self, s: _Sequence, chosen: list[int], logp: np.ndarray, constraint: Any, b: int, stop: int,
                rng: np.random.Generator, stats: SamplerStats) -> None:
        if s.state is None:
            s.state = constraint.initial()
        picked = set(chosen)
        slots, where = [], []
        for i in range(b, stop):
            if s.tokens[i] != s.mask_id:
                slots.append(Slot.fixed(s.tokens[i]))
            elif i in picked:
                slots.append(Slot.choose(self._noisy(logp[i], rng)))
                where.append(i)
            else:
                slots.append(Slot.masked())
        tail = len(s.tokens) - stop
        best = best_assignment(constraint, s.state, slots, tail=tail, moves=self._moves)
        stats.constraint_checks += 1
        if best is None:  # only when the carried state cannot finish in the positions left
            s.alive = False
            return
        for i, t in zip(where, best.tokens):
            s.set(i, t, float(logp[i][t]))

    def _block_done(self, s: _Sequence, constraint: Any, b: int, stop: int) -> None:
        state = s.state if s.state is not None else constraint.initial()
        eos = set(constraint.vocab.eos_ids)
        for t in s.tokens[b:stop]:
            if state == END or t in eos:
                state = END
            else:
                state = constraint.advance(state, t)
        s.state = state


@dataclass
class GrammarDiffusion(Diffusion):
    """Masked-diffusion decoding under any constraint (context-free ones included): each unmasked
    token is kept only if the output can still be completed (see the module doc).

        >>> tether.generate(mdlm, "", tether.sql(ddl=ddl), sampler=GrammarDiffusion(steps=24), max_tokens=24).text
    """

    max_rejections: int = 8
    max_states: int = 5_000

    def _prepare(self, constraint: Any) -> None:
        from ..automata.infill import Completer

        self._completer = Completer(constraint, max_states=self.max_states)
        self._fill = False

    def _feasible(self, s: _Sequence, constraint: Any) -> bool:
        """Whether the partial output can still be completed: a run of k masked positions is a hole
        of k to k * (longest token) bytes, or of none up to that where it may all be end of text."""
        from ..automata.infill import Hole
        from ..errors import ConstraintTooLarge

        vocab = constraint.vocab
        eos = set(vocab.eos_ids)
        longest = int(vocab.trie.max_depth)
        parts: list[Any] = []
        run = 0
        for j, t in enumerate(s.tokens + [None]):  # None: the end, closing a last run
            if t == s.mask_id:
                run += 1
                continue
            if run:
                # before text, the run holds k real tokens; before the end (of text) any may be EOS
                final = t is None or t in eos
                parts.append(Hole(0 if final else run, run * longest, tokens=run, padded=final))
                run = 0
            if t is None:
                break
            if t in eos:  # what follows is padding: EOS, or masked positions that will be EOS
                if any(u not in eos and u != s.mask_id for u in s.tokens[j + 1:]):
                    return False
                break
            parts.append(vocab[t] or b"")
        try:
            return self._completer.complete(parts) is not None
        except ConstraintTooLarge:
            return False  # undecided within the bound: refuse the token (never accept the unproven)

    def _unmask(self, s: _Sequence, chosen: list[int], logp: np.ndarray, constraint: Any, b: int, stop: int,
                rng: np.random.Generator, stats: SamplerStats) -> None:
        for i in chosen:
            if s.tokens[i] != s.mask_id:
                continue
            scores = self._noisy(logp[i], rng)
            order = np.argsort(-scores, kind="stable")
            for t in order[: self.max_rejections].tolist():
                if not np.isfinite(logp[i][t]):
                    break
                s.tokens[i] = t
                stats.constraint_checks += 1
                if self._feasible(s, constraint):
                    s.set(i, t, float(logp[i][t]))
                    break
                s.tokens[i] = s.mask_id
            else:
                self._fill_rest(s, logp, constraint, stats)
                return
            if s.tokens[i] == s.mask_id:
                self._fill_rest(s, logp, constraint, stats)
                return

    def _fill_rest(self, s: _Sequence, logp: np.ndarray, constraint: Any, stats: SamplerStats) -> None:
        """Fill every masked position left to right with the most likely token that keeps a
        completion possible (the fallback after too many rejections). Left to right, the text
        before a position is known, so only the tokens its state allows are tried.

        Where no candidate fits, the tokens unmasked after the position are what rule every
        candidate out (the text before it has a completion: each of its tokens was kept only
        with one); they are masked again and the filling goes on against an open suffix, whose
        check is a single padded hole. Only if even that fails is the output DEAD."""
        eos = set(constraint.vocab.eos_ids)
        state: Any = constraint.initial()
        for i in range(len(s.tokens)):
            t = s.tokens[i]
            if t != s.mask_id:
                if t in eos:
                    state = END
                elif state != END:
                    state = constraint.advance(state, t)
                continue
            if state == END:
                allowed = np.array(sorted(eos), dtype=np.int64)
            else:
                allowed = np.flatnonzero(constraint.mask(state))
            ranked = allowed[np.argsort(-logp[i][allowed], kind="stable")][: _FILL_CANDIDATES]
            for reopened in (False, True):
                if reopened:
                    later = [j for j in range(i + 1, len(s.tokens)) if s.tokens[j] != s.mask_id]
                    if not later:
                        break
                    for j in later:
                        s.unset(j)
                if self._fill_one(s, i, ranked, logp, constraint, stats):
                    t = s.tokens[i]
                    state = END if t in eos or state == END else constraint.advance(state, t)
                    break
            if s.tokens[i] == s.mask_id:
                s.alive = False
                return

    def _fill_one(self, s: _Sequence, i: int, ranked: np.ndarray, logp: np.ndarray, constraint: Any,
                  stats: SamplerStats) -> bool:
        """Position i gets the first of `ranked` that keeps a completion possible, if any does."""
        for t in ranked.tolist():
            s.tokens[i] = t
            stats.constraint_checks += 1
            if self._feasible(s, constraint):
                s.tokens[i] = s.mask_id
                s.set(i, t, float(logp[i][t]))
                return True
            s.tokens[i] = s.mask_id
        return False


_FILL_CANDIDATES = 512  # allowed tokens tried per position when filling, most likely first
