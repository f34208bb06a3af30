"""`TransformersLM`: the `CausalLM` adapter for any Hugging Face `AutoModelForCausalLM`.

    >>> lm = TransformersLM(model, tokenizer)
    >>> prompt = lm.prompt_ids("Name a colour")
    >>> logp = lm.next_logprobs([prompt, prompt + [42]])      # (2, lm.vocab.size), float32

Prefix caching lives here. Every scored prefix keeps its key/value states and
its final log-probabilities in a bounded LRU, indexed by a token trie. A new
prefix starts from the longest prefix it shares with *any* cached sequence
(a cached extension of it included: its KV is a slice), so particles and beams
that fork from a common parent run only their own new tokens, and a prefix
scored before costs no forward at all.

One call is one batched forward over every prefix that needs compute. Past
states of different lengths are left-padded with zeros (masked out), new
tokens are right-padded (so no query row is ever fully masked, which would
turn into NaNs under SDPA), and explicit `position_ids` keep RoPE positions
exact; the new states are split back per sequence without the pads.
"""

from __future__ import annotations

import inspect
import numbers
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Sequence

from .._optional import require

torch = require("torch", "tether.models.TransformersLM")

from ..errors import ContextLengthExceeded
from .base import ModelStats, Prompt
from .prompts import prompt_ids

if TYPE_CHECKING:
    from ..vocab import Vocabulary

__all__ = ["TransformersLM"]


class _Entry:
    """A cached prefix: its KV states (n_layers, 2, heads, len, head_dim) and next-token log-probs."""

    __slots__ = ("key", "kv", "logprobs", "nbytes")

    def __init__(self, key: tuple[int, ...], kv: torch.Tensor | None, logprobs: torch.Tensor):
        self.key = key
        self.kv = kv
        self.logprobs = logprobs
        self.nbytes = logprobs.numel() * logprobs.element_size()
        if kv is not None:
            self.nbytes += kv.numel() * kv.element_size()


class _Node:
    """A token-trie node; `count` is the number of cached entries whose key passes through it."""

    __slots__ = ("children", "entry", "count")

    def __init__(self) -> None:
        self.children: dict[int, _Node] = {}
        self.entry: _Entry | None = None
        self.count = 0


