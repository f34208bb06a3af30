"""tether.json_schema: keywords, layout options, references, errors, Python types.

Each language check is a pair of texts that differ in one respect; `jsonschema` confirms the
expected verdicts where it can judge them, so a wrong expectation here fails too.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import itertools
import json
import random
import re
import typing
import uuid
import warnings

import jsonschema
import msgspec
import pytest

import tether
from tether.grammar.json_schema import MAX_WHITESPACE, canonical_json

from conftest import real_vocab


def check(schema, accepted=(), rejected=(), **options):
    g = tether.json_schema(schema, **options)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    for text in accepted:
        assert g.matches(text), f"{text!r} should be accepted by {schema}"
        assert validator.is_valid(json.loads(text)), f"test bug: {text!r} is not valid for {schema}"
    for text in rejected:
        assert not g.matches(text), f"{text!r} should be rejected by {schema}"
    return g


# ---------------------------------------------------------------- scalars

def test_types_and_type_lists():
    check({"type": ["integer", "null"]}, ['0', '-12', 'null'], ['1.5', '"1"', 'true', '-0', '01'])
    check({"type": "boolean"}, ["true", "false"], ["1", "null"])
    check({"type": "number"}, ["1", "-0.5", "1e5", "2.5E-3"], ["1.", ".5", "+1", "NaN"])


def test_integer_bounds_are_exact_including_float_and_exclusive_bounds():
    check({"type": "integer", "minimum": -3, "exclusiveMaximum": 10}, ["-3", "0", "9"], ["-4", "10", "11"])
    check({"type": "integer", "minimum": 2.5, "maximum": 1e3}, ["3", "1000"], ["2", "1001"])


def test_number_bounds_compare_values_not_digits():
    check({"type": "number", "exclusiveMinimum": 2.5, "maximum": 100}, ["2.5000001", "3", "100", "99.99"],
          ["2.5", "2.50", "100.01", "1e2"])


def test_multiple_of():
    check({"type": "integer", "multipleOf": 25}, ["0", "75", "-150", "1000"], ["10", "130"])
    check({"type": "number", "multipleOf": 0.01}, ["1.25", "3", "0.1"], ["1.255"])
    check({"type": "integer", "multipleOf": 7, "minimum": 0, "maximum": 30}, ["0", "7", "28"], ["14.0", "30", "3"])
    with pytest.raises(tether.UnsupportedSchema) as e:
        tether.json_schema({"type": "number", "multipleOf": 0.3})
    assert e.value.keyword == "multipleOf"


@pytest.mark.parametrize("m", [3, 7, 11, 12, 303, 1000, 2 ** 14, 9973])
def test_multiple_of_any_integer_agrees_with_jsonschema(m):
    """Divisibility by m is m automaton states (the remainder so far), whatever m's factors."""
    rng = random.Random(m)
    values = [*range(-150, 450), *(rng.randrange(-10 ** 15, 10 ** 15) for _ in range(60)),
              *(m * rng.randrange(-10 ** 9, 10 ** 9) for _ in range(60))]
    for schema in ({"type": "integer", "multipleOf": m}, {"type": "integer", "multipleOf": m, "minimum": 100},
                   {"type": "integer", "not": {"multipleOf": m}}, {"multipleOf": m, "maximum": -5}):
        g = tether.json_schema(schema)
        validator = jsonschema.Draft202012Validator(schema)
        for v in values:
            assert g.matches(json.dumps(v)) == validator.is_valid(v), (schema, v)


def test_string_lengths_count_code_points_and_escapes_decode():
    check({"type": "string", "minLength": 2, "maxLength": 3},
          ['"ab"', '"é😀"', '"\\u00e9\\ud83d\\ude00"', '"a\\n"', '"abc"'], ['"a"', '"abcd"', '"\\ud83d"', '"a\nb"'])


