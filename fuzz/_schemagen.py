"""JSON Schemas and instances for the jsonschema fuzz target, as hypothesis strategies; MaskBench
schemas; edits that mutate and shrink both.

    >>> from hypothesis import strategies as st
    >>> schema = schemas().example(); instance = instances(schema).example()

`schemas()` draws a schema of draft 2020-12 (sometimes rewritten as draft-07: `definitions`,
array `items`, `dependencies`) from a recursive strategy over the keywords tether compiles:
`type` (names and lists), `enum`/`const`, `properties`/`required`/`additionalProperties` (booleans
and schemas)/`patternProperties`/`propertyNames`/`min`-`maxProperties`/`dependentRequired`/
`dependentSchemas`, `items`/`prefixItems`/`min`-`maxItems`/`contains`/`min`-`maxContains`/
`uniqueItems`, `min`-`maxLength`/`pattern` (small Python regexes)/`format`, `minimum`/`maximum`/
`exclusive*`/`multipleOf`, `anyOf`/`oneOf`/`allOf`/`not`, `if`/`then`/`else`, `$ref` into `$defs`
(recursion included: a definition may refer to itself or to the root) and boolean schemas. Names,
patterns and values come from small pools so that they collide: a property name that a pattern
also matches, an `enum` value that a `const` elsewhere repeats, bounds next to each other.

`instances(schema)` draws JSON values near the schema: it follows the schema (a branch of an
`anyOf`, the properties it declares and requires, lengths and bounds at the edges and one past
them, members of its patterns and formats, its own `enum`/`const` values) and sometimes leaves it
(random JSON, a value of another type). `mutate_value` then edits a value (a key dropped or
added, a number moved by one, a character added). `mutated(schema)` edits a schema (a keyword
dropped, replaced or added, a bound moved): how MaskBench's real schemas are varied.

`schema_shrinks` and `value_shrinks` yield smaller schemas and values (deletions first, the
largest first), to minimise a failing case; `keywords(schema)` lists every keyword a schema uses.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import random
import re
import tarfile
from pathlib import Path
from typing import Any, Iterator

from hypothesis import strategies as st

__all__ = ["schemas", "instances", "mutated", "mutate_value", "random_json", "keywords", "schema_nodes",
           "schema_shrinks", "value_shrinks", "load_maskbench", "resolve_local", "NAMES", "PATTERNS", "FORMATS"]

DRAFT7 = "http://json-schema.org/draft-07/schema#"

# ---------------------------------------------------------------- pools

NAMES = ["a", "b", "c", "ab", "x1", "é", "", "a b", 'q"', "A", "1", "aa"]
# Patterns as Python's re reads them (tether follows re, as jsonschema does), each with members
# (and near misses) for instances; `search` semantics: unanchored patterns match anywhere.
PATTERNS: dict[str, tuple[str, ...]] = {
    "^a": ("a", "ab", "ba", ""),
    "b$": ("b", "ab", "ba"),
    "^[a-c]+$": ("abc", "a", "d", "", "ab1"),
    "[0-9]": ("1", "a1", "a"),
    "^x": ("x1", "x", "ax"),
    "a|b": ("a", "b", "c", "cab"),
    "^.{2}$": ("ab", "a", "abc", "é1"),
    r"\d": ("7", "٣", "a"),
    "^(ab)*$": ("", "ab", "abab", "aba"),
    "é": ("é", "e", "aé"),
    "^[^a]": ("b", "a", ""),
    "^$": ("", "a"),
    "^[a-z]{1,3}$": ("a", "abc", "abcd", "A"),
    ".": ("a", "", "\n"),
    r"^\w+$": ("a_1", "é", "a b", ""),
    "^a.*b$": ("ab", "axb", "a\nb", "ba"),
    "(?i)^A": ("a", "A", "b"),
    r"\s": (" ", "a b", "a"),
    "^[0-9]{2,}$": ("12", "1", "123", "1a"),
    "^(a|bc)?$": ("", "a", "bc", "b"),
}
FORMATS: dict[str, tuple[str, ...]] = {
    "date": ("2024-02-29", "2023-02-29", "2024-13-01", "2024-1-01", "1970-01-01"),
    "date-time": ("2024-02-29T12:00:00Z", "2024-02-29T24:00:00Z", "2024-02-29 12:00:00Z", "2024-01-01T00:00:00+01:00",
                  "2024-01-01T23:59:60Z", "2024-01-01t00:00:00z"),
    "time": ("12:00:00Z", "12:00:00", "25:00:00Z", "23:59:59.5+02:00"),
    "email": ("a@b.c", "a", "a@@b", "@", "é@x.y"),
    "ipv4": ("1.2.3.4", "256.1.1.1", "01.2.3.4", "1.2.3"),
    "ipv6": ("::1", "1::2::3", "fe80::1", "::ffff:1.2.3.4", "12345::"),
    "uuid": ("123e4567-e89b-12d3-a456-426614174000", "123e4567e89b12d3a456426614174000",
             "g23e4567-e89b-12d3-a456-426614174000"),
    "hostname": ("example.com", "a", "-a.com", "a..b", "a" * 64),
    "uri": ("http://a.b/c", "a", "http://a b", "urn:x:y", "//a"),
    "uri-reference": ("a/b", "#f", "http://x", "a b"),
    "duration": ("P1D", "PT1H", "P", "P1H", "P1W", "P1Y2M"),
    "json-pointer": ("", "/a", "a", "/~2", "/~0~1"),
    "relative-json-pointer": ("0", "1/a", "0#", "-1", "/a"),
    "regex": ("a+", "(", "[a-"),
    "idn-hostname": ("example.com", "é.com", "-a"),
    "iri": ("http://é.com/", "é"),
    "uri-template": ("http://a/{b}", "{", "a"),
    "idn-email": ("é@x.y", "a"),
    "no-such-format": ("a", ""),
}
TYPES = ["null", "boolean", "integer", "number", "string", "array", "object"]
NUMBERS = [-10, -3, -1, 0, 1, 2, 3, 5, 7, 10, 100, 0.5, -2.5, 1.25, 2.0, 1e20, -0.1, 0.1, 9007199254740993]
MULTIPLES = [1, 2, 3, 5, 0.5, 0.25, 0.1, 10, 1.5, 0.01, 2.0]
ATOMS = [None, True, False, 0, 1, -1, 2, 1.5, 2.0, "a", "", "ab", "é", [], {}, [1], {"a": 1}, ["a", "b"], 1e20, 0.1,
         "1"]
DEF_NAMES = ["d0", "d1"]
# Keywords with subschemas, by shape (draft-07's array `items` and `dependencies` included).
SCHEMA_ONE = ("not", "if", "then", "else", "contains", "propertyNames", "additionalProperties", "additionalItems",
              "unevaluatedProperties", "unevaluatedItems", "items", "contentSchema")
SCHEMA_LIST = ("allOf", "anyOf", "oneOf", "prefixItems", "items")
SCHEMA_MAP = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas", "dependencies")
# Values that are data, never schemas.
DATA_KEYWORDS = ("enum", "const", "examples", "default")


# ---------------------------------------------------------------- walking schemas

def subschemas(node: Any) -> Iterator[tuple[tuple, Any]]:
    """(relative path, subschema) for each subschema directly under `node`."""
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key in SCHEMA_ONE and isinstance(value, (dict, bool)):
            yield (key,), value
        if key in SCHEMA_LIST and isinstance(value, list):
            for i, v in enumerate(value):
                if isinstance(v, (dict, bool)):
                    yield (key, i), v
        if key in SCHEMA_MAP and isinstance(value, dict):
            for name, v in value.items():
                if isinstance(v, (dict, bool)):
                    yield (key, name), v


def schema_nodes(schema: Any) -> list[tuple[tuple, Any]]:
    """Every subschema (the root first, breadth first) with its path from the root."""
    out, todo = [], [((), schema)]
    while todo:
        path, node = todo.pop(0)
        out.append((path, node))
        todo.extend((path + p, s) for p, s in subschemas(node))
        if len(out) > 5000:
            break
    return out


def keywords(schema: Any) -> set[str]:
    """Every keyword some subschema of `schema` uses (`False` counts as the keyword "false")."""
    used: set[str] = set()
    for _, node in schema_nodes(schema):
        if isinstance(node, dict):
            used.update(node)
        elif node is False:
            used.add("false")
    return used


def get_in(obj: Any, path: tuple) -> Any:
    for p in path:
        obj = obj[p]
    return obj


def set_in(obj: Any, path: tuple, value: Any) -> Any:
    """A copy of `obj` with the value at `path` replaced (copies only along the path)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(obj, dict):
        out = dict(obj)
        out[head] = set_in(obj[head], rest, value)
        return out
    out = list(obj)
    out[head] = set_in(obj[head], rest, value)
    return out


