"""`LogitsProcessor`: a tether constraint inside `llama_cpp.Llama.create_completion`.

    >>> proc = LogitsProcessor(tether.regex(r"(19|20)[0-9]{2}"), llm)
    >>> llm.create_completion(prompt, logits_processor=LogitsProcessorList([proc]), max_tokens=8)

Each call masks llama.cpp's scores to the tokens the constraint allows after the tokens
generated so far; the model's end-of-generation ids are allowed exactly where the text is
complete, and only they once the constraint is finished. For tether's own samplers (beam,
AWRS, SMC) on a GGUF model, use `tether.models.LlamaCppLM` instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._optional import require
from ..automata.bitmask import allocate_bitmask, unpack_bitmask
from ..automata.constraint import Constraint
from ..samplers.base import check_vocab
from .batch import StopIds, fill_row, step

__all__ = ["LogitsProcessor"]


class LogitsProcessor:
    """Mask `create_completion`'s scores to a tether constraint.

        >>> lm = tether.models.LlamaCppLM.from_path()
        >>> proc = LogitsProcessor(tether.json_schema(schema), lm)
        >>> lm.llama.create_completion(prompt, logits_processor=[proc], max_tokens=128)["choices"][0]["text"]

    Args:
        constraint: a specification (anything with `.compile(vocab)`) or a compiled
            `Constraint` for the model's vocabulary.
        model: a `tether.models.LlamaCppLM` (its vocabulary is llama.cpp's ids), or a
            `llama_cpp.Llama` (wrapped, which loads its tokenizer from the GGUF file).

    A new generation is detected, and the whole input taken as its prompt, when a call's
    tokens do not extend the last call's; one processor serves several completions in turn
    (not concurrently). `reset()` forces a fresh start.
    """

    def __init__(self, constraint: Any, model: Any) -> None:
        from ..models.llamacpp import LlamaCppLM

        llama_cpp = require("llama_cpp", "tether.integrations.llamacpp (pip install 'tether[llamacpp]')")
        if isinstance(model, llama_cpp.Llama):
            model = LlamaCppLM(model)
        if not isinstance(model, LlamaCppLM):
            raise TypeError(f"model must be a tether.models.LlamaCppLM or a llama_cpp.Llama, got {type(model).__name__}")
        vocab = model.vocab
        if isinstance(constraint, Constraint):
            check_vocab(vocab, constraint.vocab)
        elif callable(getattr(constraint, "compile", None)):
            constraint = constraint.compile(vocab)
        else:
            raise TypeError(f"constraint must be a tether specification or a compiled Constraint, "
                            f"got {type(constraint).__name__}")
        self.constraint: Constraint = constraint
        self.vocab = vocab
        self._stop = StopIds(vocab.eos_ids, vocab)
        self._row = allocate_bitmask(1, vocab.size)[0]
        self.reset()

    def reset(self) -> None:
        """Forget the current generation: the next call starts a new one."""
        self._tokens: np.ndarray = np.zeros(0, dtype=np.intc)
        self._prompt_length = 0
        self._state = self.constraint.initial()

    @property
    def generated(self) -> list[int]:
        """The ids generated in the current completion so far."""
        return self._tokens[self._prompt_length:].tolist()

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        ids = np.asarray(input_ids)
        known = self._tokens
        if len(ids) >= len(known) and len(known) and np.array_equal(ids[: len(known)], known):
            for t in ids[len(known):].tolist():
                self._state = step(self.constraint, self._state, t, self._stop)
        else:
            self._prompt_length = len(ids)
            self._state = self.constraint.initial()
        self._tokens = ids.copy()
        fill_row(self.constraint, self._state, self._row, self._stop)
        blocked = ~unpack_bitmask(self._row, self.vocab.size)
        n = min(len(scores), len(blocked))
        np.copyto(scores[:n], -np.inf, where=blocked[:n])  # scores is a strided view into llama.cpp's
        scores[n:] = -np.inf
        return scores
