"""Vocabulary slices: the tokens a permissive state allows whole, so its mask walks only the rest.

Inside a JSON string, almost every token is allowed, and a mask computed by
walking the whole token trie costs a millisecond. A slice is a character class
C (here the characters a JSON string may hold unescaped) and the tokens made
only of whole characters of C: when a state's term provably accepts every
string of C up to the longest such token (`Terms.covers`), all of the slice is
allowed at once (a precomputed bitmask) and only the other tokens, a much
smaller trie, are walked.

    >>> s = slices(vocab)[0]
    >>> s.words            # uint32 bitmask of the slice's tokens
    >>> s.rest             # TokenTrie of every other token
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numba
import numpy as np

from ..grammar.regex import Chars, parse_regex
from ..vocab import TokenTrie, Vocabulary
from .bitmask import pack_mask

__all__ = ["Slice", "slices"]

# What a JSON string holds unescaped, as JSON Schema regexes and outlines spell it: `[^"]`,
# `[^"\\]`, `.` and the like all contain it.
SLICE_CLASSES = (r'[^"\\\x00-\x1F\x7F-\x9F]',)


@dataclass(frozen=True)
class Slice:
    """Tokens spelled by whole characters of `intervals` (at most `max_chars` of them)."""

    intervals: tuple
    max_chars: int
    words: np.ndarray  # uint32 bitmask over the vocabulary
    rest: TokenTrie  # the tokens outside the slice


_cache: dict[str, list[Slice]] = {}
_lock = threading.Lock()


def slices(vocab: Vocabulary) -> list[Slice]:
    """The slices of a vocabulary, built once per process (about 30 ms for 128k tokens)."""
    got = _cache.get(vocab.fingerprint)
    if got is None:
        with _lock:
            got = _cache.get(vocab.fingerprint)
            if got is None:
                got = _cache[vocab.fingerprint] = [_build(vocab, pattern) for pattern in SLICE_CLASSES]
    return got


def _build(vocab: Vocabulary, pattern: str) -> Slice:
    tree = parse_regex(pattern)
    assert isinstance(tree, Chars)
    lengths = vocab._lengths
    starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(np.maximum(lengths, 0)[:-1], out=starts[1:])
    bounds = np.array(tree.intervals, dtype=np.int64).reshape(-1, 2)
    in_slice, longest = _in_slice(np.frombuffer(vocab._joined, dtype=np.uint8), starts, lengths, bounds)
    rest = [None if in_slice[i] else data for i, data in enumerate(vocab)]
    words = pack_mask(in_slice).view(np.uint32)
    return Slice(tree.intervals, int(longest), words, TokenTrie.build(rest))


@numba.njit(cache=True, nogil=True)
def _in_slice(joined, starts, lengths, bounds):  # pragma: no cover - compiled
    """Which tokens are valid UTF-8 (as Python's strict decoder reads it) made only of code points
    inside `bounds` (sorted inclusive intervals), and the most characters such a token has."""
    n = lengths.shape[0]
    out = np.zeros(n, dtype=np.bool_)
    longest = 0
    for t in range(n):
        p = starts[t]
        end = p + lengths[t]
        if lengths[t] <= 0:
            continue
        chars = 0
        ok = True
        while p < end and ok:
            b0 = joined[p]
            if b0 < 0x80:
                cp, k, low = b0, 1, 0
            elif 0xC2 <= b0 <= 0xDF:
                cp, k, low = b0 & 0x1F, 2, 0x80
            elif 0xE0 <= b0 <= 0xEF:
                cp, k, low = b0 & 0x0F, 3, 0x800
            elif 0xF0 <= b0 <= 0xF4:
                cp, k, low = b0 & 0x07, 4, 0x10000
            else:
                ok = False
                break
            if p + k > end:
                ok = False
                break
            for j in range(1, k):
                c = joined[p + j]
                if c < 0x80 or c > 0xBF:
                    ok = False
                cp = (cp << 6) | (c & 0x3F)
            if not ok or cp < low or cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
                ok = False
                break
            inside = False
            for r in range(bounds.shape[0]):
                if bounds[r, 0] <= cp <= bounds[r, 1]:
                    inside = True
                    break
            ok = inside
            chars += 1
            p += k
        if ok:
            out[t] = True
            longest = max(longest, chars)
    return out, longest