def del_in(obj: Any, path: tuple) -> Any:
    """A copy of `obj` without the key or element at `path`."""
    parent = get_in(obj, path[:-1])
    if isinstance(parent, dict):
        new = {k: v for k, v in parent.items() if k != path[-1]}
    else:
        new = parent[:path[-1]] + parent[path[-1] + 1:]
    return set_in(obj, path[:-1], new)


def resolve_local(root: Any, ref: str) -> Any:
    """The subschema a local `$ref` ("#", "#/a/b", percent- and ~-escaped) names, or None."""
    if ref == "#" or ref == "":
        return root
    if not ref.startswith("#/"):
        return None
    from urllib.parse import unquote

    node = root
    for part in ref[2:].split("/"):
        part = unquote(part).replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


# ---------------------------------------------------------------- schemas

@functools.lru_cache(maxsize=None)
def _json_atoms() -> st.SearchStrategy:
    return st.sampled_from(ATOMS)


@functools.lru_cache(maxsize=None)
def _numbers() -> st.SearchStrategy:
    return st.one_of(st.sampled_from(NUMBERS), st.integers(-20, 20))


@functools.lru_cache(maxsize=None)
def _type_value() -> st.SearchStrategy:
    return st.one_of(st.sampled_from(TYPES), st.lists(st.sampled_from(TYPES), min_size=1, max_size=3, unique=True))


