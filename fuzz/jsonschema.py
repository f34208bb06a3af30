"""JSON Schemas against the jsonschema validator: accepted texts and finished walks are valid, mask == allows.

    python -m fuzz jsonschema --seconds 60
    python -m fuzz jsonschema --seconds 300 --seed 1 --vocab none

Schemas come from hypothesis (fuzz/_schemagen.py: a recursive strategy over the keywords tether
compiles, `$defs`/`$ref` with recursion, boolean schemas, sometimes draft-07 spelling) and from
MaskBench (../shared/data/jsonschema/maskbench/maskbench_data.tar.xz, a seeded sample, required:
the run fails without it), mutated (a keyword dropped, replaced or added, a bound moved).
Instances are hypothesis-drawn values near the schema, their mutations and MaskBench's own test
instances; each is written as tether's canonical text (`canonical_json`), and under
`whitespace="flexible"` sometimes re-spaced with runs of JSON whitespace.

The oracle is `jsonschema`: the validator class of the schema's `$schema` (2020-12 without one),
with its `FORMAT_CHECKER` (tether enforces `format`, so the oracle asserts it too), no remote
references, and exact numbers: the text is parsed with decimals and the schema's floats are
read as the decimals they spell, so that bounds, `multipleOf`, `enum` and `const` compare values
exactly as tether does (jsonschema's float arithmetic says 0.3 is no multiple of 0.1). Patterns
are Python `re` searches on both sides. The rules:

- soundness, always a failure: whatever tether accepts (`matches`, or a token walk that ends in
  an accepting state) the validator finds valid: under every option, since the options only
  narrow the language. A text with duplicate keys has no single meaning and is skipped;
- only documented errors: a schema that the metaschema of its draft accepts, whose `$ref`s all
  resolve, and without a cycle of `$ref`s and in-place applicators that never enters the instance
  (JSON Schema leaves its meaning undefined) never raises `InvalidSchema`, nor anything but
  `UnsupportedSchema`, `EmptyLanguage` and `ConstraintTooLarge`; on any other schema any
  `TetherError` is right; a crash is always a failure. `UnsupportedSchema` is counted by keyword;
  it, `ConstraintTooLarge` and a schema past --schema-seconds are skips;
- completeness, with `additional_properties="allow", property_order="any"` (2 schemas in 3):
  a text the validator finds valid is accepted, and `EmptyLanguage` is wrong when one is. A
  miss is a failure only when every keyword of the schema is *simple* (SIMPLE below: `type`,
  `properties`, `required`, `items`, `enum`, `const`, `minimum`/`maximum`/`exclusive*`,
  `min`/`maxLength`, `min`/`maxItems`, `min`/`maxProperties`, and annotations; a keyword whose
  subschema is `true` or `{}`, such as `additionalProperties: true`, asserts nothing and does not
  count; a `false` subschema does, as the keyword "false"; a simple keyword that the schema's
  draft does not define, such as `const` in draft-04, does not count as simple), and tether gave
  no warning compiling the schema (a warning announces an approximation, such as declared order
  past 8 properties with recursive values). Otherwise it is counted under each non-simple keyword
  the schema uses (or "(tether warned)"), and the first miss of each keyword set is shrunk and
  printed at the end. Under the other options a miss is never a failure.
- the constraint agrees with `matches`: a valid text whose greedy tokenization the constraint
  refuses while `matches` accepts it is a failure; and at each state of a random walk on --vocab
  the mask agrees with `allows`, EOS is allowed exactly in accepting states, some token is
  allowed, and `advance` refuses masked ids (fuzz/_harness.py `check_mask`). Walks run for a
  --walks share of the compiled schemas.

Every check is a case (kind, schema, options, text or ids, what the validator says) checked by
`check_case`; the first failure of each kind is shrunk (the instance, then the schema) and
appended to tests/regressions/jsonschema.jsonl, which tests/test_fuzz_regressions.py replays.
"""

from __future__ import annotations

import argparse
import copy
import decimal
import faulthandler
import functools
import json
import os
import random
import re
import sys
import tempfile
import time
import traceback
import warnings
from decimal import Decimal
from typing import Any, Iterator

import numpy as np

from . import _schemagen as gen
from ._harness import (DATA_DIR, CaseTimeout, Stats, check_mask, check_walk, save_case, time_limit,
                       tokenizer_path)

__all__ = ["check_case", "evaluate", "match_case", "walk_case", "mask_case", "compile_case", "verdict",
           "schema_status", "must_accept", "SIMPLE", "add_arguments", "run"]

TARGET = "jsonschema"
MASKBENCH = DATA_DIR / "jsonschema" / "maskbench" / "maskbench_data.tar.xz"
MAX_TEXT = 400
# Keywords a schema may use for a miss to be a failure (see the module docstring).
SIMPLE = frozenset(("type", "properties", "required", "items", "enum", "const", "minimum", "maximum",
                    "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "minItems", "maxItems",
                    "minProperties", "maxProperties"))
# Keywords that assert nothing (and containers that only matter through `$ref`, itself not simple).
NEUTRAL = frozenset(("$schema", "$id", "id", "$comment", "$defs", "definitions", "title", "description", "default",
                     "examples", "deprecated", "readOnly", "writeOnly", "$anchor", "contentMediaType",
                     "contentEncoding", "$vocabulary"))
