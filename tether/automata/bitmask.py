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

        >>> apply_bitmask(scores, bm)                  # scores (batch, V) on any device
        >>> apply_bitmask(scores, bm[:1], indices=[3]) # only row 3

    Only the packed words travel to the logits' device (V / 32 int32 per row);
    they are unpacked there. On the CPU numpy's unpackbits is that unpacking (it
    measured faster than torch's bit ops there: bench/logits_processor.py).
    """
    from .._optional import require

    torch = require("torch", "tether.apply_bitmask")

    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    if isinstance(bitmask, torch.Tensor):
        if bitmask.dtype != torch.int32:
            raise ValueError(f"bitmask must be int32, got {bitmask.dtype}")
        words = bitmask.detach()
    else:
        words = np.asarray(bitmask)
        if words.dtype != np.int32:
            raise ValueError(f"bitmask must be int32, got {words.dtype}")
    words = words.reshape(1, -1) if words.ndim == 1 else words
    rows = logits.unsqueeze(0) if logits.dim() == 1 else logits
    if rows.dim() != 2 or words.ndim != 2:
        raise ValueError(f"logits must be (V,) or (batch, V), got shape {tuple(logits.shape)}")
    n_rows = rows.shape[0] if indices is None else len(indices)
    if n_rows != words.shape[0]:
        raise ValueError(f"{n_rows} logits rows but {words.shape[0]} bitmask rows")
    target = rows if indices is None else rows[indices]
    width = target.shape[1]
    n = min(width, words.shape[1] * 32)
    if n:
        unpack = _allowed_on_host if _unpack_on_host(target.device) else _allowed_on_device
        allowed = unpack(torch, words, n, target.device)
        head = target[:, :n]
        # where(out=) beat masked_fill_ on the CPU; a 0-dim -inf made on the device costs no copy
        neg_inf = torch.full((), float("-inf"), dtype=head.dtype, device=head.device)
        torch.where(allowed, head, neg_inf, out=head)
    if n < width:
        target[:, n:] = float("-inf")
    if indices is not None:
        rows[indices] = target


def _unpack_on_host(device) -> bool:
    """Unpack with numpy where the logits live in host memory (a module function, so tests can
    force the device path on the CPU)."""
    return device.type == "cpu"


def _allowed_on_host(torch, words, n: int, device):
    """Bool (batch, n): bit i % 32 of word i // 32, unpacked by numpy (one vectorised pass)."""
    if isinstance(words, torch.Tensor):
        words = words.cpu().numpy()
    data = np.ascontiguousarray(words, dtype="<i4").view(np.uint8)
    bits = np.unpackbits(data, axis=1, count=n, bitorder="little")
    return torch.from_numpy(bits.view(np.bool_))


def _allowed_on_device(torch, words, n: int, device):
    """Bool (batch, n) computed on `device`: only the int32 words are copied there."""
    if isinstance(words, torch.Tensor):
        words = words.to(device, non_blocking=True)
    else:
        words = torch.from_numpy(np.ascontiguousarray(words)).to(device, non_blocking=True)
    bits = _bit_values(torch, device)
    return torch.bitwise_and(words.unsqueeze(-1), bits).ne(0).view(words.shape[0], -1)[:, :n]


_BIT_VALUES: dict = {}


def _bit_values(torch, device):
    """int32 (32,) of 1 << i on `device` (bit 31 is the sign bit: -2**31), made once per device."""
    bits = _BIT_VALUES.get(device)
    if bits is None:
        bits = torch.bitwise_left_shift(torch.ones(32, dtype=torch.int32), torch.arange(32, dtype=torch.int32))
        bits = _BIT_VALUES[device] = bits.to(device)
    return bits
