"""Grammar constraints: a grammar IR compiled once, on the engine its IR calls for, then bound
to any vocabulary.

    >>> g = tether.lark('start: "(" start ")" | "x"')
    >>> g.engine, g.matches("((x))")
    ('cfg', True)

The engine is chosen from the IR alone (see `tether.automata.rules`): a grammar whose start
rule takes part in no recursion is one regex and runs on the byte DFA path; any other runs on
the context-free engine (`tether.automata.earley`, `tether.automata.cfg`).
"""

from __future__ import annotations

import json
import warnings
from collections import OrderedDict
from typing import Any, Callable

from ..errors import EmptyLanguage, GrammarError
from ..grammar.ir import GrammarIR
from ..limits import DEFAULT_LIMITS, Limits
from ..vocab import Vocabulary
from .cfg import CFGConstraint
from .constraint import Constraint
from .dfa import LazyDFA
from .earley import CFGAutomaton
from .index import DFAConstraint
from .rules import lower
from .stepping import PerVocabulary

__all__ = ["Grammar", "JSONSchema", "lark", "gbnf", "json_schema"]



class Grammar:
    """A grammar constraint, independent of any tokenizer.

    Its language is the strings that some derivation from the start rule spells, every way of
    splitting the text into terminals counting, with ignored terminals allowed between any two
    terminals and at both ends (what Lark's Earley parser with ``lexer="dynamic_complete"``
    accepts). `engine` is "dfa" or "cfg".
    """

    def __init__(self, ir: GrammarIR, *, limits: Limits | None = None,
                 parse: Callable[[str], Any] | None = None):
        self.ir = ir
        self.limits = limits or DEFAULT_LIMITS
        self.parse = parse
        tables = lower(ir, self.limits)
        if tables.regular_tree is not None:
            self.engine = "dfa"
            self._dfa = LazyDFA.from_tree(tables.regular_tree, self.limits)
            if self._dfa.is_empty:
                raise EmptyLanguage("the grammar derives no string, so nothing could be generated",
                                    source=ir.source or None)
            self._automaton = None
        else:
            self.engine = "cfg"
            self._dfa = None
            self._automaton = CFGAutomaton(tables, self.limits)
        self._compiled = PerVocabulary()

    def __repr__(self) -> str:
        return f"tether.Grammar({self.ir.name}, start={self.ir.start!r}, engine={self.engine!r})"

    def matches(self, text: str | bytes) -> bool:
        """Whether `text` is in the language (the reference the constraint is tested against).

        A context-free grammar parses `text` with an automaton of its own (sharing only the
        terminal DFAs), so texts checked do not stay in the memory of the compiled constraints;
        that automaton is kept for the next texts (parses share its states) until it holds
        more than an eighth of `Limits.automaton_bytes`, then replaced by a fresh one."""
        data = text.encode() if isinstance(text, str) else text
        if self._dfa is not None:
            return self._dfa.matches(data)
        matcher = self.__dict__.get("_matcher")
        if matcher is None or matcher.nbytes() > self.limits.automaton_bytes // 8:
            matcher = self._matcher = CFGAutomaton(self._automaton.tables, self.limits)
        return matcher.matches(data)

    def compile(self, vocab: Vocabulary) -> Constraint:
        """Bind to a vocabulary; cached per vocabulary, so compiling again is free."""
        return self._compiled.get(vocab, lambda: self._bind(vocab))

    def _bind(self, vocab: Vocabulary) -> Constraint:
        source = self.ir.source[:200]
        if self._dfa is not None:
            return DFAConstraint(self._dfa, vocab, self.limits, source=source, parse=self.parse)
        return CFGConstraint(self._automaton, vocab, self.limits, source=source, parse=self.parse)


def lark(text: str, start: str = "start", *, import_paths: list[str] | None = None, source_path: str | None = None,
         limits: Limits | None = None, parse: Callable[[str], Any] | None = None) -> Grammar:
    """A constraint from a grammar in Lark's language (rules, terminals, %import, %ignore, templates).

        >>> g = tether.lark('start: NUMBER ("+" NUMBER)*\\n%import common.NUMBER')
        >>> g.matches("1+2.5")
        True

    Raises `GrammarError` (with the rule and line/column) for a grammar Lark rejects, an
    undefined rule or terminal, a rule that derives no string, or a `%declare`d terminal in use.
    """
    from ..grammar.lark import lark_to_ir

    ir = lark_to_ir(text, start, import_paths=import_paths, source_path=source_path)
    return Grammar(ir, limits=limits, parse=parse)


def gbnf(text: str, start: str = "root", *, limits: Limits | None = None,
         parse: Callable[[str], Any] | None = None) -> Grammar:
    """A constraint from a grammar in llama.cpp's GBNF.

        >>> g = tether.gbnf('root ::= [0-9]+ ("," [0-9]+)*')
        >>> g.engine
        'dfa'
    """
    from ..grammar.gbnf import gbnf_to_ir

    return Grammar(gbnf_to_ir(text, start), limits=limits, parse=parse)