COMPLETE_OPTIONS = {"additional_properties": "allow", "property_order": "any"}
SUMMARY_KEYS = ("schemas", "distinct schemas", "schemas from generated", "schemas from maskbench", "invalid schemas",
                "compiled", "engine dfa", "engine cfg", "unsupported", "empty language", "skipped", "texts",
                "valid texts", "invalid texts", "accepted valid", "rejected invalid", "misses", "token walks",
                "walks ending accepting", "mask states", "cases", "failures", "failures of a kind already shown")


def _tether():
    import tether  # late: --help and the oracle work without the engine

    return tether


def _skips() -> tuple[type, ...]:
    from tether.errors import ConstraintTooLarge, UnsupportedSchema

    return UnsupportedSchema, ConstraintTooLarge


# ---------------------------------------------------------------- the oracle

class OracleError(Exception):
    """The validator cannot judge this (a recursion without end, duplicate keys, a huge number)."""


def _schema_text(schema: Any) -> str:
    return json.dumps(schema, ensure_ascii=False)


def _validator_class(schema: Any):
    import jsonschema

    if isinstance(schema, dict) and "$schema" in schema:
        try:
            cls = jsonschema.validators.validator_for(schema, default=None)
        except Exception as e:  # noqa: BLE001 (a $schema that is no URI)
            raise OracleError(f"$schema {schema['$schema']!r}: {e}") from None
        if cls is None:
            raise OracleError(f"unknown $schema {schema['$schema']!r}")
        return cls
    return jsonschema.Draft202012Validator


def _exact(value: Any) -> Any:
    """`value` with floats as the decimals they spell (integral ones as ints)."""
    if isinstance(value, float):
        return _decimal_value(Decimal(repr(value)), integral_as_int=True)
    if isinstance(value, dict):
        return {k: _exact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_exact(v) for v in value]
    return value


def _decimal_value(d: Decimal, integral_as_int: bool) -> Any:
    if integral_as_int and d.is_finite() and -5000 < d.adjusted() < 5000:
        with decimal.localcontext() as ctx:
            ctx.prec = 10_000
            if d == d.to_integral_value():
                return int(d)
    return d


@functools.lru_cache(maxsize=128)
def _oracle(schema_text: str) -> tuple[Any, str | None]:
    """(validator, None) for a schema the metaschema accepts and whose $refs resolve, else (None, why)."""
    import jsonschema
    from jsonschema_specifications import REGISTRY

    schema = json.loads(schema_text)
    try:
        cls = _validator_class(schema)
    except OracleError as e:
        return None, str(e)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cls.check_schema(schema)
    except jsonschema.exceptions.SchemaError as e:
        return None, f"metaschema: {e.message[:120]}"
    except Exception as e:  # noqa: BLE001 (the metaschema check itself gives up)
        return None, f"metaschema check: {type(e).__name__}"
    dangling = _dangling_ref(schema, cls, REGISTRY)
    if dangling:
        return None, dangling
    cycle = _unguarded_cycle(schema)
    if cycle:
        return None, cycle
    validator = cls(_exact(schema), registry=REGISTRY, format_checker=cls.FORMAT_CHECKER)
    return validator, None


_IN_PLACE = ("allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependentSchemas", "dependencies")


def _unguarded_cycle(schema: Any) -> str | None:
    """A cycle of local `$ref`s and in-place applicators (`allOf`, `not`, ...) that never moves to
    a part of the instance: validating it may never end, and JSON Schema leaves its meaning
    undefined, so tether may refuse such a schema with any TetherError."""
    nodes = {path: node for path, node in gen.schema_nodes(schema)}
    edges: dict[tuple, list[tuple]] = {}
    for path, node in nodes.items():
        if not isinstance(node, dict):
            continue
        out = [path + p for p, _ in gen.subschemas(node) if p[0] in _IN_PLACE]
        ref = node.get("$ref")
        if isinstance(ref, str) and (ref == "#" or ref.startswith("#/")):
            target = gen.resolve_local(schema, ref)
            if target is not None:
                for p, n in nodes.items():
                    if n is target:
                        out.append(p)
                        break
        edges[path] = out
    state: dict[tuple, int] = {}  # 1: on the stack, 2: done
    for start in edges:
        if state.get(start):
            continue
        stack = [(start, iter(edges.get(start, ())))]
        state[start] = 1
        while stack:
            path, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[path] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return f"unguarded $ref cycle through {'/'.join(map(str, nxt)) or '#'}"
            elif not state.get(nxt):
                state[nxt] = 1
                stack.append((nxt, iter(edges.get(nxt, ()))))
    return None


def _dangling_ref(schema: Any, cls, registry) -> str | None:
    """The first `$ref` that resolves to nothing (nothing is fetched), or None."""
    import referencing.exceptions
    import referencing.jsonschema

    meta_id = cls.META_SCHEMA.get("$id") or cls.META_SCHEMA.get("id")
    try:
        spec = referencing.jsonschema.specification_with(meta_id)
        resolver = registry.resolver_with_root(spec.create_resource(schema))
    except Exception as e:  # noqa: BLE001
        return f"$ref check: {type(e).__name__}: {e}"
    todo = [(schema, resolver)]
    seen = 0
    while todo:
        node, resolver = todo.pop()
        seen += 1
        if seen > 20_000:
            return None
        if isinstance(node, list):
            todo.extend((v, resolver) for v in node)
            continue
        if not isinstance(node, dict):
            continue
        try:
            resolver = resolver.in_subresource(spec.create_resource(node))
            if isinstance(node.get("$ref"), str):
                resolver.lookup(node["$ref"])
        except referencing.exceptions.Unresolvable as e:
            return f"dangling $ref {node.get('$ref')!r}: {type(e).__name__}"
        except Exception as e:  # noqa: BLE001 (an $id that is no URI, ...)
            return f"$ref check: {type(e).__name__}: {e}"
        todo.extend((v, resolver) for k, v in node.items() if k not in gen.DATA_KEYWORDS)
    return None


