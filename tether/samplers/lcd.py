"""Locally constrained decoding: mask the logits, then greedy, sampling or beam search.

All sequences of a batch share one model call per step.

    >>> gens = Sample(temperature=0.7, top_p=0.9, seed=0).run(lm, [lm.prompt_ids("Hi")] * 8, c, max_tokens=20)
    >>> [g.text for g in gens if g.ok]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..automata.bitmask import allocate_bitmask, apply_bitmask
from ..automata.constraint import Constraint
from ..models.base import CausalLM
from .base import Generation, SamplerStats, Status

__all__ = ["Greedy", "Sample", "BeamSearch", "finish"]


def finish(constraint: Constraint, ids: list[int], status: Status, logprob: float, stats: SamplerStats) -> Generation:
    """Package a token sequence as a Generation; EOS ids are not part of the text."""
    vocab = constraint.vocab
    body = [t for t in ids if t not in vocab.eos_ids]
    text = vocab.decode(body).decode("utf-8", errors="replace")
    value = constraint.parse(text) if status is Status.COMPLETE else None
    return Generation(ids, text, status, logprob, value, stats)


class _Stepwise:
    """Shared loop of the token-by-token samplers: one batched forward per step."""

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
            max_tokens: int) -> list[Generation]:
        """Generate one sequence per prompt (repeat a prompt to draw several samples)."""
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
        _check_vocab(model, constraint)
        n = len(prompts)
        stats = SamplerStats()
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
            with stats.model_time():
                logp = model.next_logprobs([list(prompts[i]) + outputs[i] for i in live]).float()
            with stats.constraint_time():
                for row, i in enumerate(live):
                    constraint.fill_bitmask(states[i], bitmask[row])
                stats.masks += len(live)
                apply_bitmask(logp, bitmask[: len(live)])
            local = torch.log_softmax(logp, dim=-1)
            chosen = self.choose(local, generator).tolist()
            stats.steps += 1
            with stats.constraint_time():
                for row, i in enumerate(live):
                    t = chosen[row]
                    if not torch.isfinite(local[row, t]):
                        status[i] = Status.DEAD
                        continue
                    logprob[i] += float(local[row, t])
                    outputs[i].append(t)
                    stats.tokens += 1
                    states[i] = constraint.advance(states[i], t)
                    if t in eos or constraint.is_finished(states[i]):
                        status[i] = Status.COMPLETE
        return [finish(constraint, outputs[i], status[i] or Status.INCOMPLETE, logprob[i], stats) for i in range(n)]


@dataclass
class Greedy(_Stepwise):
    """The most likely allowed token at every step."""

    def choose(self, logprobs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return logprobs.argmax(dim=-1)


@dataclass
class Sample(_Stepwise):
    """Multinomial sampling from the masked distribution, with temperature, top-k and top-p.

    The mask is applied first, so top-k and top-p pick among allowed tokens only.
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
    """

    width: int = 4
    length_penalty: float = 0.0

    def run(self, model: CausalLM, prompts: Sequence[Sequence[int]], constraint: Constraint,
            max_tokens: int) -> list[Generation]:
        if self.width < 1:
            raise ValueError(f"width must be at least 1, got {self.width}")
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
        _check_vocab(model, constraint)
        return [self._one(model, list(p), constraint, max_tokens) for p in prompts]

    def _score(self, logprob: float, length: int) -> float:
        return logprob / max(length, 1) ** self.length_penalty

    def _one(self, model: CausalLM, prompt: list[int], constraint: Constraint, max_tokens: int) -> Generation:
        stats = SamplerStats()
        eos = set(constraint.vocab.eos_ids)
        beams: list[tuple[list[int], object, float]] = [([], constraint.initial(), 0.0)]
        finished: list[tuple[float, list[int], float]] = []
        bitmask = allocate_bitmask(self.width, constraint.vocab.size)
        for _ in range(max_tokens):
            if not beams:
                break
            with stats.model_time():
                logp = model.next_logprobs([prompt + ids for ids, _, _ in beams]).float()
            with stats.constraint_time():
                for row, (_, state, _) in enumerate(beams):
                    constraint.fill_bitmask(state, bitmask[row])
                stats.masks += len(beams)
                apply_bitmask(logp, bitmask[: len(beams)])
            local = torch.log_softmax(logp, dim=-1)
            total = local + torch.tensor([score for _, _, score in beams]).unsqueeze(-1)
            k = min(self.width, total.shape[-1])
            top = torch.topk(total.flatten(), min(k * len(beams), total.numel()))
            stats.steps += 1
            candidates = []
            for value, flat in zip(top.values.tolist(), top.indices.tolist()):
                if not np.isfinite(value) or len(candidates) == self.width:
                    break
                row, t = divmod(flat, total.shape[-1])
                ids, state, _ = beams[row]
                with stats.constraint_time():
                    nxt = constraint.advance(state, t)
                stats.tokens += 1
                if t in eos or constraint.is_finished(nxt):
                    finished.append((self._score(value, len(ids) + 1), ids + [t], value))
                else:
                    candidates.append((ids + [t], nxt, value))
            beams = candidates
            if len(finished) >= self.width and (not beams or max(f[0] for f in finished)
                                                >= max(self._score(s, len(i)) for i, _, s in beams)):
                break
        if finished:
            _, ids, logprob = max(finished, key=lambda f: f[0])
            return finish(constraint, ids, Status.COMPLETE, logprob, stats)
        if beams:
            ids, _, logprob = max(beams, key=lambda b: b[2])
            return finish(constraint, ids, Status.INCOMPLETE, logprob, stats)
        return finish(constraint, [], Status.DEAD, float("-inf"), stats)


def _check_vocab(model: CausalLM, constraint: Constraint) -> None:
    if model.vocab.size != constraint.vocab.size:
        from ..errors import VocabularyError

        raise VocabularyError(
            f"the constraint was compiled for a vocabulary of {constraint.vocab.size} ids but the model "
            f"has {model.vocab.size}; compile it with model.vocab"
        )
