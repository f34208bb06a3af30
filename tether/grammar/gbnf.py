"""GBNF (llama.cpp's grammar format) -> the grammar IR (`tether.grammar.ir`).

    >>> ir = gbnf_to_ir('root ::= "a" digit+\\ndigit ::= [0-9]')
    >>> sorted(ir.rules), sorted(ir.terminals)   # (['digit', 'root'], ['"a"', '[0-9]'])

The syntax is llama.cpp's (`src/llama-grammar.cpp`, `grammars/README.md`), read the
way its parser reads it:

* A rule is ``name ::= body``; names are ``[a-zA-Z0-9_-]+`` (llama.cpp allows no
  ``_``; the grammars vLLM and llguidance share use it, so it is accepted here).
* ``#`` starts a comment to the end of the line; spaces and tabs separate symbols.
* A newline ends a rule, except right after ``::=``, right after ``|``, and anywhere
  inside parentheses. ``\\r\\n`` and a lone ``\\r`` count as newlines.
* Literals ``"..."`` and classes ``[...]``, ``[^...]`` take the escapes ``\\n \\r \\t
  \\\\ \\" \\[ \\] \\-`` and ``\\xNN \\uNNNN \\UNNNNNNNN`` (exactly 2, 4, 8 hex digits);
  any other character, a newline included, stands for itself. In a class, ``a-z``
  is a range unless the ``-`` is followed by ``]``; a leading ``^`` negates.
* ``.`` is any character, the newline included: llama.cpp's ``CHAR_ANY`` matches
  every code point (surrogates aside, which UTF-8 cannot carry).
* ``* + ?`` and ``{m}``, ``{m,}``, ``{m,n}`` repeat the preceding symbol or group;
  they stack (``a*+`` is ``(a*)+``), and spaces may stand inside the braces.
* A rule defined twice: the later definition replaces the earlier one, as
  llama.cpp's parser does (it overwrites the rule); the references of the earlier
  one are not checked.
* The start symbol is `start` ("root").

Where llama.cpp accepts something degenerate, this front-end raises `GrammarError`
(with line, column and rule) instead: an empty class (``[]``, ``[^]``, which
llama.cpp silently reads as the empty string) or one that matches no character, a
range ``z-a`` (which llama.cpp reads as matching nothing), a surrogate or a code
point past U+10FFFF, and ``{3,1}``. The token references ``<...>``, ``<[id]>``,
``!<...>`` of newer llama.cpp raise it too: grammars here are over characters, not
token ids. Repetition counts are kept exactly (llama.cpp refuses a minimum over
2,000 and reads a maximum over 2,000 as unbounded), and left recursion is allowed
(llama.cpp rejects it).

Mapping: each rule is an IR `Rule`; a literal is a `Terminal` whose regex is a
`Concat` of one-code-point `Chars`, a class or ``.`` a `Terminal` over one `Chars`;
equal literals (or equal classes) share one terminal, named by its first source
spelling (``"abc"``, ``[a-z]``). ``""`` is the empty `Sequence`. Every node carries
the `Location` (1-based line and column, 0-based offset, the rule being defined)
of the text it came from. Parsing is iterative (groups nest to any depth) and
linear in the size of the text.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

from ..errors import GrammarError, Location
from .ir import Choice, Expr, GrammarIR, Repetition, Rule, RuleRef, Sequence, Terminal, TerminalRef
from .regex import MAX_CODEPOINT, Chars, Concat, Intervals, complement, normalize

__all__ = ["gbnf_to_ir"]

# Whitespace between symbols: spaces, tabs and comments; newlines only where a rule may
# continue (inside parentheses, after '::=' and '|').
_SPACE = re.compile(r"(?:[ \t]+|#[^\r\n]*)*")
_SPACE_NL = re.compile(r"(?:[ \t\r\n]+|#[^\r\n]*)*")
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_DIGITS = re.compile(r"[0-9]+")
_LITERAL_RUN = re.compile(r'[^"\\]+')  # the plain characters of a literal, read at once (megabyte literals)
_SURROGATE = re.compile("[\ud800-\udfff]")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_TOKEN = re.compile(r"!?<[^>\r\n]*>?")
_HEX = {"x": 2, "u": 4, "U": 8}
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
_QUANTIFIERS = {"*": (0, None), "+": (1, None), "?": (0, 1)}
_SIMPLE_ESCAPES = {"n": 0x0A, "r": 0x0D, "t": 0x09, "\\": 0x5C, '"': 0x22, "[": 0x5B, "]": 0x5D, "-": 0x2D}
_MAX_COUNT = 2**64 - 1  # llama.cpp reads counts with stoull; more digits than that are an error here too
_ANY: Intervals = normalize([(0, MAX_CODEPOINT)])


def gbnf_to_ir(text: str, start: str = "root") -> GrammarIR:
    """The grammar IR of a GBNF grammar whose start symbol is `start`.

    Raises `GrammarError` (location: line, column, rule) for a syntax error, an
    undefined rule, a missing start rule, or a rule that derives no string.
    """
    if not isinstance(text, str):
        raise TypeError(f"a GBNF grammar must be str, got {type(text).__name__}")
    return _Parser(text).parse(start)


@dataclass
class _Frame:
    """One level of parentheses (or the rule body itself) being read."""

    where: Location
    open_at: int  # offset of '(' (or of the body), for "unclosed '('"
    alternatives: list[Expr] = field(default_factory=list)
    items: list[Expr] = field(default_factory=list)
    seq_where: Location | None = None  # where the current alternative began


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.n = len(text)
        # Offsets where lines begin, for line/column by bisection (one pass over the text).
        self.line_starts = [0] + [m.end() for m in _LINE_BREAK.finditer(text)]
        self.rule: str | None = None  # the rule being defined, for locations
        self.rules: dict[str, Rule] = {}
        self.terminals: dict[str, Terminal] = {}
        self.terminal_names: dict[object, str] = {}  # meaning -> name of the terminal that has it
        self.refs: dict[str, list[tuple[int, str, Location]]] = {}  # rule -> its references (latest definition)
        self.chars: dict[int, Chars] = {}  # one Chars per code point: a megabyte literal shares them

    # ---------------------------------------------------------------- helpers

    def loc(self, offset: int) -> Location:
        line = bisect.bisect_right(self.line_starts, offset)
        return Location(offset=offset, line=line, column=offset - self.line_starts[line - 1] + 1, rule=self.rule)

    def error(self, reason: str, offset: int) -> GrammarError:
        return GrammarError(reason, source=self.text, location=self.loc(offset))

    def skip(self, pos: int, newlines: bool) -> int:
        return (_SPACE_NL if newlines else _SPACE).match(self.text, pos).end()

    def found(self, pos: int) -> str:
        return "the end of the input" if pos >= self.n else repr(self.text[pos])

    # ---------------------------------------------------------------- grammar and rules

    def parse(self, start: str) -> GrammarIR:
        text = self.text
        pos = self.skip(1 if text.startswith("\ufeff") else 0, True)  # a byte-order mark is not part of the grammar
        while pos < self.n:
            pos = self.parse_rule(pos)
        self.rule = None
        # Undefined rules: the first reference in the text, among the definitions that stand.
        undefined = [ref for refs in self.refs.values() for ref in refs if ref[1] not in self.rules]
        if undefined:
            offset, name, where = min(undefined, key=lambda r: r[0])
            raise GrammarError(f"Undefined rule identifier {name!r}", source=text, location=where)
        if start not in self.rules:
            defined = ", ".join(sorted(self.rules)[:10]) or "none"
            raise GrammarError(f"the grammar has no {start!r} rule, its start symbol (rules defined: {defined})",
                               source=text, location=Location(offset=0, line=1, column=1, rule=start))
        return GrammarIR(self.rules, self.terminals, start, source=text, name="gbnf")

    def parse_rule(self, pos: int) -> int:
        text = self.text
        self.rule = None  # until its name is read, an error here is in no rule
        m = _NAME.match(text, pos)
        if m is None:
            hint = (" (a rule continues onto the next line only after '::=' or '|', or inside parentheses)"
                    if text[pos] in "|*+?{)" or text.startswith("::=", pos) else "")
            raise self.error(f"expecting a rule name, found {self.found(pos)}{hint}", pos)
        name = m.group()
        self.rule = name
        where = self.loc(pos)
        pos = self.skip(m.end(), False)
        if not text.startswith("::=", pos):
            raise self.error(f"expecting '::=' after the rule name {name!r}, found {self.found(pos)}", pos)
        self.refs[name] = []  # a later definition replaces an earlier one, references included
        body, pos = self.parse_body(self.skip(pos + 3, True))
        self.rules[name] = Rule(name, body, where=where)
        if pos < self.n:
            c = text[pos]
            if c == "\r":
                pos += 2 if text.startswith("\r\n", pos) else 1
            elif c == "\n":
                pos += 1
            elif c == ")":
                raise self.error("unmatched ')'", pos)
            elif text.startswith("::=", pos):
                raise self.error("unexpected '::=': a new rule must start on its own line (the rule before it "
                                 "continues after '::=' or '|' onto the next line)", pos)
            else:
                raise self.error(f"expecting a newline or the end of the input, found {self.found(pos)}", pos)
        return self.skip(pos, True)

    # ---------------------------------------------------------------- bodies

    def parse_body(self, pos: int) -> tuple[Expr, int]:
        """Alternatives of sequences, with groups on an explicit stack; returns at the end of the rule."""
        text, n = self.text, self.n
        body_where = self.loc(pos)
        stack = [_Frame(body_where, pos, seq_where=body_where)]
        while True:
            frame = stack[-1]
            nested = len(stack) > 1  # inside parentheses a newline is only space
            c = text[pos] if pos < n else ""
            if c == '"':
                item, pos = self.parse_literal(pos)
                frame.items.append(item)
                pos = self.skip(pos, nested)
            elif c == "[":
                item, pos = self.parse_class(pos)
                frame.items.append(item)
                pos = self.skip(pos, nested)
            elif c == ".":
                frame.items.append(self.terminal(("class", _ANY), ".", Chars(_ANY), pos))
                pos = self.skip(pos + 1, nested)
            elif c in _WORD_CHARS:
                m = _NAME.match(text, pos)
                where = self.loc(pos)
                frame.items.append(RuleRef(m.group(), where=where))
                self.refs[self.rule].append((pos, m.group(), where))
                pos = self.skip(m.end(), nested)
            elif c == "(":
                where = self.loc(pos)
                stack.append(_Frame(where, pos))
                pos = self.skip(pos + 1, True)
                stack[-1].seq_where = self.loc(pos)
            elif c in _QUANTIFIERS:
                lo, hi = _QUANTIFIERS[c]
                self.repeat(frame, lo, hi, pos)
                pos = self.skip(pos + 1, nested)
            elif c == "{":
                lo, hi, end = self.parse_count(pos, nested)
                self.repeat(frame, lo, hi, pos)
                pos = self.skip(end, nested)
            elif c == "|":
                frame.alternatives.append(self.sequence(frame))
                pos = self.skip(pos + 1, True)
                frame.items = []
                frame.seq_where = self.loc(pos)
            elif c == ")" and nested:
                expr = self.alternatives(frame, group=True)
                stack.pop()
                stack[-1].items.append(expr)
                pos = self.skip(pos + 1, len(stack) > 1)
            elif c == "<" or text.startswith("!<", pos):
                spelled = _TOKEN.match(text, pos).group()
                kind = "a negated token reference" if c == "!" else "a token reference"
                raise self.error(f"{kind} ({spelled!r}) is not supported: tether's grammars are over characters, "
                                 "not token ids; spell the token's text as a literal", pos)
            elif c == "!":
                raise self.error("unexpected '!' (llama.cpp uses it only before a token reference, '!<...>')", pos)
            elif nested:
                if pos >= n:
                    raise self.error("unclosed '(': expecting ')' before the end of the input", frame.open_at)
                raise self.error(f"expecting ')' or a symbol, found {self.found(pos)}", pos)
            else:
                return self.alternatives(frame), pos

    def sequence(self, frame: _Frame) -> Expr:
        # One item stands for itself: `(a)` is `a`, and `x ::= y` is a reference, not a sequence of one.
        if len(frame.items) == 1:
            return frame.items[0]
        return Sequence(tuple(frame.items), where=frame.seq_where)

    def alternatives(self, frame: _Frame, group: bool = False) -> Expr:
        if group and not frame.alternatives and len(frame.items) != 1:
            return Sequence(tuple(frame.items), where=frame.where)  # `(a b)` is located at its '('
        options = frame.alternatives + [self.sequence(frame)]
        return options[0] if len(options) == 1 else Choice(tuple(options), where=frame.where)

    def repeat(self, frame: _Frame, lo: int, hi: int | None, pos: int) -> None:
        if not frame.items:
            raise self.error(f"{self.text[pos]!r} has no preceding symbol or group to repeat", pos)
        item = frame.items[-1]
        frame.items[-1] = Repetition(item, lo, hi, where=item.where)

    def parse_count(self, pos: int, nested: bool) -> tuple[int, int | None, int]:
        """`{m}`, `{m,}`, `{m,n}` at `pos`: (m, n or None, the offset after '}')."""
        text = self.text
        p = self.skip(pos + 1, nested)
        lo, p = self.count(p)
        p = self.skip(p, nested)
        if text.startswith("}", p):
            return lo, lo, p + 1
        if not text.startswith(",", p):
            raise self.error(f"expecting ',' or '}}' in the repetition count, found {self.found(p)}", p)
        p = self.skip(p + 1, nested)
        hi = None
        if p < self.n and "0" <= text[p] <= "9":
            hi_at = p
            hi, p = self.count(p)
            if hi < lo:
                raise self.error(f"repetition {{{lo},{hi}}}: the maximum {hi} is below the minimum {lo}", hi_at)
            p = self.skip(p, nested)
        if not text.startswith("}", p):
            raise self.error(f"expecting '}}' to close the repetition count, found {self.found(p)}", p)
        return lo, hi, p + 1

    def count(self, pos: int) -> tuple[int, int]:
        m = _DIGITS.match(self.text, pos)
        if m is None:
            raise self.error(f"expecting a repetition count (digits), found {self.found(pos)}", pos)
        digits = m.group()
        # int() of thousands of digits raises ValueError; no count that long fits 64 bits anyway.
        if len(digits) > 20 or int(digits) > _MAX_COUNT:
            raise self.error(f"repetition count {digits[:30]}{'...' if len(digits) > 30 else ''} is too large", pos)
        return int(digits), m.end()

    # ---------------------------------------------------------------- terminals

    def terminal(self, key: object, spelled: str, regex, pos: int) -> TerminalRef:
        """A reference to the terminal with meaning `key`, made (named `spelled`) the first time."""
        where = self.loc(pos)
        name = self.terminal_names.get(key)
        if name is None:
            name = self.terminal_names[key] = spelled
            self.terminals[name] = Terminal(name, regex, where=where, text=spelled)
        return TerminalRef(name, where=where)

    def parse_literal(self, pos: int) -> tuple[Expr, int]:
        text, n = self.text, self.n
        p = pos + 1
        cps: list[int] = []
        while True:
            m = _LITERAL_RUN.match(text, p)
            if m is not None:
                run = m.group()
                s = _SURROGATE.search(run)
                if s is not None:
                    raise self.surrogate(ord(s.group()), p + s.start())
                cps.extend(map(ord, run))
                p = m.end()
            if p >= n:
                raise self.error('unterminated literal: no closing \'"\'', pos)
            if text[p] == '"':
                p += 1
                break
            cp, p = self.escape(p)
            cps.append(cp)
        if not cps:
            return Sequence((), where=self.loc(pos)), p
        chars = self.chars
        regex = Concat(tuple(chars.get(cp) or chars.setdefault(cp, Chars(((cp, cp),))) for cp in cps))
        return self.terminal(("literal", "".join(map(chr, cps))), text[pos:p], regex, pos), p

    def parse_class(self, pos: int) -> tuple[Expr, int]:
        text, n = self.text, self.n
        p = pos + 1
        negated = text.startswith("^", p)
        if negated:
            p += 1
        pairs: list[tuple[int, int]] = []
        while True:
            if p >= n:
                raise self.error("unterminated character class: no closing ']'", pos)
            if text[p] == "]":
                p += 1
                break
            lo_at = p
            lo, p = self.class_char(p)
            if text.startswith("-", p) and p + 1 < n and text[p + 1] != "]":
                hi, p = self.class_char(p + 1)
                if lo > hi:
                    raise self.error(f"character range {_show(lo)}-{_show(hi)} is reversed "
                                     "(its start is above its end)", lo_at)
                pairs.append((lo, hi))
            else:
                pairs.append((lo, lo))
        spelled = text[pos:p]
        if not pairs:
            # llama.cpp reads [] and [^] as no symbol at all (the empty string): surely not what was meant.
            raise self.error(f"empty character class {spelled}", pos)
        intervals = normalize(pairs)
        if negated:
            intervals = complement(intervals)
        if not intervals:
            raise self.error(f"character class {spelled} matches no character", pos)
        return self.terminal(("class", intervals), spelled, Chars(intervals), pos), p

    def class_char(self, p: int) -> tuple[int, int]:
        if p >= self.n:
            raise self.error("unterminated character class: no closing ']'", p)
        c = self.text[p]
        if c == "\\":
            return self.escape(p)
        cp = ord(c)
        if 0xD800 <= cp <= 0xDFFF:
            raise self.surrogate(cp, p)
        return cp, p + 1

    def escape(self, p: int) -> tuple[int, int]:
        """The code point of the escape at `p` (a backslash) and the offset after it."""
        text = self.text
        e = text[p + 1] if p + 1 < self.n else ""
        if e in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[e], p + 2
        width = _HEX.get(e)
        if width is None:
            shown = "at the end of the input" if not e else repr("\\" + e)
            raise self.error(f"unknown escape {shown} (known: \\n \\r \\t \\\\ \\\" \\[ \\] \\- \\xNN \\uNNNN "
                             "\\UNNNNNNNN)", p)
        digits = text[p + 2:p + 2 + width]
        if len(digits) != width or not all(d in "0123456789abcdefABCDEF" for d in digits):
            raise self.error(f"escape \\{e} needs exactly {width} hex digits, found {digits!r}", p)
        cp = int(digits, 16)
        if cp > MAX_CODEPOINT:
            raise self.error(f"escape \\{e}{digits} is past U+10FFFF, the last code point", p)
        if 0xD800 <= cp <= 0xDFFF:
            raise self.surrogate(cp, p)
        return cp, p + 2 + width

    def surrogate(self, cp: int, p: int) -> GrammarError:
        return self.error(f"surrogate code point U+{cp:04X} is not a character (UTF-8 cannot encode it)", p)


def _show(cp: int) -> str:
    return repr(chr(cp)) if 0x20 < cp < 0x7F else f"U+{cp:04X}"
