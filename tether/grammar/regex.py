"""Python `re` syntax -> a regular expression tree over Unicode code point sets.

The tree is tokenizer-free and pure Python; `tether.automata` turns it into a
byte-level automaton. Semantics are those of `re.fullmatch` on `str` patterns,
including Unicode `\\d \\w \\s`, inline flags (`i s x a u m`) and the anchors
`^ $ \\A \\Z` anywhere: they become `Assert` nodes, except where a full match
makes them no-ops (`^`/`\\A` leading and `$`/`\\Z` trailing a top-level
alternative), which are dropped. Constructs that are not regular (backreferences,
lookaround, word boundaries, conditional and atomic groups, possessive
quantifiers) raise `UnsupportedPattern` with their position; what `re` rejects
raises `InvalidPattern` with `re`'s position.

Two nodes no `re` syntax spells, for callers that build trees themselves (schemas,
grammars): `Intersect`, the strings every part matches, and `Complement`, the
valid UTF-8 strings (any sequence of scalar values, the language of `(?s:.*)`)
a node does not match. The automaton keeps them exact; anchors inside them are
refused (`UnsupportedPattern`).

Every pattern is first compiled by `re` itself, so tether accepts exactly what
Python accepts; the parser then reads it as `re._parser` (CPython 3.11) does,
rule for rule, with an explicit stack (any nesting depth) and runs of plain
characters read at once (megabyte patterns).

    >>> tree = parse_regex(r"[0-9]{4}-[0-9]{2}")
    >>> parse_regex(r"(a)\\1")  # raises UnsupportedPattern('backreference', position 3)
"""

from __future__ import annotations

import bisect
import functools
import re
import unicodedata
import warnings
from dataclasses import dataclass
from typing import Iterable, Union

from _sre import MAXREPEAT  # re refuses repetition counts from this one on (OverflowError)

try:
    from re import _parser as _re_parser  # Python 3.11 on
except ImportError:  # pragma: no cover - Python 3.10
    import sre_parse as _re_parser

from ..errors import ConstraintTooLarge, InvalidPattern, TetherError, UnsupportedPattern
from ..limits import DEFAULT_LIMITS, Deadline

__all__ = ["Chars", "Concat", "Alternation", "Repeat", "Intersect", "Complement", "Assert", "Multiples", "RegexNode",
           "parse_regex", "resolve_lookaheads", "find_node", "render", "MAX_CODEPOINT"]

MAX_CODEPOINT = 0x10FFFF
Intervals = tuple[tuple[int, int], ...]  # sorted, disjoint, non-adjacent, inclusive (lo, hi)

# Flags as plain ints: `&` on re.RegexFlag members goes through enum machinery, per character.
_IGNORECASE, _LOCALE, _MULTILINE, _DOTALL, _UNICODE, _VERBOSE, _ASCII = map(
    int, (re.IGNORECASE, re.LOCALE, re.MULTILINE, re.DOTALL, re.UNICODE, re.VERBOSE, re.ASCII))


@dataclass(frozen=True)
class Chars:
    """One character drawn from a set of code points (surrogates excluded: UTF-8 cannot carry them)."""

    intervals: Intervals


class _Compound:
    """Concat, Alternation, Repeat, Intersect and Complement compare and hash by identity (dataclass eq=False).

    Parsed trees can be thousands of levels deep, where the structural `==`, `hash`
    and `repr` a dataclass generates would recurse once per level. Their repr is
    rendered without recursion (and cut at 2,000 characters); to compare whole trees,
    compare `render(a) == render(b)`. The leaves, Chars and Assert, are flat and
    compare by value.
    """

    def __repr__(self) -> str:
        return render(self, limit=2000)


@dataclass(frozen=True, eq=False, repr=False)
class Concat(_Compound):
    parts: tuple["RegexNode", ...]


@dataclass(frozen=True, eq=False, repr=False)
class Alternation(_Compound):
    options: tuple["RegexNode", ...]


@dataclass(frozen=True, eq=False, repr=False)
class Repeat(_Compound):
    node: "RegexNode"
    min: int
    max: int | None  # None = unbounded


@dataclass(frozen=True, eq=False, repr=False)
class Intersect(_Compound):
    """The strings every part matches; with no parts, every string (the universe of `Complement`)."""

    parts: tuple["RegexNode", ...]


@dataclass(frozen=True, eq=False, repr=False)
class Complement(_Compound):
    """The valid UTF-8 strings (any sequence of Unicode scalar values, `(?s:.*)`) that `node` does not match."""

    node: "RegexNode"


@dataclass(frozen=True)
class Assert:
    """A zero-width assertion about the position, as `re` defines it on `str`.

    kind:
      "start"      `\\A`, and `^` without MULTILINE: the start of the text.
      "line_start" `^` with MULTILINE: the start of the text or just after a newline.
      "end"        `\\Z`: the end of the text.
      "end_or_final_newline"  `$` without MULTILINE: the end, or just before a newline that ends the text.
      "line_end"   `$` with MULTILINE: the end of the text or just before a newline.
    """

    kind: str


