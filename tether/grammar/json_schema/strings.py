"""JSON string texts of a language of decoded strings.

A schema describes string *values* (`pattern`, `minLength`, `format`, `enum`); the output is
their JSON *text*. `json_string(tree)` maps a regex tree over code points (the value) to the tree
of the quoted texts that decode to its strings: each character becomes every way JSON can write
it (raw, `\\n`-style short escapes, `\\uXXXX` in either case, surrogate pairs for characters past
U+FFFF). The map is a homomorphism with disjoint images, so it commutes with concatenation,
union, repetition and intersection; a complement is taken inside the texts of all strings.

    >>> json_string(parse_regex("a+"))      # '"a"', '"\\u0061a"', ...
    >>> json_string(parse_regex("a+"), canonical=True)   # only '"a"', '"aa"', ...

`canonical=True` keeps one text per value, as `json.dumps(..., ensure_ascii=False)` writes it:
raw characters, short escapes where JSON has one, `\\u00xx` for the other control characters.
Object keys that must differ from declared ones are canonical, so that a complement of the
declared keys is exact.
"""

from __future__ import annotations

import functools

from ..regex import (Alternation, Assert, Chars, Complement, Concat, Intersect, Multiples, Repeat, RegexNode,
                     normalize)
from ..regex import _intersect  # interval sets
from .numbers import hex4_tree

__all__ = ["json_string", "ANY_CHAR", "encode_chars", "literal_text", "canonical_string"]

ANY_CHAR = Chars(((0, 0xD7FF), (0xE000, 0x10FFFF)))
_SHORT = {0x22: '"', 0x5C: "\\", 0x2F: "/", 0x08: "b", 0x0C: "f", 0x0A: "n", 0x0D: "r", 0x09: "t"}
_CANONICAL_SHORT = {c: e for c, e in _SHORT.items() if c != 0x2F}
_RAW = normalize([(0x20, 0x21), (0x23, 0x5B), (0x5D, 0xD7FF), (0xE000, 0x10FFFF)])


def _text(s: str) -> RegexNode:
    return Concat(tuple(Chars(((ord(c), ord(c)),)) for c in s))


_BACKSLASH_U = _text("\\u")


def _surrogate_pairs(lo: int, hi: int) -> list[RegexNode]:
    """`\\uD8xx\\uDCxx` texts of the code points lo..hi (all past U+FFFF)."""
    out = []
    a, b = lo - 0x10000, hi - 0x10000
    for high in range(a >> 10, (b >> 10) + 1):
        first = max(a, high << 10) & 0x3FF
        last = min(b, (high << 10) | 0x3FF) & 0x3FF
        out.append(Concat((_BACKSLASH_U, hex4_tree(((0xD800 + high, 0xD800 + high),)),
                           _BACKSLASH_U, hex4_tree(((0xDC00 + first, 0xDC00 + last),)))))
    return out


@functools.lru_cache(maxsize=4096)
def encode_chars(intervals: tuple, canonical: bool = False) -> RegexNode:
    """The JSON texts of one character drawn from `intervals` (inside a string's quotes)."""
    options: list[RegexNode] = []
    raw = _intersect(intervals, _RAW)
    if raw:
        options.append(Chars(raw))
    short = _CANONICAL_SHORT if canonical else _SHORT
    for cp, letter in short.items():
        if _intersect(intervals, ((cp, cp),)):
            options.append(_text("\\" + letter))
    if canonical:
        controls = [(lo, hi) for lo, hi in _intersect(intervals, ((0, 0x1F),))]
        for lo, hi in controls:
            for cp in range(lo, hi + 1):
                if cp not in _CANONICAL_SHORT:
                    options.append(_text(f"\\u{cp:04x}"))
    else:
        bmp = _intersect(intervals, ((0, 0xFFFF),))
        if bmp:
            options.append(Concat((_BACKSLASH_U, hex4_tree(bmp))))
        astral = _intersect(intervals, ((0x10000, 0x10FFFF),))
        if astral:
            pairs = []
            for lo, hi in astral:
                pairs.extend(_whole_runs(lo, hi))
            options.extend(pairs)
    if not options:
        return Alternation(())
    return options[0] if len(options) == 1 else Alternation(tuple(options))


