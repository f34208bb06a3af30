"""The SQLite SELECT grammar as IR: `sqlite.lark`, its placeholders filled, whitespace inserted.

    >>> ir = sqlite_ir(catalog_of(sqlite3.connect(":memory:")))
    >>> sorted(ir.terminals)[:3]

`sqlite.lark` is written without whitespace. Between every two symbols of every rule, this
module inserts a separator: required (`WS`: blanks or comments) where the left side may end and
the right side may begin with a word character (`SELECT name`, `name FROM`), optional (`OWS`)
where one side cannot (`count(*)`, `a=1`, `'x'AND`). SQLite reads `SELECTname` as one word, so
this is what keeps two words apart; it is stricter than SQLite only where a symbol may end in a
word character or not (`(a)AND b` needs a blank before `AND`).

Identifiers are one terminal: a bare word that is no keyword, or a quoted name (`"x"`, `` `x` ``,
`[x]`). Which names a database has is not the grammar's business: `tether.grammar.sql.scope`
checks them against the schema. Function names come from the SQLite library that will run the
query (`PRAGMA function_list`), each under the placeholder of its argument counts, so that the
grammar cannot call an unknown function or pass a wrong number of arguments.
"""

from __future__ import annotations

import functools
import pkgutil
import re
from dataclasses import dataclass

from ...errors import GrammarError
from ..ir import Choice, GrammarIR, Rule, RuleRef, Sequence, Terminal, TerminalRef
from ..regex import Alternation, Chars, Complement, Concat, Intersect, RegexNode, Repeat, parse_regex

__all__ = ["sqlite_ir", "KEYWORDS", "GRAMMAR_KEYWORDS", "RESERVED", "FALLBACK_KEYWORDS", "TABLE_KEYWORDS", "FUNCTIONS", "Catalog", "WORD_CHARS"]

# Characters of a bare word (SQLite also takes any non-ASCII character; this grammar does not).
WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$")

# SQLite's keywords (https://sqlite.org/lang_keywords.html).
KEYWORDS = frozenset("""
abort action add after all alter always analyze and as asc attach autoincrement before begin
between by cascade case cast check collate column commit conflict constraint create cross
current current_date current_time current_timestamp database default deferrable deferred delete
desc detach distinct do drop each else end escape except exclude exclusive exists explain fail
filter first following for foreign from full generated glob group groups having if ignore
immediate in index indexed initially inner insert instead intersect into is isnull join key last
left like limit match materialized natural no not nothing notnull null nulls of offset on or
order others outer over partition plan pragma preceding primary query raise range recursive
references regexp reindex release rename replace restrict returning right rollback row rows
savepoint select set table temp temporary then ties to transaction trigger unbounded union unique
update using vacuum values view virtual when where window with without true false
""".split())
# The keywords SQLite's parser also takes as a name (it falls back to an identifier) wherever this
# grammar puts one: a table, column, alias or qualifier (tests/test_sql.py asks the library).
FALLBACK_KEYWORDS = frozenset("""
abort action after always analyze asc attach before begin by cascade column conflict current
database deferred desc detach do each end exclude exclusive explain fail false filter first
following for generated glob groups if ignore immediate initially instead key last like match
materialized no nulls of offset others over partition plan pragma preceding query range recursive
regexp reindex release rename replace restrict rollback row rows savepoint temp temporary ties
trigger true unbounded vacuum view virtual window without
""".split())  # not WITH: `(WITH` opens a subquery, so SQLite refuses `(with)` as a name
RESERVED = KEYWORDS - FALLBACK_KEYWORDS
# Reserved words that SQLite still takes as a table's name after FROM, JOIN or IN (Spider's
# imdb database has a table named `cast`).
TABLE_KEYWORDS = frozenset(("cast", "raise", "indexed"))

# The keywords sqlite.lark spells (tests/test_sql.py checks the list against the grammar).
GRAMMAR_KEYWORDS = frozenset("""
all and as asc between by case cast collate count cross current current_date current_time
current_timestamp desc distinct else end escape except exclude exists false filter first following
from full glob group groups having in inner intersect is isnull join last left like limit match
materialized natural no not notnull null nulls offset on or order others outer over partition
preceding range recursive regexp right row rows select then ties true unbounded union using values
when where window with
""".split())

