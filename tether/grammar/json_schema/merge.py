"""Schema algebra on dicts: draft normalisation, `allOf` merging, and negation.

The compiler works on *flat* schemas: one dict whose assertions all hold at once. `normalize`
rewrites each draft's spelling into the 2020-12 one, and the keywords that are conjunctions or
disjunctions in disguise (`dependentRequired`, `dependentSchemas`, `if`/`then`/`else`) into
`allOf`/`anyOf`; `merge` folds the branches of an `allOf` into one flat schema; `negate` writes
`not S` as a schema, for the S whose complement has an exact construction.

    >>> merge({"type": ["integer", "string"]}, {"type": "integer", "minimum": 3})
    {'type': ['integer'], 'minimum': 3}

Internal keywords are tuples, which no schema read from JSON can have as a key, so a user's
`"x-patterns"` stays an unknown keyword: `X_PATTERNS` (all must match), `X_FORMATS`, `X_ANY_OF`
(anyOf lists, all must hold), `X_ONE_OF`, `X_NOT` (schemas the value must not match),
`X_NOT_STRINGS` (string schemas, by complement), `X_NOT_VALUES` (scalar values excluded),
`X_NOT_MULTIPLES` (numbers a multiple of none of these), `X_FRACTION` (a number that is not an
integer), `X_SOME_MEMBERS` ((key schema, value schema) pairs: for each, some member whose key and
value they accept; the negation of `propertyNames`, `patternProperties` and `additionalProperties`),
`X_CONTAINS` (more `contains` keywords, each a dict with its own `minContains`/`maxContains`:
two of them count items apart, so they never merge into one), `NORMALIZED` (draft rules applied).
"""

from __future__ import annotations

import itertools
import math
import re
from decimal import Decimal
from typing import Any

from ...errors import InvalidSchema, UnsupportedSchema, Location

__all__ = ["normalize", "merge", "negate", "value_key", "json_type", "ANNOTATIONS", "TYPES", "X_PATTERNS",
           "X_FORMATS", "X_ANY_OF", "X_ONE_OF", "X_NOT", "X_NOT_STRINGS", "X_NOT_VALUES", "X_NOT_MULTIPLES",
           "X_FRACTION", "X_SOME_MEMBERS", "X_CONTAINS", "CONTAINS_KEYWORDS"]

X_PATTERNS, X_FORMATS, X_ANY_OF, X_ONE_OF, X_NOT, X_NOT_STRINGS, X_NOT_VALUES, X_NOT_MULTIPLES, X_FRACTION, \
    X_SOME_MEMBERS, X_CONTAINS, NORMALIZED = (("tether", name) for name in (
        "patterns", "formats", "anyOf", "oneOf", "not", "not-strings", "not-values", "not-multiples", "fraction",
        "some-members", "contains", "normalized"))
CONTAINS_KEYWORDS = ("contains", "minContains", "maxContains")

TYPES = ("null", "boolean", "integer", "number", "string", "array", "object")

# Keywords that never change which instances are valid.
ANNOTATIONS = frozenset((
    "$schema", "$id", "id", "$comment", "$defs", "definitions", "$anchor", "$dynamicAnchor", "$vocabulary",
    "title", "description", "default", "examples", "example", "deprecated", "readOnly", "writeOnly",
    "contentEncoding", "contentMediaType", "contentSchema", "discriminator", "xml", "externalDocs",
    "markdownDescription", "enumDescriptions", "markdownEnumDescriptions", "errorMessage", NORMALIZED,
))

_NUMERIC = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", X_NOT_MULTIPLES)
_STRING = ("minLength", "maxLength", "pattern", "format", X_PATTERNS, X_FORMATS, X_NOT_STRINGS)
_ARRAY = ("items", "prefixItems", "minItems", "maxItems", "uniqueItems", "contains", "minContains",
          "maxContains", "additionalItems", "unevaluatedItems", X_CONTAINS)
_OBJECT = ("properties", "required", "additionalProperties", "patternProperties", "propertyNames",
           "minProperties", "maxProperties", "unevaluatedProperties", X_SOME_MEMBERS)
_BY_TYPE = {"number": _NUMERIC, "integer": _NUMERIC, "string": _STRING, "array": _ARRAY, "object": _OBJECT}
_TYPE_OF_KEYWORD = {k: t for t, ks in (("number", _NUMERIC), ("string", _STRING), ("array", _ARRAY),
                                        ("object", _OBJECT)) for k in ks}


