"""Diffusion decoding on a toy masked diffusion LM: the schedule, unconstrained output checked
against the language, DINGO and CFG-constrained output always in it, and routing in tether.generate."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import tether
from tether.models import ModelStats
from tether.samplers import DINGO, Diffusion, GrammarDiffusion, Greedy, Status

from test_dingo import in_language

TOKENS = [b"a", b"b", b"ab", b"(", b")", b"1", b"2", None, None]  # 7: EOS, 8: the mask
EOS, MASK = 7, 8


class ToyDiffusionLM:
    """Per-position log-probabilities from a seeded table (the same whatever the context), plus a
    record of every call; the mask id gets no mass (as MDLM's parameterisation)."""

    def __init__(self, seed: int = 0, width: int = 64, favourite: dict[int, int] | None = None):
        self.vocab = tether.Vocabulary.from_tokens(TOKENS, eos_ids=[EOS])
        self.mask_id = MASK
        self.stats = ModelStats()
        rng = np.random.default_rng(seed)
        table = rng.normal(size=(width, len(TOKENS))) * 2
        for pos, tok in (favourite or {}).items():
            table[pos, tok] += 10
        table[:, MASK] = -np.inf
        self.table = torch.log_softmax(torch.tensor(table, dtype=torch.float32), dim=-1)
        self.calls: list[torch.Tensor] = []

    def prompt_ids(self, prompt):
        return []

    def logprobs(self, sequences):
        self.calls.append(sequences.clone())
        return self.table[: sequences.shape[1]].unsqueeze(0).expand(sequences.shape[0], -1, -1).clone()


def test_unconstrained_decoding_takes_the_model_choice_and_reports_invalid_output():
    lm = ToyDiffusionLM(favourite={0: 0, 1: 1, 2: EOS, 3: 5})
    g = tether.generate(lm, "", tether.regex("ab"), sampler=Diffusion(), max_tokens=4)
    assert g.token_ids[:3] == [0, 1, EOS] and g.text == "ab" and g.status is Status.COMPLETE
    g = tether.generate(lm, "", tether.regex("ba"), sampler=Diffusion(), max_tokens=4)
    assert g.status is Status.INVALID and g.value is None and g.text == "ab"


def test_the_schedule_unmasks_the_most_confident_positions_block_by_block():
    lm = ToyDiffusionLM(favourite={3: 0})  # position 3 is the most confident
    tether.generate(lm, "", tether.regex("[ab12()]*"), sampler=Diffusion(steps=4, block_size=4), max_tokens=8)
    first = lm.calls[0][0]
    assert (first == MASK).all() and len(lm.calls) == 4  # 2 blocks x 2 steps
    second = lm.calls[1][0].tolist()
    assert second[3] != MASK and second.count(MASK) == 6  # step 1 unmasked 2 of block 1, position 3 first
    third = lm.calls[2][0].tolist()
    assert all(t != MASK for t in third[:4]) and all(t == MASK for t in third[4:])


def test_random_order_replays_under_its_seed():
    lm = ToyDiffusionLM()
    a = tether.generate(lm, "", tether.regex("[ab]*"), sampler=Diffusion(order="random", seed=3, temperature=1.0),
                        max_tokens=6, n=3)
    b = tether.generate(lm, "", tether.regex("[ab]*"), sampler=Diffusion(order="random", seed=3, temperature=1.0),
                        max_tokens=6, n=3)
    assert [g.token_ids for g in a] == [g.token_ids for g in b]


PATTERNS = ["(ab|b)*1", "a?b{2,3}", "\\(1(2|a)*\\)", "[ab]+2?", "(a|b|12){3}", "b*ab*"]


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(PATTERNS), st.integers(0, 10_000), st.integers(1, 8), st.integers(1, 8),
       st.sampled_from(["confidence", "random"]), st.sampled_from([0.0, 1.0]))
