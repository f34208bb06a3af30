"""Hypothesis strategies over constraint languages (tether.integrations.strategies, tether.automata.walk).

Every draw is checked against an outside reference: `re.fullmatch`, jsonschema's validator,
Lark's own Earley parser, SQLite. Then: small grammars reach every alternative within 500
examples, hypothesis shrinks three planted bugs to their exact minimal examples, model draws
are valid and replay, and `max_size` / `max_depth` bound what is drawn.
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
import tarfile

import jsonschema
import lark
import pytest
from hypothesis import HealthCheck, find, given, seed, settings
from hypothesis.errors import Unsatisfiable

import tether
from tether.automata.walk import RandomChooser, Walker, byte_vocabulary, sample, walker
from tether.integrations.strategies import from_grammar, from_model, from_regex, from_schema

from conftest import data_path

FAST = settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))


def run(strategy, check, examples: int = 30) -> list:
    """Run `check` on `examples` hypothesis draws of `strategy`; the drawn values."""
    seen = []

    @settings(FAST, max_examples=examples)
    @given(strategy)
    def inner(x):
        seen.append(x)
        check(x)

    inner()
    return seen


# ------------------------------------------------------------------------------ regexes

REGEXES = [
    r"[0-9]{3}-[0-9]{4}",
    r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?",
    r"[a-z]+@[a-z]+\.(com|org|net)",
    r"(ab|cd)*e?",
    r"\d{2,4}",
    r"\w+",
    r"\s*\S+\s*",
    r"[α-ω]{1,5}",
    r"[^\x00-\x7f]+",
    r"(?i)hello|bye",
    r"\u00e9+|[\u4e00-\u9fff]{2}",
    r".{0,8}",
    r"(0x[0-9A-Fa-f]{1,8}|0b[01]+)",
    r"(red|green|blue)(,(red|green|blue)){0,3}",
    r"[A-Z][a-z]*( [A-Z][a-z]*){0,2}",
    r"a{3}b{2,}c?",
    r"(\+|-)?[1-9]\d{0,2}(,\d{3})*",
    r"[\U0001F600-\U0001F64F]+",
    r"(?:yes|no|maybe)!{0,3}",
    r"x(y(z)?)?|",
]


@pytest.mark.parametrize("pattern", REGEXES)
def test_regex_draws_fullmatch(pattern):
    compiled = re.compile(pattern)

    def check(s):
        assert compiled.fullmatch(s), s
        assert len(s.encode()) <= 40, s

    drawn = run(from_regex(pattern, max_size=40), check)
    assert len(set(drawn)) >= 4  # every pattern here has more members than that: draws must differ


def assert_(ok, what):
    assert ok, what


# ------------------------------------------------------------------------------ JSON Schema

TREE = {"$defs": {"node": {"type": "object", "properties": {
    "value": {"type": "integer"},
    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}, "required": ["value"]}},
    "$ref": "#/$defs/node"}
SCHEMAS = {
    "ints": {"type": "array", "items": {"type": "integer"}},
    "person": {"type": "object", "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 10},
        "age": {"type": "integer", "minimum": 0, "maximum": 130},
        "email": {"type": "string", "pattern": "^[a-z]+@[a-z]+\\.com$"}}, "required": ["name", "age"]},
    "enum_anyof": {"anyOf": [{"enum": ["a", "b", 3]}, {"type": "number", "exclusiveMinimum": 10},
                             {"type": "boolean"}, {"type": "null"}]},
    "bounded_array": {"type": "array", "items": {"type": "string", "maxLength": 3}, "minItems": 1, "maxItems": 3},
    "tree": TREE,
}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_schema_draws_validate(name):
    schema = SCHEMAS[name]
    validator = jsonschema.Draft202012Validator(schema)
    values = run(from_schema(schema, max_size=80), lambda v: assert_(validator.is_valid(v), v))
    assert len({json.dumps(v) for v in values}) > 5  # real draws, not one example repeated


def test_recursive_schema_draws_nest():
    values = sample(tether.json_schema(TREE), 300, seed=1, max_size=200)
    validator = jsonschema.Draft202012Validator(TREE)
    assert all(validator.is_valid(json.loads(v)) for v in values)
    assert max(nesting(json.loads(v)) for v in values) >= 4  # recursion is drawn, not avoided


def nesting(x) -> int:
    if isinstance(x, dict):
        return 1 + max([nesting(v) for v in x.values()] + [0])
    if isinstance(x, list):
        return 1 + max([nesting(v) for v in x] + [0])
    return 0


# A handful of JSONSchemaBench (MaskBench) schemas, across subsets and both engines.
MASKBENCH = ["Glaiveai2K---calculate_area_3a71b75d.json", "Kubernetes---kb_481_Normalized.json",
             "Github_easy---o84097.json", "BFCL_parallel_multiple_115.json", "Snowplow---sp_296_Normalized.json",
             "WashingtonPost---wp_63_Normalized.json", "Github_hard---o5364.json"]


@functools.cache
def maskbench() -> dict[str, dict]:
    wanted, out = set(MASKBENCH), {}
    with tarfile.open(data_path("jsonschema", "maskbench", "maskbench_data.tar.xz"), "r:xz") as tar:
        for m in tar:
            base = m.name.rsplit("/", 1)[-1]
            if base in wanted:
                out[base] = json.load(tar.extractfile(m))["schema"]
                if len(out) == len(wanted):
                    break
    assert set(out) == wanted
    return out


@pytest.mark.parametrize("name", MASKBENCH)
def test_maskbench_draws_validate(name):
    schema = maskbench()[name]
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    run(from_schema(schema, max_size=300), lambda v: assert_(validator.is_valid(v), v), examples=15)


def test_python_type_draws_decode_into_the_type():
    """(A `float` field is left out: tether's schema for it admits 1e400, which msgspec refuses.)"""
    import dataclasses

    @dataclasses.dataclass
    class Tag:
        name: str
        count: int
        flags: list[bool]

    def check(t):
        assert isinstance(t, Tag) and isinstance(t.count, int) and all(isinstance(f, bool) for f in t.flags), t

    run(from_schema(Tag), check, examples=15)


# ------------------------------------------------------------------------------ grammars

ARITH = r"""
?start: sum
?sum: product | sum ("+" | "-") product
?product: atom | product ("*" | "/") atom
?atom: NUMBER | "-" atom | "(" sum ")"
%import common.NUMBER
%import common.WS_INLINE
%ignore WS_INLINE
"""
JSON_LARK = r"""
?start: value
?value: object | array | string | SIGNED_NUMBER | "true" | "false" | "null"
array: "[" [value ("," value)*] "]"
object: "{" [pair ("," pair)*] "}"
pair: string ":" value
string: ESCAPED_STRING
%import common.ESCAPED_STRING
%import common.SIGNED_NUMBER
%import common.WS
%ignore WS
"""
PARENS = 'start: "(" start ")" start | '
GRAMMARS = {"arith": ARITH, "json": JSON_LARK, "parens": PARENS,
            "kv": 'start: pair ("&" pair)*\npair: KEY "=" VALUE\nKEY: /[a-z]+/\nVALUE: /[0-9a-z%]+/'}


@pytest.mark.parametrize("name", sorted(GRAMMARS))
def test_lark_draws_parse_with_lark(name):
    text = GRAMMARS[name]
    parser = lark.Lark(text, parser="earley", lexer="dynamic_complete")
    drawn = run(from_grammar(tether.lark(text), max_size=60), parser.parse)
    assert len(set(drawn)) > 5


def test_gbnf_draws_match():
    g = tether.gbnf('root ::= "[" item ("," item)* "]"\nitem ::= [0-9]+ | "\\"" [a-z]* "\\""')
    shape = re.compile(r'\[([0-9]+|"[a-z]*")(,([0-9]+|"[a-z]*"))*\]')
    run(from_grammar(g), lambda s: assert_(g.matches(s) and shape.fullmatch(s), s))


DDL = ("CREATE TABLE singer (id INTEGER PRIMARY KEY, name TEXT, age INTEGER);"
       "CREATE TABLE concert (cid INTEGER, singer_id INTEGER REFERENCES singer(id), year INTEGER);")


def test_sql_draws_run_in_sqlite():
    """Few draws: a SQL walk costs seconds (its completion searches branch over every name and
    keyword; see the report in bench/strategies.py)."""
    q = tether.sql(ddl=DDL)
    def check(s):
        assert q.matches(s), s
        q.execute(s)  # raises sqlite3.Error for a statement SQLite refuses

    drawn = run(from_grammar(q, max_size=60), check, examples=4)
    assert all(len(s.encode()) <= 60 for s in drawn)


# ------------------------------------------------------------------------------ diversity

# (grammar, the alternative each member belongs to)
SMALL = {
    'start: "a" | "b" | "c" "d"': lambda s: s,
    'start: "ab" | "ac" | "abc" | "b"': lambda s: s,  # shared prefixes
    'start: /[a-z]/ | "0" | "x" "y" "z"': lambda s: "letter" if len(s) == 1 and s.isalpha() else s,  # widths differ
    'start: /[^"]/ | "\\"" "q"': lambda s: "char" if len(s) == 1 else s,  # one branch among ~1M characters
    'start: x | y\nx: "[" start "]"\ny: "k" | "k" "k"': lambda s: ("nested " if s.startswith("[") else "") + s.strip("[]"),
}
ALTERNATIVES = {
    'start: "a" | "b" | "c" "d"': {"a", "b", "cd"},
    'start: "ab" | "ac" | "abc" | "b"': {"ab", "ac", "abc", "b"},
    'start: /[a-z]/ | "0" | "x" "y" "z"': {"letter", "0", "xyz"},
    'start: /[^"]/ | "\\"" "q"': {"char", '"q'},
    'start: x | y\nx: "[" start "]"\ny: "k" | "k" "k"': {"k", "kk", "nested k", "nested kk"},
}


@pytest.mark.parametrize("text", sorted(SMALL))
def test_every_alternative_is_drawn_within_500_examples(text):
    kind = SMALL[text]
    seen = {kind(s) for s in run(from_grammar(tether.lark(text), max_size=20), lambda s: None, examples=500)}
    assert ALTERNATIVES[text] <= seen, seen
    rng_seen = {kind(s) for s in sample(tether.lark(text), 500, seed=0, max_size=20)}
    assert ALTERNATIVES[text] <= rng_seen, rng_seen


# ------------------------------------------------------------------------------ shrinking

# derandomize: the same search every run (the minimal example is what is asserted, not luck).
SHRINK = settings(database=None, max_examples=2000, derandomize=True, deadline=None,
                  suppress_health_check=list(HealthCheck))


def test_shrinks_to_the_empty_list():
    """(a) a mean that forgets the empty list."""
    schema = {"type": "object", "properties": {"xs": {"type": "array", "items": {"type": "integer"}},
                                               "label": {"type": "string"}}, "required": ["xs", "label"]}

    def breaks(v):
        try:
            sum(v["xs"]) / len(v["xs"])
        except ZeroDivisionError:
            return True
        return False

    assert find(from_schema(schema), breaks, settings=SHRINK) == {"xs": [], "label": ""}


def naive_value(text: str) -> str:
    """The string value of {"a": ...} by splitting at quotes: wrong for an escaped quote."""
    return json.loads('"' + text.split('"')[3] + '"')


def test_shrinks_to_a_nested_quote():
    """(b) a parser that mishandles a quote inside a string."""
    spec = tether.json_schema({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]})

    def breaks(text):
        try:
            return naive_value(text) != json.loads(text)["a"]
        except ValueError:
            return True

    assert find(from_grammar(spec), breaks, settings=SHRINK) == '{"a":"\\""}'


