"""Locally constrained decoding: mask the logits, then greedy, sampling or beam search.

All sequences of a batch share one model call per step: every sequence of
`Greedy`/`Sample`, and every live beam of every prompt of `BeamSearch`.

    >>> gens = Sample(temperature=0.7, top_p=0.9, seed=0).run(lm, [lm.prompt_ids("Hi")], c, max_tokens=20, n=8)
    >>> [g.text for g in gens if g.ok]
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np
from .._optional import require

torch = require("torch", "tether.samplers")

from ..automata.bitmask import allocate_bitmask, apply_bitmask
from ..automata.constraint import Constraint
from ..models.base import CausalLM
from .base import Generation, SamplerStats, Status, check_run

__all__ = ["Greedy", "Sample", "BeamSearch", "finish"]

OnToken = Callable[[int, int], None]  # (sequence index in the batch, token id)


def finish(constraint: Constraint, ids: list[int], status: Status, logprob: float, stats: SamplerStats) -> Generation:
    """Package a token sequence as a Generation; EOS ids are not part of the text."""
    vocab = constraint.vocab
    body = [t for t in ids if t not in vocab.eos_ids]
    text = vocab.decode(body).decode("utf-8", errors="replace")
    value = constraint.parse(text) if status is Status.COMPLETE else None
    return Generation(ids, text, status, logprob, value, stats)


class _Stepwise:
    """Shared loop of the token-by-token samplers: one batched forward per step.

    `on_token(i, token_id)`, where given, hears each token as sequence `i` of the batch takes it
    (`tether.stream` listens this way); an exception it raises ends the run.
    """

    streams = True  # tokens are final once taken, so they can be shown as they come

    def choose(self, logprobs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def _generator(self) -> torch.Generator:
        g = torch.Generator()
        seed = getattr(self, "seed", None)
        if seed is None:
            g.seed()
        else:
            g.manual_seed(seed)
        return g

    def run(self, model: CausalLM, prompts: Sequence[Sequence[int]], constraint: Constraint,
            max_tokens: int, *, n: int = 1, on_token: OnToken | None = None) -> list[Generation]:
        """Generate `n` sequences per prompt (grouped by prompt), all in one batch."""
        check_run(model, prompts, constraint, max_tokens, n)
        return self._decode(model, [list(p) for p in prompts for _ in range(n)], constraint, max_tokens,
                            on_token)

    def _decode(self, model: CausalLM, prompts: list[list[int]], constraint: Constraint,
                max_tokens: int, on_token: OnToken | None = None) -> list[Generation]:
        n = len(prompts)
        stats = [SamplerStats() for _ in range(n)]
        generator = self._generator()
        states = [constraint.initial()] * n
        outputs: list[list[int]] = [[] for _ in range(n)]
        logprob = [0.0] * n
        status: list[Status | None] = [None] * n
        bitmask = allocate_bitmask(n, constraint.vocab.size)
        eos = set(constraint.vocab.eos_ids)
        for _ in range(max_tokens):
            live = [i for i in range(n) if status[i] is None]
            if not live:
                break
            start = time.perf_counter()
            logp = model.next_logprobs([prompts[i] + outputs[i] for i in live]).float()
            seconds = time.perf_counter() - start
            for row, i in enumerate(live):
                stats[i].add_model_call(seconds, 1 / len(live))
                stats[i].steps += 1
                with stats[i].constraint_time():
                    constraint.fill_bitmask(states[i], bitmask[row])
                stats[i].masks += 1
            _masked(logp, bitmask[: len(live)], [stats[i] for i in live])
            local = torch.log_softmax(logp, dim=-1)
            chosen = self.choose(local, generator).tolist()
            for row, i in enumerate(live):
                t = chosen[row]
                if not torch.isfinite(local[row, t]):
                    status[i] = Status.DEAD
                    continue
                logprob[i] += float(local[row, t])
                outputs[i].append(t)
                stats[i].tokens += 1
                if on_token is not None:
                    on_token(i, t)
                with stats[i].constraint_time():
                    states[i] = constraint.advance(states[i], t)
                    if t in eos or constraint.is_finished(states[i]):
                        status[i] = Status.COMPLETE
        return [finish(constraint, outputs[i], status[i] or Status.INCOMPLETE, logprob[i], stats[i])
                for i in range(n)]


def _masked(logp: torch.Tensor, bitmask: np.ndarray, stats: list[SamplerStats]) -> None:
    """Apply the rows' masks in one call, its time split evenly over the rows' stats."""
    start = time.perf_counter()
    apply_bitmask(logp, bitmask)
    share = (time.perf_counter() - start) / max(len(stats), 1)
    for s in stats:
        s.constraint_seconds += share


@dataclass
class Greedy(_Stepwise):
    """The most likely allowed token at every step.

    Deterministic, so ``n > 1`` is refused (it would return n identical
    generations): use `Sample` for n independent draws or `BeamSearch` for the
    n best distinct sequences.
    """

    def run(self, model: CausalLM, prompts: Sequence[Sequence[int]], constraint: Constraint,
            max_tokens: int, *, n: int = 1, on_token: OnToken | None = None) -> list[Generation]:
        if isinstance(n, int) and n > 1:
            raise ValueError(
                f"Greedy() is deterministic: n={n} would return {n} identical generations per prompt; "
                f"use sampler=Sample(...) for {n} independent samples, or sampler=BeamSearch(width={max(n, 4)}) "
                f"for the {n} best distinct outputs"
            )
        return super().run(model, prompts, constraint, max_tokens, n=n, on_token=on_token)

    def choose(self, logprobs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return logprobs.argmax(dim=-1)


@dataclass
class Sample(_Stepwise):
    """Multinomial sampling from the masked distribution, with temperature, top-k and top-p.

    The mask is applied first, so top-k and top-p pick among allowed tokens only.
    With ``n``, each prompt gets n independent draws (one batch).
    """

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError("temperature must be positive (use Greedy() for temperature 0)")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    def choose(self, logprobs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        scores = logprobs / self.temperature
        if self.top_k is not None and self.top_k < scores.shape[-1]:
            kth = torch.topk(scores, self.top_k, dim=-1).values[:, -1:]
            scores = scores.masked_fill(scores < kth, float("-inf"))
        if self.top_p is not None and self.top_p < 1:
            ordered, order = torch.sort(scores, descending=True, dim=-1)
            probs = torch.softmax(ordered, dim=-1)
            before = torch.cumsum(probs, dim=-1) - probs  # mass strictly above each token
            drop = before >= self.top_p
            scores = scores.scatter(-1, order, ordered.masked_fill(drop, float("-inf")))
        dead = torch.isneginf(scores).all(dim=-1)
        scores[dead] = 0.0  # rows with nothing allowed: any pick, reported DEAD by the caller
        return torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=generator).squeeze(-1)


@dataclass
class BeamSearch:
    """Beam search over allowed tokens: `width` beams per prompt, scored by total log-probability.

    A beam ends when it takes EOS (allowed only where the constraint accepts) or
    reaches a state where nothing but EOS may follow. `length_penalty` divides
    finished scores by length**penalty (0 = plain log-probability).

    The live beams of *all* prompts share one `next_logprobs` call per step.
    With ``n`` (at most `width`), each prompt gets its n best finished beams of
    distinct text, best first (two tokenizations of one string count once, at
    their better score). Should fewer than n finish, the rest are the best
    unfinished beams (INCOMPLETE), then empty DEAD generations, so a prompt
    always gets exactly n.

        >>> best, second = tether.generate(lm, "Pick a colour", spec, sampler=BeamSearch(width=4), n=2)
    """

    width: int = 4
    length_penalty: float = 0.0

    def run(self, model: CausalLM, prompts: Sequence[Sequence[int]], constraint: Constraint,
            max_tokens: int, *, n: int = 1) -> list[Generation]:
        if self.width < 1:
            raise ValueError(f"width must be at least 1, got {self.width}")
        check_run(model, prompts, constraint, max_tokens, n)
        if n > self.width:
            raise ValueError(f"BeamSearch(width={self.width}) keeps {self.width} beams, so it cannot rank "
                             f"n={n} results; use BeamSearch(width={n}) or more")
        searches = [_Search(self, list(p), constraint, n) for p in prompts]
        bitmask = allocate_bitmask(max(len(searches) * self.width, 1), constraint.vocab.size)
        for _ in range(max_tokens):
            active = [s for s in searches if not s.done]
            if not active:
                break
            self._step(model, active, constraint, bitmask)
        return [g for s in searches for g in s.results()]

    def _step(self, model: CausalLM, active: list["_Search"], constraint: Constraint,
              bitmask: np.ndarray) -> None:
        """One model call over every live beam of every active prompt, then each prompt's expansion."""
        prefixes = [s.prompt + ids for s in active for ids, _, _ in s.beams]
        start = time.perf_counter()
        logp = model.next_logprobs(prefixes).float()
        seconds = time.perf_counter() - start
        row = 0
        for s in active:
            s.stats.add_model_call(seconds, len(s.beams) / len(prefixes))
            with s.stats.constraint_time():
                for _, state, _ in s.beams:
                    constraint.fill_bitmask(state, bitmask[row])
                    row += 1
            s.stats.masks += len(s.beams)
        _masked(logp, bitmask[:row], [s.stats for s in active])
        local = torch.log_softmax(logp, dim=-1)
        sizes = [len(s.beams) for s in active]  # before `expand` replaces the beams
        for s, rows in zip(active, torch.split(local, sizes)):
            s.expand(rows)

    def _score(self, logprob: float, length: int) -> float:
        return logprob / max(length, 1) ** self.length_penalty