@dataclass(frozen=True)
class Multiples:
    """The strings of ASCII digits (the empty one too) whose decimal value is a multiple of
    `modulus`: read left to right, the remainder so far is all an automaton keeps, so this
    is `modulus` states where a regex spelling them would be exponential.

        >>> Intersect((parse_regex("[1-9][0-9]*"), Multiples(11)))   # 11, 22, ..., 121, ...
    """

    modulus: int


ASSERT_KINDS = ("start", "line_start", "end", "end_or_final_newline", "line_end")
_START_KINDS = frozenset(("start", "line_start"))  # all hold at position 0
_END_KINDS = frozenset(("end", "end_or_final_newline", "line_end"))  # all hold at the end of the text
_ASSERTS = {kind: Assert(kind) for kind in ASSERT_KINDS}

RegexNode = Union[Chars, Concat, Alternation, Repeat, Intersect, Complement, Assert, Multiples]
EMPTY = Concat(())


def render(node: RegexNode, limit: int | None = None) -> str:
    """The tree as the constructor calls that build it, without recursion; cut with "..." past `limit` characters."""
    out: list[str] = []
    size = 0
    todo: list[object] = [node]
    while todo:
        if limit is not None and size > limit:
            out.append("...")
            break
        item = todo.pop()
        if isinstance(item, str):
            text = item
        elif isinstance(item, (Concat, Alternation, Intersect)):
            name, children = (("Alternation(options=(", item.options) if isinstance(item, Alternation) else
                              (f"{type(item).__name__}(parts=(", item.parts))
            text = name
            todo.append(",))" if len(children) == 1 else "))")
            todo.extend(_listed(children if limit is None else children[:limit]))
        elif isinstance(item, Repeat):
            text = "Repeat(node="
            todo.append(f", min={item.min}, max={item.max})")
            todo.append(item.node)
        elif isinstance(item, Complement):
            text = "Complement(node="
            todo.append(")")
            todo.append(item.node)
        else:
            text = repr(item)
        out.append(text)
        size += len(text)
    return "".join(out)


def _listed(children: tuple) -> list[object]:
    """`children` separated by ", ", in reverse: the order a stack pops them."""
    seq: list[object] = []
    for child in reversed(children):
        if seq:
            seq.append(", ")
        seq.append(child)
    return seq


# ---------------------------------------------------------------- interval sets


def normalize(intervals: Iterable[tuple[int, int]]) -> Intervals:
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

    Used where Python's rules are intricate (Unicode categories), so that tether
    agrees with `re` by construction rather than by imitation.
    """
    found = [(m.start(), m.end() - 1) for m in re.finditer(f"(?:{class_regex})+", _all_chars(), flags)]
    return normalize(found)


_CATEGORY = {"d": r"\d", "w": r"\w", "s": r"\s", "D": r"\D", "W": r"\W", "S": r"\S"}


def _category(letter: str, flags: int) -> Intervals:
    return _scan(_CATEGORY[letter], flags & _ASCII)


# ---------------------------------------------------------------- case folding


@functools.cache
def _cased() -> tuple[str, Intervals, list[int]]:
    """The code points with a case mapping, as one string, as intervals, and the intervals' starts.

    IGNORECASE can only add or remove these (about 3,000): `re` folds with simple
    case mappings, and a code point whose full mappings (`str.lower`, `str.upper`)
    are itself has no simple one either. Lower-casing keeps a code point in the set.
    """
    chars = _all_chars()
    found: list[int] = []
    for base in range(0, len(chars), 1024):
        block = chars[base:base + 1024]
        if block.lower() != block or block.upper() != block:  # most blocks hold no cased letter at all
            found.extend(base + k for k, ch in enumerate(block) if ch.lower() != ch or ch.upper() != ch)
    intervals = normalize((cp, cp) for cp in found)
    return "".join(map(chr, found)), intervals, [lo for lo, _ in intervals]


def _uncased_part(intervals: Intervals) -> Intervals:
    """`intervals` minus the cased code points."""
    _, cased, starts = _cased()
    out = []
    for lo, hi in intervals:
        k = max(bisect.bisect_right(starts, lo) - 1, 0)
        while lo <= hi and k < len(cased):
            clo, chi = cased[k]
            if chi < lo:
                k += 1
                continue
            if clo > hi:
                break
            if clo > lo:
                out.append((lo, clo - 1))
            lo = chi + 1
            k += 1
        if lo <= hi:
            out.append((lo, hi))
    return tuple(out)


def _fold(regex: str, plain: Intervals, flags: int) -> Intervals:
    """What `re` matches with the one-character `regex` under IGNORECASE, given `plain`, what it matches without.

    Outside the cased code points IGNORECASE changes nothing (`re` compares the
    lower case of a character, which for them is the character itself); among them,
    Python's `re` itself decides, on the few thousand of them.
    """
    uncased = _uncased_part(plain)
    if uncased == plain:  # not a cased code point involved: a CJK literal, `[0-9]`, ...
        return plain
    return normalize(uncased + _fold_scan(regex, flags & (_IGNORECASE | _ASCII)))


@functools.cache
def _fold_scan(regex: str, flags: int) -> Intervals:
    """The cased code points `re` matches with the one-character `regex` under `flags`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "possible nested set" and the like: re.compile warned the user already
        found = re.findall(regex, _cased()[0], flags)
    return normalize((ord(ch), ord(ch)) for ch in found)