def test_dingo_output_is_always_in_the_language(pattern, seed, steps, block, order, temperature):
    lm = ToyDiffusionLM(seed)
    sampler = DINGO(steps=steps, block_size=block, order=order, temperature=temperature, seed=seed)
    g = tether.generate(lm, "", tether.regex(pattern), sampler=sampler, max_tokens=8)
    assert g.status is Status.COMPLETE, g
    assert re.fullmatch(pattern, g.text), (pattern, g.text)
    ids = g.token_ids
    end = ids.index(EOS) if EOS in ids else len(ids)
    assert all(t == EOS for t in ids[end:])  # padding only after the end of text


def test_dingo_in_one_step_is_the_most_likely_member():
    """One step over one block unmasks everything at once: DINGO's choice is the best member."""
    import itertools

    lm = ToyDiffusionLM(5)
    pattern = "(ab|b)*1"
    g = tether.generate(lm, "", tether.regex(pattern), sampler=DINGO(steps=1), max_tokens=3)
    table = lm.table.numpy()
    best = max((sum(table[i, t] for i, t in enumerate(seq)), seq)
               for seq in itertools.product(range(EOS + 1), repeat=3)
               if in_language(pattern, TOKENS, seq, EOS))
    assert tuple(g.token_ids) == best[1]


def test_dingo_refuses_a_context_free_constraint_naming_the_sampler_to_use():
    lm = ToyDiffusionLM()
    with pytest.raises(TypeError, match="GrammarDiffusion"):
        tether.generate(lm, "", tether.lark('start: "(" start ")" | "1"'), sampler=DINGO(), max_tokens=6)


BALANCED = tether.lark('start: "(" start ")" | start start | "1" | "2"')


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 10), st.sampled_from([None, 5]), st.sampled_from([0.0, 1.0]))
def test_grammar_diffusion_output_is_in_the_language(seed, steps, block, temperature):
    lm = ToyDiffusionLM(seed)
    sampler = GrammarDiffusion(steps=steps, block_size=block, temperature=temperature, seed=seed, max_rejections=3)
    g = tether.generate(lm, "", BALANCED, sampler=sampler, max_tokens=10)
    assert g.status in (Status.COMPLETE, Status.DEAD)
    if g.status is Status.COMPLETE:
        assert BALANCED.matches(g.text), g.text


def test_grammar_diffusion_rarely_dies_on_balanced_parentheses():
    dead = 0
    for seed in range(40):
        g = tether.generate(ToyDiffusionLM(seed), "", BALANCED, sampler=GrammarDiffusion(steps=10, seed=seed),
                            max_tokens=10)
        dead += g.status is Status.DEAD
        assert g.status is Status.DEAD or BALANCED.matches(g.text)
    assert dead <= 4, dead  # measured 0 of 40


def test_grammar_diffusion_repairs_dead_ends_on_the_shipped_mdlm():
    """The e-mail task of bench/diffusion.py: 9 of 20 samples used to end DEAD, where the tokens
    unmasked after a position left no candidate for it; the fallback now reopens them."""
    lm = tether.models.mdlm.default()
    email = tether.regex(r"[a-z]{2,10}@[a-z]{2,10}\.(com|org|net)")
    sampler = GrammarDiffusion(block_size=8, temperature=1.0, seed=0)
    for g in tether.generate(lm, "", email, sampler=sampler, max_tokens=16, n=10):
        assert g.ok and email.matches(g.text), g


def test_generate_routes_models_and_samplers_of_the_same_kind():
    lm = ToyDiffusionLM()
    with pytest.raises(TypeError, match="masked diffusion LM: pass a diffusion sampler"):
        tether.generate(lm, "", tether.regex("a"))
    with pytest.raises(TypeError, match="masked diffusion LM"):
        tether.generate(lm, "", tether.regex("a"), sampler=Greedy())

    class Causal:
        vocab = lm.vocab
        stats = ModelStats()

        def prompt_ids(self, p):
            return []

        def next_logprobs(self, prefixes):
            raise AssertionError

    with pytest.raises(TypeError, match="decodes masked diffusion LMs"):
        tether.generate(Causal(), "", tether.regex("a"), sampler=DINGO())
    with pytest.raises(ValueError, match="order must be"):
        DINGO(order="left")