@st.composite
def _keyword_subset(draw, options: dict[str, st.SearchStrategy], base: dict | None = None, lo: int = 1, hi: int = 3):
    names = draw(st.lists(st.sampled_from(sorted(options)), min_size=lo, max_size=hi, unique=True))
    out = dict(base or {})
    for n in names:
        out[n] = draw(options[n])
    return out


@functools.lru_cache(maxsize=None)
def _string_schema() -> st.SearchStrategy:
    return _keyword_subset({
        "type": st.sampled_from(["string", "string", ["string", "null"]]),
        "minLength": st.integers(0, 4), "maxLength": st.integers(0, 6),
        "pattern": st.sampled_from(sorted(PATTERNS)), "format": st.sampled_from(sorted(FORMATS)),
    })


@functools.lru_cache(maxsize=None)
def _number_schema() -> st.SearchStrategy:
    return _keyword_subset({
        "type": st.sampled_from(["integer", "number", ["integer", "string"], ["number", "null"]]),
        "minimum": _numbers(), "maximum": _numbers(), "exclusiveMinimum": _numbers(), "exclusiveMaximum": _numbers(),
        "multipleOf": st.sampled_from(MULTIPLES),
    })


@functools.lru_cache(maxsize=None)
def _leaf() -> st.SearchStrategy:
    return st.one_of(
        st.just({}), st.just(True), st.builds(lambda t: {"type": t}, _type_value()),
        _string_schema(), _number_schema(),
        st.builds(lambda v: {"enum": v}, st.lists(_json_atoms(), min_size=1, max_size=4)),
        st.builds(lambda v: {"const": v}, _json_atoms()),
        st.sampled_from(_REF_LEAVES), st.sampled_from(_REF_LEAVES), st.sampled_from(_REF_LEAVES),
        st.sampled_from(_UNKNOWN_LEAVES),
    )


_REF_LEAVES = [{"$ref": "#/$defs/d0"}, {"$ref": "#/$defs/d1"}, {"$ref": "#"}, False, {"type": "null"}]
# Keywords JSON Schema does not know, which validators ignore: among them the names tether's own
# schema algebra uses internally (a user's schema may spell them too).
_UNKNOWN_LEAVES = [{"x-unknown": 1, "type": "integer"}, {"type": "string", "x-patterns": ["^a"]}, {"x-anyOf": 1},
                   {"x-not-strings": "a"}, {"x-fraction": True}, {"x-formats": ["date"]}, {"foo": {"type": "string"}}]


@functools.lru_cache(maxsize=None)
def _names() -> st.SearchStrategy:
    return st.sampled_from(NAMES)