class _Search:
    """One prompt's beams, finished beams (best per distinct text) and counters."""

    def __init__(self, owner: BeamSearch, prompt: list[int], constraint: Constraint, n: int):
        self.owner, self.prompt, self.constraint, self.n = owner, prompt, constraint, n
        self.eos = set(constraint.vocab.eos_ids)
        self.beams: list[tuple[list[int], object, float]] = [([], constraint.initial(), 0.0)]
        self.finished: dict[bytes, tuple[float, list[int], float]] = {}  # text -> (score, ids, logprob)
        self.stats = SamplerStats()
        self.done = False

    def expand(self, local: torch.Tensor) -> None:
        """Keep the `width` best live extensions of this prompt's beams; file the finished ones."""
        width, c = self.owner.width, self.constraint
        total = local + torch.tensor([score for _, _, score in self.beams]).unsqueeze(-1)
        k = min(width, total.shape[-1])
        top = torch.topk(total.flatten(), min(k * len(self.beams), total.numel()))
        self.stats.steps += 1
        candidates = []
        for value, flat in zip(top.values.tolist(), top.indices.tolist()):
            if not np.isfinite(value) or len(candidates) == width:
                break
            row, t = divmod(flat, total.shape[-1])
            ids, state, _ = self.beams[row]
            with self.stats.constraint_time():
                nxt = c.advance(state, t)
                ended = t in self.eos or c.is_finished(nxt)
            self.stats.tokens += 1
            if ended:
                self._finish(ids + [t], value)
            else:
                candidates.append((ids + [t], nxt, value))
        self.beams = candidates
        self.done = not candidates or self._settled()

    def _finish(self, ids: list[int], logprob: float) -> None:
        key = self.constraint.vocab.decode(t for t in ids if t not in self.eos)
        score = self.owner._score(logprob, len(ids))
        old = self.finished.get(key)
        if old is None or score > old[0]:
            self.finished[key] = (score, ids, logprob)

    def _settled(self) -> bool:
        """Whether n distinct texts have finished and the n-th best beats every live beam.

        Live scores only fall as beams grow (without a length penalty), so no live
        beam can then enter the top n; with a penalty this is the usual heuristic."""
        if len(self.finished) < self.n:
            return False
        nth = sorted((f[0] for f in self.finished.values()), reverse=True)[self.n - 1]
        return nth >= max(self.owner._score(s, len(i)) for i, _, s in self.beams)

    def results(self) -> list[Generation]:
        """Exactly n generations: the best finished texts, then unfinished beams, then DEAD."""
        c, n = self.constraint, self.n
        ranked = sorted(self.finished.values(), key=lambda f: f[0], reverse=True)[:n]
        out = [finish(c, ids, Status.COMPLETE, logprob, self._stats()) for _, ids, logprob in ranked]
        seen = {g.text for g in out}
        for ids, _, logprob in sorted(self.beams, key=lambda b: b[2], reverse=True):
            if len(out) == n:
                break
            g = finish(c, ids, Status.INCOMPLETE, logprob, self._stats())
            if g.text not in seen:
                seen.add(g.text)
                out.append(g)
        while len(out) < n:
            out.append(finish(c, [], Status.DEAD, float("-inf"), self._stats()))
        return out

    def _stats(self) -> SamplerStats:
        return replace(self.stats)  # each Generation its own copy of the search's counters