# The functions this grammar can call, by kind and argument counts ("n": any number more).
# Kept to SQLite's documented core, date and math functions; each is offered only where the
# SQLite library lists it (`PRAGMA function_list`). `count` has a rule of its own.
FUNCTIONS: dict[str, tuple[str, str]] = {
    **{name: ("scalar", "1") for name in (
        "abs hex length lower upper quote randomblob sign typeof unicode zeroblob likely unlikely "
        "ceil ceiling floor ln log10 log2 sqrt exp degrees radians sin cos tan asin acos atan "
        "sinh cosh tanh asinh acosh atanh trunc").split()},
    **{name: ("scalar", "0") for name in "random changes total_changes last_insert_rowid pi".split()},
    **{name: ("scalar", "2") for name in "glob ifnull instr nullif likelihood mod pow power atan2".split()},
    **{name: ("scalar", "3") for name in "iif replace".split()},
    **{name: ("scalar", "1-2") for name in "ltrim rtrim trim round log".split()},
    **{name: ("scalar", "2-3") for name in "substr substring like".split()},
    **{name: ("scalar", "n") for name in "date time datetime julianday unixepoch".split()},
    **{name: ("scalar", "1-n") for name in "printf format strftime char".split()},
    **{name: ("scalar", "2-n") for name in "coalesce max min".split()},
    **{name: ("aggregate", "1") for name in "avg sum total max min".split()},
    **{name: ("aggregate", "1-2") for name in "group_concat".split()},
    **{name: ("window", "0") for name in "row_number rank dense_rank percent_rank cume_dist".split()},
    **{name: ("window", "1") for name in "ntile first_value last_value".split()},
    **{name: ("window", "1-3") for name in "lag lead".split()},
    **{name: ("window", "2") for name in "nth_value".split()},
}
AGGREGATES = frozenset(n for n, (kind, _) in FUNCTIONS.items() if kind == "aggregate") | {"count"}
WINDOWS = frozenset(n for n, (kind, _) in FUNCTIONS.items() if kind == "window")

_PLACEHOLDER = {
    ("scalar", "0"): "FUNCTION_0", ("scalar", "1"): "FUNCTION_1", ("scalar", "2"): "FUNCTION_2",
    ("scalar", "3"): "FUNCTION_3", ("scalar", "1-2"): "FUNCTION_1_2", ("scalar", "2-3"): "FUNCTION_2_3",
    ("scalar", "n"): "FUNCTION_N", ("scalar", "1-n"): "FUNCTION_1_N", ("scalar", "2-n"): "FUNCTION_2_N",
    ("aggregate", "1"): "AGGREGATE_1", ("aggregate", "1-2"): "AGGREGATE_1_2",
    ("window", "0"): "WINDOW_0", ("window", "1"): "WINDOW_1", ("window", "1-3"): "WINDOW_1_3",
    ("window", "2"): "WINDOW_2",
}
_IDENTIFIER_PLACEHOLDERS = ("CTE_NAME", "COLUMN_DEF", "QUALIFIER", "TABLE", "TABLE_ALIAS",
                            "COLUMN", "WINDOW_NAME", "TYPE_WORD")
COLLATIONS = ("binary", "nocase", "rtrim")


_KEYWORD_TEXT = re.compile(r'"([A-Za-z_]+)"i')


@dataclass(frozen=True)
class Catalog:
    """What the SQLite library offers: the functions of FUNCTIONS it lists, by name, and which
    of the operators that call a function of their own (REGEXP, MATCH) it has one for."""

    functions: frozenset[str]
    operators: frozenset[str] = frozenset()


def _ci(word: str) -> RegexNode:
    """`word` in any letter case."""
    return Concat(tuple(Chars(((ord(c.upper()), ord(c.upper())), (ord(c.lower()), ord(c.lower()))))
                        if c.isalpha() else Chars(((ord(c), ord(c)),)) for c in word))


def _words(words) -> RegexNode:
    return Alternation(tuple(_ci(w) for w in sorted(words)))


@functools.lru_cache(maxsize=1)
def _identifier() -> RegexNode:
    bare = Intersect((parse_regex(r"[A-Za-z_][A-Za-z0-9_$]*"), Complement(_words(RESERVED))))
    quoted = parse_regex(r'"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\]')
    return Alternation((bare, quoted))


@functools.lru_cache(maxsize=1)
def _base() -> GrammarIR:
    from ..lark import lark_to_ir

    text = pkgutil.get_data(__name__, "sqlite.lark").decode()
    return lark_to_ir(text, source_path="tether/grammar/sql/sqlite.lark")


