"""JSON Schema -> grammar IR.

Each schema compiles to a *part*: a regex tree (`tether.grammar.regex`) while it is regular, or
an IR expression once it refers to a schema in progress (recursion through `$ref`), which then
becomes a rule. Regular parts stay trees so that they can be intersected and complemented
(`pattern` with `maxLength`, `not`, keys that are not declared, properties in any order); the
IR's start rule is one terminal when the whole schema is regular, and `tether.automata` then
runs it on the DFA path, or on the context-free engine otherwise. Nothing here picks an engine.

    >>> ir = schema_to_ir({"type": "object", "properties": {"a": {"type": "integer"}}}, Options()).ir
    >>> ir.terminals["T0"].regex     # one regex tree: '{' ('"a":' integer)? '}'

Instances are written in one layout: no whitespace (`whitespace="compact"`) or bounded runs of
JSON whitespace between tokens (`"flexible"`), keys in declared order or any order, strings with
any escape JSON allows, numbers as JSON writes them (bounded numbers in positional notation).
Every keyword is enforced exactly or raises `UnsupportedSchema` naming it and its JSON pointer.
"""

from __future__ import annotations

import collections
import functools
import itertools
import re
import sys
import warnings
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from ...errors import (ConstraintTooLarge, InvalidPattern, InvalidSchema, Location, TetherError,
                       UnsupportedPattern, UnsupportedSchema)
from ...limits import DEFAULT_LIMITS, Limits
from ..ir import Choice, GrammarIR, Repetition, Rule, RuleRef, Sequence, Terminal, TerminalRef
from ..regex import (Alternation, Assert, Chars, Complement, Concat, Intersect, Multiples, Repeat, RegexNode,
                     find_node, parse_regex, resolve_lookaheads)
from .formats import format_tree
from .merge import (ANNOTATIONS, CONTAINS_KEYWORDS, TYPES, X_ANY_OF, X_CONTAINS, X_FORMATS, X_FRACTION, X_NOT,
                    X_NOT_MULTIPLES, X_NOT_STRINGS, X_NOT_VALUES, X_ONE_OF, X_PATTERNS, X_SOME_MEMBERS, formats_of,
                    json_type, merge, negate, normalize, value_key)
from .numbers import integer_tree, number_tree
from .resolve import Resolver, draft_of, subschemas
from .strings import ANY_CHAR, canonical_string, json_string, literal_text

__all__ = ["Options", "schema_to_ir", "canonical_json", "MAX_WHITESPACE"]

MAX_WHITESPACE = 20  # the longest run of whitespace "flexible" allows between two tokens
_MAX_PATTERN_REGIONS = 4  # patternProperties whose overlaps are spelled out (2^n regions)
_MAX_ANY_ORDER = 12  # any-order properties with regular values: one intersection part each
_MAX_ANY_ORDER_RECURSIVE = 8  # any-order properties with recursive values: 2^n subset rules
_RECURSION_LIMIT = 6000  # while compiling: about 1,000 levels of nested subschemas
_MAX_ONE_OF_CASES = 256
_MAX_COUNTED_STATES = 4_096  # rules counting contains matches over recursive items
_MAX_CONTAINS_COUNTED = 4  # contains keywords counted together there (an item may match any set of them)
_MAX_DISJOINT_CALLS = 5_000  # per oneOf: past it, branches count as overlapping (sound, maybe unsupported)
# A $ref target merged into a branch this many times over, one inside the other, is recursion:
# from then on it is a rule. (Siblings that name the same target are fine below this.)
_MAX_INLINED = 4  # oneOf as "this branch and none of the others": cases per branch

_IR = (RuleRef, TerminalRef, Sequence, Choice, Repetition)
EPS = Concat(())

_UNSUPPORTED = {
    "$dynamicRef": "dynamic references", "$recursiveRef": "recursive references (2019-09)",
    "unevaluatedProperties": "unevaluatedProperties", "unevaluatedItems": "unevaluatedItems",
}