def schema_status(schema: Any) -> str | None:
    """None when the validator can judge instances of `schema` (see `_oracle`), else why not."""
    return _oracle(_schema_text(schema))[1]


class _Duplicate(Exception):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _Duplicate()
    return out


def _parse(text: str, integral_as_int: bool) -> Any:
    def bad_constant(name: str) -> Any:
        raise ValueError(f"{name} is no JSON")

    return json.loads(text, parse_float=lambda s: _decimal_value(Decimal(s), integral_as_int),
                      parse_constant=bad_constant, object_pairs_hook=_pairs)


def verdict(schema: Any, text: str | None) -> tuple[bool, str]:
    """(valid, the keyword that fails or "") by the validator, on the JSON text `text` (None, or
    a text that is no JSON: invalid). Raises OracleError when it cannot judge."""
    import jsonschema
    import referencing.exceptions

    validator, why = _oracle(_schema_text(schema))
    if validator is None:
        raise OracleError(why)
    if text is None:
        return False, "not UTF-8"
    draft4 = type(validator).__name__ in ("Draft4Validator", "Draft3Validator")  # 1.0 is no integer there
    try:
        instance = _parse(text, integral_as_int=not draft4)
    except _Duplicate:
        raise OracleError("duplicate keys") from None
    except decimal.InvalidOperation:  # an exponent past what Decimal holds
        raise OracleError("a number Decimal cannot hold") from None
    except (ValueError, RecursionError):
        return False, "not JSON"
    try:
        with decimal.localcontext() as ctx, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ctx.prec = 2000
            error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    except RecursionError:
        raise OracleError("the validator recurses without end") from None
    except (referencing.exceptions.Unresolvable, decimal.InvalidOperation, OverflowError) as e:
        raise OracleError(type(e).__name__) from None
    except Exception as e:  # noqa: BLE001 (a format checker that raises what it does not declare)
        raise OracleError(f"the validator raises {type(e).__name__}") from None
    if error is None:
        return True, ""
    if error.validator == "format":
        return False, f"format {error.validator_value}"
    return False, "false" if error.validator is None else str(error.validator)  # None: a `false` schema


def must_accept(case: dict) -> bool:
    """Whether a valid text tether rejects is a failure (else a miss): the options that keep every
    valid instance in the language, only simple keywords (that the schema's draft defines), and
    no warning from tether when it compiled the schema."""
    options = case["options"]
    if any(options.get(k) != v for k, v in COMPLETE_OPTIONS.items()):
        return False
    return not _hard_keywords(case["schema"]) and compile_warning(case["schema"], options) is None


# Keywords that assert nothing with a `true` subschema (not `not`, nor `contains`: one element).
_TRIVIAL_WHEN_TRUE = frozenset(gen.SCHEMA_ONE) - {"not", "contains"}


def _hard_keywords(schema: Any) -> list[str]:
    """The keywords of `schema` that are not simple; one whose subschema is `true` or `{}` asserts
    nothing and does not count (`additionalProperties: true`); a `false` subschema counts as "false"."""
    used: set[str] = set()
    for _, node in gen.schema_nodes(schema):
        if isinstance(node, dict):
            used.update(k for k, v in node.items() if not (k in _TRIVIAL_WHEN_TRUE and (v is True or v == {})))
        elif node is False:
            used.add("false")
    try:
        known = set(_validator_class(schema).VALIDATORS)  # `const` is no keyword of draft-04
    except OracleError:
        known = set()
    return sorted(used - (SIMPLE & known) - NEUTRAL)


# ---------------------------------------------------------------- tether, memoised

_specs: dict[tuple, object] = {}
_warned: dict[tuple, str] = {}  # the first warning tether gave compiling a schema (an approximation it chose)
LIMITS = None  # set by the fuzzer: tighter compile time and memory than the defaults


def _options_key(options: dict) -> tuple:
    return (options.get("whitespace", "compact"), options.get("property_order", "declared"),
            options.get("additional_properties", "none"))


def compile_warning(schema: Any, options: dict) -> str | None:
    """The warning tether gave when it compiled `schema` (e.g. any order given up past 8
    properties), or None."""
    return _warned.get((_schema_text(schema), _options_key(options), LIMITS))


def spec(schema: Any, options: dict):
    """`tether.json_schema(schema, **options)`, memoised with its error."""
    key = (_schema_text(schema), _options_key(options), LIMITS)
    if key not in _specs:
        if len(_specs) >= 8:
            del _specs[next(iter(_specs))]
        w, order, extra = key[1]
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                _specs[key] = _tether().json_schema(copy.deepcopy(schema), whitespace=w, property_order=order,
                                                    additional_properties=extra, limits=LIMITS)
            if caught:
                _warned[key] = str(caught[0].message)
                while len(_warned) > 512:
                    del _warned[next(iter(_warned))]
        except Exception as e:  # noqa: BLE001 (re-raised on every use)
            _specs[key] = e
    value = _specs[key]
    if isinstance(value, BaseException):
        raise value.with_traceback(None)
    return value