def _extend(children: st.SearchStrategy) -> st.SearchStrategy:
    objects = _keyword_subset({
        "type": st.just("object"),
        "properties": st.dictionaries(_names(), children, min_size=1, max_size=3),
        "required": st.lists(_names(), max_size=3, unique=True),
        "additionalProperties": st.one_of(st.booleans(), children),
        "patternProperties": st.dictionaries(st.sampled_from(sorted(PATTERNS)), children, min_size=1, max_size=2),
        "propertyNames": st.one_of(_string_schema(), children),
        "minProperties": st.integers(0, 3), "maxProperties": st.integers(0, 4),
        "dependentRequired": st.dictionaries(_names(), st.lists(_names(), max_size=2, unique=True), min_size=1,
                                             max_size=2),
        "dependentSchemas": st.dictionaries(_names(), children, min_size=1, max_size=2),
    }, lo=1, hi=4)
    arrays = _keyword_subset({
        "type": st.just("array"), "items": children,
        "prefixItems": st.lists(children, min_size=1, max_size=3),
        "minItems": st.integers(0, 3), "maxItems": st.integers(0, 4),
        "contains": children, "minContains": st.integers(0, 2), "maxContains": st.integers(0, 3),
        "uniqueItems": st.booleans(),
    }, lo=1, hi=4)
    combinators = _keyword_subset({
        "anyOf": st.lists(children, min_size=1, max_size=3), "oneOf": st.lists(children, min_size=1, max_size=3),
        "allOf": st.lists(children, min_size=1, max_size=3), "not": children,
        "if": children, "then": children, "else": children, "type": _type_value(),
    }, lo=1, hi=2)
    return st.one_of(objects, objects, arrays, combinators)


def _refs(schema: Any) -> set[str]:
    found: set[str] = set()
    for _, node in schema_nodes(schema):
        if isinstance(node, dict) and isinstance(node.get("$ref"), str):
            found.add(node["$ref"])
    return found


@functools.lru_cache(maxsize=None)
def _body() -> st.SearchStrategy:
    return st.recursive(_leaf(), _extend, max_leaves=8)


@st.composite
def schemas(draw) -> Any:
    """A root schema: a body, with `$defs` d0 and d1 when it refers to them, sometimes in draft-07."""
    body = draw(_body())
    if isinstance(body, dict) and any(r.startswith("#/$defs/") for r in _refs(body)):
        defs = {name: draw(_body()) for name in DEF_NAMES}
        body = {**body, "$defs": defs}
    if isinstance(body, dict) and draw(st.integers(0, 9)) == 9:
        body = to_draft7(body)
    return body


def to_draft7(schema: dict) -> dict:
    """The schema in draft-07 spelling (`$ref` siblings then mean nothing in draft-07, as validators agree)."""
    def convert(node: Any) -> Any:
        if isinstance(node, list):
            return [convert(v) for v in node]
        if not isinstance(node, dict):
            return node
        out = {}
        for k, v in node.items():
            if k in DATA_KEYWORDS:
                out[k] = v
            elif k == "$defs":
                out["definitions"] = convert(v)
            elif k == "$ref" and isinstance(v, str):
                out[k] = v.replace("#/$defs/", "#/definitions/")
            elif k == "prefixItems":
                out["items"] = convert(v)
                if "items" in node:
                    out["additionalItems"] = convert(node["items"])
            elif k == "items" and "prefixItems" in node:
                continue
            elif k in ("dependentRequired", "dependentSchemas") and isinstance(v, dict):
                out.setdefault("dependencies", {}).update(convert(v))
            else:
                out[k] = convert(v)
        return out

    return {"$schema": DRAFT7, **convert(schema)}


# ---------------------------------------------------------------- MaskBench

def load_maskbench(path: Path, count: int, seed: int, max_chars: int = 20_000) -> list[dict]:
    """`count` MaskBench schemas (a seeded sample of those under `max_chars` of JSON) with their
    test instances: [{"id", "schema", "tests": [values]}]. Fails loudly when the data is missing."""
    if not path.exists():
        raise SystemExit(f"missing MaskBench data: expected {path} (the shared data folder next to the "
                         f"repository: ../shared/data/jsonschema/maskbench/maskbench_data.tar.xz)")
    rng = random.Random(seed)
    out = []
    with tarfile.open(path, "r:xz") as tar:
        for member in tar:  # one pass: an xz stream does not seek backwards cheaply
            if not (member.isfile() and member.name.endswith(".json")) or member.size > 40 * max_chars:
                continue
            if rng.random() > 2 * count / 11_300:
                continue
            d = json.load(tar.extractfile(member))
            if len(json.dumps(d["schema"])) > max_chars:
                continue
            out.append({"id": member.name.rpartition("/")[2].removesuffix(".json"), "schema": d["schema"],
                        "tests": [t["data"] for t in d.get("tests", [])][:8]})
    rng.shuffle(out)
    return out[:count]


