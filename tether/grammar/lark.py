"""Lark grammars -> the grammar IR, read by Lark's own loader so every construct means what Lark means.

    >>> ir = lark_to_ir('start: NUMBER ("+" NUMBER)*\\n%import common.NUMBER\\n%ignore " "\\n')
    >>> sorted(ir.rules), sorted(ir.terminals)  # ['__start_star_0', 'start'], ['NUMBER', 'PLUS', '__IGNORE_0']

Lark's loader (`lark.load_grammar.load_grammar`, then `Grammar.compile`) expands imports, templates,
`%override`/`%extend`, `[...]`, `~` repeats and `"a".."z"` ranges (`{m,n}` is regex syntax only, as
in `/a{2,3}/`) and turns the EBNF into BNF: rules, one per alternative, each a list of rule and
terminal names, and terminals that are each one Python regex. This module maps that onto `GrammarIR`
one for one (Lark's names included, its `__start_star_0`-style helpers and `__ANON_0` terminals
too) and adds what the loader does not give: the line and column of each definition, found in the
source text; the checks `lark.Lark(..., parser="earley", lexer="dynamic_complete")` makes when it
builds its matcher (no zero-width terminal, every regex compiles), so that a grammar Lark refuses is
refused here too; and `Terminal.shortest` for lazy regexes, which Lark's `re.match` ends at their
first possible end. Tree shaping (`?rule`, `_rule`, `!rule`, `-> alias`) and priorities change the
parse tree Lark builds, not the language: they are dropped. Every failure is a
`tether.errors.GrammarError`, raised from Lark's exception where Lark raised one.
"""

from __future__ import annotations

import bisect
import os
import pkgutil
import re
import types
from dataclasses import dataclass, field
from typing import Iterable

from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError
from lark.lexer import PatternStr, TerminalDef
from lark.load_grammar import PackageResource, load_grammar
from lark.utils import get_regexp_width

try:  # re's own parser: re._parser from Python 3.11, sre_parse before
    import re._parser as _sre_parser
    from re._constants import MAX_REPEAT as _MAX_REPEAT, MIN_REPEAT as _MIN_REPEAT
except ImportError:  # pragma: no cover - Python 3.10
    import sre_parse as _sre_parser  # type: ignore[no-redef]
    from sre_constants import MAX_REPEAT as _MAX_REPEAT, MIN_REPEAT as _MIN_REPEAT  # type: ignore[no-redef]

from ..errors import GrammarError, InvalidPattern, Location, UnsupportedPattern
from .ir import Choice, GrammarIR, Rule, RuleRef, Sequence, Terminal, TerminalRef
from .regex import parse_regex

__all__ = ["lark_to_ir"]

# Lark writes each flag of a terminal as a scoped group `(?f:...)` (lexer.Pattern._get_flags) and its
# grammar allows the letters "imslux" after a regex, "i" after a string. Scoped and global flags mean
# the same over the whole pattern, so the tree is parsed with the global flag. "l" has no meaning:
# `(?l:...)` is no flag Python knows, so Lark's matcher cannot compile it; `_check_as_earley` refuses it
# before this table is read.
_FLAGS = {"i": re.IGNORECASE, "s": re.DOTALL, "m": re.MULTILINE, "x": re.VERBOSE, "u": re.UNICODE}

# A definition starts a line: `%override`/`%extend`, rule modifiers `?`/`!`, the name, template
# parameters, a priority, then the colon (Lark's own tokens RULE_MODIFIERS, RULE, TERMINAL, NUMBER).
_DEFINITION = re.compile(r"[ \t]*(?:%(override|extend)[ \t]+)?[?!]*(_?[A-Za-z][_A-Za-z0-9]*)[ \t]*"
                         r"(\{[^}\n]*\})?[ \t]*(?:\.[ \t]*[+-]?\d+)?[ \t]*:")
_STATEMENT = re.compile(r"[ \t]*%(ignore|declare|import)\b")
_NAME = re.compile(r"_?[A-Za-z][_A-Za-z0-9]*")
_LITERAL = re.compile(r'"(?:[^"\\\n]|\\.)*"i?|/(?:[^/\\\n]|\\.)+/[imslux]*')
_HELPER = re.compile(r"__(.+)_(?:star|plus|repeat_a\d+_b\d+(?:_opt)?)_\d+")