def test_pattern_has_search_semantics_and_honours_anchors():
    check({"type": "string", "pattern": "b+"}, ['"abbc"', '"b"'], ['"ac"'])
    check({"type": "string", "pattern": "^ab"}, ['"abz"'], ['"zab"'])
    check({"type": "string", "pattern": "^a$|^b$"}, ['"a"', '"b"', '"a\\n"'], ['"ab"', '"ba"'])
    check({"type": "string", "pattern": "^[a-z]+$", "maxLength": 3}, ['"abc"'], ['"abcd"', '"aB"'])
    check({"type": "string", "pattern": "^\\d{3}$", "x-unknown": 1}, ['"123"'], ['"12"'])


@pytest.mark.parametrize("pattern", [r"^(?!ab)[a-c]*$", r"(?=.*c)a", r"^(?=a)", r"b(?!a)", r"^(?!.*bb).*$",
                                     r"^(?=[ab]{2}$)", r"(?!a)|^a$", r"^a(?=b)|c(?!$)"])
def test_pattern_lookaheads_see_the_rest_of_the_string_as_re_search_does(pattern):
    g = tether.json_schema({"type": "string", "pattern": pattern})
    for n in range(5):
        for chars in itertools.product("abc", repeat=n):
            text = "".join(chars)
            assert g.matches(json.dumps(text)) == (re.search(pattern, text) is not None), (pattern, text)


def test_a_pattern_tether_cannot_enforce_names_keyword_and_pointer():
    with pytest.raises(tether.UnsupportedSchema) as e:
        tether.json_schema({"properties": {"a": {"type": "string", "pattern": "(a)\\1"}}})
    assert e.value.keyword == "pattern" and e.value.location.pointer == "/properties/a/pattern"


def test_formats():
    check({"type": "string", "format": "date"}, ['"2024-02-29"'], ['"2023-02-29"', '"2024-13-01"'])
    check({"type": "string", "format": "ipv4"}, ['"192.168.0.1"'], ['"256.1.1.1"', '"01.1.1.1"'])
    check({"type": "string", "format": "uuid"}, ['"123e4567-e89b-12d3-a456-426614174000"'], ['"123e4567"'])
    check({"type": "string", "format": "no-such-format"}, ['"anything"'])  # not a JSON Schema format: annotation


# ---------------------------------------------------------------- enum, const, combinators

def test_enum_and_const_compare_json_values():
    check({"enum": [1, "a", None, [1, 2], {"k": True}]}, ['1', '"a"', 'null', '[1,2]', '{"k":true}'],
          ['2', '"b"', '[2,1]', 'true'])
    check({"const": 2, "type": "number"}, ["2"], ["3"])
    check({"enum": ["aa", "abc", 3], "type": "string", "maxLength": 2}, ['"aa"'], ['"abc"', '3'])


def test_all_of_merges_branches():
    check({"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
                     {"properties": {"a": {"minimum": 5}, "b": {"type": "string"}}}]},
          ['{"a":5}', '{"a":6,"b":"x"}'], ['{"a":4}', '{"b":"x"}'])


def test_all_of_joins_additional_properties_with_the_other_branchs_patterns():
    branches = [{"properties": {"a": {"type": "integer"}}, "additionalProperties": {"type": "string"}},
                {"patternProperties": {"^x": {"minLength": 2}}}]
    agree({"type": "object", "allOf": branches},
          ['{"a":1}', '{"xy":"ab"}', '{"xy":"a"}', '{"xy":1}', '{"b":"s"}', '{"b":1}', '{"a":"s"}',
           '{"a":1,"xz":"abc"}', '{"a":1,"xz":"c"}'], additional_properties="allow", property_order="any")
    reaching = [branches[0], {"patternProperties": {"^a": {"minimum": 0}}}]  # "^a" reaches into "a"
    with pytest.raises(tether.UnsupportedSchema, match="overlap its properties"):
        tether.json_schema({"type": "object", "allOf": reaching}, additional_properties="allow")


