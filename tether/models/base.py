"""The minimal model adapter: what samplers need from a language model, and nothing more.

    >>> lm = tether.models.default()
    >>> logp = lm.next_logprobs([lm.prompt_ids("Say hi")])   # (1, lm.vocab.size)
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
    import torch

    from ..vocab import Vocabulary

__all__ = ["ModelStats", "CausalLM", "MaskedDiffusionLM"]


@dataclass
class ModelStats:
    """Counters an adapter keeps: forward calls, sequences scored, tokens run, seconds spent."""

    calls: int = 0
    sequences: int = 0
    forward_tokens: int = 0
    seconds: float = 0.0

    @contextmanager
    def timed(self, sequences: int, tokens: int) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.calls += 1
            self.sequences += sequences
            self.forward_tokens += tokens
            self.seconds += time.perf_counter() - start

    def reset(self) -> None:
        self.calls = self.sequences = self.forward_tokens = 0
        self.seconds = 0.0


@runtime_checkable
class CausalLM(Protocol):
    """An autoregressive LM over `vocab`.

    `next_logprobs` scores a batch of token prefixes (prompt included) in one
    call and returns float32 log-probabilities of shape (len(prefixes),
    vocab.size); ids the model cannot emit (padding) are -inf. Prefix/KV caching
    lives inside the adapter: a prefix that extends, or equals, one it scored
    before costs only its new tokens, so forked particles and beams share work.
    """

    vocab: "Vocabulary"
    stats: ModelStats

    def prompt_ids(self, prompt: str) -> list[int]:
        """Token ids of a prompt, with the model's chat template where it has one."""

    def next_logprobs(self, prefixes: Sequence[Sequence[int]]) -> "torch.Tensor":
        """Log-probabilities of the next token after each prefix, as one batched call."""


@runtime_checkable
class MaskedDiffusionLM(Protocol):
    """A masked diffusion LM: predicts every masked position of a partially masked sequence.

    `logprobs` takes int64 sequences of shape (batch, length) where `mask_id`
    marks unknown positions and returns float32 log-probabilities of shape
    (batch, length, vocab.size).
    """

    vocab: "Vocabulary"
    mask_id: int
    stats: ModelStats

    def logprobs(self, sequences: "torch.Tensor") -> "torch.Tensor":
        """Per-position log-probabilities for a batch of partially masked sequences."""