@functools.cache
def _literal(cp: int, fold: int) -> Chars:
    """The code point `cp` as `re` matches it under `fold` (IGNORECASE, with or without ASCII, or 0)."""
    plain = normalize([(cp, cp)])
    return Chars(_fold(re.escape(chr(cp)), plain, fold) if fold else plain)


class _Literals(dict):
    """Literal characters -> their Chars under one fold, for reading runs of plain characters at C speed."""

    def __init__(self, fold: int):
        super().__init__()
        self.fold = fold

    def __missing__(self, ch: str) -> Chars:
        node = self[ch] = _literal(ord(ch), self.fold)
        return node


_LITERALS = {fold: _Literals(fold) for fold in (0, _IGNORECASE, _IGNORECASE | _ASCII)}
_ANY = Chars(complement(()))
_ANY_BUT_NEWLINE = Chars(complement(((10, 10),)))


def _literals(flags: int) -> _Literals:
    return _LITERALS[flags & (_IGNORECASE | _ASCII) if flags & _IGNORECASE else 0]


# ---------------------------------------------------------------- parser

_DIGITS = frozenset("0123456789")  # re reads only ASCII digits: counts, octal escapes, group numbers
_OCTDIGITS = frozenset("01234567")
_RUN = re.compile(r"[^.\\\[{()*+?^$|]+")  # plain characters: literals (re's SPECIAL_CHARS excluded)
_VERBOSE_RUN = re.compile(r"[^.\\\[{()*+?^$| \t\n\r\v\f#]+")
# Verbose mode skips ASCII whitespace and `#` comments; a comment ends at a newline
# that is not escaped (re reads `\` and the character after it as one token).
_VERBOSE_SKIP = re.compile(r"(?:[ \t\n\r\v\f]+|#(?:[^\\\n]|\\.)*\n?)+", re.DOTALL)
_COMMENT_BODY = re.compile(r"(?:[^\\)]|\\.)*\)", re.DOTALL)  # after "(?#", same token rule
# A class: `]` first (after `^`) is a literal, and escapes hide the rest.
_CLASS_TEXT = re.compile(r"\[\^?(?:\\.|[^\\])(?:\\.|[^\\\]])*\]", re.DOTALL)
_BRACES = re.compile(r"\{([0-9]*)(?:(,)([0-9]*))?\}")
_SIMPLE_ESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92}
_HEX_WIDTH = {"x": 2, "u": 4, "U": 8}
_FLAG_LETTERS = {"a": _ASCII, "i": _IGNORECASE, "L": _LOCALE, "m": _MULTILINE, "s": _DOTALL, "u": _UNICODE,
                 "x": _VERBOSE}


def parse_regex(pattern: str, flags: int = 0, *, deadline: Deadline | None = None,
                lookaheads: str = "resolve") -> RegexNode:
    """Parse a Python regex into a tree; full-match semantics are the caller's.

    Raises InvalidPattern for what `re` refuses, UnsupportedPattern for constructs
    that are not regular, and ConstraintTooLarge once `deadline` passes (by default
    `DEFAULT_LIMITS.compile_seconds`) or past the nesting depth `re` can compile.
    `lookaheads`: "resolve" (the pattern is the whole text, so a lookahead in its top-level
    sequence is an intersection with the rest of it), "keep" (left in the tree for a caller
    that knows what follows the pattern, as a search does: `resolve_lookaheads`) or "refuse"
    (UnsupportedPattern: what follows is not known, as after a grammar terminal).
    """
    if lookaheads not in ("resolve", "keep", "refuse"):
        raise ValueError(f"lookaheads must be 'resolve', 'keep' or 'refuse', got {lookaheads!r}")
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be str, got {type(pattern).__name__}")
    if deadline is None:
        deadline = DEFAULT_LIMITS.deadline("parsing the regex")
    try:
        compiled_flags = _re_checks(pattern, flags)
    except re.error as e:
        raise InvalidPattern(pattern, e.pos, e.msg) from None
    except (OverflowError, ValueError, RecursionError) as e:  # re says neither where nor, always, what
        raise _diagnose(pattern, flags, deadline, e) from None
    return _Parser(pattern, compiled_flags, deadline, lookaheads=lookaheads).parse()