_MUTATION_KEYWORDS = [
    ("additionalProperties", False), ("minItems", 1), ("maxItems", 1), ("maxLength", 3), ("minLength", 1),
    ("pattern", "^a"), ("minimum", 0), ("maximum", 10), ("exclusiveMaximum", 0), ("type", "string"),
    ("type", ["integer", "null"]), ("not", {"type": "null"}), ("format", "date"), ("format", "email"),
    ("uniqueItems", True), ("minProperties", 1), ("maxProperties", 1), ("multipleOf", 0.5), ("const", "a"),
    ("enum", [1, "a", None]), ("propertyNames", {"maxLength": 1}), ("contains", {"type": "integer"}),
]
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "minItems",
           "maxItems", "minProperties", "maxProperties", "minContains", "maxContains", "multipleOf")


@st.composite
def mutated(draw, schema: Any, edits: int | None = None) -> Any:
    """`schema` with 1..2 edits at random subschemas: a keyword dropped, replaced by a leaf schema,
    or added; a bound moved; a required name added."""
    for _ in range(edits or draw(st.integers(1, 2))):
        nodes = [(p, n) for p, n in schema_nodes(schema) if isinstance(n, dict)]
        if not nodes:
            return schema
        path, node = draw(st.sampled_from(nodes))
        op = draw(st.sampled_from(["drop", "replace", "tweak", "add", "require"]))
        new = dict(node)
        if op == "drop" and node:
            del new[draw(st.sampled_from(sorted(node)))]
        elif op == "replace":
            subs = [p for p, _ in subschemas(node)]
            if subs:
                schema = set_in(schema, path + draw(st.sampled_from(subs)), draw(_leaf()))
                continue
            key, value = draw(st.sampled_from(_MUTATION_KEYWORDS))
            new[key] = copy.deepcopy(value)
        elif op == "tweak" and any(k in node and _is_number(node[k]) for k in _BOUNDS):
            key = draw(st.sampled_from([k for k in _BOUNDS if k in node and _is_number(node[k])]))
            delta = draw(st.sampled_from([-1, 1, 2]))
            value = node[key] + delta if key != "multipleOf" else node[key] * 2
            if key.startswith(("min", "max")) and not key.endswith("imum") and value < 0:
                value = 0
            new[key] = value
        elif op == "require" and isinstance(node.get("properties"), dict) and node["properties"]:
            name = draw(st.sampled_from(sorted(node["properties"])))
            new["required"] = sorted(set(node.get("required", []) if isinstance(node.get("required"), list) else [])
                                     | {name})
        else:
            key, value = draw(st.sampled_from(_MUTATION_KEYWORDS))
            new[key] = copy.deepcopy(value)
        schema = set_in(schema, path, new)
    return schema


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# ---------------------------------------------------------------- instances

@functools.lru_cache(maxsize=None)
def random_json(max_leaves: int = 6) -> st.SearchStrategy:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), st.integers(),
                        st.floats(allow_nan=False, allow_infinity=False, width=64),
                        st.text(max_size=5), _names(), _json_atoms())
    return st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=3),
                                                     st.dictionaries(st.one_of(_names(), st.text(max_size=3)), c,
                                                                     max_size=3)), max_leaves=max_leaves)


def _data_values(schema: Any) -> list[Any]:
    """The schema's own values: consts, enum members, property names, numeric bounds and their neighbours."""
    out: list[Any] = []
    for _, node in schema_nodes(schema):
        if not isinstance(node, dict):
            continue
        if "const" in node:
            out.append(node["const"])
        if isinstance(node.get("enum"), list):
            out.extend(node["enum"][:6])
        if isinstance(node.get("properties"), dict):
            out.extend(list(node["properties"])[:6])
        for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if _is_number(node.get(key)):
                out.extend(_near(node[key]))
        if len(out) > 60:
            break
    return out


def _near(x: float | int) -> list[Any]:
    if isinstance(x, int) or (isinstance(x, float) and x.is_integer() and abs(x) < 2 ** 53):
        x = int(x)
        return [x - 1, x, x + 1]
    return [x, x - 1, x + 1, x / 2]


@functools.lru_cache(maxsize=256)
def _regex_strategy(pattern: str) -> st.SearchStrategy | None:
    try:
        re.compile(pattern)
        return st.from_regex(pattern)
    except Exception:  # noqa: BLE001 (a pattern hypothesis cannot draw from)
        return None