spec.cache_clear = _specs.clear  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=4)
def _constraint(schema_text: str, options: tuple, vocab_name: str):
    options_dict = dict(zip(("whitespace", "property_order", "additional_properties"), options))
    return spec(json.loads(schema_text), options_dict).compile(vocabulary(vocab_name))


def constraint(schema: Any, options: dict, vocab_name: str):
    return _constraint(_schema_text(schema), _options_key(options), vocab_name)


constraint.cache_clear = _constraint.cache_clear  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=None)
def vocabulary(name: str):
    return _tether().Vocabulary.from_file(tokenizer_path(name))


def _decoded(vocab_name: str, ids: list[int]) -> str | None:
    try:
        return vocabulary(vocab_name).decode(ids).decode("utf-8")
    except UnicodeDecodeError:
        return None


# ---------------------------------------------------------------- cases

def compile_case(schema: Any, options: dict, valid: bool) -> dict:
    """tether compiles the schema or raises a documented error; InvalidSchema only when invalid."""
    return {"kind": "compile", "schema": schema, "options": options,
            "expected": "valid" if valid else "invalid"}


def match_case(schema: Any, options: dict, text: str) -> dict:
    """`matches(text)` is False when the validator says invalid (and True when valid, see must_accept)."""
    valid, keyword = verdict(schema, text)
    case = {"kind": "match", "schema": schema, "options": options, "text": text, "expected": valid}
    if keyword:
        case["keyword"] = keyword
    return case


def walk_case(schema: Any, options: dict, vocab_name: str, ids: list[int]) -> dict:
    """The constraint accepts the token sequence `ids` only if the validator finds its text valid."""
    text = _decoded(vocab_name, ids)
    valid, _ = verdict(schema, text)
    return {"kind": "walk", "schema": schema, "options": options, "vocab": vocab_name,
            "ids": [int(t) for t in ids], "text": text, "expected": valid}


def mask_case(schema: Any, options: dict, vocab_name: str, prefix: list[int], tokens: list[int]) -> dict:
    return {"kind": "mask", "schema": schema, "options": options, "vocab": vocab_name,
            "ids": [int(t) for t in prefix], "tokens": sorted({int(t) for t in tokens}),
            "expected": "mask == allows, EOS iff accepting, some token allowed, advance refuses what the mask forbids"}


def _missed(case: dict, detail: str) -> tuple[str, str]:
    """A valid text tether rejects: a failure, a miss, or (options that narrow the language) right."""
    if any(case["options"].get(k) != v for k, v in COMPLETE_OPTIONS.items()):
        return "narrowed", detail
    return ("fail", detail) if must_accept(case) else ("miss", detail)


def evaluate(case: dict) -> tuple[str, str]:
    """("ok", ""), ("miss", what) for a valid text rejected where that is allowed, ("narrowed", what)
    for one that options other than COMPLETE_OPTIONS leave out, or ("fail", what).
    UnsupportedSchema and ConstraintTooLarge propagate (skips), as does any crash."""
    tether = _tether()
    kind, schema, options = case["kind"], case["schema"], case["options"]
    if kind == "compile":
        valid = case["expected"] == "valid"
        try:
            spec(schema, options)
        except tether.InvalidSchema as e:
            if valid:
                return "fail", f"compile: InvalidSchema on a schema jsonschema accepts: {e}"
        except tether.EmptyLanguage:
            pass
        except _skips():
            if valid:
                raise
        except tether.TetherError as e:
            if valid:  # on an invalid schema any TetherError is an answer
                return "fail", f"compile: {type(e).__name__} is no documented error of json_schema: {e}"
        return "ok", ""
    if kind == "match":
        text = case["text"]
        try:
            got = bool(spec(schema, options).matches(text))
        except tether.EmptyLanguage:
            if case["expected"]:
                return _missed(case, f"match: tether says the language is empty, jsonschema accepts {text!r}")
            return "ok", ""
        g = spec(schema, options)
        if not text.isascii() and bool(g.matches(text.encode("utf-8"))) != got:
            return "fail", f"match: matches(bytes) differs from matches(str) ({got}) on {text!r}"
        if got and not case["expected"]:
            return "fail", (f"match: unsound on {case.get('keyword', '?')}: tether accepts {text!r}, "
                            f"jsonschema rejects it")
        if case["expected"] and not got:
            return _missed(case, f"match: incomplete: tether rejects {text!r}, jsonschema accepts it")
        return "ok", ""
    c = constraint(schema, options, case["vocab"])
    if kind == "walk":
        problem = check_walk(c, case, "jsonschema")
        if problem is None:
            return "ok", ""
        if not case["expected"]:
            return "fail", problem
        if case["text"] is not None and spec(schema, options).matches(case["text"]):
            return "fail", f"walk: the constraint refuses a text matches() accepts: {problem}"
        return _missed(case, problem)
    if kind == "mask":
        problem = check_mask(c, case)
        return ("fail", problem) if problem else ("ok", "")
    raise ValueError(f"unknown case kind {kind!r}")


def check_case(case: dict) -> str | None:
    """None if tether does what `case` expects (a miss allowed by `must_accept` included), else
    what it did instead (exceptions propagate). Refusing the schema is one way not to accept an
    invalid text: a saved unsound match holds once tether raises UnsupportedSchema there."""
    try:
        outcome, detail = evaluate(case)
    except _skips():
        if case["kind"] == "match" and not case["expected"]:
            return None
        raise
    return detail if outcome == "fail" else None