def _re_checks(pattern: str, flags: int) -> int:
    """Run every check `re.compile` makes of the pattern; return its flags, inline ones folded in.

    re's parser makes all of them but the widths of lookbehinds (its code generator's), and
    costs half of a compile (a few seconds per megabyte of pattern): generating code only
    when a lookbehind may need it keeps that half off every other pattern."""
    if "(?<" in pattern:  # a lookbehind, or that text inside a class or after a backslash
        return re.compile(pattern, flags).flags
    return _re_parser.parse(pattern, int(flags)).state.flags


def _diagnose(pattern: str, flags: int, deadline: Deadline, error: Exception) -> TetherError:
    """The typed error for a pattern `re.compile` failed on without a position.

    Counts past re's MAXREPEAT (OverflowError) or with more digits than `int` reads
    (ValueError) are found by a lenient pass, which raises at their brace; nesting
    deeper than `re`'s recursion reaches (RecursionError) is measured by it.
    """
    parser = _Parser(pattern, int(flags), deadline, strict=False)
    try:
        parser.parse()
    except InvalidPattern as e:
        return e
    except (IndexError, KeyError, ValueError):  # past where re stopped, nothing was checked
        pass
    if isinstance(error, RecursionError):
        return ConstraintTooLarge("regex nesting depth", parser.max_depth, _re_nesting_reach(), unit="levels",
                                  hint="Python's re, which checks every pattern first, recurses on every level: "
                                       "flatten the pattern, or raise sys.setrecursionlimit")
    return InvalidPattern(pattern, None, str(error))


def _re_nesting_reach() -> int:
    """How many nested groups `re.compile` manages from here, found by bisection (an error path only)."""
    lo, hi = 0, 1 << 16
    while lo < hi:
        mid = (lo + hi + 1) // 2
        try:
            _re_checks("(" * mid + ")" * mid, 0)
            lo = mid
        except RecursionError:
            hi = mid - 1
    return lo


class _Frame:
    """An open group (or the whole pattern): its flags, its finished alternatives and the sequence being read."""

    __slots__ = ("flags", "options", "items", "behind", "ahead")

    def __init__(self, flags: int, behind: tuple[bool, int] | None = None, ahead: tuple[bool, int] | None = None):
        self.flags = flags
        self.options: list[RegexNode] = []
        self.items: list[RegexNode] = []
        self.behind = behind  # (negative, position) for a lookbehind group
        self.ahead = ahead  # the same for a lookahead group


@dataclass(frozen=True)
class _Behind:
    """A one-character lookbehind, inside the parser only: the character before it must be in `allowed`.

    `sequence` removes it by narrowing what precedes it to the strings that end in `allowed`.
    """

    allowed: Intervals
    at_start: bool  # whether it holds at the start of the text (a negative lookbehind)
    pos: int


@dataclass(frozen=True, eq=False)
class _Ahead:
    """A lookahead, inside the parser (and `search_tree`) only: what follows must (not) start with `node`.

    Where the rest of the text is known, `resolve_lookaheads` turns it into an intersection."""

    negative: bool
    node: RegexNode
    pos: int


