"""`LogitsProcessor`: a tether constraint inside Hugging Face `model.generate`.

    >>> from transformers import LogitsProcessorList
    >>> from tether.integrations.transformers import LogitsProcessor
    >>> proc = LogitsProcessor(tether.regex(r"(19|20)[0-9]{2}"), tokenizer)
    >>> out = model.generate(**inputs, logits_processor=LogitsProcessorList([proc]), max_new_tokens=8)
    >>> tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)

Greedy search, sampling and beam search all work, batched with left padding. Each call
masks every row of `scores` to the tokens the constraint allows after that row's generated
prefix; the end-of-sequence ids are allowed exactly where the text so far is complete, so
`generate` stops in an accepting state (or at `max_new_tokens`).

Needs the `models` extra (torch and transformers).
"""

from __future__ import annotations

from typing import Any, Hashable, Iterable

import numpy as np

from .._optional import require

transformers = require("transformers", "tether.integrations.transformers.LogitsProcessor")
torch = require("torch", "tether.integrations.transformers.LogitsProcessor")

from ..automata.bitmask import allocate_bitmask, apply_bitmask  # noqa: E402
from ..automata.constraint import Constraint  # noqa: E402
from ..errors import VocabularyError, VocabularyMismatch  # noqa: E402
from .batch import StopIds, fill_row, step  # noqa: E402
from ..samplers.base import check_vocab  # noqa: E402
from ..vocab import Vocabulary  # noqa: E402

__all__ = ["LogitsProcessor"]


_MISSING = object()


class LogitsProcessor(transformers.LogitsProcessor):
    """Mask `model.generate`'s scores to a tether constraint.

        >>> proc = LogitsProcessor(tether.json_schema(schema), tokenizer)
        >>> ids = model.generate(**inputs, logits_processor=LogitsProcessorList([proc]),
        ...                      max_new_tokens=256, num_beams=4)

    Args:
        constraint: a specification (`tether.regex(...)`, `tether.json_schema(...)`,
            `tether.lark(...)`: anything with `.compile(vocab)`), compiled here for the
            vocabulary, or a compiled `Constraint`, whose vocabulary must be this
            tokenizer's (`VocabularyMismatch` otherwise).
        tokenizer_or_vocab: the model's Hugging Face tokenizer, or a `tether.Vocabulary`.
        eos_token_id: the ids `generate` stops on (int or list, as in
            `model.generation_config.eos_token_id`). By default the tokenizer's
            `eos_token_id`, else the vocabulary's EOS ids. Exactly these ids are allowed
            in accepting states, and only they once the constraint is finished.

    The scores may be wider than the vocabulary (models pad their logits: ids past it
    are disallowed), never narrower (`VocabularyMismatch`).

    State is keyed by each row's generated ids (a tuple), not by its row: beam search
    reorders rows between steps. Each call keeps only the prefixes of its own rows,
    each one `advance` from its parent's state, so memory stays at one state per row.

    A new generation is detected, and the whole `input_ids` taken as its prompt, when
    a call is not the continuation of the last one: its rows are not one token longer,
    their prompt columns differ, or some row's prefix (all but its last token) is not a
    prefix of the last call. So one processor may serve several `generate` calls in turn
    (not concurrently); `reset()` forces a fresh start (a new prompt that happens to
    extend the last call's rows by exactly one token would otherwise continue them).
    Assisted (speculative) decoding, which scores several positions per call, and
    continuous batching are not supported.

    A row whose last token is an EOS gets only the EOS ids from then on (generate feeds
    it padding, which is ignored); so does a row whose last token the constraint rejects
    (beam search keeps -inf candidates when fewer allowed ones exist): such a row is
    never fully masked, so sampling never meets an all -inf row.
    """

    supports_continuous_batching = False  # rows there come and go between calls

    def __init__(self, constraint: Any, tokenizer_or_vocab: Any, *,
                 eos_token_id: int | Iterable[int] | None = None) -> None:
        tokenizer = None if isinstance(tokenizer_or_vocab, Vocabulary) else tokenizer_or_vocab
        if tokenizer is not None and not _is_tokenizer(tokenizer):
            raise TypeError(f"tokenizer_or_vocab must be a Hugging Face tokenizer or a tether.Vocabulary, "
                            f"got {type(tokenizer_or_vocab).__name__}")
        stop = _ids(eos_token_id, "eos_token_id")
        if stop is None and tokenizer is not None:
            stop = _ids(getattr(tokenizer, "eos_token_id", None), "tokenizer.eos_token_id")
        if isinstance(constraint, Constraint):
            vocab = tokenizer_or_vocab if tokenizer is None else _tokenizer_vocab_like(tokenizer, constraint.vocab)
            check_vocab(vocab, constraint.vocab)
        elif callable(getattr(constraint, "compile", None)):
            vocab = tokenizer_or_vocab if tokenizer is None else _tokenizer_vocab(tokenizer, stop)
            constraint = constraint.compile(vocab)
        else:
            raise TypeError(f"constraint must be a tether specification (tether.regex(...), "
                            f"tether.json_schema(...), ...) or a compiled tether.Constraint, "
                            f"got {type(constraint).__name__}")
        self.constraint: Constraint = constraint
        self.vocab: Vocabulary = constraint.vocab
        self.eos_token_id: tuple[int, ...] = stop if stop is not None else tuple(self.vocab.eos_ids)
        outside = [i for i in self.eos_token_id if not 0 <= i < self.vocab.size]
        if outside:
            raise VocabularyError(f"eos_token_id={outside} outside the vocabulary's {self.vocab.size:,} ids")
        self._stop = StopIds(self.eos_token_id, self.vocab)
        self.reset()

    def reset(self) -> None:
        """Forget the current generation: the next call starts a new one."""
        self._prompt: torch.Tensor | None = None
        self._generated = 0  # tokens generated so far: the rows are prompt + this long
        self._states: dict[tuple[int, ...], Hashable] = {}

    @property
    def prompt_length(self) -> int | None:
        """The prompt length (pads included) of the current generation; None before the first call."""
        return None if self._prompt is None else self._prompt.shape[1]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if scores.shape[-1] < self.vocab.size:
            raise VocabularyMismatch(
                f"the model's scores have {scores.shape[-1]:,} columns but the constraint's vocabulary "
                f"{self.vocab.size:,} ids: build the processor from this model's tokenizer (or a "
                f"Vocabulary of its logits width)")
        if input_ids.shape[0] != scores.shape[0]:
            raise ValueError(f"{input_ids.shape[0]} rows of input_ids but {scores.shape[0]} of scores")
        prefixes = self._prefixes(input_ids)
        states: dict[tuple[int, ...], Hashable] = {}
        for key in prefixes:
            if key not in states:
                old = self._states.get(key, _MISSING)  # (): a generation's first call
                states[key] = old if old is not _MISSING else self._step(self._states[key[:-1]], key[-1])
        self._states = states  # the pruning: only this call's prefixes are kept

        bitmask = allocate_bitmask(len(prefixes), self.vocab.size)
        filled: dict[Hashable, int] = {}  # beams often share a state: fill once, copy
        for r, key in enumerate(prefixes):
            state = states[key]
            if state in filled:
                bitmask[r] = bitmask[filled[state]]
                continue
            filled[state] = r
            self._fill(state, bitmask[r])
        apply_bitmask(scores, bitmask)
        return scores

    # ------------------------------------------------------------------ internals

    def _prefixes(self, input_ids: torch.Tensor) -> list[tuple[int, ...]]:
        """Each row's generated ids; starts a new generation unless this call continues the last."""
        prompt = self._prompt
        if (prompt is not None and input_ids.shape[0] == prompt.shape[0]
                and input_ids.shape[1] == prompt.shape[1] + self._generated + 1
                and input_ids.device == prompt.device
                and torch.equal(input_ids[:, : prompt.shape[1]], prompt)):
            keys = [tuple(row) for row in input_ids[:, prompt.shape[1]:].tolist()]
            if all(k[:-1] in self._states for k in keys):
                self._generated += 1
                return keys
        self._prompt = input_ids.clone()
        self._generated = 0
        self._states = {(): self.constraint.initial()}
        return [()] * input_ids.shape[0]

    def _step(self, parent: Hashable, token: int) -> Hashable:
        return step(self.constraint, parent, token, self._stop)

    def _fill(self, state: Hashable, row: np.ndarray) -> None:
        fill_row(self.constraint, state, row, self._stop)


