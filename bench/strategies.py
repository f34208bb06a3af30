"""Hypothesis strategies side by side: tether's walks against hypothesis' own `from_regex`
(fullmatch=True), `hypothesis.extra.lark.from_lark` and `hypothesis-jsonschema`, on the same inputs.

    python bench/strategies.py                 # ~1 min: 1,000 draws per input and engine
    python bench/strategies.py --draws 200

Per input and engine: valid (share of draws the reference accepts: `re.fullmatch`, Lark's Earley
parser with `lexer="dynamic_complete"`, jsonschema's Draft 2020-12 validator), distinct examples
among the draws, ms per draw, and the error for an input the engine refuses. Draws are the
examples of one `@given` run (generate phase only, no database), so every engine pays hypothesis'
own overhead.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import jsonschema  # noqa: E402
import lark  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import tether  # noqa: E402
from tether.integrations import strategies as ts  # noqa: E402
from test_strategies import SCHEMAS as TEST_SCHEMAS, TREE  # noqa: E402  (the tests' inputs)

REGEXES = {
    "phone": r"[0-9]{3}-[0-9]{4}",
    "number": r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?",
    "email": r"[a-z]+@[a-z]+\.(com|org|net)",
    "word": r"\w+",
    "greek": r"[α-ω]{1,5}",
    "colors": r"(red|green|blue)(,(red|green|blue)){0,3}",
    "hex|bin": r"(0x[0-9A-Fa-f]{1,8}|0b[01]+)",
    "any8": r".{0,8}",
}
GRAMMARS = {
    "choice": 'start: "a" | "b" | "c" "d"',
    "kv": 'start: pair ("&" pair)*\npair: KEY "=" VALUE\nKEY: /[a-z]+/\nVALUE: /[0-9a-z%]+/',
    "arith (rec)": '?start: sum\n?sum: product | sum "+" product\n?product: atom | product "*" atom\n'
                   '?atom: NUMBER | "(" sum ")"\n%import common.NUMBER',
    "parens (rec)": 'start: "(" start ")" start | ',
    "json (rec)": '?start: value\n?value: object | array | ESCAPED_STRING | SIGNED_NUMBER | "true" | "false" | "null"\n'
                  'array: "[" [value ("," value)*] "]"\nobject: "{" [pair ("," pair)*] "}"\n'
                  'pair: ESCAPED_STRING ":" value\n%import common.ESCAPED_STRING\n%import common.SIGNED_NUMBER',
}
SCHEMAS = {
    "ints": TEST_SCHEMAS["ints"],
    "person": TEST_SCHEMAS["person"],
    "anyOf": {"anyOf": [{"enum": ["a", "b", 3]}, {"type": "number", "exclusiveMinimum": 10}, {"type": "null"}]},
    "tree (rec $ref)": TREE,
    "linked list (rec $ref)": {"$defs": {"l": {"anyOf": [{"type": "null"}, {
        "type": "object", "properties": {"head": {"type": "string"}, "tail": {"$ref": "#/$defs/l"}},
        "required": ["head", "tail"]}]}}, "$ref": "#/$defs/l"},
}


def draws(strategy: Any, n: int) -> tuple[list, float]:
    """(the examples of one @given run of n examples, seconds)."""
    out: list = []

    @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(x):
        out.append(x)

    t = time.perf_counter()
    collect()
    return out, time.perf_counter() - t


def measure(make: Callable[[], Any], valid: Callable[[Any], bool], n: int) -> dict:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got, seconds = draws(make(), n)
    except Exception as e:  # noqa: BLE001 - the engine refuses the input: that is the result
        return {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:70]}"}
    ok = 0
    for x in got:
        try:
            ok += bool(valid(x))
        except Exception:  # noqa: BLE001 - an exception from the reference is a rejection
            pass
    key = lambda x: json.dumps(x, sort_keys=True) if not isinstance(x, str) else x  # noqa: E731
    return {"n": len(got), "valid": 100 * ok / max(1, len(got)), "distinct": len({key(x) for x in got}),
            "ms": 1000 * seconds / max(1, len(got))}


def hj_from_schema():
    try:
        from hypothesis_jsonschema import from_schema
    except ImportError:
        return None
    return from_schema


def rows(n: int) -> list[tuple[str, str, str, dict]]:
    out = []
    for name, p in REGEXES.items():
        check = re.compile(p).fullmatch
        out.append(("regex", name, "tether", measure(lambda: ts.from_regex(p, max_size=64), check, n)))
        out.append(("regex", name, "hypothesis", measure(lambda: st.from_regex(p, fullmatch=True), check, n)))
    from hypothesis.extra.lark import from_lark

    for name, text in GRAMMARS.items():
        parser = lark.Lark(text, parser="earley", lexer="dynamic_complete")
        out.append(("lark", name, "tether", measure(lambda: ts.from_grammar(tether.lark(text), max_size=64),
                                                     parser.parse, n)))
        out.append(("lark", name, "hypothesis", measure(lambda: from_lark(lark.Lark(text)), parser.parse, n)))
    hj = hj_from_schema()
    for name, schema in SCHEMAS.items():
        v = jsonschema.Draft202012Validator(schema)
        out.append(("schema", name, "tether", measure(lambda: ts.from_schema(schema, max_size=120), v.is_valid, n)))
        if hj is None:
            out.append(("schema", name, "hypothesis-jsonschema", {"error": "not installed"}))
        else:
            out.append(("schema", name, "hypothesis-jsonschema", measure(lambda: hj(schema), v.is_valid, n)))
    return out


def table(results: list[tuple[str, str, str, dict]], n: int) -> str:
    lines = [f"draws per input: {n} (one @given run, generate phase)", "",
             "| kind | input | engine | draws | valid % | distinct | ms/draw | error |",
             "|---|---|---|---:|---:|---:|---:|---|"]
    for kind, name, engine, r in results:
        if "error" in r:
            lines.append(f"| {kind} | {name} | {engine} | - | - | - | - | {r['error']} |")
        else:
            lines.append(f"| {kind} | {name} | {engine} | {r['n']} | {r['valid']:.1f} | {r['distinct']} | "
                         f"{r['ms']:.2f} | |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=1000)
    args = ap.parse_args()
    print(table(rows(args.draws), args.draws))


if __name__ == "__main__":
    main()