class _Parser:
    """Reads a pattern left to right as `re._parser` does; a group is a frame on an explicit stack.

    A quantifier, like re's, applies to the last item of the sequence being read,
    so comments (and verbose whitespace) may stand between an atom and its quantifier.
    strict=False is a lenient pass over a pattern `re.compile` gave up on (see
    `_diagnose`): non-regular constructs are read through instead of raising.
    """

    def __init__(self, pattern: str, flags: int, deadline: Deadline, strict: bool = True,
                 lookaheads: str = "resolve"):
        self.p = pattern
        self.deadline = deadline
        self.strict = strict
        self.lookahead_mode = lookaheads  # see parse_regex
        self.lookaheads = False  # whether there is one to resolve
        self.frame = _Frame(flags)
        self.stack: list[_Frame] = []  # the frames enclosing self.frame
        self.max_depth = 0
        self.classes: dict[tuple[str, int], Chars] = {}

    def unsupported(self, construct: str, pos: int) -> None:
        if self.strict:
            raise UnsupportedPattern(self.p, pos, construct)

    def parse(self) -> RegexNode:
        p, n, check = self.p, len(self.p), self.deadline.check
        i = 0
        while i < n:
            check()
            c = p[i]
            if c in " \t\n\r\v\f#" and self.frame.flags & _VERBOSE:
                i = _VERBOSE_SKIP.match(p, i).end()
            else:
                i = _ACTIONS.get(c, _Parser.run)(self, i)
        # In a lenient pass groups may still be open here; its result is not used.
        return self.alternatives(self.frame, top=True)

    # -- sequences, alternatives, groups

    def push(self, node: RegexNode, end: int) -> int:
        self.frame.items.append(node)
        return end

    def run(self, i: int) -> int:
        """Plain characters, each a literal (a quantifier after them takes the last one only)."""
        flags = self.frame.flags
        end = (_VERBOSE_RUN if flags & _VERBOSE else _RUN).match(self.p, i).end()
        self.frame.items.extend(map(_literals(flags).__getitem__, self.p[i:end]))
        return end

    def bar(self, i: int) -> int:
        frame = self.frame
        frame.options.append(self.sequence(frame.items, top=not self.stack))
        frame.items = []
        return i + 1

    def alternatives(self, frame: _Frame, top: bool) -> RegexNode:
        options = frame.options + [self.sequence(frame.items, top)]
        return options[0] if len(options) == 1 else Alternation(tuple(options))

    def sequence(self, items: list[RegexNode], top: bool) -> RegexNode:
        if any(type(item) is _Behind for item in items):
            items = self._resolve_lookbehinds(items, top)
        if top:
            items = _without_outer_anchors(items)
            if self.lookaheads and self.lookahead_mode == "resolve":
                try:
                    items = [resolve_lookaheads(items, [], at_start=True, pattern=self.p)]
                except UnsupportedPattern as e:
                    self.unsupported(e.construct, e.position)
                    items = [EMPTY]
        if len(items) == 1:
            return items[0]
        return Concat(tuple(items)) if items else EMPTY

    def _resolve_lookbehinds(self, items: list[RegexNode], top: bool) -> list[RegexNode]:
        """`P (?<!C) S` -> `P' S`, P' the strings of P whose last character is not in C (is in C
        for `(?<=C)`). Where P may be empty the character before is outside this sequence: known
        only at the start of the whole pattern (no character: a negative lookbehind holds)."""
        out: list[RegexNode] = []
        for item in items:
            if type(item) is not _Behind:
                out.append(item)
                continue
            prefix = Concat(tuple(out)) if out else EMPTY
            narrowed = _ending_in(prefix, item.allowed)
            if _nullable(prefix):
                if not top:
                    self.unsupported("lookbehind assertion that may look outside its group", item.pos)
                elif item.at_start:
                    narrowed = EMPTY if narrowed is None else Alternation((narrowed, EMPTY))
            out = [Chars(()) if narrowed is None else narrowed]
        return out

    def open(self, flags: int, end: int, behind: tuple[bool, int] | None = None,
             ahead: tuple[bool, int] | None = None) -> int:
        self.stack.append(self.frame)
        self.frame = _Frame(flags, behind, ahead)
        self.max_depth = max(self.max_depth, len(self.stack))
        return end

    def close(self, i: int) -> int:
        node = self.alternatives(self.frame, top=False)
        behind, ahead = self.frame.behind, self.frame.ahead
        self.frame = self.stack.pop()
        if ahead is not None:
            if self.lookahead_mode == "refuse":
                self.unsupported("lookahead assertion (it reads text past the end of this pattern)", ahead[1])
                return self.push(EMPTY, i + 1)
            self.lookaheads = True
            return self.push(_Ahead(ahead[0], node, ahead[1]), i + 1)
        if behind is not None:
            negative, pos = behind
            if not isinstance(node, Chars):
                self.unsupported("lookbehind assertion (only a single character class can be looked behind)", pos)
                return self.push(EMPTY, i + 1)
            allowed = complement(node.intervals) if negative else node.intervals
            return self.push(_Behind(allowed, negative, pos), i + 1)
        return self.push(node, i + 1)

    def group(self, i: int) -> int:
        """`(` and the extensions `(?...)` as re reads them; i is at the parenthesis."""
        p, flags = self.p, self.frame.flags
        if p[i + 1:i + 2] != "?":
            return self.open(flags, i + 1)
        c = p[i + 2]
        if c == ":":
            return self.open(flags, i + 3)
        if c == "#":
            m = _COMMENT_BODY.match(p, i + 3)
            return m.end() if m else len(p)  # unterminated only in a lenient pass
        if c == "P" and p[i + 3] == "<":
            return self.open(flags, p.index(">", i + 4) + 1)
        if c == "P":
            self.unsupported("named backreference (?P=...)", i)
            return self.push(EMPTY, p.index(")", i) + 1)
        if c in "=!":
            return self.open(flags, i + 3, ahead=(c == "!", i))
        if c == "<":
            return self.open(flags, i + 4, behind=(p[i + 3] == "!", i))
        if c == "(":
            self.unsupported("conditional group (?(...)...)", i)
            return self.open(flags, p.index(")", i + 3) + 1)
        if c == ">":
            self.unsupported("atomic group (?>...)", i)
            return self.open(flags, i + 3)
        return self.flag_group(i)

    def flag_group(self, i: int) -> int:
        """`(?aiLmsux)` (global) or `(?aiLmsux-imsx:...)` (scoped); i is at the parenthesis."""
        p = self.p
        j = i + 2
        on = off = 0
        while p[j] not in "-:)":
            on |= _FLAG_LETTERS[p[j]]
            j += 1
        if p[j] == "-":
            j += 1
            while p[j] != ":":
                off |= _FLAG_LETTERS[p[j]]
                j += 1
        if p[j] == ")":
            # Global flags: re.compile has folded them into the pattern's flags already
            # (this matters only to a lenient pass, which starts from the caller's).
            self.frame.flags |= on
            return j + 1
        flags = (self.frame.flags | on) & ~off
        if on & _ASCII:
            flags &= ~_UNICODE
        if on & _UNICODE:
            flags &= ~_ASCII
        return self.open(flags, j + 1)

    # -- quantifiers

    def repeat(self, end: int, lo: int, hi: int | None) -> int:
        """Quantify the last item (re refuses a quantifier with none: only a lenient pass lacks one)."""
        items = self.frame.items
        if items and type(items[-1]) is _Behind:
            self.unsupported("repeated lookbehind assertion", items[-1].pos)
            items[-1] = EMPTY
        if items and type(items[-1]) is _Ahead:  # zero-width: once if it must hold, else a no-op
            if lo == 0:
                items[-1] = EMPTY
        elif items:
            items[-1] = Repeat(items[-1], lo, hi)
        after = self.p[end:end + 1]
        if after == "?":
            return end + 1  # lazy: the same language under full-match semantics
        if after == "+":
            self.unsupported("possessive quantifier", end)
            return end + 1
        return end

    def star(self, i: int) -> int:
        return self.repeat(i + 1, 0, None)

    def plus(self, i: int) -> int:
        return self.repeat(i + 1, 1, None)

    def question(self, i: int) -> int:
        return self.repeat(i + 1, 0, 1)

    def brace(self, i: int) -> int:
        """`{m}`, `{m,}`, `{,n}`, `{m,n}`, `{,}` (ASCII digits); any other `{` (`{}`, `{ 1}`, `{a}`) is a literal."""
        m = _BRACES.match(self.p, i)
        if m is None or m.end() == i + 2:
            return self.push(_literals(self.frame.flags)["{"], i + 1)
        lo = self.count(m[1], i) if m[1] else 0
        if m[2] is None:
            hi: int | None = lo
        else:
            hi = self.count(m[3], i) if m[3] else None
        return self.repeat(m.end(), lo, hi)

    def count(self, digits: str, brace: int) -> int:
        """A repetition count; re refuses (without a position) what this raises for."""
        try:
            value = int(digits)
        except ValueError:  # more digits than int() converts (sys.get_int_max_str_digits)
            raise InvalidPattern(self.p, brace, "the repetition number has too many digits") from None
        if value >= MAXREPEAT:
            raise InvalidPattern(self.p, brace, "the repetition number is too large")
        return value

    # -- atoms

    def dot(self, i: int) -> int:
        return self.push(_ANY if self.frame.flags & _DOTALL else _ANY_BUT_NEWLINE, i + 1)

    def caret(self, i: int) -> int:
        return self.push(_ASSERTS["line_start" if self.frame.flags & _MULTILINE else "start"], i + 1)

    def dollar(self, i: int) -> int:
        return self.push(_ASSERTS["line_end" if self.frame.flags & _MULTILINE else "end_or_final_newline"], i + 1)

    def escape(self, i: int) -> int:
        """A backslash outside a class, as re's `_escape` reads it."""
        flags = self.frame.flags
        c = self.p[i + 1]
        if c in _CATEGORY:
            return self.push(_category_chars(c, flags & _ASCII), i + 2)
        if c == "A" or c == "Z":
            return self.push(_ASSERTS["start" if c == "A" else "end"], i + 2)
        if c == "b" or c == "B":
            self.unsupported("word boundary \\" + c, i)
            return self.push(EMPTY, i + 2)
        if c in _DIGITS and c != "0":
            return self.reference_or_octal(i)
        cp, end = self.code_point(i)
        return self.push(_literals(flags)[chr(cp)], end)

    def reference_or_octal(self, i: int) -> int:
        """`\\1`-`\\99` refer to a group, unless three octal digits make an octal escape (`\\101`)."""
        p = self.p
        end = i + 2
        if p[end:end + 1] in _DIGITS:
            if p[i + 1] in _OCTDIGITS and p[end] in _OCTDIGITS and p[end + 1:end + 2] in _OCTDIGITS:
                return self.push(_literals(self.frame.flags)[chr(int(p[i + 1:i + 4], 8))], i + 4)
            end += 1
        self.unsupported("backreference", i)
        return self.push(EMPTY, end)

    def code_point(self, i: int) -> tuple[int, int]:
        """The escape at i (a backslash) that stands for one code point, and where it ends.

        Outside a class, `\\b` and `\\1`-`\\9` were taken already, so only `\\0` starts
        an octal escape there; inside, any octal digit does (up to three of them).
        """
        p = self.p
        c = p[i + 1]
        if c in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[c], i + 2
        width = _HEX_WIDTH.get(c)
        if width:
            return int(p[i + 2:i + 2 + width], 16), i + 2 + width
        if c == "N":
            end = p.index("}", i + 3)
            return ord(unicodedata.lookup(p[i + 3:end])), end + 1
        if c in _OCTDIGITS:
            end = i + 2
            while end < i + 4 and p[end:end + 1] in _OCTDIGITS:
                end += 1
            return int(p[i + 1:end], 8), end
        return ord(c), i + 2

    def char_class(self, i: int) -> int:
        """A `[...]` class; i is at the bracket. Its text means the same wherever it stands
        (given IGNORECASE and ASCII), so a class that recurs is read once."""
        m = _CLASS_TEXT.match(self.p, i)
        if m is None:  # unterminated: only in a lenient pass
            return len(self.p)
        key = (m[0], self.frame.flags & (_IGNORECASE | _ASCII))
        node = self.classes.get(key)
        if node is None:
            node = self.classes[key] = Chars(self.class_set(i, m.end(), key[1]))
        return self.push(node, m.end())

    def class_set(self, i: int, end: int, flags: int) -> Intervals:
        """The code points of the class from i to end, read as re's set loop reads them."""
        p = self.p
        j = i + 1
        negated = p[j] == "^"
        if negated:
            j += 1
        items: list[tuple[int, int]] = []
        first = True
        while True:
            c = p[j]
            if c == "]" and not first:
                break
            first = False
            if c == "\\" and p[j + 1] in _CATEGORY:
                items.extend(_category(p[j + 1], flags))
                j += 2
                lo = None  # a category cannot start a range (re refuses it), but `[\d-]` holds a '-'
            else:
                lo, j = self.class_char(j)
                items.append((lo, lo))
            if p[j] == "-" and p[j + 1] == "]":
                items.append((45, 45))
                break
            if p[j] == "-" and lo is not None:
                hi, j = self.class_char(j + 1)
                items[-1] = (lo, hi)
        plain = normalize(items)
        if negated:
            plain = complement(plain)
        if flags & _IGNORECASE:
            plain = _fold(p[i:end], plain, flags)
        return plain

    def class_char(self, j: int) -> tuple[int, int]:
        if self.p[j] == "\\":
            return self.code_point(j)
        return ord(self.p[j]), j + 1