def test_one_of_is_exactly_one():
    check({"oneOf": [{"type": "integer", "maximum": 10}, {"type": "integer", "minimum": 5}]},
          ["1", "11"], ["5", "10", "7"])
    check({"oneOf": [{"type": "object", "properties": {"kind": {"const": "a"}}, "required": ["kind"]},
                     {"type": "object", "properties": {"kind": {"const": "b"}}, "required": ["kind"]}]},
          ['{"kind":"a"}', '{"kind":"b"}'], ['{"kind":"c"}'], additional_properties="allow")


def agree(schema, texts, **options):
    """tether and `jsonschema` give every text the same verdict."""
    g = tether.json_schema(schema, **options)
    validator = jsonschema.Draft202012Validator(schema)
    for text in texts:
        assert g.matches(text) == validator.is_valid(json.loads(text)), f"{text!r} under {schema}"
    return g


def test_one_of_with_a_recursive_branch_apart_from_the_others():
    # The third branch refers back to the schema in progress: no negation of it exists, but it is
    # an object and the others are not, so "exactly one" is "any one".
    schema = {"$defs": {"value": {"oneOf": [{"type": "string"}, {"type": "integer"}, {"$ref": "#"}]}},
              "type": "object", "additionalProperties": {"$ref": "#/$defs/value"}}
    g = agree(schema, ['{}', '{"a":"x"}', '{"a":{"b":1}}', '{"a":{"b":{"c":"d"}},"e":2}', '{"a":[]}',
                       '{"a":1.5}', '{"a":{"b":null}}'], additional_properties="allow")
    assert g.engine == "cfg"
    overlapping = {"$defs": {"value": {"oneOf": [{"type": "object", "minProperties": 1}, {"$ref": "#"}]}},
                   "type": "object", "additionalProperties": {"$ref": "#/$defs/value"}}
    with pytest.raises(tether.UnsupportedSchema, match="branch 1 is recursive") as e:
        tether.json_schema(overlapping, additional_properties="allow")
    assert e.value.keyword == "oneOf"


def test_one_of_branches_apart_through_their_applicators():
    # Apart only once the allOf is read: the second branch requires "c", which the first forbids.
    agree({"type": "object", "oneOf": [
        {"properties": {"a": {}, "b": {}}, "allOf": [{"required": ["a"]}], "additionalProperties": False},
        {"properties": {"a": {}, "c": {}}, "allOf": [{"required": ["c"]}], "additionalProperties": False}]},
        ['{"a":1}', '{"a":1,"b":2}', '{"c":1}', '{"a":1,"c":2}', '{}', '{"b":1}', '{"a":1,"b":2,"c":3}'])
    # Apart branch by branch of an anyOf.
    agree({"oneOf": [{"type": "array"}, {"anyOf": [{"type": "object", "additionalProperties": {"type": "integer"}},
                                                   {"type": "string"}]}]},
          ['[]', '[1]', '"s"', '{"a":1}', '{"a":"x"}', '1', 'null'], additional_properties="allow")


@pytest.mark.parametrize("branches", [[{"$ref": "#"}, {"type": "string"}], [{"type": "string"}, {"$ref": "#"}]])
def test_all_of_reads_every_branch_beside_a_recursive_one(branches):
    # The branch after the recursive one was dropped: {"a": {}} was accepted, yet "a" must be a string.
    with pytest.raises(tether.UnsupportedSchema, match="recursive") as e:
        tether.json_schema({"properties": {"a": {"allOf": branches}}}, additional_properties="allow")
    assert e.value.keyword == "allOf"


def _small_objects(keys, values) -> list[str]:
    """Every object of up to three members with these keys and values, in every order."""
    texts = ["{}"]
    for n in (1, 2, 3):
        for names in itertools.permutations(keys, n):
            for vals in itertools.product(values, repeat=n):
                texts.append(json.dumps(dict(zip(names, vals)), separators=(",", ":")))
    return texts


