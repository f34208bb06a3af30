"""The minimal model adapter: what samplers need from a language model, and nothing more.

    >>> lm = tether.models.default()
    >>> logp = lm.next_logprobs([lm.prompt_ids("Say hi")])   # (1, lm.vocab.size)
"""

from __future__ import annotations

import numbers
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Protocol, Sequence, Union, runtime_checkable

if TYPE_CHECKING:
    import torch

    from ..vocab import Vocabulary

__all__ = ["ModelStats", "CausalLM", "MaskedDiffusionLM", "Prompt", "ROLES", "is_messages", "check_prompt",
           "check_messages"]

Message = Mapping[str, str]
Prompt = Union[str, Sequence[Message]]
"""A prompt: plain text (a user turn of the chat template), or chat messages
``[{"role": "system", "content": ...}, {"role": "user", "content": ...}]``."""

# Roles the common chat templates know. Checked because a template pastes the role into its
# own markup: a typo ("usr") would silently render a turn the model never saw in training.
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "ipython"})


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

    Optional: a `context_length` attribute (int, or None when unknown), the most
    tokens a prefix may hold; samplers refuse prompts + `max_tokens` beyond it
    with `tether.errors.ContextLengthExceeded`. (Not a protocol member, so
    adapters without it still pass `isinstance(lm, CausalLM)`.)
    """

    vocab: "Vocabulary"
    stats: ModelStats

    def prompt_ids(self, prompt: Prompt) -> list[int]:
        """Token ids of a prompt (text or chat messages), with the model's chat template where it has one."""

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


# ---------------------------------------------------------------------- prompts


def is_messages(prompt: Any) -> bool:
    """Whether `prompt` looks like chat messages: a list (or tuple) whose first item is a mapping.

        >>> is_messages([{"role": "user", "content": "Hi"}]), is_messages("Hi")
        (True, False)
    """
    return isinstance(prompt, (list, tuple)) and bool(prompt) and isinstance(prompt[0], Mapping)


def check_messages(messages: Sequence[Any]) -> list[dict[str, str]]:
    """Chat messages as plain dicts, after checking every role and content; ValueError or TypeError says which.

        >>> check_messages([{"role": "user", "content": "Hi"}])
        [{'role': 'user', 'content': 'Hi'}]
    """
    if not messages:
        raise ValueError("chat messages must not be empty: pass at least one {'role': 'user', 'content': ...}")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping):
            raise TypeError(f"message {i} must be a dict with 'role' and 'content', got {type(m).__name__}")
        missing = [k for k in ("role", "content") if k not in m]
        if missing:
            raise ValueError(f"message {i} has no {' or '.join(map(repr, missing))} key: "
                             f"each message is {{'role': 'user', 'content': '...'}}")
        role, content = m["role"], m["content"]
        if role not in ROLES:
            raise ValueError(f"message {i} has role {role!r}; expected one of {sorted(ROLES)}")
        if not isinstance(content, str):
            raise TypeError(f"message {i} ({role}) has content of type {type(content).__name__}; "
                            f"it must be a str")
        out.append(dict(m))
    return out


def check_prompt(prompt: Any) -> "str | list[dict[str, str]]":
    """A prompt as `prompt_ids` takes it (a str, or checked messages); TypeError naming the fix otherwise.

        >>> check_prompt([3, 4])
        Traceback (most recent call last):
        TypeError: the prompt is a list of token ids; ...
    """
    if isinstance(prompt, str):
        return prompt
    if is_messages(prompt):
        return check_messages(prompt)
    raise TypeError(_prompt_hint(prompt))


def _prompt_hint(prompt: Any) -> str:
    """Why `prompt` is not a prompt, and what to pass instead."""
    if _is_token_ids(prompt):
        return ("the prompt is a list of token ids; tether.generate takes text or chat messages. Pass the "
                "text (tokenizer.decode(ids)), or start from ids with a sampler directly: "
                "tether.Greedy().run(model, [ids], spec.compile(model.vocab), max_tokens)")
    if isinstance(prompt, (bytes, bytearray)):
        return "the prompt is bytes; pass text: prompt.decode('utf-8')"
    if isinstance(prompt, Mapping):
        return ("the prompt is a single message dict; pass a list of messages: "
                "[{'role': 'user', 'content': '...'}]")
    return (f"a prompt must be a str or a list of {{'role', 'content'}} messages, got "
            f"{type(prompt).__name__}")


def _is_token_ids(x: Any) -> bool:
    """A non-empty sequence (list, tuple, tensor, array) of integers."""
    if hasattr(x, "dtype") and hasattr(x, "tolist"):  # torch / numpy: any numeric array is ids, not text
        return True
    return (isinstance(x, (list, tuple)) and bool(x)
            and all(isinstance(t, numbers.Integral) for t in x))