def instances(schema: Any) -> st.SearchStrategy:
    """JSON values near `schema` (see the module docstring)."""
    return _instance(schema)


@st.composite
def _instance(draw, root: Any) -> Any:
    atoms = _data_values(root)
    return _value(draw, root, root, 0, atoms)


def _value(draw, s: Any, root: Any, depth: int, atoms: list[Any]) -> Any:
    roll = draw(st.integers(0, 19))  # hypothesis favours 0: the rare branches are at the other end
    if depth > 4 or roll == 19:
        return draw(random_json(3 if depth > 2 else 6))
    if roll == 18 and atoms:
        return copy.deepcopy(draw(st.sampled_from(atoms)))
    if not isinstance(s, dict) or not s:
        return draw(random_json(4))
    if isinstance(s.get("$ref"), str) and draw(st.integers(0, 3)):
        target = resolve_local(root, s["$ref"])
        if target is not None:
            rest = {k: v for k, v in s.items() if k != "$ref"}
            if isinstance(target, dict) and rest and draw(st.booleans()):
                target = {**rest, **target}
            return _value(draw, target, root, depth + 1, atoms)
    if isinstance(s.get("enum"), list) and s["enum"] and draw(st.integers(0, 3)):
        return copy.deepcopy(draw(st.sampled_from(s["enum"])))
    if "const" in s and draw(st.integers(0, 3)):
        return copy.deepcopy(s["const"])
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(s.get(key), list) and s[key] and draw(st.integers(0, 2)):
            branch = draw(st.sampled_from(s[key]))
            rest = {k: v for k, v in s.items() if k != key}
            merged = {**rest, **branch} if isinstance(branch, dict) else rest
            return _value(draw, merged, root, depth + 1, atoms)
    if "if" in s and draw(st.booleans()):
        pick = draw(st.sampled_from([k for k in ("if", "then", "else") if isinstance(s.get(k), dict)] or ["if"]))
        rest = {k: v for k, v in s.items() if k not in ("if", "then", "else")}
        if isinstance(s.get(pick), dict):
            return _value(draw, {**rest, **s[pick]}, root, depth + 1, atoms)
    kind = _kind(draw, s)
    if kind == "object":
        return _object(draw, s, root, depth, atoms)
    if kind == "array":
        return _array(draw, s, root, depth, atoms)
    if kind == "string":
        return _string(draw, s, atoms)
    if kind in ("integer", "number"):
        return _number(draw, s, kind)
    if kind == "boolean":
        return draw(st.booleans())
    if kind == "null":
        return None
    return draw(random_json(4))