@pytest.mark.parametrize("schema", [
    {"type": "object", "not": {"propertyNames": {"pattern": "^a"}}},
    {"type": "object", "properties": {"a": {"type": "integer"}}, "not": {"propertyNames": {"maxLength": 1}}},
    {"type": "object", "not": {"patternProperties": {"^a": {"type": "integer"}, "b$": {"type": "string"}}}},
    {"type": "object", "properties": {"b": {"type": "string"}, "ab": {}}, "required": ["b"],
     "not": {"properties": {"ab": {"type": "integer"}}, "additionalProperties": {"type": "integer"}}},
    {"type": "object", "patternProperties": {"^b": {"type": "integer"}},
     "not": {"patternProperties": {"^a": {}}, "additionalProperties": False}},
    # Two witnesses at once, within a count bound: one key holding both letters, or two keys.
    {"type": "object", "maxProperties": 2, "allOf": [{"not": {"propertyNames": {"not": {"pattern": "a"}}}},
                                                     {"not": {"propertyNames": {"not": {"pattern": "b"}}}}]},
    # A discriminator apart, the other branch overlapping: its negation needs a witness member.
    {"type": "object", "oneOf": [{"properties": {"a": {"type": "integer"}}, "additionalProperties": False},
                                 {"propertyNames": {"enum": ["a", "b"]}}]},
])
@pytest.mark.parametrize("order", ["any", "declared"])
def test_not_of_object_keywords_needs_some_member(schema, order):
    texts = _small_objects(["a", "b", "ab", "1", "ba"], [1, "x"])
    if order == "any":
        agree(schema, texts, property_order="any", additional_properties="allow")
        return
    # Declared order and no undescribed members unless needed: fewer texts, each still valid.
    g = tether.json_schema(schema, additional_properties="none")
    validator = jsonschema.Draft202012Validator(schema)
    accepted = [t for t in texts if g.matches(t)]
    assert accepted and all(validator.is_valid(json.loads(t)) for t in accepted)


def test_not_of_item_keywords_and_of_unknown_keywords():
    agree({"type": "array", "not": {"items": {"type": "integer"}}}, ['[]', '[1]', '[1,"a"]', '["a"]'])
    agree({"type": "array", "not": {"prefixItems": [{"type": "integer"}, {"type": "string"}]}},
          ['[]', '[1]', '["a"]', '[1,"a"]', '[1,2]', '[1,"a",3]', '["a",1]'])
    agree({"type": "array", "not": {"contains": {"type": "string"}}}, ['[]', '[1]', '[1,"a"]', '["a"]'])
    agree({"not": {"x-note": "no meaning", "type": "string"}}, ['"a"', '1', 'null'])


def test_not_of_multiple_of_excludes_the_values_whatever_their_spelling():
    agree({"type": "integer", "minimum": 0, "maximum": 20, "not": {"multipleOf": 3}},
          [str(i) for i in range(-1, 22)])
    agree({"type": "integer", "not": {"multipleOf": 4}}, ["8", "12", "13", "-4", "-6", "100", "102", "0"])
    g = agree({"type": "number", "not": {"multipleOf": 2}}, ["4", "4.5", "3", "-2", "0", "0.5", "1e1"])
    assert not g.matches("4.0") and not g.matches("4e0")  # 4, in another spelling
    agree({"not": {"type": "object", "dependencies": {"a": ["b"]}}}, ['{}', '1', '{"a":1}'])  # not 2020-12's
    agree({"not": {"enum": [{"a": 1, "b": [2]}, [1, "x"], 3]}},
          ['{"a":1,"b":[2]}', '{"a":1,"b":[2.0]}', '{"a":2,"b":[2]}', '{"a":1}', '{}', '{"a":1,"b":[2],"c":0}',
           '{"a":1,"b":[2,3]}', '[1,"x"]', '[1]', '[1,"x",2]', '["x",1]', '[]', '3', '4', '"s"'],
          additional_properties="allow", property_order="any")
    # not oneOf: none of the branches, or two at once
    agree({"not": {"oneOf": [{"type": "integer"}, {"minimum": 5}]}}, ["1", "7", "5.5", '"s"', "null", "-3", "4.5"])
    with pytest.raises(tether.UnsupportedSchema, match="not of 'uniqueItems'"):
        tether.json_schema({"type": "array", "not": {"uniqueItems": True}})