_ACTIONS = {"\\": _Parser.escape, "[": _Parser.char_class, "(": _Parser.group, ")": _Parser.close,
            "|": _Parser.bar, ".": _Parser.dot, "^": _Parser.caret, "$": _Parser.dollar,
            "*": _Parser.star, "+": _Parser.plus, "?": _Parser.question, "{": _Parser.brace}


@functools.cache
def _category_chars(letter: str, ascii_flag: int) -> Chars:
    return Chars(_category(letter, ascii_flag))


def _nullable(node: RegexNode) -> bool:
    """Whether the tree matches the empty string (assertions count as empty), without recursion."""
    results: dict[int, bool] = {}
    todo: list[tuple[RegexNode, bool]] = [(node, False)]
    while todo:
        n, ready = todo.pop()
        if isinstance(n, (Chars, Assert, Multiples)):
            results[id(n)] = not isinstance(n, Chars)
        elif not ready:
            todo.append((n, True))
            todo.extend((k, False) for k in _listed_children(n))
        elif isinstance(n, Concat):
            results[id(n)] = all(results[id(k)] for k in n.parts)
        elif isinstance(n, Alternation):
            results[id(n)] = any(results[id(k)] for k in n.options)
        elif isinstance(n, Intersect):
            results[id(n)] = all(results[id(k)] for k in n.parts)
        elif isinstance(n, Complement):
            results[id(n)] = not results[id(n.node)]
        else:
            results[id(n)] = n.min == 0 or results[id(n.node)]
    return results[id(node)]