class TransformersLM:
    """A `CausalLM` over a Hugging Face causal LM, with batched, prefix-cached scoring.

    Args:
        model: any `transformers` causal LM (put it on its device first).
        tokenizer: its tokenizer.
        vocab: the `Vocabulary`; by default `Vocabulary.from_tokenizer(tokenizer,
            size=<the model's logits width>)`.
        chat_template: `prompt_ids` wraps the prompt as a user turn of the
            tokenizer's chat template (with the generation prompt) when it has one.
        cache_size: the most prefixes kept in the LRU prefix cache (0 disables it).
        cache_bytes: the most bytes of KV states and log-probs the cache keeps.
        context_length: the most tokens a prefix may hold; by default the smaller of
            the model's `max_position_embeddings` and the tokenizer's
            `model_max_length` among those that are set (transformers' "no limit"
            placeholder is ignored), None when neither is. Samplers refuse a prompt
            plus `max_tokens` beyond it (`tether.errors.ContextLengthExceeded`).

    `next_logprobs` returns float32 log-probabilities of shape
    (len(prefixes), vocab.size) on the model's device: a log-softmax over the
    model's logits with the vocabulary's padding ids removed (-inf), padded with
    -inf up to `vocab.size`. The result is a fresh tensor the caller may modify.
    Calls are serialised by a lock, so one adapter can be shared by threads.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        vocab: "Vocabulary | None" = None,
        chat_template: bool = True,
        cache_size: int = 256,
        cache_bytes: int = 1 << 30,
        context_length: int | None = None,
    ) -> None:
        if cache_size < 0 or cache_bytes < 0:
            raise ValueError("cache_size and cache_bytes must be >= 0")
        if not hasattr(model, "forward") or not hasattr(model, "config"):
            raise TypeError(f"model must be a Hugging Face causal LM (AutoModelForCausalLM), got "
                            f"{type(model).__name__}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.chat_template = chat_template
        self.cache_size = int(cache_size)
        self.cache_bytes = int(cache_bytes)
        self.stats = ModelStats()
        self.device = _model_device(model)
        self.logits_width = _logits_width(model)
        embed = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
        self._n_embed = int(getattr(embed, "num_embeddings", None) or self.logits_width)
        if vocab is None:
            from ..vocab import Vocabulary

            vocab = Vocabulary.from_tokenizer(tokenizer, size=self.logits_width)
        self.vocab = vocab
        self._pad_mask = _padding_mask(vocab, self.logits_width, self.device)
        self.context_length = context_length if context_length is not None else _context_length(model, tokenizer)

        params = inspect.signature(model.forward).parameters
        self._cache_kwarg = "cache" if "cache" in params else "past_key_values"
        if "logits_to_keep" in params:
            self._keep_kwarg: str | None = "logits_to_keep"
        elif "num_logits_to_keep" in params:
            self._keep_kwarg = "num_logits_to_keep"
        else:
            self._keep_kwarg = None
        self._input_pad_id = 0
        self._kv_ok = True  # cleared if the model's cache is not plain per-layer keys/values

        self._lock = threading.RLock()
        self._lru: OrderedDict[tuple[int, ...], _Entry] = OrderedDict()
        self._root = _Node()
        self._bytes = 0

    # ------------------------------------------------------------------ prompts

    def prompt_ids(self, prompt: Prompt) -> list[int]:
        """Token ids of `prompt`: text or chat messages (see `tether.models.prompts.prompt_ids`).

            >>> ids = lm.prompt_ids("Say <|im_end|>")      # SmolLM2: a system turn, then the user's
            >>> ids.count(lm.tokenizer.convert_tokens_to_ids("<|im_end|>"))
            2
        """
        return prompt_ids(self.tokenizer, prompt, chat_template=self.chat_template)

    # ------------------------------------------------------------------ cache

    @property
    def cache_entries(self) -> int:
        """How many prefixes the cache holds."""
        return len(self._lru)

    @property
    def cache_nbytes(self) -> int:
        """Bytes of tensors the cache holds."""
        return self._bytes

    def clear_cache(self) -> None:
        """Drop every cached prefix (KV states and log-probs)."""
        with self._lock:
            self._lru.clear()
            self._root = _Node()
            self._bytes = 0

    def _lookup(self, key: tuple[int, ...]) -> tuple[_Entry | None, int]:
        """(an entry to reuse, how many of its leading positions to reuse).

        An exact hit returns (entry, len(key)); otherwise the reused length is
        the longest common prefix with any cached key, kept below len(key) so at
        least one token is run to produce the logits."""
        node = self._root
        depth = 0
        for t in key:
            child = node.children.get(t)
            if child is None:
                break
            node, depth = child, depth + 1
        if depth == len(key) and node.entry is not None:
            return node.entry, depth
        if depth == 0 or not self._kv_ok:
            return None, 0
        reuse = min(depth, len(key) - 1)
        while node.entry is None:  # every trie node lies on the path of a cached key
            node = next(iter(node.children.values()))
        if node.entry.kv is None:
            return None, 0
        return node.entry, reuse

    def _insert(self, entry: _Entry) -> None:
        old = self._lru.pop(entry.key, None)
        if old is not None:
            self._remove(old)
        node = self._root
        node.count += 1
        for t in entry.key:
            child = node.children.get(t)
            if child is None:
                child = node.children[t] = _Node()
            node = child
            node.count += 1
        node.entry = entry
        self._lru[entry.key] = entry
        self._bytes += entry.nbytes

    def _remove(self, entry: _Entry) -> None:
        node = self._root
        node.count -= 1
        for t in entry.key:
            child = node.children[t]
            child.count -= 1
            if child.count == 0:
                del node.children[t]  # the rest of the path belonged to this entry alone
                break
            node = child
        else:
            node.entry = None
        self._bytes -= entry.nbytes

    def _evict(self) -> None:
        while self._lru and (len(self._lru) > self.cache_size or self._bytes > self.cache_bytes):
            _, entry = self._lru.popitem(last=False)
            self._remove(entry)

    # ------------------------------------------------------------------ scoring

    def next_logprobs(self, prefixes: Sequence[Sequence[int]]) -> torch.Tensor:
        """Next-token log-probabilities after each prefix, shape (len(prefixes), vocab.size).

        All prefixes that are not cached run in one batched forward. Ids must be
        integers (Python, numpy or an integer tensor): a float or a bool is a
        TypeError, not silently truncated."""
        keys = [_as_ids(p) for p in prefixes]
        for k in keys:
            if not k:
                raise ValueError("next_logprobs needs non-empty prefixes (start with the prompt or BOS)")
            if min(k) < 0 or max(k) >= self._n_embed:
                bad = next(t for t in k if not 0 <= t < self._n_embed)
                raise ValueError(f"token id {bad} is out of range for the model's {self._n_embed:,} embeddings")
            if self.context_length and len(k) > self.context_length:
                raise ContextLengthExceeded(len(k), 0, self.context_length)
        if not keys:
            return torch.empty((0, self.vocab.size), dtype=torch.float32, device=self.device)
        with self._lock, torch.inference_mode():
            results: dict[tuple[int, ...], torch.Tensor] = {}
            todo: dict[tuple[int, ...], tuple[_Entry | None, int]] = {}
            for k in keys:
                if k in results or k in todo:
                    continue
                entry, reuse = self._lookup(k) if self.cache_size else (None, 0)
                if entry is not None and reuse == len(k):
                    self._lru.move_to_end(k)
                    results[k] = entry.logprobs
                else:
                    todo[k] = (entry, reuse)
            if todo:
                for entry in self._forward(todo):
                    results[entry.key] = entry.logprobs
                    if self.cache_size:
                        self._insert(entry)
                self._evict()
        # Stacked outside inference mode: a normal tensor, which callers may mask in place.
        return torch.stack([results[k] for k in keys])

    def _forward(self, todo: dict[tuple[int, ...], tuple[_Entry | None, int]]) -> list[_Entry]:
        keys = list(todo)
        batch = len(keys)
        past = [todo[k][1] for k in keys]  # reused positions per sequence
        new = [len(k) - c for k, c in zip(keys, past)]
        width_past, width_new = max(past), max(new)
        dev = self.device

        input_ids = torch.full((batch, width_new), self._input_pad_id, dtype=torch.long)
        position_ids = torch.empty((batch, width_new), dtype=torch.long)
        attention = torch.zeros((batch, width_past + width_new), dtype=torch.long)
        for i, (k, c, n) in enumerate(zip(keys, past, new)):
            input_ids[i, :n] = torch.tensor(k[c:], dtype=torch.long)
            position_ids[i, :n] = torch.arange(c, c + n)
            position_ids[i, n:] = c + n - 1  # right pads: never attended to, any valid position
            attention[i, width_past - c : width_past + n] = 1

        cache = self._make_cache(keys, todo, past, width_past, batch)
        kwargs: dict[str, Any] = {
            "input_ids": input_ids.to(dev),
            "attention_mask": attention.to(dev),
            "position_ids": position_ids.to(dev),
            self._cache_kwarg: cache,
            "use_cache": True,
        }
        # Project only the positions whose logits are needed onto the vocabulary.
        if self._keep_kwarg == "logits_to_keep":
            keep = sorted({n - 1 for n in new})
            kwargs["logits_to_keep"] = torch.tensor(keep, dtype=torch.long, device=dev)
            col = {p: j for j, p in enumerate(keep)}
            rows = [col[n - 1] for n in new]
        elif self._keep_kwarg == "num_logits_to_keep":
            kept = width_new - min(new) + 1
            kwargs["num_logits_to_keep"] = kept
            rows = [n - 1 - (width_new - kept) for n in new]
        else:
            rows = [n - 1 for n in new]

        with self.stats.timed(batch, sum(new)):
            out = self.model(**kwargs)
        logits = out.logits[torch.arange(batch, device=dev), torch.tensor(rows, device=dev)]
        logprobs = self._postprocess(logits)

        returned = getattr(out, "cache", None)
        if returned is None:
            returned = getattr(out, "past_key_values", None)
        layers = _cache_layers(returned) if self._kv_ok else None
        if layers is None or not _uniform(layers, batch, width_past + width_new):
            self._kv_ok = False  # keep only exact-prefix hits from now on
        entries = []
        for i, (k, c, n) in enumerate(zip(keys, past, new)):
            kv = None
            if self._kv_ok:
                # past states are right-aligned at width_past and new ones follow:
                # one compact copy of the sequence's slots, without the pads
                lo, hi = width_past - c, width_past + n
                kv = torch.stack([t[i, :, lo:hi] for pair in layers for t in pair])
                kv = kv.view(len(layers), 2, *kv.shape[1:])
            entries.append(_Entry(k, kv, logprobs[i].clone()))
        return entries

    def _make_cache(self, keys, todo, past, width_past, batch):
        from transformers import DynamicCache

        cache = DynamicCache()
        if width_past == 0:
            return cache
        ref = next(todo[k][0].kv for k, c in zip(keys, past) if c)
        n_layers, _, heads, _, head_dim = ref.shape
        buf = ref.new_zeros((n_layers, 2, batch, heads, width_past, head_dim))
        for i, (k, c) in enumerate(zip(keys, past)):
            if c:
                buf[:, :, i, :, width_past - c :, :] = todo[k][0].kv[..., :c, :]
        for layer in range(n_layers):
            cache.update(buf[layer, 0], buf[layer, 1], layer)
        return cache

    def _postprocess(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if self._pad_mask is not None:
            logits = logits.masked_fill(self._pad_mask, float("-inf"))
        logprobs = torch.log_softmax(logits, dim=-1)
        size = self.vocab.size
        if size > logprobs.shape[-1]:
            fill = logprobs.new_full((logprobs.shape[0], size - logprobs.shape[-1]), float("-inf"))
            logprobs = torch.cat([logprobs, fill], dim=-1)
        elif size < logprobs.shape[-1]:
            logprobs = logprobs[:, :size]
        return logprobs

    def __repr__(self) -> str:
        name = getattr(getattr(self.model, "config", None), "_name_or_path", type(self.model).__name__)
        return f"TransformersLM({name!r}, vocab.size={self.vocab.size}, cached={len(self._lru)})"


# ---------------------------------------------------------------------- helpers


def _as_ids(prefix: Any) -> tuple[int, ...]:
    """A prefix as a tuple of Python ints; TypeError for floats, bools or anything not an integer."""
    if isinstance(prefix, torch.Tensor):
        if prefix.dtype.is_floating_point or prefix.dtype.is_complex or prefix.dtype == torch.bool:
            raise TypeError(f"token ids must be integers, got a tensor of {prefix.dtype}")
        return tuple(prefix.reshape(-1).tolist())
    out = tuple(prefix)
    if all(type(t) is int for t in out):  # the samplers' case: nothing to convert
        return out
    for t in out:
        if isinstance(t, bool) or not isinstance(t, numbers.Integral):
            raise TypeError(f"token ids must be integers, got {t!r} ({type(t).__name__}) in a prefix")
    return tuple(int(t) for t in out)


def _context_length(model: Any, tokenizer: Any) -> int | None:
    """The smaller of the limits that are really set: the model's positions and the tokenizer's maximum."""
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "get_text_config"):
        config = config.get_text_config()
    limits = [getattr(config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    # transformers writes int(1e30) for "no limit" in model_max_length
    real = [int(v) for v in limits if isinstance(v, int) and not isinstance(v, bool) and 0 < v < 10**12]
    return min(real) if real else None


def _model_device(model: Any) -> torch.device:
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return torch.device("cpu")


def _logits_width(model: Any) -> int:
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    weight = getattr(head, "weight", None)
    if weight is not None:
        return int(weight.shape[0])
    config = model.config
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    return int(config.vocab_size)


def _padding_mask(vocab: Any, width: int, device: torch.device) -> torch.Tensor | None:
    """Bool (width,) mask of logit columns the vocabulary calls padding: ids with
    no bytes that are neither special nor EOS (or the vocab's own `padding_ids`)."""
    ids = getattr(vocab, "padding_ids", None)
    if ids is None:
        keep = set(getattr(vocab, "special_ids", ())) | set(getattr(vocab, "eos_ids", ()))
        ids = [i for i, t in enumerate(vocab) if t is None and i < width and i not in keep]
    ids = [int(i) for i in ids if int(i) < width]
    if not ids:
        return None
    mask = torch.zeros(width, dtype=torch.bool)
    mask[ids] = True
    return mask.to(device)


def _cache_layers(cache: Any) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
    """Per-layer (keys, values) of a returned cache, across transformers versions, or None."""
    if cache is None:
        return None
    layers = getattr(cache, "layers", None)
    if layers is not None:  # transformers >= 4.56: Cache.layers[i].keys / .values
        out = []
        for layer in layers:
            if getattr(layer, "is_sliding", False):
                return None
            k, v = getattr(layer, "keys", None), getattr(layer, "values", None)
            if not isinstance(k, torch.Tensor) or not isinstance(v, torch.Tensor):
                return None
            out.append((k, v))
        return out
    if hasattr(cache, "key_cache"):  # transformers 4.4x-4.55 DynamicCache
        return list(zip(cache.key_cache, cache.value_cache))
    if isinstance(cache, (tuple, list)):  # legacy tuples
        return [(layer[0], layer[1]) for layer in cache]
    return None


def _uniform(layers, batch: int, length: int) -> bool:
    """Whether every layer holds full-length (batch, heads, length, head_dim) keys and values
    of one shape; otherwise (sliding windows, recurrent states) KV reuse is switched off."""
    if not layers:
        return False
    shape = layers[0][0].shape
    if len(shape) != 4 or shape[0] != batch or shape[2] != length:
        return False
    return all(k.shape == shape and v.shape == shape for k, v in layers)