def _kind(draw, s: dict) -> str:
    t = s.get("type")
    if isinstance(t, str):
        options = [t]
    elif isinstance(t, list) and t:
        options = [x for x in t if isinstance(x, str)] or ["null"]
    else:
        options = []
        if any(k in s for k in ("properties", "required", "additionalProperties", "patternProperties",
                                "propertyNames", "minProperties", "maxProperties", "dependentRequired",
                                "dependentSchemas", "dependencies")):
            options.append("object")
        if any(k in s for k in ("items", "prefixItems", "minItems", "maxItems", "contains", "uniqueItems")):
            options.append("array")
        if any(k in s for k in ("minLength", "maxLength", "pattern", "format")):
            options.append("string")
        if any(k in s for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")):
            options.append("number")
        options = options or TYPES
    if draw(st.integers(0, 9)) == 9:
        options = TYPES  # another type now and then
    return draw(st.sampled_from(options))


def _object(draw, s: dict, root: Any, depth: int, atoms: list[Any]) -> dict:
    props = s.get("properties") if isinstance(s.get("properties"), dict) else {}
    required = [r for r in s.get("required", []) if isinstance(r, str)] if isinstance(s.get("required"), list) else []
    names = list(dict.fromkeys(required + [k for k in props if draw(st.booleans())]))
    if draw(st.integers(0, 3)) == 3 and names:
        names.remove(draw(st.sampled_from(names)))  # a required one missing, sometimes
    patterns = s.get("patternProperties") if isinstance(s.get("patternProperties"), dict) else {}
    for pattern in list(patterns)[:2]:
        if draw(st.booleans()):
            strategy = _regex_strategy(pattern)
            if pattern in PATTERNS:
                names.append(draw(st.sampled_from(PATTERNS[pattern])))
            elif strategy is not None:
                try:
                    names.append(draw(strategy.filter(lambda x: len(x) < 12)))
                except Exception:  # noqa: BLE001
                    pass
    for dep in ("dependentRequired", "dependentSchemas", "dependencies"):
        if isinstance(s.get(dep), dict) and s[dep] and draw(st.booleans()):
            names.append(draw(st.sampled_from(sorted(s[dep]))))
    for _ in range(draw(st.integers(0, 2))):
        names.append(draw(_names()))
    lo, hi = s.get("minProperties"), s.get("maxProperties")
    if isinstance(hi, int) and draw(st.booleans()):
        names = names[:hi + draw(st.integers(0, 1))]
    if isinstance(lo, int) and lo <= 6:
        while len(set(names)) < lo + draw(st.integers(-1, 0)):
            names.append(draw(_names()) + str(len(names)))
    names = list(dict.fromkeys(names))[:8]
    if draw(st.booleans()):
        names = draw(st.permutations(names))
    out = {}
    for name in names:
        sub: Any = props.get(name)
        if sub is None:
            for pattern, psub in patterns.items():
                try:
                    if re.search(pattern, name):
                        sub = psub
                        break
                except re.error:
                    pass
        if sub is None:
            sub = s.get("additionalProperties", True)
        out[name] = _value(draw, sub, root, depth + 1, atoms)
    return out


def _array(draw, s: dict, root: Any, depth: int, atoms: list[Any]) -> list:
    prefix = s.get("prefixItems") if isinstance(s.get("prefixItems"), list) else []
    items = s.get("items", True)
    if isinstance(items, list):  # draft-07 tuple form
        prefix, items = items, s.get("additionalItems", True)
    lo = s.get("minItems") if isinstance(s.get("minItems"), int) else 0
    hi = s.get("maxItems") if isinstance(s.get("maxItems"), int) else lo + 3
    n = draw(st.integers(max(0, lo - 1), min(max(lo, hi) + 1, lo + 5, 6)))
    out = []
    for i in range(n):
        sub = prefix[i] if i < len(prefix) else items
        if "contains" in s and draw(st.integers(0, 2)) == 2:
            sub = s["contains"]
        out.append(_value(draw, sub, root, depth + 1, atoms))
    if s.get("uniqueItems") and out and draw(st.integers(0, 2)) == 2:
        out.append(copy.deepcopy(out[0]))  # a duplicate
    return out


def _string(draw, s: dict, atoms: list[Any]) -> str:
    choices = []
    if isinstance(s.get("pattern"), str):
        p = s["pattern"]
        if p in PATTERNS:
            choices.append(st.sampled_from(PATTERNS[p]))
        strategy = _regex_strategy(p)
        if strategy is not None:
            choices.append(strategy.filter(lambda x: len(x) <= 24))
    if isinstance(s.get("format"), str):
        choices.append(st.sampled_from(FORMATS.get(s["format"], ("a",))))
    lengths = [s[k] for k in ("minLength", "maxLength") if isinstance(s.get(k), int) and 0 <= s[k] <= 64]
    if lengths:
        n = draw(st.sampled_from(lengths)) + draw(st.sampled_from([-1, 0, 0, 1]))
        choices.append(st.text(st.sampled_from("abé1 _"), min_size=max(n, 0), max_size=max(n, 0)))
    choices.append(st.text(max_size=6))
    choices.append(_names())
    strings = [a for a in atoms if isinstance(a, str)]
    if strings:
        choices.append(st.sampled_from(strings))
    strategy = draw(st.sampled_from(choices))
    try:
        return draw(strategy)
    except Exception:  # noqa: BLE001 (from_regex that cannot draw)
        return draw(st.text(max_size=4))


def _number(draw, s: dict, kind: str) -> int | float:
    choices: list[Any] = []
    for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        if _is_number(s.get(key)):
            choices.extend(_near(s[key]))
    m = s.get("multipleOf")
    if _is_number(m) and m > 0:
        k = draw(st.integers(-5, 5))
        choices.extend([k * m, (k + 0.5) * m, round(k * m, 12)])
    choices.extend([0, 1, -1, 2, 0.5, -7, 10**20])
    value = draw(st.one_of(st.sampled_from(choices), st.integers(-50, 50),
                           st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)))
    if kind == "integer" and isinstance(value, float) and draw(st.integers(0, 3)):
        value = math.floor(value) if math.isfinite(value) else 0
    return value


# ---------------------------------------------------------------- mutating values

