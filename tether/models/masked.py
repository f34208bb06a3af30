"""`TransformersMaskedLM`: the `MaskedDiffusionLM` adapter for Hugging Face masked LMs.

Any model with a mask token whose `model(input_ids).logits` scores every position
(BERT-style `AutoModelForMaskedLM`, LLaDA, Dream):

    >>> lm = TransformersMaskedLM(model, tokenizer)
    >>> x = torch.tensor([lm.prompt_ids("The capital of France is") + [lm.mask_id] * 4])
    >>> lm.logprobs(x).shape                        # (1, x.shape[1], lm.vocab.size), float32

The output is a log-softmax over the model's logits, with the vocabulary's padding ids and
the mask token at -inf (a diffusion step never "predicts" the absorbing state), columns beyond
the logits width padded with -inf up to `vocab.size`. Unlike tether's own MDLM, unmasked
positions are not overwritten with a one-hot: they hold whatever the model predicts there.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .._optional import require

torch = require("torch", "tether.models.TransformersMaskedLM")

from .base import ModelStats, Prompt, check_prompt
from .transformers import _context_length, _logits_width, _model_device, _padding_mask

if TYPE_CHECKING:
    from ..vocab import Vocabulary

__all__ = ["TransformersMaskedLM"]


class TransformersMaskedLM:
    """A `MaskedDiffusionLM` over a Hugging Face model that predicts all positions at once.

    Args:
        model: the model (on its device); `model(input_ids=...)` must return `.logits` of
            shape (batch, length, width).
        tokenizer: its tokenizer; it must have a mask token (`tokenizer.mask_token_id`).
        vocab: the `Vocabulary`; by default `Vocabulary.from_tokenizer(tokenizer, size=width)`,
            with EOS the tokenizer's EOS, or its [SEP] for BERT-style tokenizers without one.
        context_length: the most positions a sequence may have; by default the model's
            `max_position_embeddings` / the tokenizer's `model_max_length` (None if neither).

    Calls are serialised by a lock, so one adapter can be shared by threads.
    """

    def __init__(self, model: Any, tokenizer: Any, *, vocab: "Vocabulary | None" = None,
                 context_length: int | None = None) -> None:
        if not hasattr(model, "forward") or not hasattr(model, "config"):
            raise TypeError(f"model must be a Hugging Face model (e.g. AutoModelForMaskedLM), got "
                            f"{type(model).__name__}")
        mask_id = getattr(tokenizer, "mask_token_id", None)
        if mask_id is None:
            raise ValueError(f"{type(tokenizer).__name__} has no mask token (tokenizer.mask_token_id is None): "
                             f"a masked diffusion LM needs one; use TransformersLM for a causal LM, or set "
                             f"tokenizer.mask_token if the model was trained with one")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.device = _model_device(model)
        self.logits_width = _logits_width(model)
        self.mask_id = int(mask_id)
        if not 0 <= self.mask_id < self.logits_width:
            raise ValueError(f"the mask token id {self.mask_id} is outside the model's {self.logits_width:,} "
                             f"logits: tokenizer and model do not match")
        if vocab is None:
            from ..vocab import Vocabulary

            eos = getattr(tokenizer, "eos_token_id", None)
            if eos is None:
                eos = getattr(tokenizer, "sep_token_id", None)  # BERT ends a segment with [SEP]
            vocab = Vocabulary.from_tokenizer(tokenizer, eos_ids=eos, size=self.logits_width)
        if vocab.size < self.logits_width:
            raise ValueError(f"vocab.size={vocab.size:,} is smaller than the model's {self.logits_width:,} logits: "
                             f"build the Vocabulary with size={self.logits_width}")
        if self.mask_id >= vocab.size:
            raise ValueError(f"the mask token id {self.mask_id} is outside vocab.size={vocab.size:,}")
        self.vocab = vocab
        embed = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
        self._n_embed = int(getattr(embed, "num_embeddings", None) or self.logits_width)
        pad = _padding_mask(vocab, self.logits_width, self.device)
        if pad is None:
            pad = torch.zeros(self.logits_width, dtype=torch.bool, device=self.device)
        pad = pad.clone()
        pad[self.mask_id] = True
        self._blocked = pad
        self.eos_id = vocab.eos_ids[0]
        self.pad_id = getattr(tokenizer, "pad_token_id", None)
        self.context_length = context_length if context_length is not None else _context_length(model, tokenizer)
        self.stats = ModelStats()
        self._lock = threading.Lock()

    def prompt_ids(self, prompt: Prompt) -> list[int]:
        """Ids of a text prompt: the tokenizer's BOS (or BERT's [CLS]) if it has one, then the text
        encoded plainly, without a closing [SEP]/EOS (masked positions follow the prompt).
        Special-token text in the prompt is encoded as ordinary text."""
        prompt = check_prompt(prompt)
        if not isinstance(prompt, str):
            raise ValueError("TransformersMaskedLM encodes plain text prompts: pass a string")
        start = getattr(self.tokenizer, "bos_token_id", None)
        if start is None:
            start = getattr(self.tokenizer, "cls_token_id", None)
        ids = self.tokenizer(prompt, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        return ([int(start)] if start is not None else []) + [int(t) for t in ids]

    def logprobs(self, sequences: "torch.Tensor") -> "torch.Tensor":
        """Log-probabilities, float32 (batch, length, vocab.size), for int64 `sequences` (batch, length)."""
        from .mdlm.lm import check_sequences

        x = check_sequences(sequences, self._n_embed, self.context_length)
        batch, length = x.shape
        size = self.vocab.size
        if batch == 0 or length == 0:
            return torch.empty((batch, length, size), dtype=torch.float32, device=self.device)
        with self._lock, torch.inference_mode(), self.stats.timed(batch, batch * length):
            out = self.model(input_ids=x.to(device=self.device, dtype=torch.long),
                             attention_mask=torch.ones_like(x, dtype=torch.long, device=self.device))
            logits = out.logits
            if logits.dim() != 3 or tuple(logits.shape[:2]) != (batch, length):
                raise ValueError(f"the model returned logits of shape {tuple(logits.shape)}, expected "
                                 f"({batch}, {length}, width): it does not score every position")
            if logits.shape[-1] != self.logits_width:
                raise ValueError(f"the model returned {logits.shape[-1]:,} logits per position, expected "
                                 f"{self.logits_width:,}")
            logprobs = torch.log_softmax(logits.float().masked_fill(self._blocked, float("-inf")), dim=-1)
            if size > self.logits_width:
                fill = logprobs.new_full((batch, length, size - self.logits_width), float("-inf"))
                logprobs = torch.cat([logprobs, fill], dim=-1)
        return logprobs.clone()  # outside inference mode: a normal tensor callers may edit

    def __repr__(self) -> str:
        name = getattr(getattr(self.model, "config", None), "_name_or_path", "") or type(self.model).__name__
        return f"TransformersMaskedLM({name!r}, vocab.size={self.vocab.size:,}, mask_id={self.mask_id})"
