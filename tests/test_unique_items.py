"""`UniqueItems`: JSON Schema `uniqueItems` enforced at run time around a JSON constraint.

The inner constraint is always compiled from the schema without `uniqueItems`; outputs are
validated with `jsonschema` against the schema with it.
"""

from __future__ import annotations

import copy
import json
import pickle
from decimal import Decimal

import jsonschema
import numpy as np
import pytest

import tether
from tether.automata.bitmask import allocate_bitmask, unpack_bitmask
from tether.automata.unique import UniqueItems, item_key

from conftest import real_vocab

VOCABS = ["gpt-2", "llama-bpe"]
ROOT = frozenset({()})


def _vocab(name):
    return real_vocab(name)


def wrap(vocab, schema, paths=ROOT, whitespace="compact", additional_properties="allow"):
    # "allow": objects of an unconstrained value may have any property (the JSON of `{}`)
    inner = tether.json_schema(schema, whitespace=whitespace,
                               additional_properties=additional_properties).compile(vocab)
    return UniqueItems(inner, vocab, frozenset(paths))


def with_unique(schema, paths):
    """The schema with `uniqueItems: true` on the arrays at `paths` (keys and None only)."""
    s = copy.deepcopy(schema)
    for p in paths:
        node = s
        for step in p:
            node = node["items"] if step is None else node["properties"][step]
        node["uniqueItems"] = True
    return s


def tokens_of(vocab, text, split="greedy"):
    """Token ids spelling text: greedy longest match, or one token per character."""
    if split == "greedy":
        return vocab.encode_greedy(text)
    return [t for ch in text for t in vocab.encode_greedy(ch)]


def walk(c, ids):
    """Walk ids; return (index of the first token `allows` refuses or None, final state).

    At every step the mask bit, `allows` and `advance` must agree on the token taken."""
    s = c.initial()
    for k, t in enumerate(ids):
        ok = c.allows(s, t)  # before the mask: once a state's mask is cached, allows reads it
        m = c.mask(s)
        assert bool(m[t]) == ok, (k, c.vocab[t])
        if not ok:
            with pytest.raises(tether.TokenRejected):
                c.advance(s, t)
            return k, s
        s = c.advance(s, t)
    return None, s


def rejected_prefix(c, text, split="greedy"):
    """The text up to and including the first refused token, or None if all are allowed."""
    ids = tokens_of(c.vocab, text, split)
    k, _ = walk(c, ids)
    return None if k is None else c.vocab.decode(ids[: k + 1]).decode("utf-8", "replace")


# ----------------------------------------------------------------------------------------------
# JSON equality
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("a, b, equal", [
    ("1", "1.0", True), ("1", "1e0", True), ("100", "1e2", True), ("-0", "0", True),
    ("0.5", "5e-1", True), ("1", "true", False), ("0", "false", False), ("null", "false", False),
    ('"a"', '"\\u0061"', True), ('"a"', '"b"', False), ('"\\ud83d\\ude00"', '"😀"', True),
    ('{"a":1,"b":2}', '{"b":2,"a":1}', True), ('{"a":1}', '{"a":1,"b":2}', False),
    ("[1,2]", "[2,1]", False), ("[1,[2]]", "[1.0,[2.00]]", True), ("[]", "{}", False),
    ('[1]', '1', False), ('"1"', "1", False), ("1e400", "10e399", True),
])
def test_canonical_json_is_json_equality(a, b, equal):
    assert (item_key(a) == item_key(b)) is equal
    assert (item_key(a.encode()) == item_key(b.encode())) is equal
    if equal:
        assert hash(item_key(a)) == hash(item_key(b))


def test_canonical_json_numbers_are_decimals():
    assert item_key("12345678901234567890123456789.5") == Decimal("12345678901234567890123456789.5")
    assert item_key("12345678901234567890123456789.5") != item_key("12345678901234567890123456789.6")


# ----------------------------------------------------------------------------------------------
# Hand-written texts
# ----------------------------------------------------------------------------------------------

ANY_ARRAY = {"type": "array"}
NUMBERS = {"type": "array", "items": {"type": "number"}}
INTEGERS = {"type": "array", "items": {"type": "integer"}}
STRINGS = {"type": "array", "items": {"type": "string"}}
OBJECTS = {"type": "array", "items": {"type": "object", "additionalProperties": {"type": "integer"}}}
NESTED = {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}}

