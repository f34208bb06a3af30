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

import re
import threading
from dataclasses import dataclass

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
    """The slices of a vocabulary, built once per process (about 0.1-0.3 s for 128k tokens)."""
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
    whole = re.compile(f"(?:{pattern})+").fullmatch  # re: the same class, matched in C
    in_slice = np.zeros(vocab.size, dtype=bool)
    longest = 0
    rest: list[bytes | None] = []
    for i, data in enumerate(vocab):
        if data:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            if text is not None and whole(text):
                in_slice[i] = True
                longest = max(longest, len(text))
                rest.append(None)
                continue
        rest.append(data)
    words = pack_mask(in_slice).view(np.uint32)
    return Slice(tree.intervals, longest, words, TokenTrie.build(rest))
