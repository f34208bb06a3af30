"""The grammar IR: what every context-free front-end (Lark, GBNF, JSON Schema, SQL) produces.

A `GrammarIR` is named rules whose bodies are expressions over rule references and
terminal references, plus named terminals whose languages are regex trees (the
tree `tether.grammar.regex` builds). Every node may carry the `Location` of the
source text it came from, so errors downstream can name it. Nothing here knows
which front-end made the grammar or which engine will run it: `tether.automata`
chooses the engine from the IR alone.

    >>> digits = Terminal("DIGITS", parse_regex("[0-9]+"))
    >>> g = GrammarIR({"sum": Rule("sum", Choice((TerminalRef("DIGITS"),
    ...     Sequence((RuleRef("sum"), TerminalRef("PLUS"), TerminalRef("DIGITS"))))))}, ...)

The language is the set of strings spelled by some derivation from `start`, where
each terminal reference spells a string of its terminal's language and, between any
two terminals (and before the first and after the last), any number of strings of
the `ignore` terminals may stand. It is what Lark's Earley parser with
`lexer="dynamic_complete"` accepts: every way of splitting the text into terminals counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Union

from ..errors import GrammarError, Location
from .regex import RegexNode

__all__ = ["GrammarIR", "Rule", "Terminal", "RuleRef", "TerminalRef", "Sequence", "Choice", "Repetition",
           "Expr", "EPSILON", "check_grammar", "productive_rules", "walk_expr"]


@dataclass(frozen=True, eq=False)
class RuleRef:
    name: str
    where: Location | None = None


@dataclass(frozen=True, eq=False)
class TerminalRef:
    name: str
    where: Location | None = None


@dataclass(frozen=True, eq=False)
class Sequence:
    items: tuple["Expr", ...]
    where: Location | None = None


@dataclass(frozen=True, eq=False)
class Choice:
    options: tuple["Expr", ...]
    where: Location | None = None


@dataclass(frozen=True, eq=False)
class Repetition:
    item: "Expr"
    min: int
    max: int | None  # None: unbounded
    where: Location | None = None

    def __post_init__(self) -> None:
        if self.min < 0 or (self.max is not None and self.max < self.min):
            raise GrammarError(f"repetition {{{self.min},{self.max}}} has no valid count", location=self.where)


Expr = Union[RuleRef, TerminalRef, Sequence, Choice, Repetition]
EPSILON = Sequence(())


@dataclass(frozen=True, eq=False)
class Rule:
    name: str
    body: Expr
    where: Location | None = None


@dataclass(frozen=True, eq=False)
class Terminal:
    """A terminal: the strings of a regex tree. `text` is how the source spelled it (for messages).

    `shortest`: only the strings of the tree that no shorter string of it prefixes (a lexeme ends
    at its first possible end). It is how a regex with lazy quantifiers matches where a lexer
    runs `re.match` (Lark): `".*?"` is one quoted string, never `"a"b"`.
    """

    name: str
    regex: RegexNode
    where: Location | None = None
    text: str = ""
    shortest: bool = False


@dataclass(eq=False)
class GrammarIR:
    """Rules and terminals by name, the start rule, and the terminals ignored between terminals.

    `source` is the grammar's text (or a short description) for error messages.
    """

    rules: dict[str, Rule]
    terminals: dict[str, Terminal]
    start: str
    ignore: tuple[str, ...] = ()
    source: str = ""
    name: str = field(default="grammar")

    def __post_init__(self) -> None:
        check_grammar(self)


def walk_expr(expr: Expr) -> Iterator[Expr]:
    """Every node of an expression, without recursion (bodies can nest thousands deep)."""
    todo = [expr]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, Sequence):
            todo.extend(node.items)
        elif isinstance(node, Choice):
            todo.extend(node.options)
        elif isinstance(node, Repetition):
            todo.append(node.item)


def _where(location: Location | None, rule: str) -> Location:
    if location is None:
        return Location(rule=rule)
    if location.rule is None:
        return Location(offset=location.offset, line=location.line, column=location.column, rule=rule,
                        pointer=location.pointer)
    return location


def check_grammar(grammar: GrammarIR) -> None:
    """Raise `GrammarError` for an undefined start, rule or terminal, and for rules that derive no
    string (with the rule's location); the front-ends check their own syntax before this."""
    src = grammar.source or None
    if grammar.start not in grammar.rules:
        raise GrammarError(f"the start rule {grammar.start!r} is not defined", source=src,
                           location=Location(rule=grammar.start))
    for name in grammar.ignore:
        if name not in grammar.terminals:
            raise GrammarError(f"the ignored terminal {name!r} is not defined", source=src,
                               location=Location(rule=name))
    uses: dict[str, set[str]] = {}
    for rule in grammar.rules.values():
        refs = uses[rule.name] = set()
        for node in walk_expr(rule.body):
            if isinstance(node, RuleRef):
                if node.name not in grammar.rules:
                    raise GrammarError(f"rule {node.name!r} is used but not defined", source=src,
                                       location=_where(node.where, rule.name))
                refs.add(node.name)
            elif isinstance(node, TerminalRef) and node.name not in grammar.terminals:
                raise GrammarError(f"terminal {node.name!r} is used but not defined", source=src,
                                   location=_where(node.where, rule.name))
    productive = productive_rules(grammar)
    reachable, todo = {grammar.start}, [grammar.start]
    while todo:
        for ref in uses[todo.pop()]:
            if ref not in reachable:
                reachable.add(ref)
                todo.append(ref)
    for name in sorted(reachable - productive, key=lambda n: (n != grammar.start, n)):
        rule = grammar.rules[name]
        raise GrammarError(f"rule {name!r} derives no string (every alternative needs itself or another "
                           "such rule, or an empty terminal)", source=src, location=_where(rule.where, name))


def productive_rules(grammar: GrammarIR, empty_terminals: frozenset[str] = frozenset()) -> set[str]:
    """The rules that derive at least one string: a worklist over the rules that use each rule,
    so a chain of n rules costs O(n) rule checks, not n rounds over all rules."""
    users: dict[str, set[str]] = {}
    for rule in grammar.rules.values():
        for node in walk_expr(rule.body):
            if isinstance(node, RuleRef):
                users.setdefault(node.name, set()).add(rule.name)
    productive: set[str] = set()
    todo = list(grammar.rules)
    queued = set(todo)
    while todo:
        name = todo.pop()
        queued.discard(name)
        if name in productive or not _derives(grammar.rules[name].body, productive, empty_terminals):
            continue
        productive.add(name)
        for user in users.get(name, ()):
            if user not in productive and user not in queued:
                queued.add(user)
                todo.append(user)
    return productive


def _derives(expr: Expr, productive: set[str], empty_terminals: frozenset[str]) -> bool:
    # Iterative post-order: a node derives a string if (Sequence) all items do, (Choice) one
    # option does, (Repetition) min == 0 or its item does.
    results: dict[int, bool] = {}
    todo: list[tuple[Expr, bool]] = [(expr, False)]
    while todo:
        node, done = todo.pop()
        if isinstance(node, RuleRef):
            results[id(node)] = node.name in productive
        elif isinstance(node, TerminalRef):
            results[id(node)] = node.name not in empty_terminals
        elif not done:
            todo.append((node, True))
            kids = node.items if isinstance(node, Sequence) else node.options if isinstance(node, Choice) else (node.item,)
            todo.extend((k, False) for k in kids)
        elif isinstance(node, Sequence):
            results[id(node)] = all(results[id(k)] for k in node.items)
        elif isinstance(node, Choice):
            results[id(node)] = any(results[id(k)] for k in node.options)
        else:
            results[id(node)] = node.min == 0 or results[id(node.item)]
    return results[id(expr)]
