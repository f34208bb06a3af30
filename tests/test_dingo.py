"""DINGO's dynamic programme against exhaustive enumeration on tiny cases, and its transition rows
against one-token steps."""

from __future__ import annotations

import itertools
import math
import random
import re

import numpy as np
import pytest

import tether
from tether.samplers.dingo import END, Slot, Transitions, best_assignment

from conftest import real_vocab

ALPHABETS = [[b"a", b"b", b"ab", b"c"], [b"a", b"b", b"ba"], [b"a", b"b", b"c", b"cc"], [b"ab", b"b", b"a"]]


def random_regex(rng: random.Random, depth: int = 0) -> str:
    roll = rng.random()
    if depth > 2 or roll < 0.3:
        return rng.choice(["a", "b", "c", "ab", "[ab]", "(a|c)"])
    if roll < 0.55:
        return random_regex(rng, depth + 1) + random_regex(rng, depth + 1)
    if roll < 0.75:
        return f"({random_regex(rng, depth + 1)}|{random_regex(rng, depth + 1)})"
    return f"({random_regex(rng, depth + 1)}){rng.choice(['*', '?', '+', '{1,2}'])}"


def random_logprobs(rng: random.Random, size: int) -> np.ndarray:
    weights = [0.0 if rng.random() < 0.25 else rng.random() for _ in range(size)]
    if not any(weights):
        weights[rng.randrange(size)] = 1.0
    total = sum(weights)
    with np.errstate(divide="ignore"):
        return np.log(np.array(weights) / total)


def in_language(pattern: str, tokens: list[bytes | None], ids: tuple[int, ...], eos: int) -> bool:
    """Whether a full token sequence is a member: text tokens, then only EOS, and `re.fullmatch`."""
    text, ended = b"", False
    for t in ids:
        if t == eos:
            ended = True
        elif ended:
            return False
        else:
            text += tokens[t]
    return re.fullmatch(pattern, text.decode()) is not None


def exhaustive(pattern, tokens, eos, slots, tail) -> float:
    """max over choose-assignments of the summed log-probability, such that some fill of the masked
    slots and some continuation of at most `tail` tokens is a member; -inf if none."""
    ids = range(len(tokens))
    best = -math.inf
    choose = [i for i, s in enumerate(slots) if s.kind == "choose"]
    masked = [i for i, s in enumerate(slots) if s.kind == "masked"]
    for picks in itertools.product(ids, repeat=len(choose)):
        score = sum(slots[i].logprobs[t] for i, t in zip(choose, picks))
        if score == -math.inf or score <= best:
            continue
        base = [s.token for s in slots]
        for i, t in zip(choose, picks):
            base[i] = t
        found = False
        for fill in itertools.product(ids, repeat=len(masked)):
            seq = list(base)
            for i, t in zip(masked, fill):
                seq[i] = t
            for k in range(tail + 1):
                if any(in_language(pattern, tokens, tuple(seq) + more, eos) for more in itertools.product(ids, repeat=k)):
                    found = True
                    break
            if found:
                break
        if found:
            best = score
    return best


def test_dingo_equals_the_exhaustive_maximum_on_300_random_tiny_cases():
    rng = random.Random(20261202)
    checked = feasible = 0
    while checked < 300:
        alphabet = rng.choice(ALPHABETS)
        tokens = list(alphabet) + [None]
        eos = len(alphabet)
        vocab = tether.Vocabulary.from_tokens(tokens, eos_ids=[eos])
        pattern = random_regex(rng)
        c = tether.regex(pattern).compile(vocab)
        slots = []
        for _ in range(rng.randint(1, 4)):
            kind = rng.choice(["choose", "choose", "masked", "fixed"])
            if kind == "choose":
                slots.append(Slot.choose(random_logprobs(rng, len(tokens))))
            elif kind == "masked":
                slots.append(Slot.masked())
            else:
                slots.append(Slot.fixed(rng.randrange(len(tokens))))
        tail = rng.randint(0, 2)
        expected = exhaustive(pattern, tokens, eos, slots, tail)
        got = best_assignment(c, c.initial(), slots, tail=tail)
        case = (pattern, alphabet, [(s.kind, s.token, s.logprobs) for s in slots], tail)
        if expected == -math.inf:
            assert got is None, case
        else:
            assert got is not None and got.logprob == pytest.approx(expected), (case, got, expected)
            # the assignment itself is feasible: its tokens, in place, reach the maximum's score
            assert exhaustive(pattern, tokens, eos, _pinned(slots, got.tokens), tail) == pytest.approx(expected)
            feasible += 1
        checked += 1
    assert feasible >= 100  # not mostly infeasible cases (145 of 300 with this seed)


def _pinned(slots, tokens):
    out, it = [], iter(tokens)
    for s in slots:
        if s.kind == "choose":
            t = next(it)
            logp = np.full(s.logprobs.shape, -np.inf)
            logp[t] = s.logprobs[t]
            out.append(Slot.choose(logp))
        else:
            out.append(s)
    return out


def test_a_slot_after_end_of_text_takes_only_eos():
    vocab = tether.Vocabulary.from_tokens([b"a", b"b", None], eos_ids=[2])
    c = tether.regex("a").compile(vocab)
    logp = np.log(np.array([0.6, 0.3, 0.1]))
    got = best_assignment(c, c.initial(), [Slot.fixed(0), Slot.choose(logp), Slot.choose(logp)])
    assert got.tokens == (2, 2) and got.state == END
    assert best_assignment(c, c.initial(), [Slot.fixed(2)]) is None  # "" is not in the language


def test_transition_rows_agree_with_one_token_steps_on_a_real_vocabulary():
    vocab = real_vocab("gpt-2")
    c = tether.json_schema({"type": "object", "properties": {"n": {"type": "integer"}, "s": {"type": "string"}},
                            "required": ["n", "s"]}).compile(vocab)
    state = c.initial()
    for piece in ['{"', 'n":', '12', ',"s":"', 'ab']:
        row = c.transitions(state)
        assert row.shape == (vocab.size,) and not row.flags.writeable
        for t in list(range(0, vocab.size, 97)) + vocab.encode_greedy(piece):
            if t in vocab.eos_ids:
                assert row[t] == -1
            elif c.allows(state, t):
                assert row[t] == c.advance(state, t)
            else:
                assert row[t] == -1
        for t in vocab.encode_greedy(piece):
            state = c.advance(state, t)
    moves = Transitions(c)
    assert len(moves.successors(state)) >= 2


def test_context_free_constraints_are_refused_with_the_alternative_named():
    vocab = real_vocab("gpt-2")
    c = tether.lark('start: "(" start ")" | "x"').compile(vocab)
    with pytest.raises(TypeError, match="GrammarDiffusion"):
        best_assignment(c, c.initial(), [Slot.masked()])