@dataclass(frozen=True)
class Options:
    whitespace: str = "compact"
    property_order: str = "declared"
    additional_properties: str = "none"
    lenient: bool = False

    def __post_init__(self) -> None:
        for name, allowed in (("whitespace", ("compact", "flexible")), ("property_order", ("declared", "any")),
                              ("additional_properties", ("none", "allow"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")


def canonical_json(value: Any) -> str:
    """The text of `value` in tether's canonical layout: no whitespace, keys as given, non-ASCII
    unescaped, numbers in positional notation (integral floats as integers).

        >>> canonical_json({"a": [1.5e-3, 2.0, "é"]})
        '{"a":[0.0015,2,"é"]}'
    """
    return "".join(_canonical_parts(value))


def _canonical_parts(value: Any):
    todo = [value]
    while todo:
        v = todo.pop()
        if isinstance(v, _Raw):
            yield v.text
        elif isinstance(v, dict):
            yield "{"
            items = list(v.items())
            parts: list[Any] = []
            for i, (k, x) in enumerate(items):
                if not isinstance(k, str):
                    raise TypeError(f"object keys must be strings, got {k!r}")
                parts.append(_Raw(("," if i else "") + canonical_string(k) + ":"))
                parts.append(x)
            parts.append(_Raw("}"))
            todo.extend(reversed(parts))
        elif isinstance(v, (list, tuple)):
            yield "["
            parts = []
            for i, x in enumerate(v):
                if i:
                    parts.append(_Raw(","))
                parts.append(x)
            parts.append(_Raw("]"))
            todo.extend(reversed(parts))
        else:
            yield _scalar_text(v)


class _Raw:
    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text


def _scalar_text(v: Any) -> str:
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, (float, Decimal)):
        d = Decimal(repr(v)) if isinstance(v, float) else v
        if not d.is_finite():
            raise ValueError(f"{v!r} has no JSON text")
        if d == d.to_integral_value():
            return str(int(d))
        text = format(d, "f")
        return text.rstrip("0") if "." in text else text
    if isinstance(v, str):
        return canonical_string(v)
    raise TypeError(f"{v!r} ({type(v).__name__}) is not a JSON value")


def _chars(text: str) -> RegexNode:
    return Concat(tuple(Chars(((ord(c), ord(c)),)) for c in text))


@functools.lru_cache(maxsize=64)
def _literal(text: str) -> RegexNode:
    return _chars(text)  # shared: one tree (and one terminal) per punctuation mark


def _is_tree(part: Any) -> bool:
    return not isinstance(part, _IR)


@dataclass
class _Ctx:
    base: str
    pointer: str
    draft: int
    path: tuple | None = ()  # where the instance is (keys, None for any index); None: not tracked


_SAME, _UNKNOWN = object(), object()


class _Compiler:
    def __init__(self, schema: Any, options: Options, resources: dict | None, limits: Limits):
        self.options = options
        self.limits = limits
        self.deadline = limits.deadline("compiling the JSON Schema")
        self.draft = draft_of(schema)
        self.resolver = Resolver(schema, resources, self.draft)
        self.root = schema
        self.rules: dict[str, Rule] = {}
        self.terminals: dict[str, Terminal] = {}
        self._terminal_names: dict[int, str] = {}
        self._memo: dict[int, Any] = {}
        self._active: dict[int, str] = {}  # schema in progress -> its rule name
        self._recursive: set[int] = set()
        self._inlining: list[int] = []  # $ref targets merged into the schema being compiled
        self._inlined: collections.Counter = collections.Counter()
        self.unique_paths: set[tuple] = set()  # instance paths of arrays whose items must differ
        self._unique_within: dict[int, set[tuple]] = {}
        # What the caches know by id (schemas, trees), kept alive: the schemas negation and merging
        # build are temporary, and a new one at a freed one's address would be taken for it.
        self._keep: list[Any] = []
        self.dropped: list[str] = []
        self._any: RuleRef | None = None
        self._disjoint_calls = 0
        ws = Repeat(Chars(((0x09, 0x0A), (0x0D, 0x0D), (0x20, 0x20))), 0, MAX_WHITESPACE)
        self.ws = ws if options.whitespace == "flexible" else None

    # ---- parts -------------------------------------------------------------------------------

    def expr(self, part: Any):
        if not _is_tree(part):
            return part
        name = self._terminal_names.get(id(part))
        if name is None:
            name = f"T{len(self.terminals)}"
            self._terminal_names[id(part)] = name
            self.terminals[name] = Terminal(name, part, text=name)
            self._keep.append(part)
        return TerminalRef(name)

    def seq(self, *parts: Any) -> Any:
        if any(p is None for p in parts):
            return None
        parts = tuple(p for p in parts if p is not EPS)
        if not parts:
            return EPS
        if len(parts) == 1:
            return parts[0]
        if all(_is_tree(p) for p in parts):
            return Concat(parts)
        # Runs of regular parts become one terminal each: fewer, larger lexemes.
        items: list[Any] = []
        run: list[Any] = []
        for p in parts:
            if _is_tree(p):
                run.append(p)
                continue
            if run:
                items.append(self.expr(run[0] if len(run) == 1 else Concat(tuple(run))))
                run = []
            items.extend(p.items if isinstance(p, Sequence) else (p,))
        if run:
            items.append(self.expr(run[0] if len(run) == 1 else Concat(tuple(run))))
        return items[0] if len(items) == 1 else Sequence(tuple(items))

    def alt(self, parts: list[Any]) -> Any:
        parts = [p for p in parts if p is not None]
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0]
        if all(_is_tree(p) for p in parts):
            return Alternation(tuple(parts))
        return Choice(tuple(self.expr(p) for p in parts))

    def rep(self, part: Any, lo: int, hi: int | None) -> Any:
        if hi is not None and hi < lo:
            return None
        if part is None:
            return EPS if lo == 0 else None
        if hi == 0:
            return EPS
        if _is_tree(part):
            return Repeat(part, lo, hi)
        return Repetition(self.expr(part), lo, hi)

    def opt(self, part: Any) -> Any:
        return self.rep(part, 0, 1)

    def live(self, tree: RegexNode) -> RegexNode | None:
        """`tree`, or None when its language is empty (intersections and complements can be)."""
        from ...automata.dfa import LazyDFA

        return None if LazyDFA.from_tree(tree, self.limits).is_empty else tree

    def lit(self, text: str) -> RegexNode:
        return _literal(text)

    def w(self) -> Any:
        return self.ws if self.ws is not None else EPS

    def punct(self, text: str) -> Any:
        """A structural character with the whitespace allowed around it."""
        return self.seq(self.w(), self.lit(text), self.w())

    # ---- errors ------------------------------------------------------------------------------

    def unsupported(self, keyword: str, reason: str, ctx: _Ctx) -> None:
        if self.options.lenient:
            self.dropped.append(f"{ctx.pointer or '/'}: {keyword} ({reason})")
            return
        raise UnsupportedSchema(keyword, reason, pointer=ctx.pointer)

    # ---- schemas -----------------------------------------------------------------------------

    def compile_root(self) -> Any:
        ctx = _Ctx(self.resolver.root_base, "", self.draft)
        return self.node(self.root, ctx)

    def node(self, schema: Any, ctx: _Ctx) -> Any:
        """The part of a schema that appears in the document (memoised: `$ref`s share it)."""
        self.deadline.check()
        key = id(schema)
        if key in self._memo:
            self._reuse_unique(key, ctx)
            return self._memo[key]
        if key in self._active:
            self._recursive.add(key)
            return RuleRef(self._active[key])
        before = set(self.unique_paths)
        name = f"s{len(self._active) + len(self._memo)}_{_short(ctx.pointer)}"
        self._active[key] = name
        try:
            part = self._schema(schema, ctx)
        finally:
            del self._active[key]
        found = {p[len(ctx.path):] for p in self.unique_paths - before
                 if ctx.path is not None and p[:len(ctx.path)] == ctx.path}
        if found:
            self._unique_within[key] = found
        if key in self._recursive and found:
            self.unsupported("uniqueItems", "uniqueItems inside a recursive schema (its arrays have no fixed "
                             "place in the instance)", ctx)
        if key in self._recursive:
            if part is None:
                raise UnsupportedSchema("$ref", "a recursive schema that no finite instance satisfies",
                                        pointer=ctx.pointer)
            self.rules[name] = Rule(name, self.expr(part), where=Location(pointer=ctx.pointer))
            part = RuleRef(name)
        self._memo[key] = part
        self._keep.append(schema)
        return part

    def _reuse_unique(self, key: int, ctx: _Ctx) -> None:
        """A schema compiled once and used again elsewhere: its unique arrays are there too."""
        found = self._unique_within.get(key)
        if not found:
            return
        if ctx.path is None:
            self.unsupported("uniqueItems", "uniqueItems in a schema used where the instance's place is "
                             "not known", ctx)
            return
        self.unique_paths.update(ctx.path + p for p in found)

    def _schema(self, schema: Any, ctx: _Ctx) -> Any:
        if schema is True:
            return self.any_value()
        if schema is False:
            return None
        if not isinstance(schema, dict):
            raise InvalidSchema(f"a schema must be an object or a boolean, got {_show(schema)}",
                                location=Location(pointer=ctx.pointer))
        ctx = _Ctx(self.resolver.base_of(schema, ctx.base, ctx.draft), ctx.pointer, ctx.draft, ctx.path)
        if "$schema" in schema and schema is not self.root:
            ctx = _Ctx(ctx.base, ctx.pointer, draft_of(schema, ctx.draft), ctx.path)
        s = normalize(schema, ctx.draft, ctx.pointer)
        if "$ref" in s:
            target, base = self.resolver.resolve(s["$ref"], ctx.base, ctx.pointer + "/$ref", ctx.draft)
            rest = {k: v for k, v in s.items() if k != "$ref" and k not in ANNOTATIONS}
            target_ctx = _Ctx(base, _pointer_of(s["$ref"]), ctx.draft, ctx.path)
            if ctx.draft <= 7 or not rest:
                return self.node(target, target_ctx)  # draft 7 and before ignore $ref's siblings
            s = {**rest, "allOf": [*rest.get("allOf", []), _Located(target, target_ctx)]}
        return self.flat(s, ctx)

    def flat(self, s: dict, ctx: _Ctx) -> Any:
        """A normalised schema: applicators first (merged or distributed), then the types."""
        mark = len(self._inlining)
        try:
            return self._flat(s, ctx)
        finally:  # the $ref targets this schema's branches inlined are done
            for key in self._inlining[mark:]:
                self._inlined[key] -= 1
            del self._inlining[mark:]

    def _flat(self, s: dict, ctx: _Ctx) -> Any:
        self.deadline.check()
        for key in s:
            if key in _UNSUPPORTED:
                self.unsupported(key, _UNSUPPORTED[key] + " are not supported", ctx)
        s = {k: v for k, v in s.items() if k not in _UNSUPPORTED}
        if "allOf" in s:
            rest = {k: v for k, v in s.items() if k != "allOf"}
            branches = s["allOf"]
            if not isinstance(branches, list):
                raise InvalidSchema("allOf must be a list of schemas", location=Location(pointer=ctx.pointer))
            merged: Any = rest
            opaque: dict[int, _Opaque] = {}  # recursive branches, by schema: merged with nothing
            for i, branch in enumerate(branches):
                flat = self.flatten(branch, _sub(ctx, f"/allOf/{i}"))
                if isinstance(flat, _Opaque):
                    opaque.setdefault(id(flat.schema), flat)
                else:
                    merged = merge(merged, flat, ctx.pointer)
            if not opaque:
                return self.flat_or_bool(merged, ctx)
            if len(opaque) > 1:
                self.unsupported("allOf", f"{len(opaque)} different recursive schemas in one allOf", ctx)
            return self.intersect_opaque(merged, next(iter(opaque.values())), ctx)
        for key in ("anyOf", "oneOf"):
            if key in s:
                branches = s[key]
                if not isinstance(branches, list) or not branches:
                    raise InvalidSchema(f"{key} must be a non-empty list of schemas",
                                        location=Location(pointer=ctx.pointer))
                rest = {k: v for k, v in s.items() if k != key}
                plural = X_ANY_OF if key == "anyOf" else X_ONE_OF
                rest[plural] = [*rest.get(plural, []), [_Located(b, _sub(ctx, f"/{key}/{i}"))
                                                        for i, b in enumerate(branches)]]
                return self.flat(rest, ctx)
        if "not" in s or s.get(X_NOT):
            nots = ([s["not"]] if "not" in s else []) + list(s.get(X_NOT, []))
            rest = {k: v for k, v in s.items() if k not in ("not", X_NOT)}
            if nots[1:]:
                rest[X_NOT] = nots[1:]
            inner = self.flatten(nots[0], _sub(ctx, "/not"))
            if isinstance(inner, _Opaque):
                self.unsupported("not", "not of a recursive schema", ctx)
                return self.flat(rest, ctx)
            try:
                negated = negate(inner, ctx.pointer + "/not")
            except UnsupportedSchema:
                if not self.options.lenient:
                    raise
                self.dropped.append(f"{ctx.pointer or '/'}: not")
                return self.flat(rest, ctx)
            return self.flat_or_bool(merge(rest, negated, ctx.pointer) if negated is not True else rest, ctx)
        if s.get(X_ONE_OF):
            group, rest = _first_group(s, X_ONE_OF)
            return self.one_of(rest, group, ctx)
        if s.get(X_ANY_OF):
            group, rest = _first_group(s, X_ANY_OF)
            options = []
            for branch in group:
                flat = self.flatten(branch, branch.ctx if isinstance(branch, _Located) else ctx)
                if isinstance(flat, _Opaque):
                    options.append(self.intersect_opaque(rest, flat, ctx))
                else:
                    options.append(self.flat_or_bool(merge(rest, flat, ctx.pointer), ctx))
            return self.alt(options)
        return self.types(s, ctx)

    def flat_or_bool(self, s: Any, ctx: _Ctx) -> Any:
        if s is True:
            return self.any_value()
        if s is False:
            return None
        return self.flat(s, ctx)

    def flatten(self, schema: Any, ctx: _Ctx) -> Any:
        """A branch of an applicator as a flat schema (its `$ref`s followed), or an `_Opaque` when
        it is a schema in progress (recursion), which cannot be merged."""
        while isinstance(schema, _Located):
            schema, ctx = schema.schema, schema.ctx
        seen = 0
        while True:
            if isinstance(schema, bool):
                return schema
            if not isinstance(schema, dict):
                raise InvalidSchema(f"a schema must be an object or a boolean, got {_show(schema)}",
                                    location=Location(pointer=ctx.pointer))
            if id(schema) in self._active or self._inlined[id(schema)] >= _MAX_INLINED:
                return _Opaque(schema, ctx)  # recursion: referenced as a rule, never merged again
            ctx = _Ctx(self.resolver.base_of(schema, ctx.base, ctx.draft), ctx.pointer, ctx.draft, ctx.path)
            s = normalize(schema, ctx.draft, ctx.pointer)
            for key, plural in (("anyOf", X_ANY_OF), ("oneOf", X_ONE_OF)):
                if key in s:  # as lists of located branches, so that two branches' lists merge
                    branches = s.pop(key)
                    if not isinstance(branches, list) or not branches:
                        raise InvalidSchema(f"{key} must be a non-empty list of schemas",
                                            location=Location(pointer=ctx.pointer))
                    s[plural] = [*s.get(plural, []), [_Located(b, _sub(ctx, f"/{key}/{i}"))
                                                      for i, b in enumerate(branches)]]
            if "allOf" in s:
                s["allOf"] = [_Located(b, _sub(ctx, f"/allOf/{i}")) for i, b in enumerate(s["allOf"])]
            if "not" in s:
                s["not"] = _Located(s["not"], _sub(ctx, "/not"))
            if "$ref" not in s:
                return s
            rest = {k: v for k, v in s.items() if k != "$ref" and k not in ANNOTATIONS}
            target, base = self.resolver.resolve(s["$ref"], ctx.base, ctx.pointer + "/$ref", ctx.draft)
            target_ctx = _Ctx(base, _pointer_of(s["$ref"]), ctx.draft, ctx.path)
            if id(target) in self._active or self._inlined[id(target)] >= _MAX_INLINED:
                return _Opaque(target, target_ctx) if not rest or ctx.draft <= 7 else _Opaque(schema, ctx)
            self._inlining.append(id(target))
            self._inlined[id(target)] += 1
            if rest and ctx.draft > 7:
                inner = self.flatten(target, target_ctx)
                if isinstance(inner, _Opaque):
                    return inner if not rest else _Opaque(schema, ctx)
                return merge(rest, inner, ctx.pointer)
            schema, ctx = target, target_ctx
            seen += 1
            if seen > 1000:
                raise InvalidSchema("a cycle of $refs that never reaches a schema", location=Location(pointer=ctx.pointer))

    def intersect_opaque(self, rest: Any, opaque: "_Opaque", ctx: _Ctx) -> Any:
        """A recursive branch under allOf: only if the rest adds nothing can it stand alone."""
        if rest is True or (isinstance(rest, dict) and not any(k not in ANNOTATIONS for k in rest)):
            return self.node(opaque.schema, opaque.ctx)
        if self.implies(self.opaque_view(opaque), rest, ctx):
            return self.node(opaque.schema, opaque.ctx)  # its own keywords say what the rest asks
        mine = self.flat_or_bool(rest, ctx)
        theirs = self.node(opaque.schema, opaque.ctx)
        if mine is None or theirs is None:
            return None
        if _is_tree(mine) and _is_tree(theirs):
            return Intersect((mine, theirs))
        self.unsupported("allOf", "a recursive $ref combined with other keywords", ctx)
        return theirs

    def one_of(self, rest: dict, group: list, ctx: _Ctx) -> Any:
        """Exactly one branch: each branch, and not the branches it may overlap. Disjoint branches
        (a discriminator, different types) need no negation, so a recursive branch can take part
        as long as it overlaps no other."""
        flats = [self.flatten(b, b.ctx if isinstance(b, _Located) else ctx) for b in group]
        self._disjoint_calls = 0
        views = [self.opaque_view(f) if isinstance(f, _Opaque) else f for f in flats]
        merged = [merge(rest, v, ctx.pointer) for v in views]
        overlaps = [(i, j) for i, j in itertools.combinations(range(len(flats)), 2)
                    if not self.disjoint(merged[i], merged[j], ctx, 0)]
        try:
            negations = {}
            for i, j in overlaps:
                for mine, other in ((i, j), (j, i)):
                    if isinstance(flats[other], _Opaque):
                        raise UnsupportedSchema("oneOf", f"branch {other} is recursive and may overlap branch "
                                                f"{mine}: it has no exact negation (exactly one must hold)",
                                                pointer=ctx.pointer)
                    try:
                        negations[mine, other] = negate(flats[other], ctx.pointer)
                    except UnsupportedSchema as e:
                        raise UnsupportedSchema("oneOf", f"branch {other} may overlap branch {mine}, and its "
                                                f"negation has no exact construction ({e.detail})",
                                                pointer=ctx.pointer) from None
            for i in range(len(flats)):
                cases = 1
                for (mine, _), negation in negations.items():
                    if mine == i and isinstance(negation, dict):
                        cases *= len(negation.get("anyOf", ())) or 1
                if cases > _MAX_ONE_OF_CASES:
                    raise UnsupportedSchema("oneOf", f"{len(flats)} branches that may overlap: excluding the "
                                            f"others would spell out {cases:,} cases", pointer=ctx.pointer)
        except UnsupportedSchema as e:
            self.unsupported("oneOf", e.detail, ctx)
            negations = {}  # lenient: any of the branches
        options = []
        for i, flat in enumerate(flats):
            if isinstance(flat, _Opaque):  # overlaps no other branch (checked above), or lenient
                options.append(self.intersect_opaque(rest, flat, ctx))
                continue
            m = merge(rest, flat, ctx.pointer)
            for (mine, _), negation in negations.items():
                if mine == i and m is not False:
                    m = merge(m, negation, ctx.pointer)
            options.append(self.flat_or_bool(m, ctx))
        return self.alt(options)

    def implies(self, a: Any, b: Any, ctx: _Ctx) -> bool:
        """A sufficient test that every instance of `a` satisfies `b`: joining b into a changes
        none of a's keywords."""
        if b is True:
            return True
        if a is True or a is False or not isinstance(b, dict):
            return a is False
        b = {k: v for k, v in b.items() if k not in ANNOTATIONS}
        a = {k: v for k, v in a.items() if k not in ANNOTATIONS}
        try:
            return merge(a, b, ctx.pointer) == a
        except TetherError:
            return False

    def opaque_view(self, opaque: "_Opaque") -> Any:
        """A schema at least as wide as a recursive one, from its own keywords: every keyword
        narrows, so leaving out its references and applicators only widens it. Enough to prove
        two branches disjoint; never compiled."""
        s = normalize(opaque.schema, opaque.ctx.draft, opaque.ctx.pointer) if isinstance(opaque.schema, dict) \
            else opaque.schema
        if not isinstance(s, dict):
            return s
        if "$ref" in s and opaque.ctx.draft <= 7:
            return True  # its siblings are ignored: only the target speaks, and it is in progress
        return {k: v for k, v in s.items() if k not in _VIEW_DROPS}

    def disjoint(self, a: Any, b: Any, ctx: _Ctx, depth: int) -> bool:
        """A sufficient test: disjoint types, enum/const values, string contents (by automaton),
        numeric ranges, or an object key one requires and the other forbids or constrains
        disjointly (a discriminator, at any depth)."""
        self.deadline.check()
        a = self.opaque_view(a) if isinstance(a, _Opaque) else a
        b = self.opaque_view(b) if isinstance(b, _Opaque) else b
        if a is False or b is False:
            return True
        if a is True or b is True or depth > 8 or self._disjoint_calls > _MAX_DISJOINT_CALLS:
            return False
        self._disjoint_calls += 1
        if self.disjoint_keywords(a, b, ctx, depth):
            return True
        # Each applicator only narrows: fold an allOf in, or prove every branch of an anyOf apart.
        try:
            for x, y in ((a, b), (b, a)):
                if x.get("allOf"):
                    folded = {k: v for k, v in x.items() if k != "allOf"}
                    for branch in x["allOf"]:
                        folded = merge(folded, self.branch_view(branch, ctx), ctx.pointer)
                    return self.disjoint(folded, y, ctx, depth + 1)
                for key in (X_ANY_OF, X_ONE_OF):
                    if x.get(key):
                        group, rest = _first_group(x, key)
                        return all(self.disjoint(merge(rest, self.branch_view(branch, ctx), ctx.pointer), y, ctx,
                                                 depth + 1) for branch in group)
        except TetherError:
            return False
        return False

    def branch_view(self, branch: Any, ctx: _Ctx) -> Any:
        flat = self.flatten(branch, branch.ctx if isinstance(branch, _Located) else ctx)
        return self.opaque_view(flat) if isinstance(flat, _Opaque) else flat

    def disjoint_keywords(self, a: dict, b: dict, ctx: _Ctx, depth: int) -> bool:
        """`disjoint` on the schemas' own keywords (their applicators left aside)."""
        ta, tb = _type_set(a), _type_set(b)
        common = ta & tb
        if not common:
            return True
        va, vb = _value_set(a), _value_set(b)
        if va is not None and vb is not None and not (va & vb):
            return True
        for x, y, vx in ((a, b, va), (b, a, vb)):
            if vx is not None and all(json_type(v) not in _type_set(y) for v in _values(x)):
                return True
        if common <= {"string"} and va is None and vb is None:
            try:
                ca, cb = self.string_content(a, ctx), self.string_content(b, ctx)
            except TetherError:
                return False
            if ca is None or cb is None:
                return True
            return self.live(Intersect((ca, cb))) is None
        if common <= {"integer", "number"} and _ranges_apart(a, b):
            return True
        if common == {"object"}:
            for x, y in ((a, b), (b, a)):
                for key in x.get("required", []):
                    if _forbids(y, key):
                        return True
            pa, pb = a.get("properties", {}), b.get("properties", {})
            both = set(a.get("required", [])) & set(b.get("required", []))
            for key in sorted(both & set(pa) & set(pb)):
                fa = self.flatten(pa[key], _sub(ctx, f"/properties/{_escape(key)}"))
                fb = self.flatten(pb[key], _sub(ctx, f"/properties/{_escape(key)}"))
                if self.disjoint(fa, fb, ctx, depth + 1):
                    return True
        return False

    # ---- types -------------------------------------------------------------------------------

    def types(self, s: dict, ctx: _Ctx) -> Any:
        names = s.get("type")
        allowed = list(TYPES) if names is None else [t for t in TYPES if t in names]
        if "integer" in allowed and ("number" in allowed or s.get(X_FRACTION)):
            allowed.remove("integer")  # inside "number", or excluded: x-fraction is "not an integer"
        if "enum" in s or "const" in s:
            return self.values(s, allowed, ctx)
        parts = []
        excluded = s.get(X_NOT_VALUES)
        for t in allowed:
            part = getattr(self, "t_" + t)(s, ctx)
            if excluded and part is not None and t != "string":
                mine = [_chars(_scalar_text(v)) for v in excluded if json_type(v) == t or
                        (t == "number" and json_type(v) == "integer")]
                if mine:  # one text per number, so that excluding a value's text excludes the value
                    canonical = [_CANONICAL_NUMBER] if t in ("integer", "number") else []
                    part = self.live(Intersect((part, *canonical, Complement(Alternation(tuple(mine))))))
            parts.append(part)
        return self.alt(parts)

    def values(self, s: dict, allowed: list[str], ctx: _Ctx) -> Any:
        values = s.get("enum") if "enum" in s else None
        if not isinstance(values, (list, type(None))):
            raise InvalidSchema("enum must be a list", location=Location(pointer=ctx.pointer))
        if "const" in s:
            keys = None if values is None else {value_key(v) for v in values}
            values = [s["const"]] if keys is None or value_key(s["const"]) in keys else []
        kept, seen = [], set()
        for v in values:
            t = json_type(v)
            if t in allowed or (t == "integer" and "number" in allowed):
                k = value_key(v)
                if k not in seen:
                    seen.add(k)
                    kept.append(v)
        literal = self.alt([self.literal(v) for v in kept])
        rest = {k: v for k, v in s.items() if k not in ("enum", "const", "type") and k not in ANNOTATIONS}
        if not rest or literal is None:
            return literal
        if any(isinstance(v, (dict, list)) for v in kept):
            return self.alt([self.literal(v) for v in self.values_satisfying(kept, s, ctx)])
        present = sorted({json_type(v) for v in kept}, key=TYPES.index)
        others = self.types({**{k: v for k, v in s.items() if k not in ("enum", "const")}, "type": present}, ctx)
        if others is None:
            return None
        if _is_tree(others):
            return self.live(Intersect((literal, others)))
        self.unsupported("enum", "enum together with keywords on recursive values", ctx)
        return literal

    def values_satisfying(self, values: list, s: dict, ctx: _Ctx) -> list:
        """The listed values that the rest of `s` accepts, each checked against that rest compiled
        on its own in the widest layout (any key order, any undeclared property): an object
        value's text must not depend on this compile's layout options."""
        rest = {k: v for k, v in s.items() if k not in ("enum", "const")}
        wide = _Compiler(self.root, Options(property_order="any", additional_properties="allow"), None, self.limits)
        wide.resolver = self.resolver
        part = wide.flat(rest, ctx)
        if part is None:
            return []
        from ...automata.grammar import Grammar

        wide.rules["start"] = Rule("start", wide.expr(part))
        checker = Grammar(GrammarIR(wide.rules, wide.terminals, "start", name="enum check"), limits=self.limits)
        return [v for v in values if checker.matches(canonical_json(v))]

    def literal(self, value: Any) -> RegexNode:
        """The texts of one value in this layout (whitespace, key order)."""
        if isinstance(value, dict):
            members = [self.seq(literal_text(k), self.punct(":"), self.literal(v)) for k, v in value.items()]
            if len(members) > 1 and self.options.property_order == "any":
                body = self.any_order_tree([(m, True) for m in members], None, 0, None)
            else:
                body = self.join(members)
            return self.seq(self.lit("{"), self.w(), body, self.w(), self.lit("}"))
        if isinstance(value, list):
            return self.seq(self.lit("["), self.w(), self.join([self.literal(v) for v in value]), self.w(),
                            self.lit("]"))
        return _chars(_scalar_text(value))

    def join(self, parts: list[Any]) -> Any:
        out: list[Any] = []
        for i, p in enumerate(parts):
            if i:
                out.append(self.punct(","))
            out.append(p)
        return self.seq(*out) if out else EPS

    def t_null(self, s: dict, ctx: _Ctx) -> Any:
        return self.lit("null")

    def t_boolean(self, s: dict, ctx: _Ctx) -> Any:
        return Alternation((self.lit("true"), self.lit("false")))

    def t_integer(self, s: dict, ctx: _Ctx) -> Any:
        return self.numeric(s, ctx, integer=True)

    def t_number(self, s: dict, ctx: _Ctx) -> Any:
        if s.get(X_FRACTION):
            return self.numeric(s, ctx, integer=False, fraction=True)
        return self.numeric(s, ctx, integer=False)

    def numeric(self, s: dict, ctx: _Ctx, integer: bool, fraction: bool = False) -> Any:
        if s.get(X_NOT_MULTIPLES):  # the numbers, less the multiples (one text per value)
            tree = self.numeric({k: v for k, v in s.items() if k != X_NOT_MULTIPLES}, ctx, integer, fraction)
            bounds = {k: v for k, v in s.items()
                      if k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")}
            for m in s[X_NOT_MULTIPLES]:
                multiples = self.numeric({**bounds, "multipleOf": m}, ctx, integer, fraction)
                if tree is None or not multiples:
                    continue
                if not _is_tree(multiples):
                    self.unsupported("not", f"not of multipleOf {m}", ctx)
                    continue
                tree = self.live(Intersect((tree, _CANONICAL_NUMBER, Complement(multiples))))
            return tree
        lo = hi = None
        lo_x = hi_x = False
        for key, is_lo, exclusive in (("minimum", True, False), ("exclusiveMinimum", True, True),
                                      ("maximum", False, False), ("exclusiveMaximum", False, True)):
            if key not in s:
                continue
            value = s[key]
            if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
                raise InvalidSchema(f"{key} must be a number, got {_show(value)}", location=Location(pointer=ctx.pointer))
            d = _decimal(value)
            if is_lo and (lo is None or d > lo or (d == lo and exclusive)):
                lo, lo_x = d, exclusive
            elif not is_lo and (hi is None or d < hi or (d == hi and exclusive)):
                hi, hi_x = d, exclusive
        digits = None
        step = s.get("multipleOf")
        if step is not None:
            if isinstance(step, bool) or not isinstance(step, (int, float, Decimal)) or _decimal(step) <= 0:
                raise InvalidSchema(f"multipleOf must be a positive number, got {_show(step)}",
                                    location=Location(pointer=ctx.pointer))
            m = _decimal(step)
            exponent = m.normalize().as_tuple().exponent
            if m == 1:
                integer = True
            elif m.normalize() == Decimal(1).scaleb(exponent) and exponent < 0 and not integer:
                digits = -exponent  # multiples of 10^-k: at most k fraction digits
            elif m == m.to_integral_value():  # only integers are multiples of an integer
                return self.multiple_of_integer(int(m), lo, lo_x, hi, hi_x, ctx)
            elif integer and (1 / m) == (1 / m).to_integral_value():
                pass  # every integer is a multiple of 1/n
            else:
                self.unsupported("multipleOf", f"multipleOf {step} (only integers, and 10^-k for numbers)", ctx)
        if integer:
            ilo = None if lo is None else _ceil(lo) + (1 if lo_x and lo == _ceil(lo) else 0)
            ihi = None if hi is None else _floor(hi) - (1 if hi_x and hi == _floor(hi) else 0)
            if ilo is not None and ihi is not None and ilo > ihi:
                return None
            return integer_tree(ilo, ihi)
        try:
            tree = number_tree(lo, hi, exclusive_minimum=lo_x, exclusive_maximum=hi_x, max_fraction_digits=digits)
        except ValueError:
            return None
        if fraction:
            return Intersect((tree, _FRACTION_NUMBER))
        return tree

    def multiple_of_integer(self, m: int, lo, lo_x, hi, hi_x, ctx: _Ctx) -> Any:
        ilo = None if lo is None else _ceil(lo) + (1 if lo_x and lo == _ceil(lo) else 0)
        ihi = None if hi is None else _floor(hi) - (1 if hi_x and hi == _floor(hi) else 0)
        if ilo is not None and ihi is not None and ilo > ihi:
            return None
        if ilo is not None and ihi is not None and (ihi - ilo) // m < 256:
            first = -(-ilo // m) * m
            return self.alt([_chars(str(v)) for v in range(first, ihi + 1, m)])
        return Intersect((integer_tree(ilo, ihi), _multiples(m)))

    def t_string(self, s: dict, ctx: _Ctx) -> Any:
        content = self.string_content(s, ctx)
        if content is None:
            return None
        text = json_string(content)
        # Intersections (pattern, format and length) can leave no string at all.
        return self.live(text) if isinstance(content, (Intersect, Complement)) else text

    def string_content(self, s: dict, ctx: _Ctx, *, canonical_only: bool = False) -> Any:
        """The tree of the string *values* `s` allows (code points, before JSON escaping)."""
        parts: list[RegexNode] = []
        lo = s.get("minLength", 0)
        hi = s.get("maxLength")
        for key, v in (("minLength", lo), ("maxLength", hi)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or v != int(v)):
                raise InvalidSchema(f"{key} must be a non-negative integer, got {_show(v)}",
                                    location=Location(pointer=ctx.pointer))
        lo, hi = int(lo), None if hi is None else int(hi)
        if hi is not None and hi < lo:
            return None
        length = Repeat(ANY_CHAR, lo, hi)
        patterns = ([s["pattern"]] if "pattern" in s else []) + list(s.get(X_PATTERNS, []))
        for p in patterns:
            tree = self.pattern(p, ctx)
            if tree is not None:
                parts.append(tree)
        formats = ([s["format"]] if "format" in s else []) + list(s.get(X_FORMATS, []))
        for f in formats:
            tree = self.format(f, ctx)
            if tree is not None:
                parts.append(tree)
        for sub in s.get(X_NOT_STRINGS, []):
            inner = self.string_content(sub, ctx)
            if inner is not None:
                parts.append(Complement(inner))
        values = s.get(X_NOT_VALUES)
        if values:
            strings = [v for v in values if isinstance(v, str)]
            if strings:
                parts.append(Complement(Alternation(tuple(_codepoints(v) for v in strings))))
        if lo or hi is not None or not parts:
            parts.append(length)
        return parts[0] if len(parts) == 1 else Intersect(tuple(parts))

    def pattern(self, pattern: Any, ctx: _Ctx) -> RegexNode | None:
        if not isinstance(pattern, str):
            raise InvalidSchema(f"pattern must be a string, got {_show(pattern)}", location=Location(pointer=ctx.pointer))
        try:
            return search_tree(pattern, self.limits)
        except (InvalidPattern, UnsupportedPattern) as e:
            self.unsupported("pattern", f"{pattern!r}: {e.reason}", _sub(ctx, "/pattern"))
            return None

    def format(self, name: Any, ctx: _Ctx) -> RegexNode | None:
        if not isinstance(name, str):
            raise InvalidSchema(f"format must be a string, got {_show(name)}", location=Location(pointer=ctx.pointer))
        try:
            return format_tree(name)
        except KeyError:
            if name in formats_of(ctx.draft):
                self.unsupported("format", f"format {name!r} is not supported", _sub(ctx, "/format"))
            # Formats JSON Schema does not define are annotations: validators accept any string.
            return None

    # ---- arrays ------------------------------------------------------------------------------

    def t_array(self, s: dict, ctx: _Ctx) -> Any:
        lo, hi = _count(s, "minItems", ctx), _count(s, "maxItems", ctx, None)
        if "contains" in s or X_CONTAINS in s:
            contains = self.contains(s, lo, hi, ctx)
            if contains is not _NOT_HANDLED:
                return contains
        prefix = s.get("prefixItems", [])
        if not isinstance(prefix, list):
            raise InvalidSchema("prefixItems must be a list", location=Location(pointer=ctx.pointer))
        items = s.get("items", True)
        positions = [self.node(p, _sub(ctx, f"/prefixItems/{i}", i)) for i, p in enumerate(prefix)]
        # Items past the prefix: any index from len(prefix) on, as "any index" (a superset).
        rest = self.node(items, _sub(ctx, "/items", None)) if items is not True else self.any_value()
        if s.get("uniqueItems") is True:
            unique = self.unique_items(s, positions, rest, items, lo, hi, ctx)
            if unique is not _NOT_HANDLED:
                return unique
            if ctx.path is None:
                self.unsupported("uniqueItems", "uniqueItems on an array whose place in the instance is not "
                                 "known (under patternProperties or additionalProperties)", ctx)
            else:
                self.unique_paths.add(ctx.path)  # enforced at run time (tether.automata.unique)
        body = self.array_body(positions, rest, lo, hi)
        if body is None:
            return None
        return self.seq(self.lit("["), self.w(), body, self.w(), self.lit("]"))

    def array_body(self, positions: list[Any], rest: Any, lo: int, hi: int | None) -> Any:
        """Elements: `positions` first (each may be the last), then any number of `rest`."""
        k = len(positions)
        comma = self.punct(",")
        tail_lo = max(0, lo - k)
        tail_hi = None if hi is None else hi - k
        if tail_hi is not None and tail_hi < 0:
            positions, k = positions[:hi], hi
            tail_lo, tail_hi = 0, 0
        # after[i]: what may follow once elements 0..i-1 are written (i >= 1)
        after = self.rep(self.seq(comma, rest), tail_lo, tail_hi) if rest is not None else (EPS if tail_lo == 0 else None)
        if k == 0:
            if rest is None:
                return EPS if lo == 0 else None
            if tail_hi == 0:
                return EPS if lo == 0 else None
            first = self.seq(rest, self.rep(self.seq(comma, rest), max(0, tail_lo - 1),
                                            None if tail_hi is None else tail_hi - 1))
            return first if lo > 0 else self.opt(first)
        for i in range(k - 1, 0, -1):
            step = self.seq(comma, positions[i], after)
            after = step if i < lo else self.alt([step, EPS]) if step is not None else EPS
        first = self.seq(positions[0], after)
        return first if lo > 0 else self.alt([first, EPS]) if first is not None else EPS

    def contains(self, s: dict, lo: int, hi: int | None, ctx: _Ctx) -> Any:
        """Arrays with, for `contains` and each of `X_CONTAINS`, at least its `minContains`
        elements matching it: the element lists, intersected with "m matching elements
        somewhere in the list" for each (exact: a list splits into elements in one way only).
        `maxContains` would need a complement of texts: unsupported."""
        wants = []  # (contains schema, minContains) still to count
        for entry in [{k: s[k] for k in CONTAINS_KEYWORDS if k in s}, *s.get(X_CONTAINS, [])]:
            if entry.get("maxContains") is not None:
                self.unsupported("maxContains", "maxContains is not supported", ctx)
                return _NOT_HANDLED
            need = _count(entry, "minContains", ctx, 1)
            wanted = self.flatten(entry["contains"], _sub(ctx, "/contains"))
            if isinstance(wanted, dict) and not any(k not in ANNOTATIONS for k in wanted):
                wanted = True  # {}: any item
            if wanted is True:
                lo = max(lo, need)  # any `need` items contain what contains asks
            elif need > 0:
                wants.append((entry["contains"], need))
        s = {k: v for k, v in s.items() if k not in (*CONTAINS_KEYWORDS, X_CONTAINS)}
        s["minItems"] = lo
        if not wants:
            return self.t_array(s, ctx)
        if s.get("prefixItems"):
            self.unsupported("contains", "contains together with prefixItems", ctx)
            return _NOT_HANDLED
        if s.get("uniqueItems") is True:
            self.unsupported("uniqueItems", "uniqueItems together with contains", ctx)
            return _NOT_HANDLED
        items = s.get("items", True)
        element = self.node(items, _sub(ctx, "/items", None)) if items is not True else self.any_value()
        if element is None:
            return None
        # A matching element is an item too: one schema for both, merged.
        located_items = _Located(items, _sub(ctx, "/items", None))
        matches = []
        for wanted, need in wants:
            both = self.flatten({"allOf": [located_items, _Located(wanted, _sub(ctx, "/contains", None))]}, ctx)
            match = self.flat_or_bool(both, _sub(ctx, "/contains", None))
            if match is None:
                return None
            matches.append((match, need))
        if not (_is_tree(element) and all(_is_tree(m) for m, _ in matches)):
            body = self.counted_items(element, located_items, wants, matches, lo, hi, ctx)
            return None if body is None else self.seq(self.lit("["), self.w(), body, self.w(), self.lit("]"))
        comma = self.punct(",")
        any_items = Repeat(self.seq(comma, element), 0, None)
        lead = Repeat(self.seq(element, comma), 0, None)
        base = self.array_body([], element, max(lo, *(need for _, need in matches)), hi)
        if base is None:
            return None
        counted = []
        for match, need in matches:  # [E ,]* M ( (, E)* , M ){need-1} (, E)*
            again = Concat((any_items, comma, match))
            counted.append(Concat((lead, match, Repeat(again, need - 1, need - 1), any_items)))
        body = self.live(Intersect((base, *counted)))
        return self.seq(self.lit("["), self.w(), body, self.w(), self.lit("]"))

    def counted_items(self, element: Any, items: "_Located", wants: list, matches: list, lo: int,
                      hi: int | None, ctx: _Ctx) -> Any:
        """Item lists with at least `need` matches of each contains and lo..hi items, as rules
        over (matches so far of each, items so far), each capped where the bounds stop telling
        counts apart: for items that are not regular (recursive), where intersecting two
        automata is not available. An item may count for any set of the contains it matches."""
        cap = max(lo, hi + 1 if hi is not None else 0, 1)  # at least "none yet" vs "some" (the comma)
        states = cap + 1
        for _, need in matches:
            states *= need + 1
        if states > _MAX_COUNTED_STATES or len(matches) > _MAX_CONTAINS_COUNTED:
            needs = ", ".join(str(need) for _, need in matches)
            self.unsupported("contains", f"{len(matches)} contains (minContains {needs}) over recursive items, "
                             f"{lo}..{hi} of them: {states:,} counting states", ctx)
            return None
        joined: dict[int, Any] = {1 << i: m for i, (m, _) in enumerate(matches)}  # by set of contains
        for subset in range(1, 1 << len(matches)):
            if subset not in joined:
                branches = [_Located(wants[i][0], _sub(ctx, "/contains", None)) for i in range(len(wants))
                            if subset >> i & 1]
                both = self.flatten({"allOf": [items, *branches]}, ctx)
                joined[subset] = self.flat_or_bool(both, _sub(ctx, "/contains", None))
        comma = self.punct(",")
        needs = [need for _, need in matches]

        def options(key: tuple, state) -> list[Any]:
            *got, count = key
            if hi is not None and count > hi:
                return []
            sep = EPS if count == 0 else comma
            out = [EPS] if count >= lo and all(g == n for g, n in zip(got, needs)) else []
            for subset, match in joined.items():
                if match is not None:
                    after = tuple(min(g + (subset >> i & 1), needs[i]) for i, g in enumerate(got))
                    out.append(self.seq(sep, match, state((*after, min(count + 1, cap)))))
            out.append(self.seq(sep, element, state((*got, min(count + 1, cap)))))
            return out

        return self.state_rules((*(0 for _ in matches), 0), options)

    def state_rules(self, start: Any, options: Any) -> Any:
        """One rule per state reachable from `start`: `options(state, go)` lists the state's
        alternatives, `go(next)` references the next state's rule (None where it is dead)."""
        names: dict[Any, Any] = {}

        def go(key: Any) -> Any:
            if key in names:
                return names[key]
            name = f"r{len(self.rules)}"
            self.rules[name] = None  # defined below; a state may come back to itself
            names[key] = RuleRef(name)
            body = self.alt(options(key, go))
            if body is None:  # a dead end (too many already): never referenced as a live choice
                del self.rules[name]
                names[key] = None
                return None
            self.rules[name] = Rule(name, self.expr(body))
            return names[key]

        return go(start)

    def unique_items(self, s, positions, rest, items, lo, hi, ctx) -> Any:
        """uniqueItems over a finite domain of scalars (an enum, booleans, null): the arrays are
        the distinct values in any order, so they are spelled out; other domains are unsupported."""
        domain = self.finite_domain(items, ctx) if not positions else None
        if domain is None:
            return _NOT_HANDLED
        texts = [_chars(_scalar_text(v)) for v in domain]
        hi = len(texts) if hi is None else min(hi, len(texts))
        if lo > hi:
            return None
        members = [(t, False) for t in texts]
        body = self.any_order_tree(members, None, lo, hi)
        return self.seq(self.lit("["), self.w(), body, self.w(), self.lit("]"))

    def finite_domain(self, items: Any, ctx: _Ctx) -> list | None:
        flat = self.flatten(items, _sub(ctx, "/items"))
        if not isinstance(flat, dict):
            return None
        keys = {k for k in flat if k not in ANNOTATIONS}
        if "enum" in flat or "const" in flat:
            if keys - {"enum", "const", "type"}:
                return None
            values = flat.get("enum", [flat.get("const")]) if "enum" in flat else [flat["const"]]
            types = flat.get("type")
            out, seen = [], set()
            for v in values:
                if isinstance(v, (list, dict)):
                    return None
                t = json_type(v)
                if types is not None and not (t in types or (t == "integer" and "number" in types)):
                    continue
                if value_key(v) not in seen:
                    seen.add(value_key(v))
                    out.append(v)
            return out if len(out) <= 12 else None
        if keys == {"type"} and set(flat["type"]) <= {"boolean", "null"}:
            return ([True, False] if "boolean" in flat["type"] else []) + ([None] if "null" in flat["type"] else [])
        return None

    # ---- objects -----------------------------------------------------------------------------

    def t_object(self, s: dict, ctx: _Ctx, witnesses: tuple[tuple[RegexNode, Any], ...] = ()) -> Any:
        """`witnesses`: (key texts, value schema) of members that must be there, undeclared ones,
        one each."""
        if s.get(X_SOME_MEMBERS):
            return self.some_members(s, ctx, witnesses)
        props = s.get("properties", {})
        if not isinstance(props, dict):
            raise InvalidSchema("properties must be an object", location=Location(pointer=ctx.pointer))
        required = s.get("required", [])
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise InvalidSchema("required must be a list of strings", location=Location(pointer=ctx.pointer))
        patterns = s.get("patternProperties", {})
        extra = s.get("additionalProperties", True)
        names = s.get("propertyNames")
        names_tree = None
        if names is not None and names is not True:
            names_flat = self.flatten(names, _sub(ctx, "/propertyNames"))
            if names_flat is False:  # no key at all: only {}
                if required or witnesses or _count(s, "minProperties", ctx) > 0:
                    return None
                return self.seq(self.lit("{"), self.w(), self.lit("}"))
            if isinstance(names_flat, _Opaque):
                self.unsupported("propertyNames", "a recursive schema", ctx)
            else:
                names_tree = self.key_content(names_flat, _sub(ctx, "/propertyNames"))
        lo, hi = _count(s, "minProperties", ctx), _count(s, "maxProperties", ctx, None)
        members: list[tuple[Any, bool]] = []
        declared = list(dict.fromkeys([*props, *required]))
        for key in declared:
            value_schema = props.get(key)
            hits = [(p, sub) for p, sub in patterns.items() if _search(p, key)]
            sub_ctx = _sub(ctx, f"/properties/{_escape(key)}", key)
            if value_schema is None:
                value_schema = extra if not hits else None
            parts = ([] if value_schema is None else [value_schema]) + [sub for _, sub in hits]
            if len(parts) == 1:
                value = self.node(parts[0], sub_ctx)
            else:
                value = self.flat({"allOf": parts}, sub_ctx)
            key_text = literal_text(key)
            if names_tree is not None:
                key_text = self.live(Intersect((key_text, json_string(names_tree, canonical=True))))
            member = self.seq(key_text, self.punct(":"), value) if value is not None else None
            if member is None:
                if key in required:
                    return None
                continue
            members.append((member, key in required))
        extras = self.extra_members(declared, patterns, extra, names_tree, ctx)
        for witness in witnesses:
            member = self.extra_members(declared, patterns, extra, names_tree, ctx, witness)
            if member is None:
                return None
            members.append((member, True))
        if self.options.property_order == "any" and len(members) + (extras is not None) > 1:
            body = self.any_order(members, extras, lo, hi)
        else:
            body = self.declared_order(members, extras, lo, hi)
        if body is None:
            return None
        return self.seq(self.lit("{"), self.w(), body, self.w(), self.lit("}"))

    def key_content(self, flat: Any, ctx: _Ctx) -> RegexNode | None:
        """The key strings (values, not texts) a `propertyNames` schema allows."""
        if flat is True:
            return None
        other = [k for k in flat if k not in ANNOTATIONS and k not in _STRING_KEYWORDS]
        if other:
            self.unsupported("propertyNames", f"propertyNames with {other[0]!r}", ctx)
            return None
        if "type" in flat and "string" not in flat["type"]:
            return Alternation(())
        content = self.string_content(flat, ctx)
        if "enum" in flat or "const" in flat:
            values = flat.get("enum", []) if "enum" in flat else [flat["const"]]
            if "const" in flat and "enum" in flat:
                values = [v for v in values if value_key(v) == value_key(flat["const"])]
            listed = Alternation(tuple(_codepoints(v) for v in values if isinstance(v, str)))
            content = listed if content is None else Intersect((listed, content))
        return Alternation(()) if content is None else content

    def some_members(self, s: dict, ctx: _Ctx, witnesses: tuple[tuple[RegexNode, Any], ...]) -> Any:
        """Objects with, for each (key schema, value schema) of `X_SOME_MEMBERS`, a member whose
        key and value they accept. The first one's member is a declared property whose key the
        key schema accepts (then required, its value joined with the value schema), or an
        undeclared member (under patternProperties or additionalProperties, joined with it
        likewise): one more, or one that an earlier witness already asks for. The union of
        those objects is exact."""
        (key_schema, value_schema), *later = s[X_SOME_MEMBERS]
        rest = {k: v for k, v in s.items() if k != X_SOME_MEMBERS}
        if later:
            rest[X_SOME_MEMBERS] = later
        keys = self.key_texts(key_schema, ctx)
        if keys is None:
            return None
        props, patterns = rest.get("properties", {}), rest.get("patternProperties", {})
        required = rest.get("required", [])
        options = []
        for key in dict.fromkeys([*props, *required]):
            if self.live(Intersect((literal_text(key), keys))) is None:
                continue
            if key in props:
                own = props[key]
            else:  # what t_object reads for it: its patterns (joined there), else additionalProperties
                own = True if any(_search(p, key) for p in patterns) else rest.get("additionalProperties", True)
            options.append(self.t_object({**rest, "properties": {**props, key: {"allOf": [own, value_schema]}},
                                          "required": [*required, key]}, ctx, witnesses))
        options.append(self.t_object(rest, ctx, (*witnesses, (keys, value_schema))))
        for i, (other_keys, other_value) in enumerate(witnesses):
            both = self.live(Intersect((other_keys, keys)))
            if both is not None:
                joined = (both, {"allOf": [other_value, value_schema]})
                options.append(self.t_object(rest, ctx, (*witnesses[:i], joined, *witnesses[i + 1:])))
        return self.alt(options)

    def key_texts(self, schema: Any, ctx: _Ctx) -> RegexNode | None:
        """The JSON texts of the keys (strings) `schema` accepts, as a tree; None if none."""
        flat = self.flatten(schema, ctx)
        if isinstance(flat, _Opaque):
            self.unsupported("propertyNames", "a recursive schema for keys", ctx)
            return None
        texts = self.flat_or_bool(merge({"type": ["string"]}, flat, ctx.pointer), ctx)
        if texts is not None and not _is_tree(texts):
            self.unsupported("propertyNames", "a key schema that is not regular", ctx)
            return None
        return texts

    def extra_members(self, declared: list[str], patterns: dict, extra: Any, names_tree, ctx: _Ctx,
                      witness: tuple[RegexNode, Any] | None = None) -> Any:
        """One member whose key is none of the declared ones: by patternProperties, then
        additionalProperties (generated only when described, or when the option allows).
        `witness` (key texts, value schema) narrows the member to those keys and values, and
        an additionalProperties member is then generated whatever the option."""
        if not isinstance(patterns, dict):
            raise InvalidSchema("patternProperties must be an object", location=Location(pointer=ctx.pointer))
        pattern_list = list(patterns.items())
        if len(pattern_list) > _MAX_PATTERN_REGIONS:
            self.unsupported("patternProperties", f"more than {_MAX_PATTERN_REGIONS} patterns", ctx)
            pattern_list = pattern_list[:_MAX_PATTERN_REGIONS]
        trees = [(self.pattern(p, _sub(ctx, f"/patternProperties/{_escape(p)}")), p, sub) for p, sub in pattern_list]
        trees = [t for t in trees if t[0] is not None]
        not_declared = _none_of(declared) if declared else None
        options = []
        for mask in range(1, 1 << len(trees)):
            inside = [t for i, t in enumerate(trees) if mask >> i & 1]
            outside = [t for i, t in enumerate(trees) if not mask >> i & 1]
            key = [t[0] for t in inside] + [Complement(t[0]) for t in outside]
            sub_ctx = _sub(ctx, f"/patternProperties/{_escape(inside[0][1])}", _UNKNOWN)
            values = [t[2] for t in inside] + ([witness[1]] if witness else [])
            value = self.node(values[0], sub_ctx) if len(values) == 1 else self.flat({"allOf": values}, sub_ctx)
            options.append(self.extra_member(key, not_declared, names_tree, value, witness))
        if extra is not False and (witness or extra is not True or self.options.additional_properties == "allow"):
            key = [Complement(t[0]) for t in trees]
            sub_ctx = _sub(ctx, "/additionalProperties", _UNKNOWN)
            if witness:
                value = self.flat({"allOf": [extra, witness[1]]}, sub_ctx)
            else:
                value = self.any_value() if extra is True else self.node(extra, sub_ctx)
            options.append(self.extra_member(key, not_declared, names_tree, value, witness))
        return self.alt(options)

    def extra_member(self, key_parts: list, not_declared, names_tree, value, witness=None) -> Any:
        if value is None:
            return None
        parts = list(key_parts) + ([not_declared] if not_declared is not None else [])
        content = parts[0] if len(parts) == 1 else Intersect(tuple(parts)) if parts else Repeat(ANY_CHAR, 0, None)
        key = json_string(content, canonical=True)
        if names_tree is not None:
            key = Intersect((key, json_string(names_tree, canonical=True)))
        if witness is not None:
            key = Intersect((key, witness[0]))
        if key_parts or names_tree is not None or witness is not None:
            key = self.live(key)  # patterns, propertyNames and a witness may leave no key at all
        return self.seq(key, self.punct(":"), value)

    def declared_order(self, members: list[tuple[Any, bool]], extras: Any, lo: int, hi: int | None) -> Any:
        """Members in declared order, each optional unless required, then any extras; `c` counts
        the members written so far, capped where the bounds stop telling counts apart."""
        n = len(members)
        comma = self.punct(",")
        if extras is not None and lo == 0 and hi is None:
            return self.declared_with_extras(members, extras)
        cap = max(lo, (hi + 1) if hi is not None else 1, 1)
        memo: dict[tuple[int, int], Any] = {}
        for i in range(n, -1, -1):
            for c in range(min(i, cap), -1, -1):
                if hi is not None and c > hi:
                    memo[i, c] = None
                    continue
                sep = comma if c else EPS
                if i == n:
                    need = max(0, lo - c)
                    room = None if hi is None else hi - c
                    if extras is None or room == 0:
                        memo[i, c] = EPS if need == 0 else None
                    elif c == 0:
                        more = self.seq(extras, self.rep(self.seq(comma, extras), max(0, need - 1),
                                                         None if room is None else room - 1))
                        memo[i, c] = more if need else self.opt(more)
                    else:
                        memo[i, c] = self.rep(self.seq(comma, extras), need, room)
                    continue
                member, required = members[i]
                take = self.seq(sep, member, memo[i + 1, min(c + 1, cap)])
                part = take if required else self.alt([take, memo[i + 1, c]])
                memo[i, c] = self.shared(part)
        return memo[0, 0]

    def declared_with_extras(self, members: list[tuple[Any, bool]], extras: Any) -> Any:
        """Declared members in order, and extra members anywhere among them (no count bounds)."""
        comma = self.punct(",")
        more = Repeat(self.seq(comma, extras), 0, None) if _is_tree(extras) else \
            Repetition(self.expr(self.seq(comma, extras)), 0, None)
        after = self.seq(more)  # once something is written: any extras, then what follows
        before = self.opt(self.seq(extras, more))  # nothing written yet
        later, first = after, before  # i == n
        for i in range(len(members) - 1, -1, -1):
            member, required = members[i]
            take_later = self.seq(comma, member, later)
            now_later = self.shared(self.seq(more, take_later if required else self.alt([take_later, later])))
            take_first = self.seq(member, later)
            options = [self.seq(extras, now_later), take_first] + ([] if required else [first])
            first, later = self.shared(self.alt(options)), now_later
        return first

    def shared(self, part: Any) -> Any:
        """An IR expression used from several places becomes a rule (the rule builder copies
        expressions; trees are shared by the term store)."""
        if part is None or _is_tree(part) or isinstance(part, (RuleRef, TerminalRef)):
            return part
        name = f"r{len(self.rules)}"
        self.rules[name] = Rule(name, part)
        return RuleRef(name)

    def any_order(self, members: list[tuple[Any, bool]], extras: Any, lo: int, hi: int | None) -> Any:
        """Members in any order where that stays affordable: an intersection of "at most once"
        lists for regular values (each automaton state pays one derivative per member, so up to
        `_MAX_ANY_ORDER` members), one rule per set of members written for recursive values (up
        to `_MAX_ANY_ORDER_RECURSIVE`); past those, declared order with a warning."""
        parts = [m for m, _ in members] + ([extras] if extras is not None else [])
        regular = all(_is_tree(p) for p in parts)
        if regular and len(members) <= _MAX_ANY_ORDER:
            return self.any_order_tree(members, extras, lo, hi)
        if not regular and len(members) <= _MAX_ANY_ORDER_RECURSIVE:
            return self.any_order_rules(members, extras, lo, hi)
        bound = _MAX_ANY_ORDER if regular else _MAX_ANY_ORDER_RECURSIVE
        warnings.warn(f"property_order='any': an object with {len(members)} properties"
                      f"{'' if regular else ' with recursive values'} keeps them in declared order (any order "
                      f"is spelled out up to {bound}); undescribed properties may still stand anywhere",
                      stacklevel=2)
        return self.declared_order(members, extras, lo, hi)

    def any_order_tree(self, members: list[tuple[Any, bool]], extras: Any, lo: int, hi: int | None) -> Any:
        """Members in any order, each declared one at most once, required ones present: the comma
        lists of members, intersected with one "at most once" (or "exactly once") list per
        member. A JSON object's text splits into members in one way only, so this is exact."""
        comma = self.punct(",")
        every = [m for m, _ in members] + ([extras] if extras is not None else [])
        x = self.alt(every)

        def listing(item: Any) -> Any:
            return self.seq(item, Repeat(self.seq(comma, item), 0, None))

        need = max(lo, 1 if any(r for _, r in members) else 0)
        if hi is not None and need > hi:  # more members needed than allowed: no object
            return None
        if hi == 0:
            return EPS
        count_hi = None if hi is None else hi - 1
        base = self.seq(x, self.rep(self.seq(comma, x), max(0, need - 1), count_hi))
        constraints = [base]
        for i, (m, required) in enumerate(members):
            others = [p for j, p in enumerate(every) if j != i]
            y = self.alt(others)
            around = self.seq(self.opt(self.seq(listing(y), comma)) if y is not None else EPS, m,
                              self.opt(self.seq(comma, listing(y))) if y is not None else EPS)
            if required:
                constraints.append(around)
            else:
                constraints.append(Alternation((around, listing(y))) if y is not None else around)
        body = constraints[0] if len(constraints) == 1 else Intersect(tuple(constraints))
        return body if need else Alternation((body, EPS))

    def any_order_rules(self, members: list[tuple[Any, bool]], extras: Any, lo: int, hi: int | None) -> Any:
        """Any order for members with recursive values: one rule per (set of members written,
        extra members written, capped where the count bounds stop telling counts apart)."""
        n = len(members)
        comma = self.punct(",")
        required = sum(1 << i for i, (_, r) in enumerate(members) if r)
        cap = max(lo, (hi + 1) if hi is not None else 0, 1)  # at least "none yet" vs "some"

        def options(key: tuple[int, int], state) -> list[Any]:
            used, extra = key
            count = bin(used).count("1") + extra
            if hi is not None and count > hi:
                return []
            sep = EPS if used == 0 and extra == 0 else comma
            out = [EPS] if used & required == required and count >= lo else []
            out.extend(self.seq(sep, members[i][0], state((used | 1 << i, extra)))
                       for i in range(n) if not used >> i & 1)
            if extras is not None:
                out.append(self.seq(sep, extras, state((used, min(extra + 1, cap)))))
            return out

        return self.state_rules((0, 0), options)

    # ---- any value ---------------------------------------------------------------------------

    def any_value(self) -> Any:
        """Every JSON value (a recursive rule, shared). Its objects have no members unless
        additional_properties="allow": their properties are not described."""
        if self._any is None:
            self._any = RuleRef("json_value")
            string = json_string(Repeat(ANY_CHAR, 0, None))
            number = number_tree(None, None)
            scalar = Alternation((string, number, self.lit("true"), self.lit("false"), self.lit("null")))
            comma = self.punct(",")
            member = self.seq(string, self.punct(":"), self._any)
            members = self.opt(self.seq(member, self.rep(self.seq(comma, member), 0, None))) \
                if self.options.additional_properties == "allow" else EPS
            obj = self.seq(self.lit("{"), self.w(), members, self.w(), self.lit("}"))
            arr = self.seq(self.lit("["), self.w(), self.opt(self.seq(self._any, self.rep(self.seq(comma, self._any), 0, None))),
                           self.w(), self.lit("]"))
            self.rules["json_value"] = Rule("json_value", self.expr(self.alt([obj, arr, scalar])))
        return self._any


@dataclass
class _Located:
    """A subschema with the context (base URI, pointer, draft) it is read in."""

    schema: Any
    ctx: _Ctx


@dataclass
class _Opaque:
    """A schema in progress (recursion): it is referenced, never merged."""

    schema: Any
    ctx: _Ctx


_NOT_HANDLED = object()
# Keywords whose meaning lies in other schemas (references, applicators) or in what those evaluate.
_VIEW_DROPS = frozenset(("$ref", "$dynamicRef", "$recursiveRef", "allOf", "anyOf", "oneOf", "not", X_ANY_OF,
                         X_ONE_OF, X_NOT, "unevaluatedProperties", "unevaluatedItems"))
_FRACTION_NUMBER = parse_regex(r"-?(0|[1-9][0-9]*)\.[0-9]*[1-9]")
_CANONICAL_NUMBER = parse_regex(r"0|-?[1-9][0-9]*|-?(0|[1-9][0-9]*)\.[0-9]*[1-9]")
_STRING_KEYWORDS = frozenset(("type", "enum", "const", "minLength", "maxLength", "pattern", "format",
                              X_PATTERNS, X_FORMATS, X_NOT_STRINGS, X_NOT_VALUES))


def _multiples(m: int) -> RegexNode:
    """Canonical integers divisible by m. For m = 2^a 5^b their last k = max(a, b) digits
    decide, so the tree is "any digits, then one of the 10^k / m suffixes" (few automaton
    states); any other m keeps the remainder so far (`Multiples`, m states)."""
    k, rest = 0, m
    for p in (2, 5):
        e = 0
        while rest % p == 0:
            rest //= p
            e += 1
        k = max(k, e)
    if rest != 1 or 10 ** k // m > 1000:
        unsigned: RegexNode = Intersect((_NATURAL, Multiples(m)))
    else:
        suffixes = [f"{v:0{k}d}" for v in range(0, 10 ** k, m)]
        long = Concat((Chars(((0x31, 0x39),)), Repeat(_DIGIT, 0, None),
                       Alternation(tuple(_chars(x) for x in suffixes))))
        unsigned = Alternation((long, *[_chars(str(v)) for v in range(m, 10 ** k, m)]))
    return Alternation((_chars("0"), unsigned, Concat((_chars("-"), unsigned))))


_DIGIT = Chars(((0x30, 0x39),))
_NATURAL = Concat((Chars(((0x31, 0x39),)), Repeat(_DIGIT, 0, None)))  # canonical, positive


def search_tree(pattern: str, limits: Limits = DEFAULT_LIMITS) -> RegexNode:
    """The strings in which `pattern` finds a match (`re.search`), as a tree without anchors.

        >>> search_tree("^ab")      # ab.*
        >>> search_tree("b$")       # .*b, and .*b followed by one final newline

    `^` / `\\A` leading, and `$` / `\\Z` trailing, a top-level alternative anchor it; an anchor
    anywhere else raises `UnsupportedPattern`. Lookaheads in the sequence of a top-level
    alternative see the rest of the text (`(?!x)` after a leading `^`: no string starting with x).
    """
    tree = parse_regex(f"(?:{pattern})", lookaheads="keep")
    options = tree.options if isinstance(tree, Alternation) else (tree,)
    anything = Repeat(ANY_CHAR, 0, None)
    out = []
    for option in options:
        parts = list(option.parts) if isinstance(option, Concat) else [option]
        while len(parts) == 1 and isinstance(parts[0], Concat):
            parts = list(parts[0].parts)
        head = [anything]
        tail = [anything]
        if parts and isinstance(parts[0], Assert) and parts[0].kind == "start":
            head = []
            parts = parts[1:]
        if parts and isinstance(parts[-1], Assert) and parts[-1].kind in ("end", "end_or_final_newline"):
            tail = [Repeat(Chars(((10, 10),)), 0, 1)] if parts[-1].kind == "end_or_final_newline" else []
            parts = parts[:-1]
        core = Concat(tuple(parts))
        if find_node(core, Assert) is not None:  # lookaheads' own anchors are resolve_lookaheads' to judge
            raise UnsupportedPattern(pattern, 0, "an anchor inside the pattern (only at its ends)")
        try:
            out.append(Concat((*head, resolve_lookaheads(parts, tail, at_start=not head, pattern=pattern))))
        except UnsupportedPattern as e:  # its position is in the text parsed, inside "(?:"
            raise UnsupportedPattern(pattern, max(e.position - 3, 0), e.construct) from None
    return out[0] if len(out) == 1 else Alternation(tuple(out))


def _first_group(s: dict, key: Any) -> tuple[list, dict]:
    """The first of the branch lists under `key`, and the schema with the others left."""
    group, later = s[key][0], s[key][1:]
    rest = {k: v for k, v in s.items() if k != key}
    if later:
        rest[key] = later
    return group, rest


def _forbids(s: dict, key: str) -> bool:
    """Whether an object valid for `s` can never have `key`."""
    props = s.get("properties", {})
    if key in props:
        return _never(props[key])
    if any(_search(p, key) for p in s.get("patternProperties", {})):
        return False
    return _never(s.get("additionalProperties", True))


def _never(s: Any) -> bool:
    """Whether a schema plainly admits nothing: false, or an allOf with such a branch."""
    while isinstance(s, _Located):
        s = s.schema
    return s is False or (isinstance(s, dict) and any(_never(b) for b in s.get("allOf", ())))


def _ranges_apart(a: dict, b: dict) -> bool:
    def bounds(s: dict):
        lo = max([(_decimal(s[k]), k == "exclusiveMinimum") for k in ("minimum", "exclusiveMinimum") if k in s],
                 default=None)
        hi = min([(_decimal(s[k]), k != "exclusiveMaximum") for k in ("maximum", "exclusiveMaximum") if k in s],
                 default=None)
        return lo, hi
    (la, ha), (lb, hb) = bounds(a), bounds(b)
    for lo, hi in ((la, hb), (lb, ha)):
        if lo is not None and hi is not None:
            # apart when every value above lo is above hi: lo > hi, or equal with an exclusive side
            if lo[0] > hi[0] or (lo[0] == hi[0] and (lo[1] or not hi[1])):
                return True
    return False


def _type_set(s: dict) -> set[str]:
    t = s.get("type")
    if t is None:
        return set(TYPES)
    out = set(t)
    if "number" in out:
        out.add("integer")
    return out


def _values(s: dict) -> list:
    if "const" in s:
        return [s["const"]]
    return list(s.get("enum", []))


def _value_set(s: dict) -> set | None:
    if "const" not in s and "enum" not in s:
        return None
    return {value_key(v) for v in _values(s)}


def _count(s: dict, key: str, ctx: _Ctx, default: int | None = 0) -> int | None:
    v = s.get(key, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or v != int(v):
        raise InvalidSchema(f"{key} must be a non-negative integer, got {_show(v)}", location=Location(pointer=ctx.pointer))
    return int(v)


def _search(pattern: str, key: str) -> bool:
    try:
        return re.search(pattern, key) is not None
    except re.error:
        return False


def _none_of(words: list[str]) -> RegexNode:
    """Every string except `words`, as a plain tree (no complement: its automaton needs no search).

    From the trie of the words: at each node, stop (unless a word ends there), or leave the trie
    with a character no word continues with and then anything, or follow a child."""
    trie: dict = {}
    for w in words:
        node = trie
        for c in w:
            if 0xD800 <= ord(c) <= 0xDFFF:
                continue
            node = node.setdefault(c, {})
        node[None] = True
    anything = Repeat(ANY_CHAR, 0, None)
    # Post-order without recursion: a node's tree needs its children's trees.
    done: dict[int, RegexNode] = {}
    todo: list[tuple[dict, bool]] = [(trie, False)]
    while todo:
        node, ready = todo.pop()
        children = [(c, n) for c, n in node.items() if c is not None]
        if not ready:
            todo.append((node, True))
            todo.extend((n, False) for _, n in children)
            continue
        options: list[RegexNode] = [] if None in node else [Concat(())]
        used = tuple((ord(c), ord(c)) for c, _ in sorted(children))
        others = _remove(ANY_CHAR.intervals, used)
        if others:
            options.append(Concat((Chars(others), anything)))
        for c, n in children:
            options.append(Concat((Chars(((ord(c), ord(c)),)), done[id(n)])))
        done[id(node)] = options[0] if len(options) == 1 else Alternation(tuple(options))
    return done[id(trie)]


def _remove(intervals: tuple, points: tuple) -> tuple:
    out = []
    for lo, hi in intervals:
        for p, _ in points:
            if lo <= p <= hi:
                if lo < p:
                    out.append((lo, p - 1))
                lo = p + 1
        if lo <= hi:
            out.append((lo, hi))
    return tuple(out)


def _codepoints(text: str) -> RegexNode:
    return Concat(tuple(Chars(((ord(c), ord(c)),)) for c in text if not 0xD800 <= ord(c) <= 0xDFFF))


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise InvalidSchema(f"{value!r} is not a number") from None


def _ceil(d: Decimal) -> int:
    return int(d.to_integral_value(rounding="ROUND_CEILING"))


def _floor(d: Decimal) -> int:
    return int(d.to_integral_value(rounding="ROUND_FLOOR"))


def _sub(ctx: _Ctx, suffix: str, step: Any = _SAME) -> _Ctx:
    """The context of a subschema at `suffix`; `step` is where its instance is: a key, None
    for any array index, an int index, or _UNKNOWN (under additionalProperties, ...)."""
    if step is _SAME:
        path = ctx.path
    elif step is _UNKNOWN or ctx.path is None:
        path = None
    else:
        path = ctx.path + (step,)
    return _Ctx(ctx.base, ctx.pointer + suffix, ctx.draft, path)


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _pointer_of(ref: str) -> str:
    return ref.split("#", 1)[1] if "#" in ref else ""


def _short(pointer: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", pointer.rsplit("/", 1)[-1])[:24]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."


def schema_to_ir(schema: Any, options: Options | None = None, *, resources: dict | None = None,
                 limits: Limits | None = None) -> "CompiledSchema":
    """The grammar IR of a JSON Schema, the keywords dropped (only with ``lenient=True``), and the
    instance paths of the arrays whose items must be unique (enforced at run time)."""
    options = options or Options()
    compiler = _Compiler(schema, options, resources, limits or DEFAULT_LIMITS)
    # The compiler recurses once per level of schema nesting (a few frames each).
    depth = sys.getrecursionlimit()
    sys.setrecursionlimit(max(depth, _RECURSION_LIMIT))
    try:
        part = compiler.compile_root()
    except RecursionError:
        raise ConstraintTooLarge("compiling the JSON Schema: nesting depth", _RECURSION_LIMIT, _RECURSION_LIMIT,
                                 unit="Python frames", hint="the schema nests too deep to compile") from None
    finally:
        sys.setrecursionlimit(depth)
    if part is None:
        from ...errors import EmptyLanguage

        raise EmptyLanguage("no JSON value satisfies the schema", source=_show(schema))
    if compiler.ws is not None:
        part = compiler.seq(compiler.ws, part, compiler.ws)
    compiler.rules["start"] = Rule("start", compiler.expr(part))
    ir = GrammarIR(compiler.rules, compiler.terminals, "start", source=_show(schema)[:200], name="json_schema")
    return CompiledSchema(ir, compiler.dropped, frozenset(compiler.unique_paths))


@dataclass(frozen=True)
class CompiledSchema:
    ir: GrammarIR
    dropped: list[str]
    unique_paths: frozenset[tuple]