def _listed_children(n: RegexNode) -> tuple:
    if isinstance(n, (Concat, Intersect)):
        return n.parts
    return n.options if isinstance(n, Alternation) else (n.node,)


def _ending_in(node: RegexNode, allowed: Intervals) -> RegexNode | None:
    """The non-empty strings of `node` whose last character is in `allowed` (None if there are none).

    Recursion follows the tree's right spine only (the last part of each concatenation), so its
    depth is that of the nesting where the pattern ends, not of the pattern.
    """
    if isinstance(node, Chars):
        kept = _intersect(node.intervals, allowed)
        return Chars(kept) if kept else None
    if isinstance(node, Assert):
        return None
    if isinstance(node, (Intersect, Complement, Multiples)):  # no structure to narrow: intersect with "ends in allowed"
        return Intersect((node, Concat((Repeat(_ANY, 0, None), Chars(allowed)))))
    if isinstance(node, Alternation):
        options = [o for o in map(lambda x: _ending_in(x, allowed), node.options) if o is not None]
        return None if not options else options[0] if len(options) == 1 else Alternation(tuple(options))
    if isinstance(node, Repeat):
        last = _ending_in(node.node, allowed)
        if last is None or node.max == 0:
            return None
        before = Repeat(node.node, max(node.min - 1, 0), None if node.max is None else node.max - 1)
        return Concat((before, last))
    options = []
    parts = node.parts
    for k in range(len(parts) - 1, -1, -1):  # the last character comes from parts[k], the rest empty
        last = _ending_in(parts[k], allowed)
        if last is not None:
            options.append(Concat(parts[:k] + (last,)) if k else last)
        if not _nullable(parts[k]):
            break
    return None if not options else options[0] if len(options) == 1 else Alternation(tuple(options))


