"""The Constraint contract for context-free grammars on real vocabularies (GPT-2, Llama-3, Llama-2 SPM):
sound, complete, no dead ends, mask == allows, EOS iff accepting. Lark is the reference.

Grammars: arithmetic with left recursion, RFC 8259 JSON (tests/test_cfg_json.py), and an
ambiguous grammar with `%ignore`.

- Random walks (seeded; tokens drawn from the mask): at every state EOS is allowed iff the state
  is accepting, special ids never are, the mask agrees with `allows` on a sample of ids, some
  token is allowed; when accepting, the text is a member for `g.matches` and for Lark.
- Sound and no dead ends: after a walk, a completion is searched by walking the constraint on
  one-character tokens (a fixed preference order per grammar, closing characters first) until
  an accepting state; Lark must accept walked text + completion. So the walked text is a prefix
  of a member (Lark's word) and acceptance is reachable from the state the walk reached.
- Complete: the greedy tokenizations of members (fixed ones, and random ones from hypothesis:
  json.dumps of random values with random separators and indentation; random expressions) are
  walkable and accepted.
- mask == allows on every token id, at a few states of a walk.
- The ambiguous grammar's masks stay within tether's default limits along short sentences.
"""

from __future__ import annotations

import functools
import json
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import tether
from fuzz.grammar import lark_accepts

from conftest import real_vocab
from test_cfg_json import JSON_LARK

VOCABS = ["gpt-2", "llama-bpe", "llama-spm"]

ARITH = r"""
start: sum
sum: sum "+" product | sum "-" product | product
product: product "*" atom | product "/" atom | atom
atom: NUMBER | "-" atom | "(" sum ")"
NUMBER: /[0-9]+(\.[0-9]+)?/
"""

AMBIGUOUS = r"""
start: e
e: e e | e "+" e | NAME | "(" e ")" | e "?"
NAME: /[a-z]+/
%ignore " "
"""

# name -> (grammar, completion preference, members). Walk limits (steps, bytes) are in LIMITS: the
# ambiguous grammar's masks cost the most and grow with the text (`e: e e`), so its walks are
# shorter; test_ambiguous_masks_along_a_sentence and test_ambiguous_mask_after_three_tokens_on_llama3
# check masks along given texts (the second once took over the default 10 s).
GRAMMARS = {
    "arith": (ARITH, ")1", ["1", "1+2*3", "(1.5-2)/3", "-(4)*--2", "((1))+2.25*(3-4)/5"]),
    "json": (JSON_LARK, "\"]}0:1n", ['{"a": [1, 2.5e-3, true, null], "b": {"c": "d\\u00e9\\n"}}', "[]", " 0 ",
                                    '"x"', '[{"": -0.0}]', '{"key":"é😀 \\"q\\""}', "[[[[]]]]", "false"]),
    "ambiguous": (AMBIGUOUS, ")a", ["a", "ab", "a b", "a+b c", "(a b)?", " x + ( y z ) ?? ", "a b c d e f"]),
}
LIMITS = {"arith": (16, 60), "json": (16, 60), "ambiguous": (8, 24)}  # (steps, bytes) of a random walk

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], phases=[Phase.explicit, Phase.generate],
                database=None)


@functools.cache
def _grammar(name: str) -> tether.Grammar:
    return tether.lark(GRAMMARS[name][0])


@functools.cache
def _constraint(name: str, vocab_name: str):
    return _grammar(name).compile(real_vocab(vocab_name))


def _text(vocab, ids) -> str | None:
    try:
        return vocab.decode(ids).decode("utf-8")
    except UnicodeDecodeError:
        return None


def _check_state(c, vocab, state, rng: np.random.Generator, n: int = 300) -> np.ndarray:
    mask = np.asarray(c.mask(state))
    assert mask.shape == (vocab.size,)
    accepting = bool(c.is_accepting(state))
    for e in vocab.eos_ids:
        assert bool(mask[e]) == accepting, "EOS allowed iff accepting"
        assert c.allows(state, e) == accepting
    for t in vocab.special_ids - set(vocab.eos_ids):
        assert not mask[t]
    allowed = np.flatnonzero(mask)
    ids = set(rng.choice(vocab.size, n, replace=False).tolist())
    ids |= set(rng.choice(allowed, min(n, len(allowed)), replace=False).tolist()) if len(allowed) else set()
    for t in sorted(ids):
        assert c.allows(state, int(t)) == bool(mask[t]), (t, vocab[int(t)], bool(mask[t]))
    assert mask.any(), "dead end: no token (not even EOS) allowed"
    if not accepting:
        assert (mask & ~np.isin(np.arange(vocab.size), vocab.eos_ids)).any(), "dead end: not accepting, only EOS"
    return mask


