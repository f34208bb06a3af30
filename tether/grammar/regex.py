"""Python `re` syntax -> a regular expression tree over Unicode code point sets.

The tree is tokenizer-free and pure Python; `tether.automata.dfa` turns it into
a byte-level DFA. Semantics are those of `re.fullmatch` on `str` patterns,
including Unicode `\\d \\w \\s` and inline flags (`i s x a u m`). Constructs
that are not regular raise `UnsupportedPattern` with their position.

    >>> tree = parse_regex(r"[0-9]{4}-[0-9]{2}")
    >>> parse_regex(r"(a)\\1")  # raises UnsupportedPattern('backreference', position 3)
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import Union

from ..errors import InvalidPattern, UnsupportedPattern

__all__ = ["Chars", "Concat", "Alternation", "Repeat", "Assert", "RegexNode", "parse_regex", "MAX_CODEPOINT"]

MAX_CODEPOINT = 0x10FFFF
Intervals = tuple[tuple[int, int], ...]  # sorted, disjoint, non-adjacent, inclusive (lo, hi)


@dataclass(frozen=True)
class Chars:
    """One character drawn from a set of code points (surrogates excluded: UTF-8 cannot carry them)."""

    intervals: Intervals


@dataclass(frozen=True)
class Concat:
    parts: tuple["RegexNode", ...]


@dataclass(frozen=True)
class Alternation:
    options: tuple["RegexNode", ...]


@dataclass(frozen=True)
class Repeat:
    node: "RegexNode"
    min: int
    max: int | None  # None = unbounded


@dataclass(frozen=True)
class Assert:
    """A zero-width assertion about the position, as `re` defines it on `str`.

    kind:
      "start"      `\A`, and `^` without MULTILINE: the start of the text.
      "line_start" `^` with MULTILINE: the start of the text or just after a newline.
      "end"        `\Z`: the end of the text.
      "end_or_final_newline"  `$` without MULTILINE: the end, or just before a newline that ends the text.
      "line_end"   `$` with MULTILINE: the end of the text or just before a newline.
    """

    kind: str


ASSERT_KINDS = ("start", "line_start", "end", "end_or_final_newline", "line_end")

RegexNode = Union[Chars, Concat, Alternation, Repeat, Assert]
EMPTY = Concat(())


# ---------------------------------------------------------------- interval sets


def normalize(intervals) -> Intervals:
    """Sort, merge and strip surrogates from (lo, hi) pairs."""
    out: list[list[int]] = []
    for lo, hi in sorted(intervals):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return _without_surrogates(tuple((lo, hi) for lo, hi in out))


def _without_surrogates(intervals: Intervals) -> Intervals:
    res = []
    for lo, hi in intervals:
        if hi < 0xD800 or lo > 0xDFFF:
            res.append((lo, hi))
            continue
        if lo < 0xD800:
            res.append((lo, 0xD7FF))
        if hi > 0xDFFF:
            res.append((0xE000, hi))
    return tuple(res)


def complement(intervals: Intervals) -> Intervals:
    res, nxt = [], 0
    for lo, hi in intervals:
        if lo > nxt:
            res.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= MAX_CODEPOINT:
        res.append((nxt, MAX_CODEPOINT))
    return _without_surrogates(tuple(res))


@functools.cache
def _all_chars() -> str:
    return "".join(map(chr, range(MAX_CODEPOINT + 1)))


@functools.cache
def _scan(class_regex: str, flags: int) -> Intervals:
    """The code points Python's own `re` matches with a one-character class, as intervals.

    Used where Python's rules are intricate (Unicode categories, case folding),
    so that tether agrees with `re` by construction rather than by imitation.
    """
    found = [(m.start(), m.end() - 1) for m in re.finditer(f"(?:{class_regex})+", _all_chars(), flags)]
    return normalize(found)


def _class_text(intervals: Intervals) -> str:
    return "".join(f"\\U{lo:08x}" if lo == hi else f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in intervals)


def _fold(intervals: Intervals, negated: bool, flags: int) -> Intervals:
    """Apply IGNORECASE (if set) and negation exactly as Python's `re` would."""
    if not flags & re.IGNORECASE:
        return complement(intervals) if negated else intervals
    if not intervals:
        return complement(()) if negated else ()
    body = _class_text(intervals)
    return _scan(f"[{'^' if negated else ''}{body}]", flags & (re.IGNORECASE | re.ASCII))


_CATEGORY = {"d": r"\d", "w": r"\w", "s": r"\s", "D": r"\D", "W": r"\W", "S": r"\S"}


def _category(letter: str, flags: int) -> Intervals:
    return _scan(_CATEGORY[letter], flags & re.ASCII)


# ---------------------------------------------------------------- parser