DUPLICATES = [  # (schema, text, the prefix whose last token is the first one refused)
    (INTEGERS, "[1,2,1]", "[1,2,1]"),
    (NUMBERS, "[1,1.0]", "[1,1.0]"),
    (NUMBERS, "[2.5,25e-1]", "[2.5,25e-1]"),
    (NUMBERS, "[0,-0]", "[0,-0]"),  # -0 is 0
    (INTEGERS, "[0,0]", "[0,0"),  # an integer cannot go on after 0: refused as it is written
    (STRINGS, '["a","\\u0061"]', '["a","\\u0061"'),
    (STRINGS, '["ab","ab"]', '["ab","ab"'),
    (OBJECTS, '[{"a":1,"b":2},{"b":2,"a":1}]', '[{"a":1,"b":2},{"b":2,"a":1}'),
    (NESTED, "[[1],[1]]", "[[1],[1]"),
    (ANY_ARRAY, '[1,true,"x",null,{"k":[1]},{"k":[1.0]}]', '[1,true,"x",null,{"k":[1]},{"k":[1.0]}'),
    (ANY_ARRAY, "[[],[]]", "[[],[]"),
]


@pytest.mark.parametrize("vocab_name", VOCABS)
@pytest.mark.parametrize("schema, text, prefix", DUPLICATES)
def test_duplicates_are_refused_at_the_token_that_makes_them(vocab_name, schema, text, prefix):
    c = wrap(_vocab(vocab_name), schema)
    assert not jsonschema.Draft202012Validator(with_unique(schema, [()])).is_valid(json.loads(text))
    got = rejected_prefix(c, text)
    assert got is not None and got.startswith(prefix[:-1]) and len(prefix) - 1 <= len(got) <= len(prefix) + 8, got
    # the same, one character per token: the duplicate split across tokens
    assert rejected_prefix(c, text, split="chars") == prefix


NON_DUPLICATES = [
    (ANY_ARRAY, "[1,true]"), (ANY_ARRAY, "[0,false]"), (ANY_ARRAY, "[null,false,0,\"\",[],{}]"),
    (OBJECTS, '[{"a":1},{"a":2}]'), (OBJECTS, '[{"a":1},{"a":1,"b":1}]'), (NUMBERS, "[1,10,100,1.5,15]"),
    (STRINGS, '["a","ab","abc","b","A","a b","a,b","a]b","[a]","\\"a\\""]'), (NESTED, "[[1],[1,1],[],[2]]"),
    (INTEGERS, "[0,10,1,100]"),
]


@pytest.mark.parametrize("vocab_name", VOCABS)
@pytest.mark.parametrize("schema, text", NON_DUPLICATES)
def test_texts_without_duplicates_are_accepted(vocab_name, schema, text):
    c = wrap(_vocab(vocab_name), schema)
    assert jsonschema.Draft202012Validator(with_unique(schema, [()])).is_valid(json.loads(text))
    for split in ("greedy", "chars"):
        k, s = walk(c, tokens_of(c.vocab, text, split))
        assert k is None
        assert c.is_accepting(s) and c.allows(s, c.vocab.eos_ids[0])
        assert c.advance(s, c.vocab.eos_ids[0]) == s
        assert c.parse(text) == json.loads(text)


SMALL_INTS = {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 10}}
FLAGGED = {"type": "array", "items": {"type": "object", "properties": {"ok": {"type": "boolean"}, "n": {"type": "integer"}},
                                      "required": ["ok", "n"]}}
TAGS = {"type": "array", "items": {"type": "object", "properties": {"tag": {"type": "boolean"}}, "required": ["tag"]}}


@pytest.mark.parametrize("schema, prefix, refused, allowed, rest", [
    (STRINGS, '["a","a', '"', "b", '"]'),  # the closing quote is refused, "ab" is fine
    (INTEGERS, "[0,", "0", "1", "]"),  # nothing can follow 0 in an integer: the 0 itself is refused
    (SMALL_INTS, "[5,10,1", "0", "]", ""),  # 10 is the maximum: "1" may stay 1, not become 10
    (FLAGGED, '[{"ok":true,"n":1},{"ok":true,"n":1', "}", "2", "}]"),
    (TAGS, '[{"tag":true},{"tag":', "t", "f", "alse}]"),  # `t` can only spell the same object
])
def test_no_dead_end_after_a_refused_duplicate(schema, prefix, refused, allowed, rest):
    """Where a duplicate is refused the model can still go on: where the value in progress
    can only end as an earlier item, the token that commits to it is refused."""
    v = _vocab("llama-bpe")
    c = wrap(v, schema, additional_properties="none")  # objects end after their properties
    s = c.advance_many(c.initial(), tokens_of(v, prefix, "chars"))
    assert not c.allows(s, v.encode_greedy(refused)[0])
    k, end = walk(c, tokens_of(v, prefix + allowed + rest, "chars"))
    assert k is None and c.is_accepting(end)