# ---------------------------------------------------------------- running cases

def attempt(case: dict) -> tuple[str, str]:
    """("ok"|"miss"|"narrowed"|"fail", detail) or ("skip", reason) for one case."""
    try:
        return evaluate(case)
    except _skips() as e:
        return "skip", f"{type(e).__name__}" + (f" {e.keyword}" if getattr(e, "keyword", None) else "")
    except Exception as e:  # a crash is a finding like any other
        where = traceback.extract_tb(e.__traceback__)[-1]
        return "fail", f"{type(e).__name__}: {e} (at {where.filename.rpartition('/')[2]}:{where.lineno})"


def _signature(detail: str) -> str:
    head = re.split(r"[,;(\[]", detail, maxsplit=1)[0]
    return re.sub(r"\d+", "N", ":".join(head.split(":")[:2])).strip()


def _rebuild(case: dict, **changes) -> dict | None:
    """`case` with another schema, options, text or ids, and what the validator now says; None
    when the validator cannot judge it."""
    c = {**case, **changes}
    schema, options = c["schema"], c["options"]
    if c["kind"] == "compile":
        return compile_case(schema, options, schema_status(schema) is None)
    if schema_status(schema) is not None:
        return None
    try:
        if c["kind"] == "match":
            if len(c["text"]) > MAX_TEXT:
                return None
            return match_case(schema, options, c["text"])
        if c["kind"] == "walk":
            return walk_case(schema, options, c["vocab"], c["ids"])
    except OracleError:
        return None
    return mask_case(schema, options, c["vocab"], c["ids"], c["tokens"])


def _smaller(case: dict) -> Iterator[dict | None]:
    if case["kind"] == "match":
        try:
            value = json.loads(case["text"])
        except ValueError:
            value = None
        if value is not None or case["text"] == "null":
            canonical = _canonical(value)
            if canonical != case["text"]:
                yield _rebuild(case, text=canonical)
            for v in gen.value_shrinks(value):
                yield _rebuild(case, text=_canonical(v))
    if case["kind"] == "walk":
        ids = case["ids"]
        for i in range(len(ids)):
            yield _rebuild(case, ids=ids[:i] + ids[i + 1:])
    if case["kind"] == "mask" and case["tokens"]:
        yield _rebuild(case, tokens=[])
        half = len(case["tokens"]) // 2
        yield _rebuild(case, tokens=case["tokens"][:half])
        yield _rebuild(case, tokens=case["tokens"][half:])
    if case["options"].get("whitespace") == "flexible":
        yield _rebuild(case, options={**case["options"], "whitespace": "compact"})
    for s in gen.schema_shrinks(case["schema"]):
        yield _rebuild(case, schema=s)


def shrink(case: dict, detail: str, seconds: float, same=None) -> tuple[dict, str]:
    """A smaller case that still fails the same way (or satisfies `same(outcome, detail)`), found
    greedily within `seconds`."""
    if same is None:
        def same(outcome: str, what: str) -> bool:
            return outcome == "fail" and _signature(what) == _signature(detail)
    best = [case, detail]
    deadline = time.monotonic() + seconds
    try:
        with time_limit(seconds + 1):
            progress = True
            while progress and time.monotonic() < deadline:
                progress = False
                for candidate in _smaller(best[0]):
                    if time.monotonic() > deadline:
                        break
                    if candidate is None or candidate == best[0]:
                        continue
                    outcome, what = attempt(candidate)
                    if same(outcome, what):
                        best[:] = [candidate, what]
                        progress = True
                        break
    except CaseTimeout:
        spec.cache_clear()
        constraint.cache_clear()
    return best[0], best[1]


def _canonical(value: Any) -> str:
    from tether.grammar.json_schema import canonical_json

    return canonical_json(value)


def spaced(value: Any, rng: random.Random) -> str:
    """`value` in tether's canonical layout with runs of JSON whitespace (at most MAX_WHITESPACE
    characters) around some tokens: a text `whitespace="flexible"` must accept when valid."""
    from tether.grammar.json_schema import MAX_WHITESPACE

    out: list[str] = []

    def ws() -> None:
        if rng.random() < 0.35:
            out.append("".join(rng.choice(" \t\n\r") for _ in range(rng.choice((1, 1, 2, 3, MAX_WHITESPACE)))))

    def emit(v: Any) -> None:
        if isinstance(v, dict):
            out.append("{")
            for i, (k, x) in enumerate(v.items()):
                ws()
                if i:
                    out.append(",")
                    ws()
                out.append(_canonical(k))
                ws()
                out.append(":")
                ws()
                emit(x)
            ws()
            out.append("}")
        elif isinstance(v, list):
            out.append("[")
            for i, x in enumerate(v):
                ws()
                if i:
                    out.append(",")
                    ws()
                emit(x)
            ws()
            out.append("]")
        else:
            out.append(_canonical(v))

    ws()
    emit(value)
    ws()
    return "".join(out)


# ---------------------------------------------------------------- the run

class _Skip(Exception):
    def __init__(self, reason: str):
        self.reason = reason


class _Failed(Exception):
    """Ends a schema at its first failure."""


class _Stop(BaseException):
    """Ends the hypothesis run: the time is up (a BaseException, so hypothesis lets it through)."""