_BRACES = re.compile(r"\{(\d*)(,?)(\d*)\}")
_OCTAL3 = re.compile(r"\\[0-7]{3}")
_OCTAL_TAIL = re.compile(r"[0-7]{0,2}")
_SIMPLE_ESCAPES = {"a": 7, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92}
_FLAG_LETTERS = {"a": re.ASCII, "i": re.IGNORECASE, "L": re.LOCALE, "m": re.MULTILINE,
                 "s": re.DOTALL, "u": re.UNICODE, "x": re.VERBOSE}


def parse_regex(pattern: str, flags: int = 0) -> RegexNode:
    """Parse a Python regex into a tree; full-match semantics are the caller's."""
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be str, got {type(pattern).__name__}")
    try:
        compiled = re.compile(pattern, flags)
    except re.error as e:
        raise InvalidPattern(pattern, e.pos, e.msg) from None
    return _Parser(pattern, compiled.flags).parse()


class _Parser:
    def __init__(self, pattern: str, flags: int):
        self.p = pattern
        self.i = 0
        self.flags = flags

    # -- helpers
    def unsupported(self, construct: str, pos: int | None = None):
        return UnsupportedPattern(self.p, self.i if pos is None else pos, construct)

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.p[j] if j < len(self.p) else ""

    def skip_verbose(self, flags: int) -> None:
        if not flags & re.VERBOSE:
            return
        while self.i < len(self.p):
            c = self.p[self.i]
            if c in " \t\n\r\f\v":
                self.i += 1
            elif c == "#":
                while self.i < len(self.p) and self.p[self.i] != "\n":
                    self.i += 1
            else:
                return

    # -- grammar: alternation > concatenation > quantified atom
    def parse(self) -> RegexNode:
        node = self.alternation(self.flags, top=True)
        if self.i != len(self.p):  # pragma: no cover - re.compile accepted it, so we must have consumed all
            raise self.unsupported(f"unexpected {self.p[self.i]!r}")
        return node

    def alternation(self, flags: int, top: bool = False) -> RegexNode:
        options = [self.concatenation(flags, top)]
        while self.peek() == "|":
            self.i += 1
            options.append(self.concatenation(flags, top))
        return options[0] if len(options) == 1 else Alternation(tuple(options))

    def concatenation(self, flags: int, top: bool) -> RegexNode:
        parts: list[RegexNode] = []
        while True:
            self.skip_verbose(flags)
            c = self.peek()
            if c in ("", "|", ")"):
                break
            atom = self.atom(flags, not parts, top)
            if atom is not None:
                parts.append(self.quantified(atom, flags))
        return parts[0] if len(parts) == 1 else Concat(tuple(parts))

    def quantified(self, atom: RegexNode, flags: int) -> RegexNode:
        while True:
            self.skip_verbose(flags)
            c = self.peek()
            if c == "*":
                lo, hi = 0, None
                self.i += 1
            elif c == "+":
                lo, hi = 1, None
                self.i += 1
            elif c == "?":
                lo, hi = 0, 1
                self.i += 1
            elif c == "{" and (bounds := self.braces()) is not None:
                lo, hi = bounds
            else:
                return atom
            if self.peek() == "?":
                self.i += 1  # lazy: same language under full-match semantics
            elif self.peek() == "+":
                raise self.unsupported("possessive quantifier")
            atom = Repeat(atom, lo, hi)

    def braces(self) -> tuple[int, int | None] | None:
        m = _BRACES.match(self.p, self.i)
        if m is None or (not m.group(1) and not m.group(3) and m.group(2)) or (not m.group(2) and not m.group(1)):
            return None  # re treats it as a literal '{'
        self.i = m.end()
        lo = int(m.group(1)) if m.group(1) else 0
        if not m.group(2):
            return lo, lo
        return lo, int(m.group(3)) if m.group(3) else None

    def atom(self, flags: int, at_start: bool, top: bool) -> RegexNode | None:
        c = self.p[self.i]
        pos = self.i
        if c == "(":
            return self.group(flags)
        if c == "[":
            return self.char_class(flags)
        if c == ".":
            self.i += 1
            if flags & re.DOTALL:
                return Chars(complement(()))
            return Chars(complement(((10, 10),)))
        if c in "^$":
            self.i += 1
            return self.anchor(c, pos, at_start, top, flags)
        if c == "\\":
            return self.escape(flags, at_start, top)
        self.i += 1
        return self.literal(ord(c), flags)

    def anchor(self, c: str, pos: int, at_start: bool, top: bool, flags: int) -> None:
        """`^`/`\\A` first and `$`/`\\Z` last at top level are no-ops under full match; elsewhere not supported."""
        if top and c in "^A" and at_start:
            return None
        if top and c in "$Z":
            save = self.i
            self.skip_verbose(flags)
            at_end = self.peek() in ("", "|")
            self.i = save
            if at_end:
                return None
        name = {"^": "'^'", "$": "'$'", "A": "'\\A'", "Z": "'\\Z'"}[c]
        raise self.unsupported(f"anchor {name} (allowed only at the start/end of the whole pattern)", pos)

    def literal(self, cp: int, flags: int) -> Chars:
        return Chars(_fold(normalize([(cp, cp)]), False, flags))

    def group(self, flags: int) -> RegexNode | None:
        pos = self.i
        self.i += 1
        if self.peek() != "?":
            node = self.alternation(flags)
            self.expect_close(pos)
            return node
        self.i += 1
        c = self.peek()
        if c == ":":
            self.i += 1
            node = self.alternation(flags)
            self.expect_close(pos)
            return node
        if c == "P":
            if self.peek(1) == "<":
                end = self.p.index(">", self.i)
                self.i = end + 1
                node = self.alternation(flags)
                self.expect_close(pos)
                return node
            raise self.unsupported("named backreference (?P=...)", pos)
        if c == "#":
            self.i = self.p.index(")", self.i) + 1
            return None
        if c in ("=", "!"):
            raise self.unsupported("lookahead assertion", pos)
        if c == "<":
            raise self.unsupported("lookbehind assertion", pos)
        if c == "(":
            raise self.unsupported("conditional group (?(...)...)", pos)
        if c == ">":
            raise self.unsupported("atomic group (?>...)", pos)
        return self.flag_group(flags, pos)

    def flag_group(self, flags: int, pos: int) -> RegexNode | None:
        on = off = 0
        sign = 1
        while self.peek() not in (")", ":"):
            c = self.p[self.i]
            if c == "-":
                sign = -1
            elif sign > 0:
                on |= _FLAG_LETTERS[c]
            else:
                off |= _FLAG_LETTERS[c]
            self.i += 1
        if self.peek() == ")":  # global flags, already folded into self.flags by re.compile
            self.i += 1
            return None
        self.i += 1
        inner = (flags | on) & ~off
        if on & re.ASCII:
            inner &= ~re.UNICODE
        if on & re.UNICODE:
            inner &= ~re.ASCII
        node = self.alternation(inner)
        self.expect_close(pos)
        return node

    def expect_close(self, pos: int) -> None:
        if self.peek() != ")":  # pragma: no cover - guaranteed by re.compile
            raise InvalidPattern(self.p, pos, "missing )")
        self.i += 1

    def escape(self, flags: int, at_start: bool, top: bool) -> RegexNode | None:
        pos = self.i
        self.i += 1
        c = self.p[self.i]
        self.i += 1
        if c in _CATEGORY:
            return Chars(_category(c, flags))
        if c in "AZ":
            return self.anchor(c, pos, at_start, top, flags)
        if c in "bB":
            raise self.unsupported("word boundary \\" + c, pos)
        if c.isdigit() and c != "0" and not self._is_octal_escape(pos):
            raise self.unsupported("backreference", pos)
        self.i = pos
        return self.literal(self.escaped_char(in_class=False), flags)

    def _is_octal_escape(self, pos: int) -> bool:
        return _OCTAL3.match(self.p, pos) is not None

    def escaped_char(self, in_class: bool) -> int:
        """Decode the escape at self.i (a backslash) to one code point."""
        self.i += 1
        c = self.p[self.i]
        self.i += 1
        if c in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[c]
        if c == "b" and in_class:
            return 8
        if c in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[c]
            value = int(self.p[self.i : self.i + width], 16)
            self.i += width
            return value
        if c == "N":
            end = self.p.index("}", self.i)
            value = ord(unicodedata.lookup(self.p[self.i + 1 : end]))
            self.i = end + 1
            return value
        if c in "01234567":
            digits = _OCTAL_TAIL.match(self.p, self.i).group(0)
            if c == "0" or len(digits) == 2 or in_class:
                self.i += len(digits)
                return int(c + digits, 8)
        return ord(c)

    def char_class(self, flags: int) -> Chars:
        start = self.i
        self.i += 1
        negated = self.peek() == "^"
        if negated:
            self.i += 1
        items: list[tuple[int, int]] = []
        first = True
        while True:
            c = self.p[self.i]
            if c == "]" and not first:
                self.i += 1
                break
            first = False
            if c == "\\" and self.peek(1) in _CATEGORY:
                items.extend(_category(self.peek(1), flags))
                self.i += 2
                continue
            lo = self.class_char()
            if self.peek() == "-" and self.peek(1) not in ("]", ""):
                save = self.i
                self.i += 1
                if self.peek() == "\\" and self.peek(1) in _CATEGORY:  # pragma: no cover - re rejects
                    self.i = save
                    raise InvalidPattern(self.p, start, "bad character range")
                hi = self.class_char()
                items.append((lo, hi))
            else:
                items.append((lo, lo))
        return Chars(_fold(normalize(items), negated, flags))

    def class_char(self) -> int:
        if self.peek() == "\\":
            return self.escaped_char(in_class=True)
        c = self.p[self.i]
        self.i += 1
        return ord(c)
