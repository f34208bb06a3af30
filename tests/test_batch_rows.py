"""What every engine integration stands on: `BatchRows` (per-request states, one bitmask per
batch) and `tether.integrations.requests` (constraints named by plain request data).

Rows are checked against states advanced one request at a time; the row bookkeeping (adds
over occupied rows, removals, one-way moves onto occupied rows, swaps) against a dict that
does the same by hand, over random scripts.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import tether
from tether.automata.bitmask import allocate_bitmask, unpack_bitmask
from tether.errors import SpecError
from tether.integrations.batch import DEAD, ENDED, BatchRows, StopIds, fill_row, step
from tether.integrations.requests import compiled, register, spec_from_args, tether_args, unregister

from conftest import real_vocab

VOCAB = real_vocab("gpt-2")
EOS = VOCAB.eos_ids[0]
SPECS = [{"regex": r"(19|20)[0-9]{2}"}, {"regex": r"[a-z]{1,6}( [a-z]{1,6}){0,3}"},
         {"json_schema": {"type": "array", "items": {"type": "integer"}, "maxItems": 3}},
         {"lark": '?start: sum\nsum: atom ("+" atom)*\natom: /[0-9]/ | "(" sum ")"'}]


def mask_of(constraint, state, stop):
    row = allocate_bitmask(1, VOCAB.size)[0]
    fill_row(constraint, state, row, stop)
    return unpack_bitmask(row, VOCAB.size)


def test_ends_are_the_engines_stop_ids_exactly_where_the_text_is_complete():
    c = compiled({"regex": "ab?"}, VOCAB)
    stop = StopIds([EOS], VOCAB)
    s = c.initial()
    assert not mask_of(c, s, stop)[EOS]
    s = step(c, s, VOCAB.encode_greedy("a")[0], stop)
    allowed = mask_of(c, s, stop)
    assert allowed[EOS] and allowed[VOCAB.encode_greedy("b")[0]]
    assert step(c, s, EOS, stop) is ENDED
    assert step(c, c.initial(), EOS, stop) is DEAD  # ended before the text was complete
    assert step(c, c.initial(), VOCAB.encode_greedy("z")[0], stop) is DEAD  # rejected: never raises
    for end in (ENDED, DEAD):  # only the stop ids, so a row is never fully masked
        assert np.flatnonzero(mask_of(c, end, stop)).tolist() == [EOS]


def test_other_stop_ids_replace_the_vocabularys_eos():
    c = compiled({"regex": "a"}, VOCAB)
    newline = VOCAB.encode_greedy("\n")[0]
    stop = StopIds([newline], VOCAB)
    done = step(c, c.initial(), VOCAB.encode_greedy("a")[0], stop)
    allowed = mask_of(c, done, stop)
    assert allowed[newline] and not allowed[EOS]
    assert step(c, done, newline, stop) is ENDED


def test_random_batches_match_states_advanced_one_request_at_a_time():
    rng = random.Random(7)
    constraints = [compiled(s, VOCAB) for s in SPECS]
    for trial in range(6):
        rows = BatchRows(VOCAB)
        mirror: dict[int, list] = {}  # row -> [constraint, state, live token list]
        stop = StopIds([EOS], VOCAB)
        for _ in range(25):
            op = rng.random()
            index, other = rng.randrange(6), rng.randrange(6)
            if op < 0.3:
                c = rng.choice(constraints)
                tokens: list[int] = []
                rows.add(index, c, tokens, stop_ids=[EOS])
                mirror[index] = [c, c.initial(), tokens]
            elif op < 0.4:
                rows.remove(index)
                mirror.pop(index, None)
            elif op < 0.5:
                rows.move(index, other)
                moved = mirror.pop(index, None)
                mirror.pop(other, None)
                if moved is not None:
                    mirror[other] = moved
            elif op < 0.6:
                rows.swap(index, other)
                a, b = mirror.pop(index, None), mirror.pop(other, None)
                if a is not None:
                    mirror[other] = a
                if b is not None:
                    mirror[index] = b
            width = max(mirror, default=0) + 2
            logits = torch.randn(width, VOCAB.size)
            before = logits.clone()
            rows.sync()
            rows.apply(logits)
            for r in range(width):
                if r not in mirror:
                    assert torch.equal(logits[r], before[r])
                    continue
                c, state, tokens = mirror[r]
                allowed = torch.isfinite(logits[r]).numpy()
                assert np.array_equal(allowed, mask_of(c, state, stop)), (trial, r)
                token = rng.choice(np.flatnonzero(allowed).tolist())
                tokens.append(token)  # the engine appends to the live list; sync() reads it
                mirror[r][1] = step(c, state, token, stop)


def test_feed_and_a_row_map_for_engines_without_live_lists():
    rows = BatchRows(VOCAB)
    c = compiled(SPECS[0], VOCAB)
    rows.add(7, c)
    rows.feed(7, VOCAB.encode_greedy("19"))
    assert rows.consumed(7) == len(VOCAB.encode_greedy("19")) and rows.text(7) == b"19"
    logits = torch.zeros(2, VOCAB.size)
    rows.apply(logits, rows=[3, 7])  # logits row 1 is batch row 7; row 3 has no constraint
    assert torch.isfinite(logits[0]).all()
    allowed = torch.isfinite(logits[1]).nonzero().reshape(-1).tolist()
    assert allowed and all(c.allows(rows.state(7), t) for t in allowed)


def test_a_constraint_for_another_vocabulary_is_refused():
    rows = BatchRows(VOCAB)
    with pytest.raises(tether.VocabularyMismatch):
        rows.add(0, tether.regex("a").compile(real_vocab("qwen2")))


@pytest.mark.parametrize("args", SPECS + [{"gbnf": 'root ::= [0-9]+'}, {"sql": {"ddl": "CREATE TABLE t (a INT)"}}])
def test_request_arguments_name_the_same_language_as_the_constructor(args):
    spec = spec_from_args(args)
    assert spec_from_args(dict(args)) is spec  # one spec (and so one compilation) per distinct arguments
    kind = next(iter(args))
    value = args[kind]
    direct = tether.sql(**value) if kind == "sql" else getattr(tether, kind)(value)
    for text in ["1989", "ab cd", "[1,2]", "1+(2)", "12", "SELECT a FROM t", "x"]:
        assert spec.matches(text) == direct.matches(text), (args, text)


def test_tether_args_checks_what_it_wraps():
    assert tether_args(regex="a+") == {"tether": {"regex": "a+"}}
    with pytest.raises(tether.InvalidPattern):
        tether_args(regex="(a")


@pytest.mark.parametrize("args,message", [
    ({"pattern": "a"}, "exactly one of"),
    ({"regex": "a", "lark": "start: \"a\""}, "exactly one of"),
    ({"regex": "a", "start": "x"}, "unknown option"),
    ({"regex": 3}, "must be the text"),
    ({"sql": {"database": "x"}}, "'sql' takes"),
    ({"json_schema": {"type": "integer"}, "whitespace": "lots"}, "whitespace"),
    ({"key": "nobody-registered-this"}, "no constraint registered"),
    ("a+", "must be a dict"),
])
def test_bad_request_arguments_are_spec_errors(args, message):
    with pytest.raises(SpecError, match=message):
        spec_from_args(args)


def test_registered_specs_are_named_by_key():
    spec = tether.regex("[0-9]+")
    register("digits", spec)
    try:
        assert spec_from_args({"key": "digits"}) is spec
        assert compiled({"key": "digits"}, VOCAB) is spec.compile(VOCAB)
    finally:
        unregister("digits")
    with pytest.raises(TypeError):
        register("bad", "not a spec")