def sqlite_ir(catalog: Catalog) -> GrammarIR:
    """The grammar of SQLite SELECT statements whose functions are those of `catalog`."""
    base = _base()
    terminals = dict(base.terminals)
    ident = _identifier()
    for name in _IDENTIFIER_PLACEHOLDERS:
        terminals[name] = Terminal(name, ident, text="an identifier")
    terminals["TABLE"] = Terminal("TABLE", Alternation((ident, _words(TABLE_KEYWORDS))), text="a table name")
    # An alias without AS is no keyword at all: after an expression SQLite reads one as an operator.
    bare = Intersect((parse_regex(r"[A-Za-z_][A-Za-z0-9_$]*"), Complement(_words(KEYWORDS))))
    quoted = parse_regex(r'"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\]')
    terminals["BARE_ALIAS"] = Terminal("BARE_ALIAS", Alternation((bare, quoted)), text="an alias")
    string = base.terminals["STRING"].regex
    terminals["COLUMN_ALIAS"] = Terminal("COLUMN_ALIAS", Alternation((ident, string)), text="a column alias")
    terminals["COLLATION"] = Terminal("COLLATION", _words(COLLATIONS), text="a collation")
    groups: dict[str, list[str]] = {p: [] for p in _PLACEHOLDER.values()}
    for fn, sig in FUNCTIONS.items():
        if fn in catalog.functions:
            groups[_PLACEHOLDER[sig]].append(fn)
    rules = dict(base.rules)
    for placeholder, names in groups.items():
        if names:
            terminals[placeholder] = Terminal(placeholder, _words(names), text=" | ".join(sorted(names)))
        else:  # the library has none: drop the alternatives that call one
            del terminals[placeholder]
            rules = {n: _without_terminal(r, placeholder) for n, r in rules.items()}
    for name, t in list(terminals.items()):  # keywords: ASCII letters in any case, as SQLite reads
        m = _KEYWORD_TEXT.fullmatch(t.text or "")  # them (Python's IGNORECASE also takes "ſ" for s)
        if m:
            terminals[name] = Terminal(name, _ci(m.group(1)), t.where, t.text)
    for operator in ("regexp", "match"):  # without the function, SQLite refuses the operator
        if operator not in catalog.operators:
            rules = {n: _without_terminal(r, operator.upper()) for n, r in rules.items()}
    ws, ows = "WS", "OWS"
    terminals[ws] = Terminal(ws, _BLANKS, text="whitespace")
    terminals[ows] = Terminal(ows, Repeat(_BLANKS, 0, 1), text="optional whitespace")
    starts, ends = _edges(rules, terminals)
    rules, terminals = _spaced(rules, terminals, starts, ends)
    # Blanks and comments may open the statement and close it (a last line comment without a
    # newline), unless it ends with ";": then the text ends there, so a model that wrote the
    # query stops instead of rambling on in comments.
    entry = [RuleRef(_variant(base.start, c)) for c in (_W, _N) if _variant(base.start, c) in rules]
    end = Choice((Sequence((TerminalRef(ows), TerminalRef("END"))), TerminalRef("TAIL")))
    rules["__sql"] = Rule("__sql", Sequence((TerminalRef(ows), Choice(tuple(entry)), end)))
    terminals["END"] = Terminal("END", parse_regex(";"), text="';'")
    terminals["TAIL"] = Terminal("TAIL", Concat((Repeat(_BLANKS, 0, 1), Repeat(parse_regex(r"--[^\n]*"), 0, 1))),
                                 text="trailing blanks and comments")
    used = {n for r in rules.values() for n in _terminal_names(r.body)}
    return GrammarIR(rules, {n: t for n, t in terminals.items() if n in used}, "__sql",
                     source="SQLite SELECT (tether/grammar/sql/sqlite.lark)", name="sqlite")


# Blanks and comments between two lexemes; at most MAX_BLANKS blank characters in a row (comments
# between runs are free), so that a model cannot loop on spaces.
MAX_BLANKS = 32
_RUN = rf"[ \t\r\n\f]{{1,{MAX_BLANKS}}}"
_COMMENT = r"(?:--[^\n]*\n|/\*(?:[^*]|\*+[^*/])*\*+/)"
_BLANKS = parse_regex(rf"{_RUN}(?:{_COMMENT}(?:{_RUN})?)*|(?:{_COMMENT}(?:{_RUN})?)+")


def _options(body) -> tuple:
    return body.options if isinstance(body, Choice) else (body,)


def _items(option) -> tuple:
    return option.items if isinstance(option, Sequence) else (option,)


def _without_terminal(rule: Rule, terminal: str) -> Rule:
    options = _options(rule.body)
    kept = tuple(o for o in options if not any(isinstance(i, TerminalRef) and i.name == terminal for i in _items(o)))
    if len(kept) == len(options):
        return rule
    if not kept:
        raise GrammarError(f"rule {rule.name!r} needs a function the SQLite library lacks ({terminal})")
    return Rule(rule.name, Choice(kept), rule.where)


