"""What every sampler returns, the counters it keeps, and the checks every sampler runs first.

    >>> g = tether.generate(lm, "Year?", tether.regex(r"[0-9]{4}"))
    >>> g.status, g.text
    ('complete', '1969')

A sampler is any object with ``run(model, prompts, constraint, max_tokens, *, n=1)``
(see `Sampler`).
"""

from __future__ import annotations

import numbers
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Iterator, Protocol, Sequence

from ..errors import ContextLengthExceeded, VocabularyMismatch

if TYPE_CHECKING:
    from ..automata.constraint import Constraint
    from ..models.base import CausalLM
    from ..vocab import Vocabulary

__all__ = ["Status", "Generation", "SamplerStats", "Sampler", "check_model", "check_vocab", "check_context",
           "check_run"]


class Status(str, Enum):
    """How a generation ended. Only COMPLETE output is a member of the constraint's language."""

    COMPLETE = "complete"  # the constraint accepted and the sequence ended (EOS, or nothing else allowed)
    INCOMPLETE = "incomplete"  # max_tokens was reached before the constraint accepted an end
    DEAD = "dead"  # no token was allowed (a weight-zero particle)
    INVALID = "invalid"  # a sampler that enforces nothing (unconstrained diffusion) ended outside the language


@dataclass
class SamplerStats:
    """Where one generation's time went: model calls and seconds, constraint checks and seconds.

    Every `Generation` has its own: `steps` (rounds it took part in), `tokens`,
    `masks`, `constraint_checks` and `constraint_seconds` are its own work.
    Model calls are batched, so `model_calls` counts the calls its sequences
    were part of and `model_seconds` is its *share* of their time (each call's
    seconds split over the rows it scored): summed over a batch's generations,
    `model_seconds` gives the batch's model time. `constraint_checks` counts
    one-token verdicts that reached the constraint (SMC/AWRS); the masked
    samplers check with full masks (`masks`) instead. BeamSearch: the `n`
    results of one prompt come from one search and each carries a copy of that
    search's counters (so do not sum them over those `n`).
    """

    steps: int = 0
    tokens: int = 0
    model_calls: int = 0
    model_seconds: float = 0.0
    constraint_seconds: float = 0.0
    constraint_checks: int = 0
    masks: int = 0

    @contextmanager
    def constraint_time(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.constraint_seconds += time.perf_counter() - start

    @contextmanager
    def model_time(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.model_calls += 1
            self.model_seconds += time.perf_counter() - start

    def add_model_call(self, seconds: float, share: float) -> None:
        """Count a batched model call this generation took part in, with its `share` (0-1) of the seconds."""
        self.model_calls += 1
        self.model_seconds += seconds * share

    @property
    def constraint_share(self) -> float:
        total = self.model_seconds + self.constraint_seconds
        return self.constraint_seconds / total if total else 0.0


@dataclass
class Generation:
    """One generated sequence.

    `value` is the constraint's parsed value of `text` when `status` is
    COMPLETE (for a regex: the text itself), else None: incomplete output is
    never presented as valid.
    """

    token_ids: list[int]
    text: str
    status: Status
    logprob: float = 0.0
    value: Any = None
    stats: SamplerStats = field(default_factory=SamplerStats)
    details: Any = None  # sampler-specific extras (SMC: the full `SMCResult`)

    @property
    def ok(self) -> bool:
        return self.status is Status.COMPLETE

    def __str__(self) -> str:
        return self.text if self.ok else f"<{self.status.value}: {self.text!r}>"


class Sampler(Protocol):
    """What `tether.generate` calls: ``n`` generations per prompt, grouped by prompt.

    ``run(model, [ids_a, ids_b], constraint, max_tokens, n=2)`` returns
    ``[a1, a2, b1, b2]``. `prompts` are token ids (``model.prompt_ids(...)``),
    `constraint` is compiled for ``model.vocab``.
    """

    def run(self, model: "CausalLM", prompts: Sequence[Sequence[int]], constraint: "Constraint",
            max_tokens: int, *, n: int = 1) -> list[Generation]: ...


# ---------------------------------------------------------------------- checks shared by the samplers


def check_run(model: "CausalLM", prompts: Sequence[Sequence[int]], constraint: "Constraint",
              max_tokens: int, n: int = 1) -> None:
    """Everything a sampler checks before its first model call (each check names the fix)."""
    for name, value in (("max_tokens", max_tokens), ("n", n)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    check_model(model)
    check_vocab(model.vocab, constraint.vocab)
    check_context(model, prompts, max_tokens)


def check_model(model: Any) -> None:
    """TypeError unless `model` is a tether model (`vocab`, `prompt_ids`, `next_logprobs`), saying how to make one.

        >>> check_model(AutoModelForCausalLM.from_pretrained(name))
        Traceback (most recent call last):
        TypeError: ... wrap it: tether.models.TransformersLM(model, tokenizer)
    """
    if all(hasattr(model, a) for a in ("vocab", "prompt_ids", "next_logprobs")):
        return
    kind = type(model)
    if kind.__module__.split(".")[0] in ("transformers", "tokenizers") or hasattr(model, "config"):
        raise TypeError(
            f"model is a Hugging Face {kind.__name__}, not a tether model; wrap it: "
            f"tether.models.TransformersLM(model, tokenizer) (with its AutoTokenizer), "
            f"or use tether.models.default()"
        )
    if isinstance(model, str):
        raise TypeError(
            f"model is the string {model!r}; load it first: tether.models.TransformersLM("
            f"AutoModelForCausalLM.from_pretrained(name), AutoTokenizer.from_pretrained(name)), "
            f"or use tether.models.default()"
        )
    raise TypeError(
        f"model must be a tether CausalLM (with vocab, prompt_ids and next_logprobs), got "
        f"{kind.__name__}; e.g. tether.models.TransformersLM(model, tokenizer) or tether.models.default()"
    )


def check_vocab(model_vocab: "Vocabulary", constraint_vocab: "Vocabulary") -> None:
    """VocabularyMismatch unless the constraint was compiled for the model's very vocabulary.

    Compares fingerprints (every id's bytes and the EOS ids), not sizes: two
    tokenizers of one size (mistral-sp32k and llama-spm: 32,000 ids each)
    spell different text with the same ids, so a constraint compiled for one
    would accept ids whose text, under the other, is outside the language.
    """
    if model_vocab is constraint_vocab or model_vocab.fingerprint == constraint_vocab.fingerprint:
        return
    raise VocabularyMismatch(
        f"the constraint was compiled for another vocabulary than the model's: constraint "
        f"{_describe(constraint_vocab)}, model {_describe(model_vocab)} "
        f"({_first_difference(constraint_vocab, model_vocab)}); compile it with model.vocab "
        f"(spec.compile(model.vocab)), or pass the spec uncompiled (tether.generate(model, prompt, "
        f"tether.regex(...)) compiles it for the model)"
    )


def _describe(vocab: "Vocabulary") -> str:
    name = getattr(vocab, "name", None)  # a label, where the vocabulary has one
    label = f"{name!r}, " if name else ""
    return f"{label}{vocab.size:,} ids, fingerprint {vocab.fingerprint[:12]}"


def _first_difference(constraint_vocab: "Vocabulary", model_vocab: "Vocabulary") -> str:
    """Where two vocabularies first disagree, in words (the cause users ask about)."""
    if constraint_vocab.size != model_vocab.size:
        return f"{constraint_vocab.size:,} ids vs {model_vocab.size:,}"
    if tuple(constraint_vocab.eos_ids) != tuple(model_vocab.eos_ids):
        return f"same size, EOS ids {list(constraint_vocab.eos_ids)} vs {list(model_vocab.eos_ids)}"
    for i, (a, b) in enumerate(zip(constraint_vocab, model_vocab)):
        if a != b:
            return f"same size, but id {i} is {a!r} for the constraint and {b!r} for the model"
    return "same tokens, different fingerprints"


def check_context(model: Any, prompts: Sequence[Sequence[int]], max_tokens: int) -> None:
    """ContextLengthExceeded when the longest prompt plus `max_tokens` exceeds `model.context_length`.

    The rule is ``len(prompt) + max_tokens <= context_length`` (the sequence a
    generation may reach; for SMC, whose `max_tokens` counts EOS, one more than
    the model ever scores). Nothing is clamped: a budget that does not fit is an
    error naming the largest that does. Models without a `context_length` (or
    with None) are not checked.
    """
    limit = getattr(model, "context_length", None)
    if not limit or not prompts:
        return
    longest = max(len(p) for p in prompts)
    if longest + max_tokens > limit:
        raise ContextLengthExceeded(longest, max_tokens, int(limit))