# Two schemas in three get the options under which every valid instance has a text in the language.
OPTION_CHOICES = [
    {"whitespace": "compact", **COMPLETE_OPTIONS}, {"whitespace": "compact", **COMPLETE_OPTIONS},
    {"whitespace": "flexible", **COMPLETE_OPTIONS}, {"whitespace": "flexible", **COMPLETE_OPTIONS},
    {"whitespace": "compact", "property_order": "declared", "additional_properties": "none"},
    {"whitespace": "flexible", "property_order": "any", "additional_properties": "none"},
]


class Fuzzer:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.stats = Stats(TARGET, args.seconds, args.seed)
        self.vocab_name = None if args.vocab in (None, "", "none") else args.vocab
        self.failures: list[tuple[dict, str]] = []
        self.reported: dict[str, int] = {}
        self.kinds: dict[str, int] = {}
        self.misses: dict[tuple, tuple[dict, str]] = {}  # non-simple keywords -> first miss, shrunk
        self.pending_misses: dict[tuple, tuple[dict, str]] = {}
        self.short: np.ndarray | None = None  # token classes for walks (see random_walk)
        self.closing: np.ndarray | None = None
        self.skipped_examples: dict[str, str] = {}  # skip reason -> the first schema
        self.maskbench: list[dict] = []
        self.seen: set[int] = set()
        self.current: Any = None
        self.inflight = None if args.inflight in ("", "none") else args.inflight

    # -- one case

    def check(self, case: dict) -> str:
        self.stats["cases"] += 1
        if self.inflight:
            with open(self.inflight, "w", encoding="utf-8") as f:
                json.dump(case, f, ensure_ascii=False)
        outcome, what = attempt(case)
        if outcome == "skip":
            raise _Skip(what)
        if outcome == "fail":
            self.failures.append((case, what))
            raise _Failed(what)
        if outcome == "miss":
            self.miss(case, what)
        return outcome

    def miss(self, case: dict, what: str) -> None:
        stats = self.stats
        stats["misses"] += 1
        hard = tuple(_hard_keywords(case["schema"]))
        if not hard and compile_warning(case["schema"], case["options"]):
            hard = ("(tether warned)",)
        for k in hard:
            stats[f"miss: {k}"] += 1
        if hard not in self.misses and len(self.misses) + len(self.pending_misses) < self.args.miss_examples:
            self.pending_misses.setdefault(hard, (case, what))

    def shrink_misses(self) -> None:
        """The first miss of each set of non-simple keywords, shrunk (outside the schema's time limit)."""
        for hard, (case, what) in self.pending_misses.items():
            if hard not in self.misses:
                self.misses[hard] = shrink(case, what, 3.0, same=lambda outcome, _: outcome == "miss")
        self.pending_misses.clear()

    # -- one schema

    def inputs(self):
        from hypothesis import strategies as st

        maskbench = self.maskbench

        @st.composite
        def draw_input(draw):
            source = "generated"
            tests: list[Any] = []
            if maskbench and draw(st.integers(0, 2)) == 2:
                source = "maskbench"
                entry = draw(st.sampled_from(maskbench))
                schema, tests = entry["schema"], entry["tests"]
                if draw(st.integers(0, 3)):
                    schema = draw(gen.mutated(schema))
            else:
                schema = draw(gen.schemas())
            values = draw(st.lists(gen.instances(schema), min_size=1, max_size=6))
            seed = draw(st.integers(0, 2 ** 32 - 1))
            return source, schema, values, tests, seed

        return draw_input()

    def schema(self, source: str, schema: Any, values: list, tests: list, seed: int) -> None:
        stats, args = self.stats, self.args
        rng = random.Random(seed)
        options = dict(rng.choice(OPTION_CHOICES))
        self.current = schema
        stats["schemas"] += 1
        key = hash(_schema_text(schema))
        if key not in self.seen:
            self.seen.add(key)
            stats["distinct schemas"] += 1
        stats[f"schemas from {source}"] += 1
        status = schema_status(schema)
        if status is not None:
            stats["invalid schemas"] += 1
            stats[f"invalid schemas: {status.split(':')[0].split(' ')[0]}"] += 1
            self.check(compile_case(schema, options, False))
            return
        self.check(compile_case(schema, options, True))
        tether = _tether()
        try:
            g = spec(schema, options)
            stats["compiled"] += 1
            stats[f"engine {g.engine}"] += 1
        except tether.EmptyLanguage:
            stats["empty language"] += 1
            g = None
        candidates = list(values) + [gen.mutate_value(v, rng) for v in values for _ in range(2)] + list(tests)
        members, others = [], []
        for value in candidates:
            try:
                text = spaced(value, rng) if options["whitespace"] == "flexible" and rng.random() < 0.5 \
                    else _canonical(value)
            except (TypeError, ValueError):
                continue
            if len(text) > MAX_TEXT or any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
                continue
            try:
                case = match_case(schema, options, text)
            except OracleError as e:
                stats[f"oracle cannot judge: {str(e).split(':')[0]}"] += 1
                continue
            stats["texts"] += 1
            stats["valid texts" if case["expected"] else "invalid texts"] += 1
            if not case["expected"]:
                stats[f"invalid by: {case.get('keyword', '?')}"] += 1
            outcome = self.check(case)
            if outcome == "ok":
                stats["accepted valid" if case["expected"] else "rejected invalid"] += 1
            elif outcome == "narrowed":
                stats["valid texts the options leave out"] += 1
            (members if case["expected"] else others).append(text)
        if g is not None and self.vocab_name and rng.random() < args.walks:
            self.walks(schema, options, members, others, rng)

    def walks(self, schema: Any, options: dict, members: list[str], others: list[str], rng: random.Random) -> None:
        vocab, name = vocabulary(self.vocab_name), self.vocab_name
        for text in members[:2] + others[:2]:
            try:
                ids = vocab.encode_greedy(text)
                case = walk_case(schema, options, name, ids)
            except (_tether().VocabularyError, OracleError):
                continue
            self.check(case)
            self.stats["token walks"] += 1
        for _ in range(2):
            self.random_walk(schema, options, rng, rng.randint(2, 30))

    def random_walk(self, schema: Any, options: dict, rng: random.Random, length: int) -> None:
        try:
            c = constraint(schema, options, self.vocab_name)
        except _skips() as e:
            raise _Skip(type(e).__name__) from e
        name, vocab = self.vocab_name, c.vocab
        draw = np.random.default_rng(rng.getrandbits(63))
        eos = np.asarray(vocab.eos_ids)
        if self.short is None:  # tokens of 1-2 bytes, and those made of closing characters only
            pieces = [vocab[t] or b"" for t in range(vocab.size)]
            self.short = np.asarray([0 < len(p) <= 2 for p in pieces])
            self.closing = np.asarray([bool(p) and not p.strip(b'"]}0123456789') for p in pieces])
        short, closing = self.short, self.closing
        state, ids, text_len = c.initial(), [], 0
        # `length` random steps, then up to 30 that prefer closing tokens, so that many walks end
        # in an accepting state (their texts are then checked against the validator).
        for step in range(length + 30):
            try:
                allowed = np.flatnonzero(np.asarray(c.mask(state)))
            except _skips() as e:
                raise _Skip(type(e).__name__) from e
            if step % 3 == 0:
                sample = set(draw.choice(allowed, min(len(allowed), 60), replace=False).tolist()) \
                    if len(allowed) else set()
                sample |= set(draw.choice(vocab.size, 60, replace=False).tolist()) | set(vocab.eos_ids)
                self.stats["mask states"] += 1
                self.check(mask_case(schema, options, name, ids, sorted(sample)))
            moves = allowed[~np.isin(allowed, eos)]
            finishing = step >= length
            if not len(moves) or (c.is_accepting(state) and rng.random() < (0.9 if finishing else 0.3)):
                break
            pool = moves
            if finishing and closing[moves].any() and rng.random() < 0.7:
                pool = moves[closing[moves]]
            elif short[moves].any() and rng.random() < 0.6:
                pool = moves[short[moves]]
            token = int(pool[draw.integers(len(pool))])
            text_len += len(vocab[token] or b"")
            if text_len > MAX_TEXT:
                break
            try:
                state = c.advance(state, token)
            except Exception:
                self.check(walk_case(schema, options, name, ids + [token]))
                raise
            ids.append(token)
        if c.is_accepting(state):
            self.stats["walks ending accepting"] += 1
        try:
            case = walk_case(schema, options, name, ids)
        except OracleError as e:
            self.stats[f"oracle cannot judge: {str(e).split(':')[0]}"] += 1
            return
        self.check(case)
        self.stats["token walks"] += 1

    # -- the run

    def body(self, data) -> None:
        stats, args = self.stats, self.args
        if stats.expired() or len(self.kinds) >= args.max_failures:
            raise _Stop()
        drawn = data.draw(self.strategy)
        try:
            with time_limit(args.schema_seconds):
                self.schema(*drawn)
        except _Failed:
            pass
        except _Skip as skip:
            stats["skipped"] += 1
            stats[f"skipped: {skip.reason}"] += 1
            if skip.reason.startswith("UnsupportedSchema"):
                stats["unsupported"] += 1
            self.skipped_examples.setdefault(skip.reason, _schema_text(self.current)[:300])
        except CaseTimeout:
            stats["skipped"] += 1
            stats["skipped: slow"] += 1
            self.skipped_examples.setdefault("slow", _schema_text(self.current)[:300])
            spec.cache_clear()
            constraint.cache_clear()
        except Exception:  # outside any case: a failure without a case to save
            stats["failures"] += 1
            print(f"\nFAILURE {stats['failures']}: error in the fuzzer's driver, on the schema\n    "
                  f"{_schema_text(self.current)[:2000]}\n" + traceback.format_exc(), flush=True)
        self.report_failures()
        self.shrink_misses()
        stats.status(SUMMARY_KEYS)

    def run(self) -> int:
        global LIMITS
        from hypothesis import HealthCheck, Phase, given, settings
        from hypothesis import seed as with_seed
        from hypothesis import strategies as st

        args, stats = self.args, self.stats
        setup = time.monotonic()
        tether = _tether()
        LIMITS = tether.Limits(compile_seconds=args.schema_seconds / 2, automaton_bytes=128 * 2 ** 20,
                               mask_cache_bytes=64 * 2 ** 20)
        if args.maskbench:
            self.maskbench = gen.load_maskbench(MASKBENCH, args.maskbench, args.seed)
        warm = {"type": "object", "properties": {"a": {"type": "integer"}}}
        verdict(warm, '{"a":1}')  # the validator's imports happen here, off the clock (not under a time limit)
        spec(warm, OPTION_CHOICES[0]).matches('{"a":1}')
        if self.vocab_name:
            c = constraint({"type": "object", "properties": {"a": {"type": "integer"}}}, OPTION_CHOICES[0],
                           self.vocab_name)  # the mask kernels compile (or load) once, off the clock
            c.mask(c.advance(c.initial(), c.vocab.encode_greedy("{")[0]))
        self.strategy = self.inputs()
        print(f"fuzz {TARGET}: seed {args.seed}, {args.seconds:g} s, vocabulary {self.vocab_name or 'none'}, "
              f"{len(self.maskbench)} MaskBench schemas (setup {time.monotonic() - setup:.1f} s)"
              + (f"; if it crashes, the case in flight is in {self.inflight}" if self.inflight else ""), flush=True)
        faulthandler.enable()
        stats.start = time.monotonic()
        restart = 0
        while not stats.expired() and len(self.kinds) < args.max_failures:
            @with_seed(args.seed * 1000 + restart)
            @settings(max_examples=10 ** 9, database=None, deadline=None, phases=[Phase.generate],
                      suppress_health_check=list(HealthCheck), derandomize=False)
            @given(st.data())
            def one(data):
                self.body(data)

            try:
                one()
            except _Stop:
                break
            except Exception as e:  # noqa: BLE001 (hypothesis gave up: start it again, seeded anew)
                stats[f"hypothesis restarts: {type(e).__name__}"] += 1
            restart += 1
        stats.end_status()
        self.report()
        return 1 if stats["failures"] else 0

    def report(self) -> None:
        stats = self.stats
        counts = lambda prefix: ", ".join(f"{k.partition(': ')[2]} {v:,}" for k, v in stats.most_common()  # noqa: E731
                                          if k.startswith(prefix))
        for label, prefix in (("skips", "skipped: "), ("invalid texts by the keyword that fails", "invalid by: "),
                              ("misses by keyword", "miss: "),
                              ("invalid schemas", "invalid schemas: "),
                              ("oracle cannot judge", "oracle cannot judge: ")):
            if counts(prefix):
                print(f"{label}: {counts(prefix)}")
        shown = set()
        for hard, (case, why) in self.misses.items():
            text = _schema_text(case["schema"])
            if text in shown:
                continue
            shown.add(text)
            now = _hard_keywords(case["schema"]) or ["only simple keywords"]
            if compile_warning(case["schema"], case["options"]):
                now.append("(tether warned)")
            print(f"a miss on a schema with {', '.join(hard) or 'only simple keywords'}, shrunk to one with "
                  f"{', '.join(now)}: {why}\n"
                  f"    schema {text[:600]}\n    options {case['options']}")
        for reason, schema in self.skipped_examples.items():
            if reason == "slow" or reason.startswith("ConstraintTooLarge"):
                print(f"first {reason}: {schema}")
        print(stats.summary(SUMMARY_KEYS) + f" [{stats['cases'] / max(stats.elapsed, 1e-9):.1f} cases/s, "
              f"{stats['schemas'] / max(stats.elapsed, 1e-9):.1f} schemas/s]")

    def report_failures(self) -> None:
        for case, what in self.failures:
            self.stats["failures"] += 1
            n = self.stats["failures"]
            kind = _signature(what)
            if kind in self.kinds:
                self.stats["failures of a kind already shown"] += 1
                continue
            self.kinds[kind] = n
            small, why = shrink(case, what, self.args.shrink_seconds)
            key = _schema_text(sorted((k, repr(v)) for k, v in small.items()))
            if key in self.reported:
                print(f"\nFAILURE {n}: same case as failure {self.reported[key]}", flush=True)
                continue
            self.reported[key] = n
            small = {**small, "found": f"python -m fuzz jsonschema --seed {self.args.seed}", "note": why}
            saved = self.args.save and save_case(TARGET, small)
            print(f"\nFAILURE {n}: {why}\n  schema: {_schema_text(small['schema'])[:2000]}\n  case: "
                  f"{json.dumps(small, ensure_ascii=False)[:3000]}"
                  + (f"\n  saved to tests/regressions/{TARGET}.jsonl" if saved else ""), flush=True)
        self.failures.clear()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vocab", default="gpt-2",
                        help="vocabulary for token walks, from ../shared/data/tokenizers "
                             "(default gpt-2; 'none': no walks)")
    parser.add_argument("--walks", type=float, default=0.2,
                        help="share of the compiled schemas that also get token walks (default 0.2)")
    parser.add_argument("--maskbench", type=int, default=300,
                        help="MaskBench schemas to sample (default 300; 0: generated schemas only)")
    parser.add_argument("--schema-seconds", type=float, default=10.0,
                        help="a schema that takes longer than this (compile, checks) is skipped as slow (default 10)")
    parser.add_argument("--shrink-seconds", type=float, default=8.0,
                        help="time to shrink the first failure of each kind (default 8)")
    parser.add_argument("--miss-examples", type=int, default=12,
                        help="misses shrunk and shown at the end, one per set of non-simple keywords (default 12)")
    parser.add_argument("--inflight",
                        default=os.path.join(tempfile.gettempdir(), "tether-fuzz-jsonschema-inflight.json"),
                        help="file holding the case being checked, for a run that crashes ('none': no file)")


def run(args: argparse.Namespace) -> int:
    return Fuzzer(args).run()


if __name__ == "__main__":
    sys.exit("run the fuzzers as: python -m fuzz jsonschema --seconds N")