def _is_tokenizer(obj: Any) -> bool:
    """A transformers tokenizer (fast or slow) or a `tokenizers.Tokenizer`: what
    `Vocabulary.from_tokenizer` reads."""
    return hasattr(obj, "get_vocab") and any(hasattr(obj, a) for a in ("backend_tokenizer", "convert_ids_to_tokens", "to_str"))


def _ids(value: Any, name: str) -> tuple[int, ...] | None:
    """int, list of ints or a 1-d tensor as a tuple of ints; None stays None."""
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        value = value.reshape(-1).tolist()
    values = [value] if isinstance(value, (int, np.integer)) else list(value)
    if not values or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in values):
        raise TypeError(f"{name} must be an int or a non-empty list of ints, got {value!r}")
    return tuple(dict.fromkeys(int(v) for v in values))


def _tokenizer_vocab(tokenizer: Any, stop: tuple[int, ...] | None) -> Vocabulary:
    """The tokenizer's Vocabulary with `stop` as its EOS ids (detected by name when None)."""
    try:
        return Vocabulary.from_tokenizer(tokenizer, eos_ids=stop)
    except VocabularyError as exc:
        if stop is None:
            raise
        raise VocabularyError(f"eos_token_id={list(stop)} does not fit the tokenizer: {exc}") from exc


def _tokenizer_vocab_like(tokenizer: Any, like: Vocabulary) -> Vocabulary:
    """The tokenizer's Vocabulary with the size and EOS ids of `like` (a compiled constraint's),
    so `check_vocab` compares what matters: every id's bytes."""
    try:
        return Vocabulary.from_tokenizer(tokenizer, eos_ids=like.eos_ids, size=like.size)
    except VocabularyError as exc:
        raise VocabularyMismatch(f"the constraint was compiled for another vocabulary than the tokenizer's "
                                 f"({like.size:,} ids, EOS {list(like.eos_ids)}): {exc}") from exc