def test_not_and_if_then_else():
    check({"not": {"type": "string"}}, ["1", "null", "[]"], ['"x"'])
    check({"type": "string", "not": {"pattern": "^x"}}, ['"ax"'], ['"xa"'])
    check({"type": "integer", "not": {"enum": [1, 2]}}, ["0", "3"], ["1", "2"])
    check({"if": {"type": "integer"}, "then": {"minimum": 0}, "else": {"type": "string"}},
          ["3", '"s"'], ["-1", "null"])


def test_dependent_required():
    check({"type": "object", "properties": {"a": {}, "b": {}}, "dependentRequired": {"a": ["b"]}},
          ['{}', '{"b":1}', '{"a":1,"b":2}'], ['{"a":1}'])


# ---------------------------------------------------------------- objects

PERSON = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name"]}


def test_declared_order_and_required_properties():
    check(PERSON, ['{"name":"x"}', '{"name":"x","age":3}'], ['{"age":3,"name":"x"}', '{"age":3}', '{}'])


def test_any_order_accepts_each_property_at_most_once():
    check(PERSON, ['{"age":3,"name":"x"}', '{"name":"x","age":3}'],
          ['{"name":"x","name":"y"}', '{"age":3}', '{"name":"x","age":3,"age":4}'], property_order="any")


def test_additional_properties_are_generated_only_when_described_or_allowed():
    check(PERSON, ['{"name":"x"}'], ['{"name":"x","z":1}'])
    check(PERSON, ['{"name":"x","z":[1,{"q":null}]}'], ['{"name":"x","age":"old"}'], additional_properties="allow")
    check({**PERSON, "additionalProperties": {"type": "integer"}}, ['{"name":"x","z":1}'], ['{"name":"x","z":"1"}'])
    check({**PERSON, "additionalProperties": False}, ['{"name":"x"}'], ['{"name":"x","z":1}'],
          additional_properties="allow")


def test_pattern_properties_and_property_names():
    check({"type": "object", "patternProperties": {"^x-": {"type": "integer"}}, "additionalProperties": False},
          ['{"x-a":1}', '{}'], ['{"x-a":"1"}', '{"y":1}'])
    check({"type": "object", "propertyNames": {"maxLength": 2}}, ['{"ab":1}'], ['{"abc":1}'],
          additional_properties="allow")


def test_min_and_max_properties():
    check({"type": "object", "properties": {"a": {}, "b": {}, "c": {}}, "minProperties": 1, "maxProperties": 2},
          ['{"a":1}', '{"b":1,"c":2}'], ['{}', '{"a":1,"b":2,"c":3}'])


# ---------------------------------------------------------------- arrays