def _intersect(a: Intervals, b: Intervals) -> Intervals:
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def resolve_lookaheads(items: list, tail: list[RegexNode], *, at_start: bool, pattern: str = "") -> RegexNode:
    """The sequence `items` then `tail`, where `tail` is what follows up to the end of the text,
    with its lookaheads as intersections: `A (?=X) B` is A then the strings of B·tail that start
    with X (`(?!X)`: that do not). Groups in the sequence are read through; a lookahead inside a
    repetition or an alternative (whose rest is not one sequence) raises `UnsupportedPattern`.
    `at_start`: the sequence starts the text (a `^` leading a lookahead's alternative holds)."""
    flat: list = []
    todo = list(reversed(items))
    while todo:
        item = todo.pop()
        if isinstance(item, Concat):
            todo.extend(reversed(item.parts))
        else:
            flat.append(item)
    for item in flat:
        inner = None if type(item) is _Ahead else find_node(item, _Ahead)
        if inner is not None:
            raise UnsupportedPattern(pattern, inner.pos, "lookahead assertion inside a repetition or an alternative")
    result: RegexNode = Concat(tuple(tail))
    run: list[RegexNode] = []  # plain items after the last lookahead seen, reversed
    for i in range(len(flat) - 1, -1, -1):
        item = flat[i]
        if type(item) is not _Ahead:
            run.append(item)
            continue
        rest = Concat((*reversed(run), result)) if run else result
        starts = _lookahead_language(item, at_start and all(
            type(x) is _Ahead or (isinstance(x, Assert) and x.kind in _START_KINDS) for x in flat[:i]), pattern)
        result = Intersect((rest, Complement(starts) if item.negative else starts))
        run = []
    return Concat((*reversed(run), result)) if run else result


def find_node(tree: RegexNode, kind: type | tuple[type, ...]) -> RegexNode | None:
    """A node of `kind` in `tree` (not inside a lookahead), or None.

        >>> find_node(parse_regex("a(?:b|$)"), Assert)
        Assert(kind='end_or_final_newline')
    """
    todo = [tree]
    while todo:
        n = todo.pop()
        if isinstance(n, kind):
            return n
        if isinstance(n, (Concat, Intersect)):
            todo.extend(n.parts)
        elif isinstance(n, Alternation):
            todo.extend(n.options)
        elif isinstance(n, (Repeat, Complement)):
            todo.append(n.node)
    return None


_ANYTHING = Repeat(Chars(((0, 0xD7FF), (0xE000, 0x10FFFF))), 0, None)  # (?s:.*)


def _lookahead_language(ahead: _Ahead, at_start: bool, pattern: str) -> RegexNode:
    """The texts a lookahead lets follow: its node, then anything. A `^` leading one of its
    alternatives holds where the lookahead starts the text; a `$` (or `\\Z`) ending one ends
    the text there. Other anchors, and lookaheads inside it, are unsupported."""
    node = ahead.node
    options = node.options if isinstance(node, Alternation) else (node,)
    out = []
    for option in options:
        parts = list(option.parts) if isinstance(option, Concat) else [option]
        while parts and isinstance(parts[0], Assert) and parts[0].kind in _START_KINDS:
            if not at_start:
                raise UnsupportedPattern(pattern, ahead.pos, "a start anchor inside a lookahead that may not "
                                                             "start the text")
            parts = parts[1:]
        end = [_ANYTHING]
        if parts and isinstance(parts[-1], Assert) and parts[-1].kind in _END_KINDS:
            kind = parts.pop().kind
            newline = Chars(((10, 10),))
            end = {"end": [], "end_or_final_newline": [Repeat(newline, 0, 1)],
                   "line_end": [Repeat(Concat((newline, _ANYTHING)), 0, 1)]}[kind]
        body = Concat(tuple(parts))
        if find_node(body, (_Ahead, Assert)) is not None:
            raise UnsupportedPattern(pattern, ahead.pos, "an anchor or a lookahead inside a lookahead")
        out.append(Concat((body, *end)))
    return out[0] if len(out) == 1 else Alternation(tuple(out))


def _without_outer_anchors(items: list[RegexNode]) -> list[RegexNode]:
    """Drop the anchors a full match makes no-ops: start ones leading, end ones trailing a top-level alternative.

    The alternative starts at position 0, where `^` and `\\A` hold in either mode,
    and must end at the end of the text, where `$` and `\\Z` hold.
    """
    lo, hi = 0, len(items)
    while lo < hi and isinstance(items[lo], Assert) and items[lo].kind in _START_KINDS:
        lo += 1
    while hi > lo and isinstance(items[hi - 1], Assert) and items[hi - 1].kind in _END_KINDS:
        hi -= 1
    return items if (lo, hi) == (0, len(items)) else items[lo:hi]