def mutate_value(value: Any, rng: random.Random) -> Any:
    """One small edit somewhere in `value`: a key dropped or added, a number moved, a string
    edited, an element dropped or repeated, a leaf replaced by a value of another type."""
    paths = list(_value_paths(value))
    path = rng.choice(paths)
    node = get_in(value, path)
    roll = rng.random()
    if isinstance(node, dict) and node and roll < 0.4:
        return set_in(value, path, {k: v for k, v in node.items() if k != rng.choice(list(node))})
    if isinstance(node, dict) and roll < 0.7:
        return set_in(value, path, {**node, rng.choice(NAMES + ["zz"]): rng.choice(ATOMS)})
    if isinstance(node, list) and node and roll < 0.4:
        i = rng.randrange(len(node))
        return set_in(value, path, node[:i] + node[i + 1:])
    if isinstance(node, list) and node and roll < 0.7:
        i = rng.randrange(len(node))
        return set_in(value, path, node[:i + 1] + [copy.deepcopy(node[i])] + node[i + 1:])
    if isinstance(node, bool):
        return set_in(value, path, not node)
    if isinstance(node, (int, float)) and roll < 0.8:
        delta = rng.choice([1, -1, 0.5, -0.5, 1e-9])
        return set_in(value, path, node + delta if math.isfinite(node + delta) else 0)
    if isinstance(node, str) and roll < 0.8:
        i = rng.randint(0, len(node))
        if node and rng.random() < 0.5:
            return set_in(value, path, node[:i] + node[i + 1:])
        return set_in(value, path, node[:i] + rng.choice("a1é \"\\\n") + node[i:])
    return set_in(value, path, copy.deepcopy(rng.choice(ATOMS)))


def _value_paths(value: Any, path: tuple = ()) -> Iterator[tuple]:
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _value_paths(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _value_paths(v, path + (i,))


# ---------------------------------------------------------------- shrinking

def _tree_paths(obj: Any) -> list[tuple]:
    """Paths to every dict key and list element, breadth first (the biggest deletions first)."""
    out, todo = [], [((), obj)]
    while todo:
        path, node = todo.pop(0)
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for k, v in items:
            out.append(path + (k,))
            todo.append((path + (k,), v))
    return out


def schema_shrinks(schema: Any) -> Iterator[Any]:
    """Smaller schemas: a subschema hoisted to the root (with the root's `$defs`), half of a large
    object or list dropped, any one key or element deleted, any subschema replaced by `true`."""
    if not isinstance(schema, (dict, list)):
        return
    defs = {k: schema[k] for k in ("$defs", "definitions", "$schema") if isinstance(schema, dict) and k in schema}
    for path, node in schema_nodes(schema)[1:]:
        if path[0] in ("$defs", "definitions"):
            continue
        yield {**defs, **node} if isinstance(node, dict) else node
    for path in [()] + _tree_paths(schema):
        node = get_in(schema, path)
        if isinstance(node, dict) and len(node) > 3:
            keys = list(node)
            for half in (keys[: len(keys) // 2], keys[len(keys) // 2:]):
                yield set_in(schema, path, {k: v for k, v in node.items() if k not in half})
        elif isinstance(node, list) and len(node) > 3:
            yield set_in(schema, path, node[len(node) // 2:])
            yield set_in(schema, path, node[: len(node) // 2])
    for path in _tree_paths(schema):
        yield del_in(schema, path)
    for path, node in schema_nodes(schema)[1:]:
        if node is not True:
            yield set_in(schema, path, True)
            if node:
                yield set_in(schema, path, {})


def value_shrinks(value: Any) -> Iterator[Any]:
    """Smaller values: a part hoisted, a key or element deleted, a leaf simplified."""
    if isinstance(value, (dict, list)):
        for path in _tree_paths(value):
            yield get_in(value, path)
        for path in _tree_paths(value):
            yield del_in(value, path)
    for path in [()] + (_tree_paths(value) if isinstance(value, (dict, list)) else []):
        node = get_in(value, path)
        if node is not None:
            yield set_in(value, path, None)
        if isinstance(node, (dict, list)) and node:
            yield set_in(value, path, type(node)())
        if isinstance(node, str) and node:
            yield set_in(value, path, node[1:])
            yield set_in(value, path, node[:-1])
        if isinstance(node, float) and not node.is_integer():
            yield set_in(value, path, round(node, 1))
        if isinstance(node, int) and not isinstance(node, bool) and abs(node) > 1:
            yield set_in(value, path, node // 2)