def _complete(c, vocab, state, order: str, limit: int = 80) -> str | None:
    """A completion from `state` to acceptance, walking one-character tokens (preferring `order`)."""
    ascii_ = sorted((chr(i) for i in range(0x21, 0x7f)), key=lambda ch: not ch.isalnum()) + [" "]  # spaces last
    chars = order + "".join(ch for ch in ascii_ if ch not in order)
    singles = [(ch, vocab.encode_greedy(ch)) for ch in chars]
    singles = [(ch, ids[0]) for ch, ids in singles if len(ids) == 1]
    out, seen = [], set()
    for _ in range(limit):
        if c.is_accepting(state):
            return "".join(out)
        seen.add(state)
        for ch, t in singles:
            if c.allows(state, t):
                nxt = c.advance(state, t)
                if nxt in seen:
                    continue
                state = nxt
                out.append(ch)
                break
        else:
            return None
    return "".join(out) if c.is_accepting(state) else None


def _walk_member(c, vocab, text: str) -> None:
    state = c.initial()
    for i, t in enumerate(vocab.encode_greedy(text)):
        assert c.allows(state, t), f"token {i} {vocab[t]!r} of member {text!r} refused"
        state = c.advance(state, t)
    assert c.is_accepting(state), f"member {text!r} walked, the final state is not accepting"
    assert c.mask(state)[vocab.eos_ids[0]]


# ---------------------------------------------------------------- random walks

def _random_walk(name: str, vocab_name: str, seed: int, steps: int) -> None:
    text_g, order, _ = GRAMMARS[name]
    max_steps, max_bytes = LIMITS[name]
    steps = min(steps, max_steps)
    g, c, vocab = _grammar(name), _constraint(name, vocab_name), real_vocab(vocab_name)
    rng = np.random.default_rng(seed)
    eos = set(vocab.eos_ids)
    state, ids = c.initial(), []
    for _ in range(steps):
        mask = _check_state(c, vocab, state, rng)
        if c.is_accepting(state):
            text = _text(vocab, ids)
            assert text is not None, f"accepting after {vocab.decode(ids)!r}, which is not UTF-8"
            assert g.matches(text), f"accepting after {text!r}, matches() says no"
            assert lark_accepts(text_g, "start", text), f"accepting after {text!r}, Lark says no"
        moves = [t for t in np.flatnonzero(mask).tolist() if t not in eos]
        if not moves:
            break
        token = int(rng.choice(moves))
        state = c.advance(state, token)
        ids.append(token)
        if len(vocab.decode(ids)) > max_bytes:  # keep Lark's (and the ambiguous masks') work small
            break
    _check_state(c, vocab, state, rng)
    walked = vocab.decode(ids)
    rest = _complete(c, vocab, state, order)
    assert rest is not None, f"no completion found after {walked!r} (a dead end, or a completion this search misses)"
    full = walked + rest.encode()
    assert lark_accepts(text_g, "start", full), f"walked {walked!r}, completed by {rest!r}: Lark rejects {full!r}"
    assert g.matches(full)


@pytest.mark.parametrize("vocab_name", VOCABS)
@pytest.mark.parametrize("name", ["arith", "json"])
@settings(max_examples=10, **SETTINGS)
@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(1, 16))
def test_random_walks_are_sound_and_never_dead_end(name, vocab_name, seed, steps):
    _random_walk(name, vocab_name, seed, steps)


@pytest.mark.parametrize("vocab_name", VOCABS)
@settings(max_examples=4, **SETTINGS)  # this grammar's masks are the slowest (its Earley sets grow with the text)
@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(1, 6))
def test_ambiguous_random_walks_are_sound_and_never_dead_end(vocab_name, seed, steps):
    _random_walk("ambiguous", vocab_name, seed, steps)


# ---------------------------------------------------------------- completeness

