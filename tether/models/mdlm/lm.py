"""`MDLM`: tether's small masked diffusion LM as a `MaskedDiffusionLM` adapter.

    >>> lm = MDLM.load("tether/models/mdlm/weights")          # or tether.models.mdlm.default()
    >>> prompt = lm.prompt_ids('{"name":')
    >>> x = torch.tensor([prompt + [lm.mask_id] * 16])
    >>> lm.logprobs(x).shape                                    # (1, len(prompt) + 16, lm.vocab.size)

`logprobs` is the SUBS output of the denoiser: at a masked position a distribution over the
vocabulary with zero mass (-inf) on the mask token; at an unmasked position the token already
there with log-probability 0 (and -inf elsewhere), since the model carries it over.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..._optional import require

torch = require("torch", "tether's MDLM")

from ..base import ModelStats, Prompt, check_prompt
from .model import MDLMConfig, MDLMTransformer, subs_logprobs
from .tokenizer import EOS, load_tokenizer

if TYPE_CHECKING:
    from ...vocab import Vocabulary

__all__ = ["MDLM", "check_sequences"]


class MDLM:
    """A `MaskedDiffusionLM` over an `MDLMTransformer` and its byte-level BPE tokenizer.

    Attributes: `vocab` (tether `Vocabulary`, EOS = `<|endoftext|>`), `mask_id`, `eos_id`,
    `pad_id` (the same id as EOS: training rows are EOS-padded, so a block's tail after the
    text is end-of-text), `context_length` (the most positions a sequence may have), `stats`.
    Calls are serialised by a lock, so one adapter can be shared by threads.
    """

    def __init__(self, net: MDLMTransformer, tokenizer: Any, *, vocab: "Vocabulary | None" = None,
                 record: dict | None = None):
        from ...vocab import Vocabulary

        self.net = net.eval()
        self.tokenizer = tokenizer
        self.eos_id = int(tokenizer.token_to_id(EOS))
        self.pad_id = self.eos_id
        self.mask_id = int(net.cfg.mask_id)
        self.context_length = int(net.cfg.context_length)
        if vocab is None:
            vocab = Vocabulary.from_tokenizer(tokenizer, eos_ids=[self.eos_id], size=net.cfg.vocab_size)
        if vocab.size != net.cfg.vocab_size:
            raise ValueError(f"vocab.size={vocab.size:,} but the model predicts {net.cfg.vocab_size:,} ids")
        self.vocab = vocab
        self.record = record or {}
        self.stats = ModelStats()
        self._lock = threading.Lock()

    @classmethod
    def load(cls, folder: "str | Path") -> "MDLM":
        """The model saved by `python -m tether.models.mdlm.train --out folder` (offline, float32 on CPU)."""
        from safetensors.torch import load_file

        folder = Path(folder)
        weights, config, tok = folder / "model.safetensors", folder / "config.json", folder / "tokenizer.json"
        for path in (weights, config, tok):
            if not path.is_file():
                raise FileNotFoundError(f"MDLM file missing: {path} (train one with "
                                        f"python -m tether.models.mdlm.train --out {folder})")
        cfg = MDLMConfig.from_dict(json.loads(config.read_text()))
        net = MDLMTransformer(cfg)
        state = {k: v.float() for k, v in load_file(str(weights)).items()}
        net.load_state_dict(state)
        record_path = folder / "record.json"
        record = json.loads(record_path.read_text()) if record_path.is_file() else None
        return cls(net, load_tokenizer(tok), record=record)

    # ------------------------------------------------------------------ text

    def prompt_ids(self, prompt: Prompt) -> list[int]:
        """Token ids of a text prompt, encoded plainly (no BOS: training documents start at
        position 0). Special-token text in the prompt ("<|mask|>") is encoded as ordinary bytes.
        Chat messages are refused: the model has no chat template.

            >>> lm.prompt_ids("SELECT")
            [...]
        """
        prompt = check_prompt(prompt)
        if not isinstance(prompt, str):
            raise ValueError("tether's MDLM has no chat template: pass the prompt as a string")
        return list(self.tokenizer.encode(prompt, add_special_tokens=False).ids)

    def decode(self, ids: "list[int] | torch.Tensor", *, stop_at_eos: bool = True) -> str:
        """Text of `ids`, cut at the first EOS when `stop_at_eos`; special ids (mask, EOS) spell nothing."""
        ids = [int(i) for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids)]
        if stop_at_eos and self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        return self.vocab.decode(ids).decode("utf-8", "replace")

    # ------------------------------------------------------------------ scoring

    def logprobs(self, sequences: torch.Tensor) -> torch.Tensor:
        """SUBS log-probabilities, float32 (batch, length, vocab.size), for int64 `sequences`
        (batch, length) where `mask_id` marks the positions to predict."""
        x = check_sequences(sequences, self.vocab.size, self.context_length)
        batch, length = x.shape
        if batch == 0 or length == 0:
            return torch.empty((batch, length, self.vocab.size), dtype=torch.float32)
        with self._lock, torch.inference_mode(), self.stats.timed(batch, batch * length):
            out = subs_logprobs(self.net, x.to(torch.long).cpu())
        return out.clone()  # a normal tensor (not an inference tensor): callers may edit it in place

    def __repr__(self) -> str:
        c = self.net.cfg
        return (f"MDLM(d_model={c.d_model}, layers={c.n_layers}, vocab.size={self.vocab.size:,}, "
                f"context_length={c.context_length})")


def check_sequences(sequences: Any, vocab_size: int, context_length: int | None) -> torch.Tensor:
    """`sequences` as a 2-D integer tensor with ids in range; TypeError / ValueError saying what is wrong.

        >>> check_sequences(torch.tensor([[1.0]]), 10, None)
        Traceback (most recent call last):
        TypeError: sequences must hold integer token ids, got a tensor of torch.float32
    """
    if not isinstance(sequences, torch.Tensor):
        raise TypeError(f"sequences must be a torch.Tensor of int64 ids (batch, length), got "
                        f"{type(sequences).__name__}: wrap it as torch.tensor(ids, dtype=torch.long)")
    if sequences.dtype.is_floating_point or sequences.dtype.is_complex or sequences.dtype == torch.bool:
        raise TypeError(f"sequences must hold integer token ids, got a tensor of {sequences.dtype}")
    if sequences.dim() != 2:
        raise ValueError(f"sequences must have shape (batch, length), got {tuple(sequences.shape)}")
    if context_length is not None and sequences.shape[1] > context_length:
        raise ValueError(f"sequences of {sequences.shape[1]} positions exceed the model's context length "
                         f"of {context_length}")
    if sequences.numel():
        lo, hi = int(sequences.min()), int(sequences.max())
        if lo < 0 or hi >= vocab_size:
            bad = lo if lo < 0 else hi
            raise ValueError(f"token id {bad} is out of range for a vocabulary of {vocab_size:,} ids")
    return sequences
