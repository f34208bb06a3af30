"""Packed token bitmasks: int32[batch, ceil(V / 32)], bit set = token allowed.

    >>> bm = tether.allocate_bitmask(batch=2, vocab_size=vocab.size)
    >>> c.fill_bitmask(state, bm[0]); tether.apply_bitmask(logits, bm)
"""

from __future__ import annotations

import numpy as np

__all__ = ["allocate_bitmask", "bitmask_words", "pack_mask", "unpack_bitmask", "apply_bitmask"]

_BIT = np.left_shift(np.uint32(1), np.arange(32, dtype=np.uint32))


def bitmask_words(vocab_size: int) -> int:
    return (vocab_size + 31) // 32


def allocate_bitmask(batch: int, vocab_size: int) -> np.ndarray:
    """A zeroed int32 bitmask of shape (batch, ceil(vocab_size / 32))."""
    return np.zeros((batch, bitmask_words(vocab_size)), dtype=np.int32)


def pack_mask(mask: np.ndarray) -> np.ndarray:
    """Bool[V] -> int32[ceil(V / 32)] in the bit layout above."""
    mask = np.asarray(mask, dtype=bool)
    padded = np.zeros(bitmask_words(mask.shape[-1]) * 32, dtype=bool)
    padded[: mask.shape[-1]] = mask
    bits = np.packbits(padded.reshape(-1, 32), axis=1, bitorder="little")
    return bits.view(np.uint32).reshape(-1).astype("<u4").view(np.int32)


def unpack_bitmask(row: np.ndarray, vocab_size: int) -> np.ndarray:
    """Int32[ceil(V / 32)] -> bool[V]."""
    words = np.ascontiguousarray(row, dtype=np.int32).astype("<i4").view(np.uint8)
    return np.unpackbits(words, bitorder="little")[:vocab_size].astype(bool)


def apply_bitmask(logits, bitmask, indices=None) -> None:
    """Set disallowed logits to -inf, in place.

    logits: torch tensor (V,) or (batch, V); its width may be smaller or larger
    than the bitmask's (ids past the bitmask are disallowed). bitmask: int32
    numpy array or torch tensor (words,) or (batch, words). indices: optional
    rows of `logits` that the bitmask rows apply to.
    """
    from .._optional import require

    torch = require("torch", "tether.apply_bitmask")

    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    words = bitmask.detach().cpu().numpy() if isinstance(bitmask, torch.Tensor) else np.asarray(bitmask)
    if words.dtype != np.int32:
        raise ValueError(f"bitmask must be int32, got {words.dtype}")
    words = words.reshape(1, -1) if words.ndim == 1 else words
    rows = logits.unsqueeze(0) if logits.dim() == 1 else logits
    if rows.dim() != 2 or words.ndim != 2:
        raise ValueError(f"logits must be (V,) or (batch, V), got shape {tuple(logits.shape)}")
    n_rows = rows.shape[0] if indices is None else len(indices)
    if n_rows != words.shape[0]:
        raise ValueError(f"{n_rows} logits rows but {words.shape[0]} bitmask rows")
    width = rows.shape[1]
    # Unpacking on the host is one vectorised pass; bit i of word w lands at column 32 * w + i.
    bits = np.unpackbits(np.ascontiguousarray(words, dtype="<i4").view(np.uint8), axis=1, bitorder="little")
    blocked = np.ones((words.shape[0], width), dtype=bool)
    n = min(width, bits.shape[1])
    np.equal(bits[:, :n], 0, out=blocked[:, :n])
    blocked_t = torch.from_numpy(blocked).to(rows.device, non_blocking=True)
    if indices is None:
        rows.masked_fill_(blocked_t, float("-inf"))
    else:
        rows[indices] = rows[indices].masked_fill(blocked_t, float("-inf"))
