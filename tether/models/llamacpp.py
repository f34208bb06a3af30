"""`LlamaCppLM`: the `CausalLM` adapter over a `llama_cpp.Llama` (GGUF models through llama.cpp).

    >>> lm = LlamaCppLM.from_path()                       # the embedded SmolLM2 GGUF, quantised as shipped
    >>> tether.generate(lm, "Pick a year", tether.regex(r"(19|20)[0-9]{2}")).text

Every tether sampler (greedy, sampling, beam, AWRS, SMC) runs on it. llama.cpp keeps one
sequence in its KV cache; a prefix that extends or shares a start with the last one scored
reuses that much of the cache (the rest is removed and recomputed), and an LRU of the last
`cache_size` prefixes' log-probabilities makes a prefix scored before free. Beams and
particles that take turns cost their own tokens since the fork each time they switch.

Token ids are llama.cpp's (the GGUF's vocabulary), read by the transformers tokenizer of the
same GGUF, which also renders the chat template: a prompt is the same ids here as under
`TransformersLM` on that file.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .._optional import require

torch = require("torch", "tether.models.LlamaCppLM")

from ..errors import ContextLengthExceeded  # noqa: E402
from .base import ModelStats, Prompt  # noqa: E402
from .prompts import prompt_ids  # noqa: E402

if TYPE_CHECKING:
    from ..vocab import Vocabulary

__all__ = ["LlamaCppLM"]


class LlamaCppLM:
    """A `CausalLM` over `llama_cpp.Llama`.

    Args:
        llama: a `llama_cpp.Llama` (any `logits_all`; tether reads the last position's logits).
        tokenizer: the model's transformers tokenizer; by default loaded from the GGUF file
            the `Llama` was made from.
        vocab: by default `Vocabulary.from_tokenizer(tokenizer)` as wide as `llama.n_vocab()`,
            its EOS ids the tokenizer's EOS and chat turn's end.
        chat_template: `prompt_ids` renders the tokenizer's chat template.
        cache_size: prefixes whose log-probabilities are kept (0 disables it).
    """

    def __init__(self, llama: Any, tokenizer: Any = None, *, vocab: "Vocabulary | None" = None,
                 chat_template: bool = True, cache_size: int = 256) -> None:
        self._llama_cpp = require("llama_cpp", "tether.models.LlamaCppLM (pip install 'tether[llamacpp]')")
        if not isinstance(llama, self._llama_cpp.Llama):
            raise TypeError(f"llama must be a llama_cpp.Llama, got {type(llama).__name__}")
        if cache_size < 0:
            raise ValueError("cache_size must be >= 0")
        self.llama = llama
        self.n_vocab = int(llama.n_vocab())
        if tokenizer is None:
            tokenizer = _gguf_tokenizer(llama.model_path)
        self.tokenizer = tokenizer
        if vocab is None:
            from ..vocab import Vocabulary
            from .default import _eos_ids

            vocab = Vocabulary.from_tokenizer(tokenizer, eos_ids=_eos_ids(tokenizer, None), size=self.n_vocab)
        if vocab.size != self.n_vocab:
            from ..errors import VocabularyMismatch

            raise VocabularyMismatch(f"the vocabulary has {vocab.size:,} ids but the model {self.n_vocab:,} logits")
        self.vocab = vocab
        self.chat_template = chat_template
        self.context_length: int | None = int(llama.n_ctx())
        self.cache_size = int(cache_size)
        self.stats = ModelStats()
        self._lock = threading.RLock()
        self._cache: OrderedDict[tuple[int, ...], torch.Tensor] = OrderedDict()
        self._padding = _padding(vocab)
        # Recurrent models cannot drop the tail of their state: they restart from nothing.
        self._truncates = not (getattr(llama, "_is_recurrent", False) or getattr(llama, "_is_hybrid", False))

    @classmethod
    def from_path(cls, path: "str | os.PathLike | None" = None, *, n_ctx: int = 2048, n_threads: int | None = None,
                  seed: int = 0, **llama_kwargs: Any) -> "LlamaCppLM":
        """A GGUF file through llama.cpp; by default the embedded SmolLM2-135M-Instruct.

            >>> lm = LlamaCppLM.from_path("models/qwen2.5-0.5b-instruct-q4_k_m.gguf", n_ctx=4096)
        """
        from .default import default_model_path

        llama_cpp = require("llama_cpp", "tether.models.LlamaCppLM (pip install 'tether[llamacpp]')")
        path = default_model_path() if path is None else path
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no GGUF file at {path}")
        llama = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads, seed=seed,
                                verbose=False, **llama_kwargs)
        return cls(llama)

    def prompt_ids(self, prompt: Prompt) -> list[int]:
        """Token ids of `prompt` (text or chat messages; see `tether.models.prompts.prompt_ids`)."""
        return prompt_ids(self.tokenizer, prompt, chat_template=self.chat_template)

    def next_logprobs(self, prefixes: Sequence[Sequence[int]]) -> torch.Tensor:
        """float32 log-probabilities (len(prefixes), vocab.size) of the token after each prefix."""
        keys = [tuple(int(t) for t in p) for p in prefixes]
        for key in keys:
            if not key:
                raise ValueError("a prefix must hold at least one token (the prompt's)")
            if len(key) > self.context_length:
                raise ContextLengthExceeded(len(key), 0, self.context_length)  # the Llama's n_ctx
            bad = [t for t in key if not 0 <= t < self.n_vocab]
            if bad:
                raise ValueError(f"token ids {bad[:5]} outside the model's {self.n_vocab:,} ids")
        out = torch.empty((len(keys), self.vocab.size), dtype=torch.float32)
        with self._lock:
            for i, key in enumerate(keys):
                out[i] = self._logprobs(key)
        return out

    def clear_cache(self) -> None:
        """Forget the cached log-probabilities and llama.cpp's KV cache."""
        with self._lock:
            self._cache.clear()
            self.llama.reset()

    def close(self) -> None:
        """Free the model and its context now (llama.cpp frees them only when the `Llama` is
        collected, which at interpreter exit may be after its library is gone)."""
        with self._lock:
            self._cache.clear()
            self.llama.close()

    def __enter__(self) -> "LlamaCppLM":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _logprobs(self, key: tuple[int, ...]) -> torch.Tensor:
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        llama = self.llama
        keep = 0
        if self._truncates and llama.n_tokens:
            current = llama.input_ids[: llama.n_tokens]
            n = min(len(current), len(key))
            differ = np.flatnonzero(current[:n] != np.asarray(key[:n], dtype=current.dtype))
            keep = int(differ[0]) if len(differ) else n
        keep = min(keep, len(key) - 1)  # at least one token runs, to produce the logits
        if keep == 0:
            llama.reset()
        else:
            llama.n_tokens = keep  # eval drops the cache past n_tokens
        new = list(key[keep:])
        with self.stats.timed(1, len(new)):
            llama.eval(new)
            ptr = self._llama_cpp.llama_get_logits_ith(llama.ctx, -1)
            logits = torch.from_numpy(np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy())
        if self._padding is not None:
            logits[self._padding] = float("-inf")
        logp = torch.log_softmax(logits, dim=-1)
        if self.cache_size:
            self._cache[key] = logp
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return logp


def _padding(vocab: "Vocabulary") -> torch.Tensor | None:
    """The padding ids (as `TransformersLM` reads them) as an index; None when there are none."""
    from .transformers import _padding_mask

    mask = _padding_mask(vocab, vocab.size, torch.device("cpu"))
    return None if mask is None else mask.nonzero().reshape(-1)


def _gguf_tokenizer(path: str) -> Any:
    from pathlib import Path

    from .default import _offline

    transformers = require("transformers", "tether.models.LlamaCppLM (the GGUF's tokenizer)")
    require("gguf", "tether.models.LlamaCppLM (the GGUF's tokenizer)")
    p = Path(path)
    with _offline():
        return transformers.AutoTokenizer.from_pretrained(str(p.parent), gguf_file=p.name, local_files_only=True)
