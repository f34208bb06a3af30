"""The MDLM's byte-level BPE tokenizer: trained on the corpus, saved as a Hugging Face tokenizer.json.

    >>> tok = train_tokenizer(corpus.train, vocab_size=4096)
    >>> tok.token_to_id(EOS), tok.token_to_id(MASK)
    (0, 1)

Byte-level, so every string is encodable (no unknown token) and tether's `Vocabulary`
reads each id's exact bytes. Two special tokens: `EOS` ends a document and also pads a
training row after it (as LLaDA does, so the model learns to fill the tail of a block with
end-of-text), and `MASK` is the absorbing state of the diffusion.
"""

from __future__ import annotations

from typing import Iterable

from ..._optional import require

__all__ = ["EOS", "MASK", "train_tokenizer", "load_tokenizer", "encoder"]

EOS = "<|endoftext|>"   # a name tether.Vocabulary recognises as EOS
MASK = "<|mask|>"


def train_tokenizer(docs: Iterable, *, vocab_size: int = 4096):
    """A byte-level BPE `tokenizers.Tokenizer` with ids 0 = EOS and 1 = MASK, trained on `docs`
    (Documents or strings); deterministic for the same input."""
    tokenizers = require("tokenizers", "training the MDLM tokenizer")
    from tokenizers import decoders, models, pre_tokenizers, trainers

    if vocab_size < 256 + 2:
        raise ValueError(f"vocab_size must be at least 258 (256 bytes and two specials), got {vocab_size}")
    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS, MASK], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), min_frequency=2)
    texts = [getattr(d, "text", d) for d in docs]
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return encoder(tok)


def load_tokenizer(path) -> "object":
    """The tokenizer saved at `path` (tokenizer.json), set up to encode prompts as plain text."""
    tokenizers = require("tokenizers", "loading the MDLM tokenizer")
    return encoder(tokenizers.Tokenizer.from_file(str(path)))


def encoder(tok):
    """`tok` with special-token text encoded as ordinary bytes: a prompt that contains the
    text "<|mask|>" must not turn into the mask id (nor "<|endoftext|>" into EOS)."""
    tok.encode_special_tokens = True
    if tok.token_to_id(EOS) != 0 or tok.token_to_id(MASK) != 1:
        raise ValueError(f"not an MDLM tokenizer: expected {EOS} = 0 and {MASK} = 1")
    return tok