def lark_to_ir(text: str, start: str = "start", *, import_paths: list[str] | None = None,
               source_path: str | None = None) -> GrammarIR:
    """The grammar IR of a Lark grammar, whose language is what Lark's Earley parser accepts from `start`.

    `%import` looks in `import_paths` first, then (for a relative `%import .other.NAME`) in the folder
    of `source_path`, the grammar's file, then among the grammars Lark ships (common, lark, python,
    unicode). Without `source_path`, Lark starts relative imports from the running script's folder
    (or the working directory). Raises `GrammarError` for everything Lark refuses, for a
    `%declare`d terminal the start rule reaches (it has no pattern to generate), for a terminal regex
    outside the regular subset, and for rules that derive no string.
    """
    if not isinstance(text, str):
        raise TypeError(f"a Lark grammar is text, got {type(text).__name__}")
    name = source_path or "<string>"  # what lark.Lark passes when the grammar is not from a file
    sites = _Sites(text)
    try:
        grammar, used_files = load_grammar(text, name, list(import_paths or []), False)
        lark_terminals, lark_rules, ignore = grammar.compile([start], set())
    except Exception as e:  # noqa: BLE001 - Lark raises its own errors and also OSError, re.error, AssertionError
        raise _lark_failure(e, text, name, sites) from e

    alternatives: dict[str, list[list]] = {}
    for lark_rule in lark_rules:
        alternatives.setdefault(str(lark_rule.origin.name), []).append(lark_rule.expansion)
    if start not in alternatives:  # Lark's GrammarAnalyzer: "Using an undefined rule"
        raise _unknown_start(start, grammar, text)
    _check_as_earley(lark_terminals, text, sites)

    # Only what the start rule reaches: Lark keeps unused rules that use each other, and those may
    # name `%declare`d terminals, which have no pattern and so no IR terminal.
    reachable, todo = {start}, [start]
    while todo:
        for expansion in alternatives[todo.pop()]:
            for sym in expansion:
                if not sym.is_term and sym.name not in reachable:
                    reachable.add(str(sym.name))
                    todo.append(str(sym.name))

    # Lark's names are often its Token objects (a str subclass): the IR holds plain strings.
    by_name = {str(t.name): t for t in lark_terminals}
    used_by: dict[str, str] = {}  # terminal -> the first reachable rule that uses it
    rules: dict[str, Rule] = {}
    for origin, expansions in alternatives.items():
        if origin not in reachable:
            continue
        where = sites.rule_location(origin)
        options = []
        for expansion in expansions:
            items = []
            for sym in expansion:
                if sym.is_term:
                    used_by.setdefault(str(sym.name), origin)
                    items.append(TerminalRef(str(sym.name), where))
                else:
                    items.append(RuleRef(str(sym.name), where))
            options.append(Sequence(tuple(items), where))
        rules[origin] = Rule(origin, Choice(tuple(options), where), where)

    ignore = list(dict.fromkeys(map(str, ignore)))  # `%ignore WS` twice ignores it once
    imports = _Imports(used_files)
    for term_name in [*used_by, *ignore]:
        if term_name not in by_name:  # the loader checked every name is defined: this one has no pattern
            raise _declared(term_name, used_by.get(term_name), text, sites, imports)
    terminals = {n: _terminal(by_name[n], text, sites, imports) for n in dict.fromkeys([*used_by, *ignore])}
    return GrammarIR(rules, terminals, start, tuple(ignore), source=text,
                     name=os.path.splitext(os.path.basename(source_path))[0] if source_path else "grammar")


# ---------------------------------------------------------------- terminals