_APPLICATORS = frozenset(("not", "allOf", "anyOf", "oneOf"))
# What a normalised schema may still hold that negation cannot see through (`dependencies`, `if`
# and the like are gone by then, or unknown keywords of a later draft).
_REFERENCES = frozenset(("$ref", "$dynamicRef", "$recursiveRef", "unevaluatedProperties", "unevaluatedItems"))
_MAX_NEGATED_ONE_OF = 8
# Keywords the compiler resolves before merging (a second copy in a branch is a compiler gap).
_MERGED_ELSEWHERE = frozenset(("$ref", "$dynamicRef", "$recursiveRef", "unevaluatedProperties", "unevaluatedItems",
                               "if", "then", "else", "dependentRequired", "dependentSchemas", "dependencies"))


def json_type(value: Any) -> str:
    """The JSON Schema type of a decoded JSON value (1.0 is an integer, True is not)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, Decimal):
        return "integer" if value == value.to_integral_value() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    raise InvalidSchema(f"{value!r} is not a JSON value")


def value_key(value: Any) -> Any:
    """A hashable key equal for equal JSON values (1 == 1.0, True != 1, key order ignored)."""
    if isinstance(value, bool) or value is None:
        return ("b", value)
    if isinstance(value, (int, float, Decimal)):
        return ("n", Decimal(repr(value)) if isinstance(value, float) else Decimal(value))
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, list):
        return ("a", tuple(value_key(v) for v in value))
    if isinstance(value, dict):
        return ("o", frozenset((k, value_key(v)) for k, v in value.items()))
    raise InvalidSchema(f"{value!r} is not a JSON value")


def _types(schema: dict, pointer: str) -> list[str] | None:
    t = schema.get("type")
    if t is None:
        return None
    names = [t] if isinstance(t, str) else t
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InvalidSchema(f"type must be a type name or a list of them, got {t!r}", location=Location(pointer=pointer))
    for n in names:
        if n not in TYPES:
            if n == "any":
                return None
            raise InvalidSchema(f"unknown type {n!r} (one of {', '.join(TYPES)})", location=Location(pointer=pointer))
    return list(dict.fromkeys(names))


# Keywords by the draft that introduced them: in an earlier draft they are unknown, so ignored.
_SINCE = {6: ("const", "contains", "propertyNames"), 7: ("if", "then", "else"),
          2019: ("minContains", "maxContains", "dependentRequired", "dependentSchemas", "prefixItems",
                 "unevaluatedProperties", "unevaluatedItems", "$recursiveRef"), 2020: ("$dynamicRef",)}
# Formats each draft defines; others are annotations there (validators ignore them).
_FORMATS_SINCE = {4: ("date-time", "email", "hostname", "ipv4", "ipv6", "uri"),
                  6: ("uri-reference", "uri-template", "json-pointer"),
                  7: ("date", "time", "idn-email", "idn-hostname", "iri", "iri-reference", "relative-json-pointer",
                      "regex"),
                  2019: ("duration", "uuid")}


def formats_of(draft: int) -> frozenset[str]:
    """The format names JSON Schema defines in `draft`."""
    return frozenset(f for since, names in _FORMATS_SINCE.items() if since <= draft for f in names)


def normalize(schema: dict, draft: int, pointer: str) -> dict:
    """The schema in 2020-12 spelling, with dependencies and conditionals as allOf/anyOf."""
    s = dict(schema)
    if s.get(NORMALIZED):
        return s  # already in 2020-12 spelling: its draft's rules were applied once
    s[NORMALIZED] = True
    for since, keywords in _SINCE.items():
        if draft < since:
            for key in keywords:
                s.pop(key, None)
    if isinstance(s.get("format"), str) and s["format"] not in formats_of(draft) and s["format"] in formats_of(2020):
        del s["format"]  # a format of a later draft: an annotation here
    types = _types(s, pointer)
    if types is not None:
        s["type"] = types
    if s.pop("nullable", False) is True and types is not None and "null" not in types:
        s["type"] = types + ["null"]  # OpenAPI 3.0
    if draft == 4:
        for excl, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            flag = s.get(excl)
            if isinstance(flag, bool):
                del s[excl]
                if flag and bound in s:
                    s[excl] = s.pop(bound)
    if draft < 2020:
        items = s.get("items")
        if isinstance(items, list):
            s["prefixItems"] = items
            del s["items"]
            if "additionalItems" in s:
                s["items"] = s.pop("additionalItems")
        else:
            s.pop("additionalItems", None)  # ignored without an items array
    if draft < 2019 and "dependencies" in s:
        deps = s.pop("dependencies")
        if not isinstance(deps, dict):
            raise InvalidSchema("dependencies must be an object", location=Location(pointer=pointer))
        for key, dep in deps.items():
            target = "dependentRequired" if isinstance(dep, list) else "dependentSchemas"
            s.setdefault(target, {})[key] = dep
    extra: list[Any] = []
    required_deps = s.pop("dependentRequired", None)
    if required_deps:
        for key, needed in required_deps.items():
            extra.append({"anyOf": [{"properties": {key: False}}, {"required": [key, *needed]}]})
    schema_deps = s.pop("dependentSchemas", None)
    if schema_deps:
        for key, dep in schema_deps.items():
            extra.append({"anyOf": [{"properties": {key: False}}, {"allOf": [{"required": [key]}, dep]}]})
    if "if" in s:
        cond = s.pop("if")
        then, otherwise = s.pop("then", True), s.pop("else", True)
        if then is not True or otherwise is not True:
            extra.append({"anyOf": [{"allOf": [cond, then]}, {"allOf": [{"not": cond}, otherwise]}]})
    else:
        s.pop("then", None)
        s.pop("else", None)
    if extra:
        s["allOf"] = list(s.get("allOf", [])) + extra
    return s


def _dec(v: Any) -> Decimal:
    return Decimal(repr(v)) if isinstance(v, float) else Decimal(v)


def _lcm_decimal(a: Decimal, b: Decimal) -> Decimal | None:
    if a == a.to_integral_value() and b == b.to_integral_value():
        x, y = int(a), int(b)
        return Decimal(x * y // math.gcd(x, y))
    return a if a == b else None


def merge(a: Any, b: Any, pointer: str = "") -> Any:
    """One flat schema valid exactly where both flat schemas are (booleans allowed).

    Both must be normalised and free of `$ref` and `allOf` (the compiler resolves those first).
    """
    if a is True:
        return b
    if b is True:
        return a
    if a is False or b is False:
        return False
    if a == b:
        return dict(a)  # the same schema twice (one $ref from both branches): nothing to join
    a, b = _own_contains(a), _own_contains(b)
    if "contains" in a and "contains" in b and _contains_of(a) != _contains_of(b):
        # Each counts the items it matches, within its own bounds: never one contains of both.
        apart = _contains_of(b)
        b = {k: v for k, v in b.items() if k not in CONTAINS_KEYWORDS}
        b[X_CONTAINS] = [apart, *b.get(X_CONTAINS, [])]
    out = dict(a)
    for key, value in b.items():
        if key not in out:
            out[key] = value
            continue
        mine = out[key]
        if key == "type":
            out[key] = [t for t in mine if t in value or (t == "integer" and "number" in value)] + \
                [t for t in value if t == "integer" and "number" in mine and "integer" not in mine]
        elif key in ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties", "minContains"):
            out[key] = max(mine, value)
        elif key in ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties", "maxContains"):
            out[key] = min(mine, value)
        elif key == "multipleOf":
            both = _lcm_decimal(_dec(mine), _dec(value))
            if both is None:
                raise UnsupportedSchema("multipleOf", f"two different multipleOf values ({mine}, {value}) "
                                        "in one allOf", pointer=pointer)
            out[key] = both
        elif key == "required":
            out[key] = list(dict.fromkeys([*mine, *value]))
        elif key in ("enum", "const"):
            pass  # handled below as one value list
        elif key in ("pattern", "format"):
            if mine != value:
                plural = X_PATTERNS if key == "pattern" else X_FORMATS
                out[plural] = [*out.get(plural, []), value]
        elif key in (X_PATTERNS, X_FORMATS, X_ANY_OF, X_ONE_OF, X_NOT_STRINGS, X_NOT, X_SOME_MEMBERS, X_CONTAINS,
                     "allOf"):
            out[key] = [*mine, *value]
        elif key in ("anyOf", "oneOf"):
            plural = X_ANY_OF if key == "anyOf" else X_ONE_OF  # both must hold: two lists
            out.pop(key)
            out[plural] = [*out.get(plural, []), mine, value]
        elif key == "uniqueItems":
            out[key] = bool(mine) or bool(value)
        elif key in ("propertyNames", "items"):
            out[key] = {"allOf": [mine, value]}
        elif key == "contains":
            pass  # the same one (told apart above): its counts merge as bounds do
        elif key == "not":  # two negations, both hold: a list, never nested again
            out.pop("not")
            out[X_NOT] = [*out.get(X_NOT, []), mine, value]
        elif key == "properties":
            continue  # with additionalProperties, below
        elif key in ANNOTATIONS:
            continue
        elif key in ("additionalProperties", "patternProperties", "prefixItems"):
            continue  # below
        elif key in (X_NOT_VALUES, X_NOT_MULTIPLES):
            out[key] = [*mine, *value]
        elif key == X_FRACTION:
            out[key] = True
        elif key in _MERGED_ELSEWHERE:
            raise UnsupportedSchema(key, f"{key!r} in more than one branch of an allOf", pointer=pointer)
        # Any other keyword is unknown to JSON Schema: validators ignore it, and so does the merge.
    _merge_values(out, a, b)
    _merge_objects(out, a, b, pointer)
    _merge_prefix(out, a, b)
    return out


def _own_contains(s: dict) -> dict:
    """`s` without `minContains`/`maxContains` where no `contains` stands beside them (they then
    assert nothing)."""
    if "contains" in s or not s.keys() & {"minContains", "maxContains"}:
        return s
    return {k: v for k, v in s.items() if k not in ("minContains", "maxContains")}


def _contains_of(s: dict) -> dict:
    return {k: s[k] for k in CONTAINS_KEYWORDS if k in s}


def _merge_values(out: dict, a: dict, b: dict) -> None:
    lists = []
    for s in (a, b):
        if "const" in s:
            lists.append([s["const"]])
        if "enum" in s:
            if not isinstance(s["enum"], list):
                raise InvalidSchema(f"enum must be a list, got {s['enum']!r}")
            lists.append(s["enum"])
    out.pop("const", None)
    out.pop("enum", None)
    if lists:
        values = lists[0]
        for other in lists[1:]:
            keys = {value_key(v) for v in other}
            values = [v for v in values if value_key(v) in keys]
        out["enum"] = values


def _schema_for(s: dict, key: str) -> Any:
    props = s.get("properties", {})
    if key in props:
        return props[key]
    hits = [sub for p, sub in s.get("patternProperties", {}).items() if re.search(p, key)]
    if hits:
        return hits[0] if len(hits) == 1 else {"allOf": hits}
    return s.get("additionalProperties", True)


def _may_match(pattern: str, key: str) -> bool:
    try:
        return re.search(pattern, key) is not None
    except re.error:
        return True  # cannot tell: assume the worst


def _merge_objects(out: dict, a: dict, b: dict, pointer: str) -> None:
    if not any(k in s for s in (a, b) for k in ("properties", "additionalProperties", "patternProperties")):
        return
    pa, pb = a.get("patternProperties", {}), b.get("patternProperties", {})
    # One side's additionalProperties holds on the other side's patterns too (past its own
    # properties), so it joins them: exact while no pattern reaches into those properties.
    extended: dict[str, Any] = {}
    for s, own_patterns, other_patterns in ((a, pa, pb), (b, pb, pa)):
        extra = s.get("additionalProperties", True)
        if other_patterns and extra is not True:
            if own_patterns or any(_may_match(p, key) for p in other_patterns for key in s.get("properties", {})):
                raise UnsupportedSchema("allOf", "additionalProperties in one branch with patternProperties in "
                                        "another that overlap its properties or patterns", pointer=pointer)
            extended.update((p, extra) for p in other_patterns)
    keys = list(dict.fromkeys([*a.get("properties", {}), *b.get("properties", {})]))
    props = {}
    for key in keys:
        sa, sb = _schema_for(a, key), _schema_for(b, key)
        props[key] = sa if sb is True else sb if sa is True else {"allOf": [sa, sb]}
    if props:
        out["properties"] = props
    patterns = dict(pa)
    for p, sub in pb.items():
        patterns[p] = {"allOf": [patterns[p], sub]} if p in patterns else sub
    for p, extra in extended.items():
        patterns[p] = {"allOf": [patterns[p], extra]}
    if patterns:
        out["patternProperties"] = patterns
    extra_a, extra_b = a.get("additionalProperties", True), b.get("additionalProperties", True)
    if extra_a is True and extra_b is True:
        out.pop("additionalProperties", None)
    else:
        out["additionalProperties"] = extra_a if extra_b is True else extra_b if extra_a is True else \
            {"allOf": [extra_a, extra_b]}


def _merge_prefix(out: dict, a: dict, b: dict) -> None:
    la, lb = a.get("prefixItems"), b.get("prefixItems")
    if la is None and lb is None:
        return
    la, lb = la or [], lb or []
    ia, ib = a.get("items", True), b.get("items", True)
    merged = []
    for i in range(max(len(la), len(lb))):
        x = la[i] if i < len(la) else ia
        y = lb[i] if i < len(lb) else ib
        merged.append(x if y is True else y if x is True else {"allOf": [x, y]})
    out["prefixItems"] = merged


def negate(schema: Any, pointer: str) -> Any:
    """A schema valid exactly where `schema` (normalised, `$ref`-free at its top) is not.

    Exact for booleans, `type`, `const`/`enum` (of containers too, item by item), numeric
    bounds and `multipleOf`, string keywords (by complement of their automaton), `required`,
    `properties` whose negation is exact, `minItems`/`maxItems`, `items` or `prefixItems` (some
    item fails), `contains` (no item satisfies), `minProperties`/`maxProperties`,
    `propertyNames`, `patternProperties` and `additionalProperties` (some member fails), and
    `anyOf`/`allOf`/`oneOf`/`not` of those; keywords unknown to JSON Schema constrain nothing.
    Anything else raises `UnsupportedSchema("not", ...)`.
    """
    if schema is True:
        return False
    if schema is False:
        return True
    if not isinstance(schema, dict):
        raise InvalidSchema(f"a schema must be an object or a boolean, got {schema!r}", location=Location(pointer=pointer))
    s = {k: v for k, v in schema.items() if k not in ANNOTATIONS}
    if not s:
        return False
    options: list[Any] = []
    if "not" in s or X_NOT in s:
        rest = {k: v for k, v in s.items() if k not in ("not", X_NOT)}
        options.extend(([s["not"]] if "not" in s else []) + s.get(X_NOT, []))  # not(R and not N) = not R or N
        if rest:
            options.append(negate(rest, pointer))
        return {"anyOf": options}
    if s.keys() & {"anyOf", "allOf", "oneOf", X_ANY_OF, X_ONE_OF}:
        parts: list[Any] = []
        rest = {k: v for k, v in s.items() if k not in ("anyOf", "allOf", "oneOf", X_ANY_OF, X_ONE_OF)}
        if rest:
            parts.append(negate(rest, pointer))
        for branch in s.get("allOf", []):
            parts.append({"not": branch})
        for group in ([s["anyOf"]] if "anyOf" in s else []) + s.get(X_ANY_OF, []):
            parts.append({"allOf": [{"not": b} for b in group]})
        for group in ([s["oneOf"]] if "oneOf" in s else []) + s.get(X_ONE_OF, []):
            if len(group) > _MAX_NEGATED_ONE_OF:
                raise UnsupportedSchema("not", f"not of a oneOf of {len(group)} branches", pointer=pointer)
            # none of the branches, or two at once
            parts.append({"allOf": [{"not": b} for b in group]})
            parts.extend({"allOf": [x, y]} for x, y in itertools.combinations(group, 2))
        return {"anyOf": parts}
    types = s.get("type")
    allowed = list(TYPES) if types is None else [t for t in TYPES if t in types or (t == "integer" and "number" in types)]
    values = None
    if "const" in s:
        values = [s["const"]]
    if "enum" in s:
        values = [v for v in s["enum"] if values is None or value_key(v) in {value_key(x) for x in values}]
    for key in list(s):
        if key in ("type", "const", "enum") or key in _TYPE_OF_KEYWORD:
            continue
        if isinstance(key, str) and key not in _REFERENCES and key not in _APPLICATORS:
            del s[key]  # unknown to JSON Schema: it constrains nothing, and neither does its negation
            continue
        name = key[1] if isinstance(key, tuple) else key  # an internal keyword: the one it came from
        raise UnsupportedSchema("not", f"not of a schema with {name!r}", pointer=pointer)
    # Types that `schema` does not allow at all are valid for its negation, whole.
    out: list[Any] = _other_types(allowed)
    for t in allowed:
        if t == "integer" and "number" in allowed:
            continue  # inside "number"
        rest = {k: v for k, v in s.items() if k in _BY_TYPE.get(t, ())}
        branches = [] if not rest else _negate_keywords(t, rest, pointer)
        if values is not None:
            mine = [v for v in values if json_type(v) == t or (t == "number" and json_type(v) == "integer")]
            if t in ("array", "object"):
                branches.append({"allOf": [_other_than(v) for v in mine]})
            else:
                branches.append({X_NOT_VALUES: mine})
        out.extend({"type": [t], **b} for b in branches)
    return {"anyOf": out} if out else False


def _other_than(value: list | dict) -> dict:
    """The arrays (or objects) other than `value`: one shorter or longer, or one differing item
    (a member missing, or one of another value)."""
    if isinstance(value, dict):
        return {"anyOf": [{"minProperties": len(value) + 1},
                          *({"properties": {k: False}} for k in value),
                          *({"required": [k], "properties": {k: {"not": {"const": v}}}}
                            for k, v in value.items())]}
    return {"anyOf": [*([{"maxItems": len(value) - 1}] if value else []), {"minItems": len(value) + 1},
                      *({"minItems": i + 1, "prefixItems": [True] * i + [{"not": {"const": v}}]}
                        for i, v in enumerate(value))]}


def _other_types(allowed: list[str]) -> list[dict]:
    """Schemas of the values whose type `allowed` does not name."""
    out: list[dict] = [{"type": [t]} for t in TYPES if t not in allowed and t != "integer" and
                       not (t == "number" and "integer" in allowed)]
    if "integer" in allowed and "number" not in allowed:
        out.append({"type": ["number"], X_FRACTION: True})  # numbers that are not integers
    elif "integer" not in allowed and "number" not in allowed:
        pass  # "number" above covers the integers too
    return out


def _negate_keywords(t: str, rest: dict, pointer: str) -> list[dict]:
    """Flat schemas (of type t) whose union is the values of type t failing `rest`."""
    out: list[dict] = []
    if t in ("number", "integer"):
        for key, value in rest.items():
            if key == "minimum":
                out.append({"exclusiveMaximum": value})
            elif key == "exclusiveMinimum":
                out.append({"maximum": value})
            elif key == "maximum":
                out.append({"exclusiveMinimum": value})
            elif key == "exclusiveMaximum":
                out.append({"minimum": value})
            elif key == "multipleOf":
                out.append({X_NOT_MULTIPLES: [value]})
            elif key == X_NOT_MULTIPLES:
                out.extend({"multipleOf": m} for m in value)
            else:
                raise UnsupportedSchema("not", f"not of {key!r}", pointer=pointer)
        return out
    if t == "string":
        return [{X_NOT_STRINGS: [{"type": ["string"], **rest}]}]
    if t == "array":
        for key, value in rest.items():
            if key == "minItems":
                if value > 0:
                    out.append({"maxItems": value - 1})
            elif key == "maxItems":
                out.append({"minItems": value + 1})
            elif key == "items" and "prefixItems" not in rest:
                out.append({"contains": {"not": value}})  # some item fails it
            elif key == "prefixItems" and "items" not in rest:
                out.extend({"minItems": i + 1, "prefixItems": [True] * i + [{"not": sub}]}
                           for i, sub in enumerate(value))  # the item at some position i fails its schema
            elif key == "contains" and not rest.keys() & {"minContains", "maxContains"}:
                out.append({"items": {"not": value}})  # no item satisfies it
            elif key == X_CONTAINS and all(entry.keys() == {"contains"} for entry in value):
                out.extend({"items": {"not": entry["contains"]}} for entry in value)
            else:
                raise UnsupportedSchema("not", f"not of {key!r}", pointer=pointer)
        return out
    # object
    for key, value in rest.items():
        if key == "required":
            out.extend({"properties": {name: False}} for name in value)
        elif key == "minProperties":
            if value > 0:
                out.append({"maxProperties": value - 1})
        elif key == "maxProperties":
            out.append({"minProperties": value + 1})
        elif key == "properties":
            for name, sub in value.items():
                out.append({"required": [name], "properties": {name: {"not": sub}}})
        elif key == "propertyNames":
            out.append({X_SOME_MEMBERS: [({"not": value}, True)]})  # some key it refuses
        elif key == "patternProperties":
            out.extend({X_SOME_MEMBERS: [({"pattern": p}, {"not": sub})]} for p, sub in value.items())
        elif key == "additionalProperties":  # some undescribed member whose value fails it
            described = [{"pattern": p} for p in rest.get("patternProperties", {})]
            if rest.get("properties"):
                described.append({"enum": list(rest["properties"])})
            out.append({X_SOME_MEMBERS: [({"not": {"anyOf": described}} if described else True, {"not": value})]})
        else:
            name = "the negation of an object keyword" if key == X_SOME_MEMBERS else repr(key)
            raise UnsupportedSchema("not", f"not of {name}", pointer=pointer)
    return out