class JSONSchema(Grammar):
    """A JSON Schema (or Python type) constraint: a `Grammar` whose IR the schema compiler made.

    `schema` is the JSON Schema (derived from the type, for a type), `dropped` the keywords a
    lenient compile left out (empty in the strict default).
    """

    def __init__(self, ir: GrammarIR, schema: Any, dropped: list[str], *, limits: Limits | None,
                 parse: Callable[[str], Any], unique_paths: frozenset = frozenset()):
        super().__init__(ir, limits=limits, parse=parse)
        self.schema = schema
        self.dropped = dropped
        self.unique_paths = unique_paths

    def matches(self, text: str | bytes) -> bool:
        if not super().matches(text):
            return False
        return not self.unique_paths or _unique_at(text, self.unique_paths)

    def _bind(self, vocab: Vocabulary) -> Constraint:
        inner = super()._bind(vocab)
        if not self.unique_paths:
            return inner
        from .unique import UniqueItems

        return UniqueItems(inner, vocab, self.unique_paths)

    def __repr__(self) -> str:
        text = json.dumps(self.schema)[:80] if isinstance(self.schema, (dict, bool)) else repr(self.schema)
        return f"tether.json_schema({text}, engine={self.engine!r})"


def json_schema(schema: Any, *, whitespace: str = "compact", property_order: str = "declared",
                additional_properties: str = "none", lenient: bool = False,
                resources: dict[str, Any] | None = None, limits: Limits | None = None) -> JSONSchema:
    """A constraint that the output is a JSON instance of `schema`.

        >>> person = tether.json_schema({"type": "object", "properties": {"age": {"type": "integer"}}})
        >>> person.matches('{"age":41}'), person.matches('{"age":"41"}')
        (True, False)

    `schema`: a JSON Schema (dict, boolean or JSON text; drafts 4, 6, 7, 2019-09, 2020-12 by its
    `$schema`, 2020-12 by default) or a Python type (msgspec Struct, dataclass, TypedDict, ...,
    pydantic model). Generation then returns the decoded, validated value of the type, or a
    plain dict/list for a schema.
    whitespace: "compact" (none) or "flexible" (JSON whitespace between tokens, at most
        `MAX_WHITESPACE` characters in a row so that a model cannot loop on it).
    property_order: "declared" (the order of `properties`) or "any" (each property at most once).
    additional_properties: "none" generates no property the schema does not describe (still
        valid); "allow" accepts any where the schema allows them.
    lenient: drop the keywords that cannot be enforced (listed in a warning and in `.dropped`)
        instead of raising `UnsupportedSchema`; outputs may then fail validation.
    resources: documents that `$ref`s may name, by URI (nothing is fetched).

    Raises `InvalidSchema`, `UnsupportedSchema` (keyword and JSON pointer), `EmptyLanguage`, or
    `ConstraintTooLarge`.
    """
    from ..grammar.json_schema import Options, is_type, schema_of_type, schema_to_ir

    options = Options(whitespace, property_order, additional_properties, lenient)
    key = _cache_key(schema, options, resources, limits)
    if key is not None and key in _SCHEMAS:
        _SCHEMAS.move_to_end(key)
        return _SCHEMAS[key]
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except json.JSONDecodeError as e:
            from ..errors import InvalidSchema

            raise InvalidSchema(f"the schema is not JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
        parse: Callable[[str], Any] = json.loads
    elif is_type(schema):
        schema, parse = schema_of_type(schema)
    else:
        parse = json.loads
    try:
        result = schema_to_ir(schema, options, resources=resources, limits=limits)
        ir, dropped = result.ir, result.dropped
        if dropped:
            warnings.warn("lenient JSON Schema: these keywords are not enforced, outputs may fail validation: "
                          + "; ".join(dropped), stacklevel=2)
        compiled = JSONSchema(ir, schema, dropped, limits=limits, parse=parse, unique_paths=result.unique_paths)
    except GrammarError as e:  # e.g. {"$ref": "#"}, or a required property holding the whole schema
        raise EmptyLanguage(f"no finite instance: {e.reason}") from None
    if key is not None:
        _SCHEMAS[key] = compiled
        while len(_SCHEMAS) > _SCHEMA_CACHE_SIZE:
            _SCHEMAS.popitem(last=False)
    return compiled


def _unique_at(text: str | bytes, paths: frozenset) -> bool:
    """Whether the arrays at `paths` of a JSON text (already in the language) have distinct items."""
    from .unique import item_key

    value = json.loads(text)
    todo = [((), value)]
    while todo:
        path, v = todo.pop()
        if isinstance(v, list):
            if any(path == p or _path_matches(path, p) for p in paths):
                keys = [item_key(json.dumps(x)) for x in v]
                if len(set(keys)) != len(keys):
                    return False
            todo.extend((path + (i,), x) for i, x in enumerate(v))
        elif isinstance(v, dict):
            todo.extend((path + (k,), x) for k, x in v.items())
    return True


def _path_matches(path: tuple, pattern: tuple) -> bool:
    return len(path) == len(pattern) and all(
        p is None and isinstance(x, int) or p == x for x, p in zip(path, pattern))


# The same schema compiles once: a program that builds its constraint per request reuses the
# compiled automata (and their per-vocabulary masks). Keyed by the schema's JSON text.
_SCHEMA_CACHE_SIZE = 64
_SCHEMAS: "OrderedDict[tuple, JSONSchema]" = OrderedDict()


def _cache_key(schema: Any, options: Any, resources: Any, limits: Any) -> tuple | None:
    try:
        # Key order stays: it is the declared property order.
        text = schema if isinstance(schema, str) else json.dumps(schema) if isinstance(schema, (dict, bool)) else None
        extra = json.dumps(resources) if resources else ""
    except (TypeError, ValueError, RecursionError):
        return None  # not JSON text (or nested past json's reach): compiled, but not cached
    if text is None:
        try:
            hash(schema)
        except TypeError:
            return None
        text = schema  # a Python type
    return (text, options, extra, limits)