def _terminal_names(body):
    from ..ir import walk_expr

    for node in walk_expr(body):
        if isinstance(node, TerminalRef):
            yield node.name


# -- which ends of a symbol can be word characters

_W, _N = 1, 2  # may begin (end) with a word character / with another


def _char_class(node: Chars) -> int:
    got = 0
    for lo, hi in node.intervals:
        for c in range(lo, min(hi, 127) + 1):
            got |= _W if chr(c) in WORD_CHARS else _N
            if got == _W | _N:
                return got
        if hi > 127:
            got |= _N
    return got


def _edge(node: RegexNode, last: bool) -> tuple[int, bool]:
    """(the classes of the first (last) character of the strings of `node`, whether "" is one)."""
    if isinstance(node, Chars):
        return _char_class(node), False
    if isinstance(node, Concat):
        got, parts = 0, reversed(node.parts) if last else node.parts
        for part in parts:
            c, empty = _edge(part, last)
            got |= c
            if not empty:
                return got, False
        return got, True
    if isinstance(node, Alternation):
        got, nullable = 0, False
        for option in node.options:
            c, empty = _edge(option, last)
            got, nullable = got | c, nullable or empty
        return got, nullable
    if isinstance(node, Repeat):
        c, empty = _edge(node.node, last)
        return c, empty or node.min == 0
    if isinstance(node, Intersect):
        return _edge(node.parts[0], last) if node.parts else (_W | _N, True)
    return _W | _N, True  # Complement, Assert: anything


def _edges(rules: dict[str, Rule], terminals: dict[str, Terminal]) -> tuple[dict, dict]:
    """First and last character classes of every rule and terminal (a fixpoint over the rules;
    the grammar has no empty rule, so a symbol's class is its first (last) symbol's)."""
    starts = {n: _edge(t.regex, False)[0] for n, t in terminals.items()}
    ends = {n: _edge(t.regex, True)[0] for n, t in terminals.items()}
    for name in rules:
        starts[name] = ends[name] = 0
    changed = True
    while changed:
        changed = False
        for name, rule in rules.items():
            s, e = starts[name], ends[name]
            for option in _options(rule.body):
                items = _items(option)
                if items:
                    s |= starts[items[0].name]
                    e |= ends[items[-1].name]
            if (s, e) != (starts[name], ends[name]):
                starts[name], ends[name], changed = s, e, True
    return starts, ends


def _variant(name: str, cls: int) -> str:
    return f"{name}@{'w' if cls == _W else 'n'}"


_STARTS_WITH = {_W: parse_regex(r"[A-Za-z0-9_$](?s:.)*"), _N: parse_regex(r"[^A-Za-z0-9_$](?s:.)*")}


def _spaced(rules: dict[str, Rule], terminals: dict[str, Terminal], starts: dict, ends: dict) -> tuple[dict, dict]:
    """Every rule and terminal split by the class of its first character (`name@w`, `name@n`), with
    separators between symbols: WS where the left symbol may end and the right one begins with a
    word character, OWS elsewhere. Splitting by the first character is what lets `DISTINCT(x)` and
    `IN(SELECT ...)` go without a blank while `DISTINCT x` needs one."""
    out_terminals = {}
    for name, t in terminals.items():
        for cls in (_W, _N):
            if starts[name] & cls:
                regex = t.regex if starts[name] == cls else Intersect((t.regex, _STARTS_WITH[cls]))
                out_terminals[_variant(name, cls)] = Terminal(_variant(name, cls), regex, t.where, t.text, t.shortest)
    out_terminals.update((n, terminals[n]) for n in ("WS", "OWS"))

    def ref(name: str, cls: int):
        v = _variant(name, cls)
        return TerminalRef(v) if name in terminals else RuleRef(v)

    def spaced_item(prev: str, item: str):
        options = [Sequence((TerminalRef("WS" if cls == _W and ends[prev] & _W else "OWS"), ref(item, cls)))
                   for cls in (_W, _N) if starts[item] & cls]
        return options[0] if len(options) == 1 else Choice(tuple(options))

    out_rules = {}
    for name, rule in rules.items():
        for cls in (_W, _N):
            options = []
            for option in _options(rule.body):
                items = [i.name for i in _items(option)]
                if not starts[items[0]] & cls:
                    continue
                seq = [ref(items[0], cls)]
                seq.extend(spaced_item(a, b) for a, b in zip(items, items[1:]))
                options.append(Sequence(tuple(seq)))
            if options:
                out_rules[_variant(name, cls)] = Rule(_variant(name, cls), Choice(tuple(options)), rule.where)
    return out_rules, out_terminals