def _check_as_earley(lark_terminals: list[TerminalDef], text: str, sites: "_Sites") -> None:
    """What `lark.Lark(parser="earley", lexer="dynamic_complete")` checks beyond the loader, on the same
    terminals (those the compiled rules use, and the ignored ones): parser_frontends.EarleyRegexpMatcher
    refuses a regex `sre_parse` cannot measure and one that can match the empty string, then `re`
    compiles each (and a failure there escapes Lark as `re.error`)."""
    for t in lark_terminals:
        if "l" in t.pattern.flags:  # Lark's grammar accepts the letter; its matcher cannot compile (?l:...)
            raise GrammarError(f"terminal {str(t.name)!r} ({_spelling(t, sites, None)}) uses the regex flag 'l', "
                               f"which Python does not know (Lark writes it as (?l:...), which its matcher "
                               f"cannot compile)", source=text, location=sites.terminal_location(t))
        regexp = t.pattern.to_regexp()
        try:
            min_width = get_regexp_width(regexp)[0]
            re.compile(regexp)
        except Exception as e:  # noqa: BLE001 - ValueError, re.error, or the `regex` module's error
            raise GrammarError(f"terminal {str(t.name)!r} ({_spelling(t, sites, None)}) is a regex Python cannot "
                               f"compile: {e}", source=text, location=sites.terminal_location(t)) from e
        if min_width == 0:
            where, spelled = sites.terminal_location(t), _spelling(t, sites, None)
            raise GrammarError(f"terminal {str(t.name)!r} ({spelled}) can match the empty string, which Lark's "
                               f"Earley dynamic lexer refuses (\"Dynamic Earley doesn't allow zero-width "
                               f"regexps\"): make it match at least one character and use it optionally "
                               f"in the rules", source=text, location=where)


def _terminal(t: TerminalDef, text: str, sites: "_Sites", imports: "_Imports") -> Terminal:
    where = sites.terminal_location(t)
    spelled = _spelling(t, sites, imports)
    pattern = t.pattern
    flags = 0
    for letter in pattern.flags:
        flags |= _FLAGS[letter]
    # A literal is its text escaped, as PatternStr.to_regexp writes it; a regex is Python's, as is.
    value = re.escape(pattern.value) if isinstance(pattern, PatternStr) else pattern.value
    try:
        tree = parse_regex(value, flags, lookaheads="refuse")
    except (InvalidPattern, UnsupportedPattern) as e:
        raise GrammarError(f"terminal {str(t.name)!r} ({spelled}) cannot be compiled: {e.reason}",
                           source=text, location=where) from e
    return Terminal(str(t.name), tree, where, spelled, shortest=_lazy(pattern.to_regexp()))


def _lazy(regexp: str) -> bool:
    """Whether the regex ends at its first possible end under `re.match`: it has lazy quantifiers
    (`*?`, `+?`, `??`, `{m,n}?`) and no greedy one of variable count, read by `re`'s own parser.

    Lark's dynamic lexer takes `re.match` at a position and, with dynamic_complete, the first match of
    each prefix of that match: never a longer full match. For a lazy regex such as common.lark's
    ESCAPED_STRING (`".*?(?<!\\\\)(\\\\\\\\)*?"`) that is its shortest match, so `"a"b"` is never one
    string, and `Terminal.shortest` says exactly that. A greedy repeat makes the first match long and
    its prefixes' matches fill in the shorter ends (`/[a-z]+?[0-9]+/` on "ab12" gives "ab12" and
    "ab1", every full match): those keep the full-match language.
    """
    lazy = False
    todo: list[object] = [_sre_parser.parse(regexp)]
    while todo:
        item = todo.pop()
        if isinstance(item, _sre_parser.SubPattern):
            todo.extend(item.data)
        elif isinstance(item, (tuple, list)):
            if item and item[0] is _MIN_REPEAT:
                lazy = True
            elif item and item[0] is _MAX_REPEAT and item[1][0] != item[1][1]:
                return False
            todo.extend(item)
    return lazy


def _spelling(t: TerminalDef, sites: "_Sites", imports: "_Imports | None") -> str:
    """How the source spelled the terminal: the literal itself, the definition's body, or the regex."""
    if t.pattern.raw:
        return t.pattern.raw
    body = sites.body(str(t.name))
    if body is None and imports is not None:
        body = imports.body(str(t.name))
    return body if body else f"/{t.pattern.to_regexp()}/"


class _Imports:
    """The grammars Lark read for `%import`, scanned on first need (for spellings and `%declare` sites)."""

    def __init__(self, used_files: dict):
        self._paths = list(used_files)
        self._sites: list[tuple[object, _Sites]] | None = None

    def _scanned(self) -> list[tuple[object, "_Sites"]]:
        if self._sites is None:
            self._sites = [(path, _Sites(source)) for path in self._paths if (source := _read(path)) is not None]
        return self._sites

    def body(self, name: str) -> str | None:
        """The body of `name`'s definition in an imported grammar (under its own or its unmangled name)."""
        for _path, sites in self._scanned():
            for candidate in _unmangled(name):
                body = sites.body(candidate)
                if body:
                    return body
        return None

    def declared(self, name: str) -> str | None:
        """Where an imported grammar declares `name`: "<file> line <n>"."""
        for path, sites in self._scanned():
            for candidate in _unmangled(name):
                if candidate in sites.declared:
                    return f"{_display(path)} line {sites.declared[candidate][0]}"
        return None