def test_shrinks_to_zero():
    """(c) a parser that strips leading zeros, and so mishandles 0 itself."""

    def breaks(s):
        try:
            return int(s.lstrip("0") if not s.startswith("-") else "-" + s[1:].lstrip("0")) != int(s)
        except ValueError:
            return True

    assert find(from_regex(r"-?(0|[1-9][0-9]*)"), breaks, settings=SHRINK) == "0"
    assert find(from_schema({"type": "integer"}), lambda n: n % 7 == 0, settings=SHRINK) == 0


def test_given_reports_the_minimal_falsifying_example():
    shown = []

    @settings(SHRINK)
    @given(from_schema({"type": "array", "items": {"type": "integer", "minimum": 0}}))
    def mean_is_defined(xs):
        shown.append(xs)
        assert len(xs) > 0 and sum(xs) / len(xs) >= 0

    with pytest.raises(AssertionError):
        mean_is_defined()
    assert shown[-1] == []  # hypothesis replays the shrunk example last


# ------------------------------------------------------------------------------ models

TINY_WIDTH = 72


@pytest.fixture(scope="module")
def tiny_lm():
    import torch
    import transformers
    from tether.models import TransformersLM

    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=TINY_WIDTH, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    model = transformers.LlamaForCausalLM(config).eval()
    tokens = [bytes([97 + i % 26]) * (1 + i // 26) for i in range(60)] + [None]  # 'a'..'z', 'aa'.., 'aaa'..; EOS 60
    vocab = tether.Vocabulary.from_tokens(tokens, eos_ids=[60], size=70)
    return TransformersLM(model, None, vocab=vocab)


def test_model_draws_are_valid_and_replay(tiny_lm):
    pattern = r"(ab|c)+d?"
    strategy = from_model(tiny_lm, tether.regex(pattern), prompt=[1, 2, 3], max_tokens=10)
    runs = []
    for _ in range(2):
        drawn = []

        @seed(1234)
        @settings(FAST, max_examples=8)
        @given(strategy)
        def check(text):
            drawn.append(text)
            assert re.fullmatch(pattern, text), text

        check()
        runs.append(drawn)
    assert runs[0] == runs[1] and len(runs[0]) >= 4


def test_model_draws_that_do_not_finish_are_rejected(tiny_lm):
    strategy = from_model(tiny_lm, tether.regex("a{30}"), prompt=[1], max_tokens=4)  # 30 bytes need >= 10 tokens

    @settings(FAST, max_examples=1)
    @given(strategy)
    def never(text):
        raise AssertionError(f"an incomplete generation was returned: {text!r}")

    with pytest.raises(Unsatisfiable):
        never()


@pytest.mark.model
def test_real_model_draw():
    lm = tether.models.default(progress=False)
    strategy = from_model(lm, tether.regex(r"(19|20)[0-9]{2}"), prompt="Pick a year.", max_tokens=6)

    @settings(FAST, max_examples=2)
    @given(strategy)
    def check(text):
        assert re.fullmatch(r"(19|20)[0-9]{2}", text)

    check()


# ------------------------------------------------------------------------------ size, depth, errors

@pytest.mark.parametrize("spec", [tether.regex(r"[a-z]*"), tether.regex(r"(abc)+"), tether.json_schema(TREE),
                                  tether.lark(JSON_LARK), tether.regex(r"x{12}")], ids=repr)
@pytest.mark.parametrize("max_size", [0, 1, 7, 30])
def test_max_size_bounds_every_draw(spec, max_size):
    w = walker(spec, max_size=max_size)
    shortest = len(w.shortest().encode())
    texts = [w.walk(RandomChooser(i)) for i in range(60)]
    assert all(spec.matches(t) for t in texts)
    assert max(len(t.encode()) for t in texts) <= max(max_size, shortest)
    if shortest > max_size:  # the documented overshoot: every draw is then a shortest member
        assert {len(t.encode()) for t in texts} == {shortest}


def test_sizes_spread_below_max_size():
    lengths = [len(t) for t in sample(tether.regex(r"[a-z]+( [a-z]+)*"), 300, seed=2, max_size=60)]
    assert min(lengths) <= 3 and max(lengths) >= 30 and len(set(lengths)) >= 20


def test_max_depth_bounds_nesting():
    spec = tether.lark('start: value\n?value: list | NUMBER\nlist: "[" [value ("," value)*] "]"\nNUMBER: /[0-9]+/')
    def deepest(texts):
        return max(max((len(m) for m in re.findall(r"\[+", t)), default=0) for t in texts)
    free = sample(spec, 1000, seed=0, max_size=200)
    bounded = sample(spec, 1000, seed=0, max_size=200, max_depth=2)
    assert all(spec.matches(t) for t in bounded)
    assert deepest(free) >= 3
    assert deepest(bounded) <= 1  # each list level opens two rules (value, list)


def test_token_walk_over_a_real_vocabulary():
    from conftest import real_vocab

    vocab = real_vocab("gpt-2")
    spec = tether.json_schema({"type": "array", "items": {"type": "string"}})
    texts = sample(spec, 20, seed=0, max_size=40, vocab=vocab)
    assert all(spec.matches(t) and len(t.encode()) <= 40 for t in texts)
    assert len(set(texts)) > 10


def test_errors_are_typed():
    with pytest.raises(tether.InvalidPattern):
        from_regex("(")
    with pytest.raises(tether.UnsupportedPattern):
        from_regex(r"(a)\1")
    with pytest.raises(tether.EmptyLanguage):
        from_regex(r"[^\x00-\U0010ffff]")
    with pytest.raises(tether.InvalidSchema):
        from_schema({"type": 5})
    with pytest.raises(tether.GrammarError):
        from_grammar(tether.lark("start: undefined_rule"))
    with pytest.raises(TypeError):
        from_grammar('start: "a"')  # a string is not a spec: which language would it be?
    with pytest.raises(ValueError):
        walker(tether.regex("a"), max_size=-1)
    # A vocabulary that cannot spell the only member: nothing to walk.
    only_a = tether.Vocabulary.from_tokens([b"a", None], eos_ids=[1])
    with pytest.raises(tether.EmptyLanguage):
        Walker(tether.regex("b").compile(only_a))


def test_a_chooser_out_of_range_is_an_error():
    class Bad:
        def choose(self, n):
            return n

    with pytest.raises(ValueError):
        walker(tether.regex("[ab]+")).walk(Bad())


def test_byte_vocabulary_is_built_once():
    assert byte_vocabulary() is byte_vocabulary()
    assert byte_vocabulary().size == 257 and byte_vocabulary().eos_ids == (256,)