@pytest.mark.parametrize("vocab_name", VOCABS)
@pytest.mark.parametrize("name", list(GRAMMARS))
def test_fixed_members_are_walkable(name, vocab_name):
    text_g, _, members = GRAMMARS[name]
    c, vocab = _constraint(name, vocab_name), real_vocab(vocab_name)
    for m in members:
        assert lark_accepts(text_g, "start", m), m
        _walk_member(c, vocab, m)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6)


@pytest.mark.parametrize("vocab_name", VOCABS)
@settings(max_examples=15, **SETTINGS)
@given(value=_json_values, indent=st.sampled_from([None, 0, 1, 2, "\t"]), ascii_=st.booleans(),
       seps=st.sampled_from([(",", ":"), (", ", ": "), (" ,", " : ")]))
def test_json_members_are_walkable(vocab_name, value, indent, ascii_, seps):
    text = json.dumps(value, indent=indent, ensure_ascii=ascii_, separators=seps)
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):  # a lone surrogate is no UTF-8
        return
    assert _grammar("json").matches(text), text
    _walk_member(_constraint("json", vocab_name), real_vocab(vocab_name), text)


def _expression(rng: random.Random, depth: int = 0) -> str:
    roll = rng.random()
    if depth > 3 or roll < 0.35:
        return rng.choice(["0", "7", "42", "3.14", "10.0"])
    if roll < 0.5:
        return "-" + _expression(rng, depth + 1)
    if roll < 0.65:
        return "(" + _expression(rng, depth + 1) + ")"
    return _expression(rng, depth + 1) + rng.choice("+-*/") + _expression(rng, depth + 1)


@pytest.mark.parametrize("vocab_name", VOCABS)
@settings(max_examples=15, **SETTINGS)
@given(rng=st.randoms(use_true_random=False))
def test_arithmetic_members_are_walkable(vocab_name, rng):
    text = _expression(rng)
    assert lark_accepts(ARITH, "start", text), text
    assert _grammar("arith").matches(text), text
    _walk_member(_constraint("arith", vocab_name), real_vocab(vocab_name), text)


# ---------------------------------------------------------------- mask == allows on every id

@pytest.mark.parametrize("vocab_name", VOCABS)
@pytest.mark.parametrize("name", list(GRAMMARS))
def test_mask_agrees_with_allows_on_every_token(name, vocab_name):
    _, _, members = GRAMMARS[name]
    c, vocab = _constraint(name, vocab_name), real_vocab(vocab_name)
    ids = vocab.encode_greedy(members[-1])
    cut = len(ids) // 2
    states = [c.initial(), c.advance_many(c.initial(), ids[:cut])]
    for state in states:
        mask = np.asarray(c.mask(state))
        row = tether.allocate_bitmask(1, vocab.size)[0]
        c.fill_bitmask(state, row)
        from tether.automata.bitmask import unpack_bitmask

        assert (unpack_bitmask(row, vocab.size) == mask).all()
        differ = [t for t in range(vocab.size) if c.allows(state, t) != bool(mask[t])]
        assert not differ, [(t, vocab[t], bool(mask[t])) for t in differ[:8]]
        assert bool(mask[vocab.eos_ids[0]]) == bool(c.is_accepting(state))


@pytest.mark.parametrize("vocab_name", VOCABS)
def test_ambiguous_masks_along_a_sentence(vocab_name):
    """Masks stay computable (within tether's default limits) along a short sentence."""
    c, vocab = _constraint("ambiguous", vocab_name), real_vocab(vocab_name)
    text = "the cat sat on a mat"
    state = c.initial()
    for t in vocab.encode_greedy(text):
        assert c.mask(state)[t]
        state = c.advance(state, t)
    assert c.is_accepting(state) and c.mask(state)[vocab.eos_ids[0]]


def test_ambiguous_mask_after_three_tokens_on_llama3():
    """Found by the random walks (seed 4094675): the mask after 25 bytes took over the default 10 s."""
    vocab = real_vocab("llama-bpe")
    c = tether.lark(AMBIGUOUS).compile(vocab)  # a fresh one: no masks cached by other tests
    state = c.advance_many(c.initial(), vocab.encode_greedy(" exports stability(logger"))
    mask = c.mask(state)
    assert mask[vocab.encode_greedy(")")[0]] and not mask[vocab.eos_ids[0]]