# ---------------------------------------------------------------- source positions

@dataclass
class _Definition:
    name: str
    line: int
    column: int
    kind: str  # "define", "override" or "extend"
    start: int  # offsets of the body: after the colon, to the end of its last line
    end: int


@dataclass
class _Sites:
    """Where each definition and statement of one grammar text is (Lark's compiled rules carry no positions).

    A line starts a definition when it reads as one: Lark's grammar puts each on its own line, and
    the lines of its alternatives start with `|` (or follow a line ending in a backslash).
    """

    text: str
    definitions: dict[str, list[_Definition]] = field(default_factory=dict)
    declared: dict[str, tuple[int, int]] = field(default_factory=dict)
    ignores: list[tuple[int, int]] = field(default_factory=list)
    imports: list[tuple[int, int, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._literals: dict[str, int] | None = None
        self._line_starts = [0] + [m.end() for m in re.finditer(r"\n", self.text)]
        lines = self.text.split("\n")
        offset = 0
        current: _Definition | None = None
        backslash = False  # the last line of `current` ends in a backslash: the next line goes on
        for number, line in enumerate(lines, start=1):
            stripped = _without_comment(line).strip()
            m = _DEFINITION.match(line)
            continued = current is not None and (stripped.startswith("|") or not stripped or backslash)
            if m and not continued:
                kind = m.group(1) or "define"
                current = _Definition(m.group(2), number, m.start(2) + 1, kind, offset + m.end(),
                                      offset + len(line))
                self.definitions.setdefault(current.name, []).append(current)
                backslash = stripped.endswith("\\")
            elif continued and stripped:
                current.end = offset + len(line)
                backslash = stripped.endswith("\\")
            elif not continued:
                current = None
                s = _STATEMENT.match(line)
                column = line.find("%") + 1
                if s and s.group(1) == "ignore":
                    self.ignores.append((number, column))
                elif s and s.group(1) == "declare":
                    rest = _without_comment(line[s.end():])
                    for n in _NAME.finditer(rest):
                        self.declared.setdefault(n.group(), (number, s.end() + n.start() + 1))
                elif s:
                    self.imports.append((number, column, _without_comment(line[s.end():]).strip()))
            offset += len(line) + 1

    def position(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self._line_starts, offset)
        return line, offset - self._line_starts[line - 1] + 1

    def compiled(self, name: str) -> _Definition | None:
        """The definition Lark compiles: the last `%override`, else the first plain definition."""
        defs = self.definitions.get(name, ())
        for d in reversed(defs):
            if d.kind == "override":
                return d
        for d in defs:
            if d.kind == "define":
                return d
        return defs[0] if defs else None  # only `%extend`s here: the rule itself was imported

    def location(self, name: str, rule: str | None = None) -> Location | None:
        d = self.compiled(name)
        return Location(line=d.line, column=d.column, rule=str(rule or name)) if d else None

    def named_location(self, name: str) -> Location:
        """A definition's location, or an `__IGNORE_<n>` terminal's %ignore statement, or just the name."""
        found = self.location(name)
        if found is None and name.startswith("__IGNORE_") and name[9:].isdigit() and int(name[9:]) < len(self.ignores):
            line, column = self.ignores[int(name[9:])]
            found = Location(line=line, column=column, rule=name)
        return found or Location(rule=name)

    def import_location(self, dotted: str) -> Location | None:
        """The %import statement that names the grammar `dotted` (e.g. "common" or ".grammars.ab")."""
        for line, column, statement in self.imports:
            if dotted.strip(".") and dotted.strip(".") in statement.replace(" ", ""):
                return Location(line=line, column=column)
        return None

    def rule_location(self, name: str) -> Location:
        """Where a compiled rule comes from: EBNF helpers (`__<rule>_star_0`, load_grammar.EBNF_to_BNF)
        and template instances (`template{args}`) are placed at the definition that made them."""
        helper = _HELPER.fullmatch(name)
        base = helper.group(1) if helper else name
        found = self.location(base.split("{", 1)[0], name)
        return found or Location(rule=name)

    def terminal_location(self, t: TerminalDef) -> Location:
        found = self.named_location(str(t.name))
        raw = t.pattern.raw
        if found.line is None and raw:  # an anonymous terminal ("if", /[0-9]+/ in a rule): where first written
            at = self.first_literal(raw)
            if at >= 0:
                line, column = self.position(at)
                return Location(line=line, column=column, rule=str(t.name))
        return found

    def first_literal(self, raw: str) -> int:
        """The offset where a string or regex literal is first written (-1 if nowhere): one scan of
        the text for all literals, so a grammar of 20,000 literals is not 20,000 searches."""
        if self._literals is None:
            self._literals = {}
            for m in _LITERAL.finditer(self.text):
                self._literals.setdefault(m.group(0), m.start())
        at = self._literals.get(raw)
        return self.text.find(raw) if at is None else at

    def body(self, name: str) -> str | None:
        d = self.compiled(name)
        if d is None:
            return None
        lines = [_without_comment(line).strip() for line in self.text[d.start:d.end].split("\n")]
        return " ".join(line.rstrip("\\").strip() for line in lines if line) or None

    def use(self, symbol: str, in_definition: str) -> Location | None:
        """Where `symbol` is first written in the body of `in_definition`."""
        defs = self.definitions.get(in_definition, ())
        pattern = re.compile(r"(?<![_A-Za-z0-9])" + re.escape(symbol) + r"(?![_A-Za-z0-9])")
        for d in defs:
            m = pattern.search(self.text, d.start, d.end)
            if m:
                line, column = self.position(m.start())
                return Location(line=line, column=column, rule=in_definition)
        return self.location(in_definition)

    def enclosing(self, line: int) -> str | None:
        for defs in self.definitions.values():
            for d in defs:
                if d.line <= line <= self.position(max(d.end - 1, d.start))[0]:
                    return d.name
        return None


def _without_comment(line: str) -> str:
    """The line up to a `//` or `#` comment outside strings and regexes (Lark's COMMENT token)."""
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c == '"' or (c == "/" and line[i + 1:i + 2] != "/"):
            i += 1
            while i < n and line[i] != c:
                i += 2 if line[i] == "\\" else 1
        elif c == "#" or c == "/":
            return line[:i]
        i += 1
    return line


def _read(path: object) -> str | None:
    try:
        if isinstance(path, PackageResource):
            data = pkgutil.get_data(path.pkg_name, path.path)
            return data.decode("utf-8") if data is not None else None
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError, TypeError):
        return None


def _unmangled(name: str) -> list[str]:
    """`name` and the name it had in the grammar it was imported from: importing prefixes a
    namespace, `python__name` or `_python__NAME` (load_grammar._get_mangle)."""
    if "__" not in name.lstrip("_"):
        return [name]
    tail = name.rsplit("__", 1)[1]
    return [name, "_" + tail if name.startswith("_") else tail]


def _display(path: object) -> str:
    return path.path if isinstance(path, PackageResource) else str(path)


# ---------------------------------------------------------------- errors

def _declared(term: str, user: str | None, text: str, sites: _Sites, imports: _Imports) -> GrammarError:
    use = f"rule {user!r} uses it" if user else "it is ignored with %ignore"
    if term in sites.declared:
        line, column = sites.declared[term]
        return GrammarError(f"terminal {term!r} is declared with %declare: it has no pattern, so it cannot be "
                            f"generated ({use})", source=text,
                            location=Location(line=line, column=column, rule=term))
    found = imports.declared(term)
    where = f" in {found}" if found else ""
    return GrammarError(f"terminal {term!r} is declared with %declare{where}: it has no pattern, so it cannot "
                        f"be generated ({use})", source=text, location=Location(rule=term))


def _unknown_start(start: str, grammar, text: str) -> GrammarError:
    templates = {name for name, params, _tree, _options in grammar.rule_defs if params}
    terminals = {name for name, _ in grammar.term_defs}
    if start in templates:
        why = "it is a template, which only its uses with arguments instantiate"
    elif start in terminals:
        why = "it is a terminal; the start must be a rule"
    else:
        why = "no rule has this name"
    return GrammarError(f"the start rule {start!r} is not defined: {why}", source=text,
                        location=Location(rule=start))


# Lark's messages that name the definition at fault (load_grammar.GrammarBuilder and Grammar.compile).
_NAMED = [re.compile(p) for p in (
    r"\(in (?:rule|terminal|template) (?P<r>[^\s()]+)\)",
    r"(?:Rule|Terminal) '(?P<r>[^']+)' defined more than once",
    r"nonexisting (?:rule|terminal) (?P<r>\S+)",
    r"extend (?:rule|terminal) (?P<r>\S+)",
    r"\(Error at (?P<r>[^)]+)\)",
    r"Terminals cannot be empty \((?P<r>[^)]+)\)",
    r"Rule (?P<r>\S+) is marked for expansion",
    r" in (?P<r>_*[A-Za-z][_A-Za-z0-9]*)\)",
    r"<(?P<r>\S+) :",
    r"Cannot import '(?P<r>[^']+)'",
)]
_UNDEFINED = re.compile(r"^(?:Rule|Terminal) '(?P<sym>[^']+)' used but not defined \(in (?:rule|terminal) "
                        r"(?P<r>[^)]+)\)$")
_IMPORTED_GRAMMAR = re.compile(r"(?:grammar `(?P<a>[^`]+)`|from '(?P<b>[^']+)\.lark')")

# The tokens of Lark's own grammar (load_grammar.TERMINALS), as a syntax error names what it expected.
_TOKEN_WORDS = {
    "_LPAR": '"("', "_RPAR": '")"', "_LBRA": '"["', "_RBRA": '"]"', "_LBRACE": '"{"', "_RBRACE": '"}"',
    "_COLON": '":"', "_COMMA": '","', "_OR": '"|"', "_DOT": '"."', "_DOTDOT": '".."', "TILDE": '"~"',
    "_TO": '"->"', "OP": "an operator (+ * ?)", "RULE": "a rule name", "TERMINAL": "a terminal name",
    "STRING": "a string", "REGEXP": "a regex", "NUMBER": "a number", "_NL": "the end of the line",
    "_NL_OR": '"|" on a new line', "RULE_MODIFIERS": "? or !", "$END": "the end of the grammar",
    "_IGNORE": "%ignore", "_IMPORT": "%import", "_DECLARE": "%declare", "_OVERRIDE": "%override",
    "_EXTEND": "%extend",
}


def _lark_failure(error: Exception, text: str, name: str, sites: _Sites) -> GrammarError:
    """The GrammarError for an exception Lark's loader raised, with the best location we can find."""
    frames = _frames(error)
    cause = error.orig_exc if isinstance(error, VisitError) else error
    # The grammar being read when it failed: a syntax error in an imported file has that file's lines.
    files = [f.f_locals.get("grammar_name") for f in frames
             if f.f_code.co_name == "load_grammar" and "grammar_name" in f.f_locals]
    in_file = files[-1] if files else name
    imported = in_file != name
    elsewhere = f" (in the imported grammar {_display(in_file)})" if imported else ""

    syntax = cause if isinstance(cause, UnexpectedInput) else cause.__context__
    if isinstance(syntax, UnexpectedInput):
        reason = f"syntax error: {_syntax_reason(cause, syntax)}{elsewhere}"
        if imported:
            return GrammarError(reason + f" at line {syntax.line}, column {syntax.column}", source=text)
        return GrammarError(reason, source=text, location=Location(
            line=syntax.line, column=syntax.column, rule=sites.enclosing(syntax.line)))

    if isinstance(cause, OSError):  # do_import found no file: it re-opens the path to raise this
        missing = getattr(cause, "filename", None) or str(cause)
        dotted = os.path.splitext(str(missing))[0].replace(os.sep, ".").replace("/", ".")
        return GrammarError(f"%import cannot find the grammar {dotted!r} ({missing}): it is looked up in "
                            f"import_paths, then next to the importing grammar (source_path), then among "
                            f"the grammars Lark ships{elsewhere}", source=text,
                            location=None if imported else sites.import_location(dotted))

    if isinstance(cause, RecursionError):  # Lark's transformers recurse once per nesting level
        return GrammarError("Lark's loader ran out of Python's recursion depth reading the grammar: it nests "
                            "too deep (flatten it, or raise sys.setrecursionlimit)", source=text)

    declared_rules = [n for n in sites.declared if not n.lstrip("_")[:1].isupper()]
    if declared_rules and isinstance(cause, AttributeError) and not imported:
        # Grammar.compile deep-copies every rule's tree, and a %declare'd rule has none.
        line, column = sites.declared[declared_rules[0]]
        return GrammarError(f"rule {declared_rules[0]!r} is declared with %declare, which Lark allows only for "
                            f"terminals (it cannot compile the grammar: {cause})", source=text,
                            location=Location(line=line, column=column, rule=declared_rules[0]))

    message = " ".join(str(cause).split())
    if type(cause).__module__ != "lark.exceptions":  # AssertionError, KeyError, ... from inside Lark
        message = f"{type(cause).__name__}{': ' + message if message and message != type(cause).__name__ else ''}"
    if isinstance(error, VisitError):
        message += f" (while reading {error.rule!r}" + (
            ": a range needs one character on each side, as in \"a\"..\"z\")" if error.rule == "range" else ")")
    undefined = _UNDEFINED.match(message)
    if undefined and not imported:
        sym, rule = undefined.group("sym"), undefined.group("r")
        kind = "terminal" if sym.lstrip("_")[:1].isupper() else "rule"
        return GrammarError(f"{kind} {sym!r} is used but not defined", source=text,
                            location=sites.use(sym, rule) or Location(rule=rule))
    location = None if imported else _message_location(message, error, frames, sites)
    return GrammarError(f"Lark refuses the grammar: {message}{elsewhere}", source=text, location=location)


def _syntax_reason(cause: Exception, syntax: UnexpectedInput) -> str:
    if isinstance(syntax, UnexpectedCharacters):
        return f"unexpected character {syntax.char!r}"
    # Lark matches its syntax errors against examples (load_grammar.GRAMMAR_ERRORS) for a better message.
    what = re.sub(r",? at line \d+ column \d+.*$", "", str(cause).split("\n", 1)[0])
    if isinstance(cause, UnexpectedToken) or what.startswith("Unexpected"):
        token = getattr(syntax, "token", None)
        what = "unexpected end of line" if token is not None and not str(token).strip() else \
            f"unexpected {str(token)!r}" if token is not None else "unexpected end of the grammar"
        expected = sorted({_TOKEN_WORDS.get(e, e) for e in getattr(syntax, "expected", ()) or ()})
        if expected:
            what += f" (expected {' or '.join(expected)})"
    return what


def _message_location(message: str, error: Exception, frames: list[types.FrameType], sites: _Sites
                      ) -> Location | None:
    """Where the definition a Lark message names is, else what Lark was reading when it raised."""
    for pattern in _NAMED:
        m = pattern.search(message)
        if m:
            named = m.group("r").strip("'\"")
            defs = sites.definitions.get(named, [])
            if "defined more than once" in message and len(defs) > 1:
                return Location(line=defs[1].line, column=defs[1].column, rule=named)
            return sites.named_location(named)
    m = _IMPORTED_GRAMMAR.search(message)
    if m:
        return sites.import_location((m.group("a") or m.group("b")).replace("/", "."))
    if isinstance(error, VisitError):  # the tree Lark was transforming holds tokens with positions
        token = _first_token(error.obj)
        if token is not None and getattr(token, "line", None) is not None:
            return Location(line=token.line, column=token.column, rule=sites.enclosing(token.line))
    return _frame_location(frames, sites)


def _first_token(obj: object) -> object | None:
    todo = [obj]
    while todo:
        node = todo.pop()
        if isinstance(node, str):
            return node
        todo.extend(reversed(getattr(node, "children", ())))
    return None


def _frames(error: BaseException) -> list[types.FrameType]:
    """The frames of the traceback from the call into Lark down to where it raised (outermost first)."""
    frames, tb = [], error.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    return frames


def _frame_location(frames: Iterable[types.FrameType], sites: _Sites) -> Location | None:
    """A last resort for Lark messages that name nothing: the definition Grammar.compile was working
    on (its loop variable `name`) when it raised."""
    for frame in reversed(list(frames)):
        named = frame.f_locals.get("name")
        if frame.f_code.co_filename.endswith("load_grammar.py") and isinstance(named, str) \
                and re.fullmatch(r"_*[A-Za-z][_A-Za-z0-9]*(\{.*\})?", named):
            return sites.named_location(str(named))
    return None