def test_dates_refused_where_the_format_forces_the_duplicate():
    v = _vocab("llama-bpe")
    schema = {"type": "array", "items": {"type": "string", "format": "date"}}
    c = wrap(v, schema)
    prefix = '["2024-01-01","2024-01-0'
    s = c.advance_many(c.initial(), tokens_of(v, prefix, "chars"))
    one, two = v.encode_greedy("1")[0], v.encode_greedy("2")[0]
    assert not c.allows(s, one) and c.allows(s, two)


def test_whitespace_limit_never_forces_a_duplicate():
    """Flexible whitespace is capped (MAX_WHITESPACE) by the inner constraint: past the cap an
    empty array can only close, so the blank that would leave only `[]` again is refused."""
    v = _vocab("gpt-2")
    c = wrap(v, NESTED, whitespace="flexible")
    s = c.advance_many(c.initial(), tokens_of(v, "[[],[", "chars"))
    blank = v.encode_greedy(" ")[0]
    for _ in range(60):
        assert c.mask(s).any()
        if not c.allows(s, blank):
            break
        s = c.advance(s, blank)
    else:
        raise AssertionError("no blank was refused")
    s = c.advance_many(s, tokens_of(v, "1]]", "chars"))
    assert c.is_accepting(s)


def test_a_token_holding_a_whole_duplicate():
    """Outside any unique array, a token that opens one and repeats an item inside is refused
    (a vocabulary of single bytes plus a few such tokens)."""
    extra = [b"[1,1]", b"[1,1", b"[1,2", b"[[1],[1]]", b'["a","a"]', b"[1,", b"1,1", b"[]"]
    v = tether.Vocabulary.from_tokens([bytes([b]) for b in range(256)] + extra + [None], eos_ids=[256 + len(extra)])
    ids = {data: 256 + i for i, data in enumerate(extra)}
    for schema, bad, good in [
        (INTEGERS, [b"[1,1]"], [b"[1,1", b"[1,2", b"[1,", b"[]"]),  # [1,1 may go on to [1,10
        (NESTED, [b"[[1],[1]]"], [b"[]"]),
        (ANY_ARRAY, [b"[1,1]", b"[[1],[1]]", b'["a","a"]'], [b"[1,1", b"[1,2", b"[]"]),
    ]:
        c = wrap(v, schema)
        s = c.initial()
        m = c.mask(s)
        for data in bad:
            assert not m[ids[data]] and not c.allows(s, ids[data]), data
        for data in good:
            assert m[ids[data]] and c.allows(s, ids[data]), data
        if schema is not NESTED:
            s = c.advance(s, ids[b"[1,"])
            assert not c.allows(s, ids[b"1,1"]) and not c.mask(s)[ids[b"1,1"]]
            assert rejected_prefix(c, "[1,2,1]") == "[1,2,1]"


# ----------------------------------------------------------------------------------------------
# Paths
# ----------------------------------------------------------------------------------------------

TAGGED = {
    "type": "object",
    "properties": {"tags": {"type": "array", "items": {"type": "string"}},
                   "other": {"type": "array", "items": {"type": "string"}}},
    "required": ["tags", "other"],
}


@pytest.mark.parametrize("vocab_name", VOCABS)
def test_only_the_arrays_at_the_paths_are_unique(vocab_name):
    c = wrap(_vocab(vocab_name), TAGGED, {("tags",)})
    assert rejected_prefix(c, '{"tags":["x","y"],"other":["z","z"]}') is None
    assert rejected_prefix(c, '{"tags":["x","x"],"other":[]}', "chars") == '{"tags":["x","x"'
    c = wrap(_vocab(vocab_name), TAGGED, {("other",)})
    assert rejected_prefix(c, '{"tags":["x","x"],"other":["z","y"]}') is None
    assert rejected_prefix(c, '{"tags":[],"other":["z","z"]}', "chars") == '{"tags":[],"other":["z","z"'
    # a path naming no array, or nothing in the text, constrains nothing
    c = wrap(_vocab(vocab_name), TAGGED, {("nope",), ("tags", None), ()})
    assert rejected_prefix(c, '{"tags":["x","x"],"other":["z","z"]}') is None