def _whole_runs(lo: int, hi: int) -> list[RegexNode]:
    """Surrogate-pair texts of lo..hi: a partial first and last high surrogate, and one tree for
    the high surrogates in between whose low halves run over all 1,024 values."""
    a, b = lo - 0x10000, hi - 0x10000
    first_high, last_high = a >> 10, b >> 10
    if first_high == last_high or (first_high + 1 == last_high):
        return _surrogate_pairs(lo, hi)
    out = []
    inner_lo = first_high + 1 if a & 0x3FF else first_high
    inner_hi = last_high - 1 if (b & 0x3FF) != 0x3FF else last_high
    if inner_lo > first_high:
        out += _surrogate_pairs(lo, 0x10000 + (first_high << 10) + 0x3FF)
    if inner_lo <= inner_hi:
        out.append(Concat((_BACKSLASH_U, hex4_tree(((0xD800 + inner_lo, 0xD800 + inner_hi),)),
                           _BACKSLASH_U, hex4_tree(((0xDC00, 0xDFFF),)))))
    if inner_hi < last_high:
        out += _surrogate_pairs(0x10000 + (last_high << 10), hi)
    return out


def json_string(tree: RegexNode, *, canonical: bool = False) -> RegexNode:
    """The quoted JSON texts of the strings of `tree` (a tree over code points, without anchors)."""
    return Concat((_QUOTE, _encode(tree, canonical), _QUOTE))


_QUOTE = Chars(((0x22, 0x22),))


def _encode(tree: RegexNode, canonical: bool) -> RegexNode:
    # Iterative post-order map; shared subtrees are mapped once.
    done: dict[int, RegexNode] = {}
    todo: list[tuple[RegexNode, bool]] = [(tree, False)]
    while todo:
        node, ready = todo.pop()
        if id(node) in done:
            continue
        if isinstance(node, Chars):
            done[id(node)] = encode_chars(node.intervals, canonical)
        elif isinstance(node, Multiples):  # ASCII digits are their own JSON text
            done[id(node)] = node
        elif isinstance(node, Assert):
            raise ValueError("an anchor inside a string value")  # callers remove anchors first
        elif not ready:
            todo.append((node, True))
            todo.extend((k, False) for k in _kids(node))
        elif isinstance(node, Concat):
            done[id(node)] = Concat(tuple(done[id(k)] for k in node.parts))
        elif isinstance(node, Alternation):
            done[id(node)] = Alternation(tuple(done[id(k)] for k in node.options))
        elif isinstance(node, Repeat):
            done[id(node)] = Repeat(done[id(node.node)], node.min, node.max)
        elif isinstance(node, Intersect):
            done[id(node)] = Intersect(tuple(done[id(k)] for k in node.parts))
        else:  # Complement: inside the texts of all strings, not all byte strings
            done[id(node)] = Intersect((_any_text(canonical), Complement(done[id(node.node)])))
    return done[id(tree)]


@functools.lru_cache(maxsize=2)
def _any_text(canonical: bool) -> RegexNode:
    return Repeat(encode_chars(ANY_CHAR.intervals, canonical), 0, None)


def _kids(node: RegexNode) -> tuple:
    if isinstance(node, Concat):
        return node.parts
    if isinstance(node, Alternation):
        return node.options
    if isinstance(node, Intersect):
        return node.parts
    if isinstance(node, Repeat):
        return (node.node,)
    return (node.node,)  # Complement


def literal_text(value: str) -> RegexNode:
    """The canonical JSON text of one string value, quotes included."""
    return _text(canonical_string(value))


def canonical_string(value: str) -> str:
    """The canonical JSON text of a string value (`json.dumps`, non-ASCII kept)."""
    import json

    text = json.dumps(value, ensure_ascii=False)
    # A lone surrogate (a Python str may hold one) has no UTF-8 form: only its escape spells it.
    return "".join(f"\\u{ord(c):04x}" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