def test_items_prefix_items_and_counts():
    check({"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "integer"}, "maxItems": 3},
          ['[]', '["a"]', '["a",1,2]'], ['[1]', '["a","b"]', '["a",1,2,3]'])
    check({"type": "array", "items": {"type": "boolean"}, "minItems": 2}, ['[true,false]'], ['[true]'])


def test_contains_with_min_contains():
    check({"type": "array", "items": {"type": "integer"}, "contains": {"minimum": 5}, "minContains": 2},
          ['[5,6]', '[1,5,2,9]'], ['[5]', '[1,2,3]'])
    # Items of any value are recursive: the matches are counted by rules, not by automata.
    g = agree({"type": "array", "contains": {"type": "object"}, "minContains": 2, "maxItems": 3},
              ['[]', '[{}]', '[{},{}]', '[{},1,{}]', '[{},{},{},{}]', '[1,{},[{}]]', '[{},{},1]', '[[],{},{}]'])
    assert g.engine == "cfg"


def _small_arrays(depth: int = 2):
    """Every array of up to three items drawn from a few scalars and smaller such arrays."""
    values: list = [1, 2, "a"]
    for _ in range(depth):
        values = [*values[:3], *([list(t) for n in range(4) for t in itertools.product(values[:5], repeat=n)])]
    return [json.dumps(v, separators=(",", ":")) for v in values if isinstance(v, list)]


@pytest.mark.parametrize("schema", [
    {"allOf": [{"contains": {"const": 1}}, {"contains": {"const": 2}}]},  # items 1 and 2, not "an item both"
    {"allOf": [{"contains": {"const": 1}, "minContains": 2}, {"contains": {"type": "string"}}], "maxItems": 3},
    {"allOf": [{"contains": {"const": 1}}, {"contains": {"type": "array"}}, {"minContains": 3}]},  # ignored: no contains
    {"allOf": [{"items": {"type": "integer"}, "contains": {"const": 1}}, {"contains": {"minimum": 2}}]},
    {"anyOf": [{"not": {"contains": {"const": 1}}}, {"not": {"contains": {"const": 2}}}]},
    {"not": {"allOf": [{"contains": {"const": 1}}, {"contains": {"const": 2}}]}},
])
def test_two_contains_count_their_matches_apart(schema):
    agree({"type": "array", **schema}, _small_arrays())


def test_unique_items_over_a_finite_domain():
    check({"type": "array", "items": {"enum": ["a", "b", "c"]}, "uniqueItems": True},
          ['[]', '["b","a"]', '["a","b","c"]'], ['["a","a"]', '["a","b","a"]'])


def test_unique_items_over_any_items_are_enforced_while_generating():
    g = tether.json_schema({"type": "object", "properties": {"ids": {"type": "array", "items": {"type": "number"},
                                                                      "uniqueItems": True}}})
    assert g.unique_paths == {("ids",)}
    assert g.matches('{"ids":[1,2.5]}') and not g.matches('{"ids":[1,1.0]}')
    vocab = real_vocab("gpt-2")
    c = g.compile(vocab)
    s = c.initial()
    tokens = vocab.encode_greedy('{"ids":[1,2,1]}')
    allowed = []
    for t in tokens:
        allowed.append(c.allows(s, t))
        if not allowed[-1]:
            break
        s = c.advance(s, t)
    assert not all(allowed), "the token completing the duplicate 1 must be refused"
    assert tether.json_schema(frozenset[int]).parse("[3,1]") == frozenset({1, 3})


# ---------------------------------------------------------------- references

def test_recursive_refs_run_on_the_context_free_engine():
    tree = {"$defs": {"node": {"type": "object", "properties": {
        "value": {"type": "integer"}, "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
        "required": ["value"]}}, "$ref": "#/$defs/node"}
    g = check(tree, ['{"value":1,"children":[{"value":2,"children":[{"value":3}]}]}'],
              ['{"value":1,"children":[{"children":[]}]}'])
    assert g.engine == "cfg"
    assert tether.json_schema({"type": "array", "items": {"type": "integer"}}).engine == "dfa"


def test_pointer_escapes_anchors_and_ids():
    check({"$defs": {"a/b": {"type": "integer"}, "c~d": {"type": "string"}},
           "properties": {"x": {"$ref": "#/$defs/a~1b"}, "y": {"$ref": "#/$defs/c~0d"}}},
          ['{"x":1,"y":"s"}'], ['{"x":"s"}'])
    check({"$id": "http://example.com/root.json", "properties": {"x": {"$ref": "item.json"}},
           "$defs": {"item": {"$id": "item.json", "$anchor": "it", "type": "boolean"}}}, ['{"x":true}'], ['{"x":1}'])


def test_remote_refs_are_never_fetched_but_can_be_preloaded():
    with pytest.raises(tether.UnsupportedSchema) as e:
        tether.json_schema({"$ref": "http://example.com/other.json"})
    assert e.value.keyword == "$ref" and "resources" in str(e.value)
    g = tether.json_schema({"$ref": "http://example.com/other.json"},
                           resources={"http://example.com/other.json": {"type": "null"}})
    assert g.matches("null") and not g.matches("1")


def test_draft4_and_draft7_spellings():
    check({"$schema": "http://json-schema.org/draft-04/schema#", "type": "number", "minimum": 1,
           "exclusiveMinimum": True}, [], ["1"])
    assert tether.json_schema({"$schema": "http://json-schema.org/draft-04/schema#", "type": "number",
                               "minimum": 1, "exclusiveMinimum": True}).matches("1.5")
    g = tether.json_schema({"$schema": "http://json-schema.org/draft-07/schema#", "type": "array",
                            "items": [{"type": "integer"}], "additionalItems": False})
    assert g.matches("[1]") and not g.matches("[1,2]")


# ---------------------------------------------------------------- layout

def test_flexible_whitespace_is_bounded():
    g = tether.json_schema(PERSON, whitespace="flexible")
    assert g.matches('{ "name" : "x" ,\n  "age": 3 }')
    assert g.matches("{" + " " * MAX_WHITESPACE + '"name":"x"}')
    assert not g.matches("{" + " " * (MAX_WHITESPACE + 1) + '"name":"x"}')
    assert not tether.json_schema(PERSON).matches('{ "name":"x"}')


def test_canonical_json():
    assert canonical_json({"a": [1.5e-3, 2.0, "é\n", None, True], "b": {}}) == '{"a":[0.0015,2,"é\\n",null,true],"b":{}}'
    assert canonical_json(1e22) == "10000000000000000000000"


# ---------------------------------------------------------------- errors and lenient mode

@pytest.mark.parametrize("schema, keyword", [
    ({"type": "object", "additionalProperties": {"type": "array", "uniqueItems": True}}, "uniqueItems"),
    ({"properties": {"a": {"$dynamicRef": "#x"}}}, "$dynamicRef"),
    ({"unevaluatedProperties": False}, "unevaluatedProperties"),
])
def test_unsupported_keywords_raise_unless_lenient(schema, keyword):
    with pytest.raises(tether.UnsupportedSchema) as e:
        tether.json_schema(schema)
    assert e.value.keyword == keyword
    with pytest.warns(UserWarning, match=re.escape(keyword)):
        g = tether.json_schema(schema, lenient=True)
    assert g.dropped and keyword in g.dropped[0]


@pytest.mark.parametrize("schema", [{"type": "strin"}, {"minLength": -1, "type": "string"},
                                    {"$ref": "#/$defs/missing"}, {"required": "a", "type": "object"}, "{not json"])
def test_invalid_schemas_raise_invalid_schema(schema):
    with pytest.raises(tether.InvalidSchema):
        tether.json_schema(schema)


def test_a_schema_nothing_satisfies_is_an_empty_language():
    with pytest.raises(tether.EmptyLanguage):
        tether.json_schema({"type": "integer", "minimum": 5, "maximum": 4})
    with pytest.raises(tether.EmptyLanguage):
        tether.json_schema(False)


@pytest.mark.parametrize("schema", [{"$ref": "#"},
                                    {"type": "object", "properties": {"a": {"$ref": "#"}}, "required": ["a"]}])
def test_a_schema_whose_instances_never_end_is_an_empty_language(schema):
    with pytest.raises(tether.EmptyLanguage, match="no finite instance"):
        tether.json_schema(schema, additional_properties="allow", property_order="any")


def test_options_are_checked():
    with pytest.raises(ValueError, match="property_order"):
        tether.json_schema({}, property_order="sorted")


# ---------------------------------------------------------------- Python types

class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Point(msgspec.Struct):
    x: int
    y: float = 0.0


@dataclasses.dataclass
class Order:
    id: uuid.UUID
    when: datetime.date
    price: decimal.Decimal
    color: Color
    tags: list[str]
    point: Point | None = None


class Movie(typing.TypedDict):
    title: str
    year: typing.Annotated[int, msgspec.Meta(ge=1888, le=2100)]
    rating: typing.Literal["G", "PG", "R"]


def test_types_decode_into_their_values():
    g = tether.json_schema(Order)
    text = ('{"id":"123e4567-e89b-12d3-a456-426614174000","when":"2024-02-29","price":"9.99",'
            '"color":"red","tags":["a"],"point":{"x":1,"y":2.5}}')
    assert g.matches(text)
    value = g.parse(text)
    assert isinstance(value, Order) and value.point == Point(1, 2.5) and value.color is Color.RED
    assert not g.matches(text.replace('"red"', '"green"'))

    movie = tether.json_schema(Movie, property_order="any")  # msgspec sorts a TypedDict's keys
    assert movie.matches('{"title":"M","year":1999,"rating":"PG"}')
    assert not movie.matches('{"title":"M","year":1800,"rating":"PG"}')
    assert movie.parse('{"title":"M","year":1999,"rating":"PG"}') == {"title": "M", "year": 1999, "rating": "PG"}


def test_containers_and_unions():
    g = tether.json_schema(dict[str, tuple[int, bool]], additional_properties="allow")
    assert g.matches('{"a":[1,true]}') and not g.matches('{"a":[1]}')
    assert tether.json_schema(typing.Optional[list[int]]).matches("null")


def test_pydantic_models_decode_with_pydantic():
    pydantic = pytest.importorskip("pydantic")

    class User(pydantic.BaseModel):
        name: str
        age: int = pydantic.Field(ge=0)

    g = tether.json_schema(User)
    assert g.matches('{"name":"a","age":3}') and not g.matches('{"name":"a","age":-3}')
    assert g.parse('{"name":"a","age":3}') == User(name="a", age=3)


# ---------------------------------------------------------------- on a vocabulary

def test_a_compiled_schema_walks_a_real_vocabulary_to_a_valid_instance():
    vocab = real_vocab("gpt-2")
    schema = {"type": "object", "properties": {"id": {"type": "integer", "minimum": 1},
                                               "name": {"type": "string", "maxLength": 8}}, "required": ["id", "name"]}
    c = tether.json_schema(schema).compile(vocab)
    text = '{"id":17,"name":"Ada"}'
    s = c.initial()
    for t in vocab.encode_greedy(text):
        assert c.allows(s, t)
        s = c.advance(s, t)
    assert c.is_accepting(s)
    assert tether.json_schema(schema).compile(vocab) is c  # cached per vocabulary
    jsonschema.validate(json.loads(text), schema)


def test_deep_nesting_compiles_and_too_deep_nesting_is_a_typed_error():
    def nested(depth):
        s = {"type": "integer"}
        for _ in range(depth):
            s = {"type": "array", "items": s}
        return s

    assert tether.json_schema(nested(100)).matches("[" * 100 + "1" + "]" * 100)
    with pytest.raises(tether.ConstraintTooLarge, match="nesting depth"):
        tether.json_schema(nested(3000))


def test_float_fields_stay_within_what_the_decoder_reads():
    """msgspec refuses numbers that overflow a double ("Number out of range"): so does the schema."""
    import dataclasses

    import msgspec

    @dataclasses.dataclass
    class Point:
        x: float
        y: typing.Annotated[float, msgspec.Meta(ge=0, lt=10)]

    spec = tether.json_schema(Point)
    assert not spec.matches('{"x":1e400,"y":1}') and not spec.matches('{"x":-2' + "0" * 310 + ',"y":1}')
    for text in ['{"x":1.5,"y":0}', '{"x":-179' + "0" * 306 + ',"y":9.5}']:
        assert spec.matches(text) and spec.parse(text) == msgspec.json.decode(text, type=Point)