ITEMS_WITH_IDS = {
    "type": "array",
    "items": {"type": "object", "properties": {"ids": {"type": "array", "items": {"type": "integer"}},
                                               "name": {"type": "string"}}, "required": ["ids", "name"]},
}


@pytest.mark.parametrize("vocab_name", VOCABS)
def test_paths_through_array_elements(vocab_name):
    v = _vocab(vocab_name)
    c = wrap(v, ITEMS_WITH_IDS, {(None, "ids")})
    # each element's ids are unique; the same ids in two elements, or the same element twice, are fine
    assert rejected_prefix(c, '[{"ids":[1,2],"name":"a"},{"ids":[1,2],"name":"a"}]') is None
    assert rejected_prefix(c, '[{"ids":[1,2],"name":"a"},{"ids":[2,3,2],"name":"b"}]', "chars") == \
        '[{"ids":[1,2],"name":"a"},{"ids":[2,3,2]'
    c = wrap(v, ITEMS_WITH_IDS, {(None, "ids"), ()})
    assert rejected_prefix(c, '[{"ids":[1,2],"name":"a"},{"ids":[1,2],"name":"a"}]', "chars") == \
        '[{"ids":[1,2],"name":"a"},{"ids":[1,2],"name":"a"}'
    assert rejected_prefix(c, '[{"ids":[1,2],"name":"a"},{"ids":[1,2],"name":"b"}]') is None
    c = wrap(v, NESTED, {(None,)})
    assert rejected_prefix(c, "[[1,2],[1,2],[3,3]]", "chars") == "[[1,2],[1,2],[3,3]"
    c = wrap(v, NESTED, {(), (None,)})
    assert rejected_prefix(c, "[[1,2],[2,1],[1,2]]", "chars") == "[[1,2],[2,1],[1,2]"


def test_an_index_in_a_path_names_that_element_only():
    v = _vocab("gpt-2")
    c = wrap(v, NESTED, {(1,)})
    assert rejected_prefix(c, "[[1,1],[2,3],[4,4]]") is None
    assert rejected_prefix(c, "[[1,1],[2,2],[4,4]]", "chars") == "[[1,1],[2,2]"


def test_paths_are_checked():
    v = _vocab("gpt-2")
    inner = tether.json_schema(STRINGS).compile(v)
    with pytest.raises(TypeError):
        UniqueItems(inner, v, {"tags"})
    with pytest.raises(TypeError):
        UniqueItems(inner, v, {("tags", 1.5)})


# ----------------------------------------------------------------------------------------------
# Whitespace
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vocab_name", VOCABS)
def test_flexible_whitespace(vocab_name):
    v = _vocab(vocab_name)
    c = wrap(v, {"type": "array", "items": {"type": ["integer", "string"]}}, whitespace="flexible")
    assert rejected_prefix(c, '[ 1 , 2 ,\n  3 ]') is None
    assert rejected_prefix(c, '[ "a" , "b", 1 ]') is None
    assert rejected_prefix(c, '[ "a" , "a" ]', "chars") == '[ "a" , "a"'
    assert rejected_prefix(c, '[\n  1,\n  1\n]', "chars") == "[\n  1,\n  1\n"  # the newline ends the 1
    assert rejected_prefix(c, '[ 1 , 1]', "chars") == "[ 1 , 1]"
    c = wrap(v, {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "array", "items": {"type": "integer"}}},
                                            "required": ["a"]}}, whitespace="flexible")
    assert rejected_prefix(c, '[ {"a": [1, 2]}, {"a": [1,  2 ]} ]', "chars") == '[ {"a": [1, 2]}, {"a": [1,  2 ]}'
    assert rejected_prefix(c, '[ {"a": [1, 2]}, {"a": [1,  2 ] , "b": 1} ]') is None
    c = wrap(v, OBJECTS, whitespace="flexible")
    assert rejected_prefix(c, '[{"a": 1, "b": 2}, { "b" : 2 , "a" : 1 }]', "chars") == \
        '[{"a": 1, "b": 2}, { "b" : 2 , "a" : 1 }'
    assert rejected_prefix(c, '[{"a": 1, "b": 2}, { "b" : 2 , "a" : 11 }]') is None


# ----------------------------------------------------------------------------------------------
# Random walks: sound, mask == allows, no dead ends
# ----------------------------------------------------------------------------------------------

# Small item domains (larger than maxItems, so never exhausted): random items repeat often.
LETTERS = {"type": "string", "pattern": "^[a-d]{1,2}$"}
WALK_SCHEMAS = [
    ({"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 9}, "maxItems": 6}, ROOT, "compact"),
    ({"type": "array", "items": LETTERS, "maxItems": 6}, ROOT, "compact"),
    ({"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 9}, "maxItems": 5}, ROOT, "flexible"),
    ({"type": "array", "items": {"type": "object", "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 3},
                                                                  "b": LETTERS},
                                 "required": ["a", "b"]}, "maxItems": 5}, ROOT, "compact"),
    ({"type": "object", "properties": {"tags": {"type": "array", "items": LETTERS, "maxItems": 5},
                                       "n": {"type": "integer", "minimum": 0, "maximum": 9}},
      "required": ["tags", "n"]}, {("tags",)}, "flexible"),
    ({"type": "array", "items": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 3},
                                 "maxItems": 3}, "maxItems": 2}, {(), (None,)}, "compact"),
    ({"type": "array", "items": {"type": "array", "items": {"type": "boolean"}, "maxItems": 2}, "maxItems": 3},
     {(None,)}, "compact"),
    ({"type": "array", "items": {"type": "string", "format": "date", "pattern": "^2024-0[12]-0[1-3]$"}, "maxItems": 3},
     ROOT, "compact"),
    ({"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 12}, "maxItems": 4}, ROOT, "compact"),
]


def _draw(c, mask, rng):
    """A random allowed token: short ones more likely, those closing an array less (so that arrays
    grow and items repeat); EOS only when nothing else is allowed."""
    v = c.vocab
    spelled = [t for t in np.flatnonzero(mask).tolist() if v[t] is not None]
    if not spelled:
        return v.eos_ids[0]
    weights = np.array([(4.0 if len(v[t]) <= 2 else 1.0) * (0.1 if b"]" in v[t] else 1.0) for t in spelled])
    return int(rng.choice(spelled, p=weights / weights.sum()))


@pytest.mark.parametrize("vocab_name", VOCABS)
@pytest.mark.parametrize("case", range(len(WALK_SCHEMAS)))
def test_random_walks(vocab_name, case):
    schema, paths, whitespace = WALK_SCHEMAS[case]
    v = _vocab(vocab_name)
    c = wrap(v, schema, paths, whitespace, additional_properties="none")
    validator = jsonschema.Draft202012Validator(with_unique(schema, paths), format_checker=jsonschema.FormatChecker())
    plain = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    rng = np.random.default_rng(1000 + case)
    structural = np.array([t for t, data in enumerate(v) if data and (b"," in data or b"]" in data)])
    accepted = refused = walks = 0
    while walks < 16 and not (walks >= 4 and accepted >= 3 and refused > 0):
        walks += 1
        s, out = c.initial(), []
        for _step in range(100):
            # allows agrees with the mask on every token with ',' or ']' that the inner
            # constraint allows, and on a sample of the others (asked first: once a state's
            # mask is cached, allows reads it)
            inner_mask = c.inner.mask(s[0])
            check = structural[inner_mask[structural]]
            check = np.concatenate([check, rng.choice(v.size, 32, replace=False),
                                    rng.choice(np.flatnonzero(inner_mask), 32), np.array(v.eos_ids)])
            verdicts = [(t, c.allows(s, t)) for t in check.tolist()]
            m = c.mask(s)
            assert m.any(), f"dead end after {v.decode(out)!r}"
            for t, ok in verdicts:
                assert ok == bool(m[t]), (v.decode(out), v[t])
            refused += int(inner_mask.sum() - m.sum())
            if c.is_accepting(s) and (c.is_finished(s) or rng.random() < 0.2):
                break
            t = _draw(c, m, rng)
            s = c.advance(s, t)
            out.append(t)
        if c.is_accepting(s):
            accepted += 1
            value = json.loads(v.decode(out))
            assert plain.is_valid(value)
            assert validator.is_valid(value), v.decode(out)
    assert accepted >= 3
    assert refused > 0  # the walks did meet duplicates to refuse


def test_walk_over_a_context_free_inner():
    """Arbitrary JSON (the inner constraint on the context-free engine)."""
    v = _vocab("gpt-2")
    c = wrap(v, {"type": "array", "maxItems": 6}, ROOT)
    validator = jsonschema.Draft202012Validator({"type": "array", "uniqueItems": True})
    rng = np.random.default_rng(7)
    favourite = [v.encode_greedy(x)[0] for x in ['"', ",", "]", "}", "[", "{", "1", "2", "true", "null", "a", ":"]]
    accepted = walks = 0
    while walks < 10 and accepted < 2:
        walks += 1
        s, out = c.initial(), []
        for _step in range(80):
            check = rng.choice(np.flatnonzero(c.inner.mask(s[0])), 40).tolist() + rng.choice(v.size, 40).tolist()
            verdicts = [(t, c.allows(s, t)) for t in check]
            m = c.mask(s)
            assert m.any()
            for t, ok in verdicts:
                assert ok == bool(m[t])
            if c.is_accepting(s):
                break
            small = [t for t in favourite if m[t]]  # short JSON values, that repeat
            t = int(rng.choice(small)) if small and rng.random() < 0.8 else _draw(c, m, rng)
            s = c.advance(s, t)
            out.append(t)
        if c.is_accepting(s):
            accepted += 1
            assert validator.is_valid(json.loads(v.decode(out))), v.decode(out)
    assert accepted >= 1


# ----------------------------------------------------------------------------------------------
# The contract
# ----------------------------------------------------------------------------------------------


def test_states_are_hashable_forkable_and_masks_cached():
    v = _vocab("gpt-2")
    c = wrap(v, STRINGS)
    s = c.advance_many(c.initial(), v.encode_greedy('["a","b",'))
    hash(s)
    a = c.advance_many(s, v.encode_greedy('"a'))
    b = c.advance_many(s, v.encode_greedy('"c'))
    assert a != b and c.allows(b, v.encode_greedy('"')[0]) and not c.allows(a, v.encode_greedy('"')[0])
    assert c.advance_many(s, v.encode_greedy('"a')) == a  # same tokens, same state
    row1, row2 = allocate_bitmask(1, v.size)[0], allocate_bitmask(1, v.size)[0]
    c.fill_bitmask(a, row1)
    n = c.mask_computations
    c.fill_bitmask(a, row2)
    assert c.mask_computations == n and (row1 == row2).all()
    assert not unpack_bitmask(row1, v.size)[v.encode_greedy('"')[0]]


def test_torch_rows_and_pickling():
    torch = pytest.importorskip("torch")
    v = _vocab("gpt-2")
    c = wrap(v, INTEGERS)
    s = c.advance_many(c.initial(), v.encode_greedy("[1,2,1"))
    row = torch.zeros(allocate_bitmask(1, v.size).shape[1], dtype=torch.int32)
    c.fill_bitmask(s, row)
    expect = allocate_bitmask(1, v.size)[0]
    c.fill_bitmask(s, expect)
    assert (row.numpy() == expect).all()
    c2 = pickle.loads(pickle.dumps(c))
    assert c2.paths == c.paths
    s2 = c2.advance_many(c2.initial(), v.encode_greedy("[1,2,1"))
    assert (c2.mask(s2) == c.mask(s)).all()


def test_invalid_states_and_matcher():
    v = _vocab("gpt-2")
    c = wrap(v, INTEGERS)
    with pytest.raises(tether.InvalidState):
        c.allows("nope", 0)
    m = c.matcher()
    for t in v.encode_greedy("[1,2,2"):
        m.consume(t)  # "2" may still become 20
    with pytest.raises(tether.TokenRejected):
        m.consume(v.encode_greedy("]")[0])
    m.consume(v.encode_greedy("0")[0])
    m.consume(v.encode_greedy("]")[0])
    assert m.is_accepting()


def test_vocabulary_mismatch():
    inner = tether.json_schema(STRINGS).compile(_vocab("gpt-2"))
    with pytest.raises(tether.VocabularyMismatch):
        UniqueItems(inner, _vocab("llama-bpe"), ROOT)
