"""AWRS: exact tests by enumeration with Fractions on tiny vocabularies.

The order of draws is injected (`order=`), so every outcome of the algorithm can be
enumerated with its exact Plackett-Luce probability: a depth-first replay over the
choice made at each draw (equivalently, over every permutation prefix the algorithm
reads), summed with `fractions.Fraction`. For the single-order recursive estimator we
also enumerate whole permutations literally.
"""

from __future__ import annotations

import itertools
import math
import random
from fractions import Fraction

import numpy as np
import pytest
import torch

from tether.automata.bitmask import pack_mask
from tether.automata.constraint import Constraint
from tether.errors import TokenRejected
from tether.samplers.awrs import (
    AWRS,
    awrs_step,
    awrs_weight,
    gumbel_order,
    log_mass_excluding,
    sequential_order,
)
from tether.vocab import Vocabulary

# --------------------------------------------------------------------------- enumeration harness


class Replay:
    """An order factory that follows a script of choices and records the branching."""

    def __init__(self, probs: list[Fraction], path: list[int]):
        self.probs, self.path, self.pos = probs, path, 0
        self.options: list[int] = []
        self.prob = Fraction(1)

    def __call__(self, logp, excluded):
        excluded = set(excluded)

        def gen():
            rem = [i for i, p in enumerate(self.probs) if p > 0 and i not in excluded]
            while rem:
                k = self.path[self.pos] if self.pos < len(self.path) else 0
                self.options.append(len(rem))
                self.pos += 1
                t = rem[k]
                self.prob *= self.probs[t] / sum(self.probs[r] for r in rem)
                rem.pop(k)
                yield t

        return gen()


def outcomes(probs, run):
    """Every outcome of `run(order_factory)` with its exact probability."""
    stack: list[list[int]] = [[]]
    while stack:
        path = stack.pop()
        rp = Replay(probs, path)
        res = run(rp)
        chosen = path + [0] * (len(rp.options) - len(path))
        for d in range(len(path), len(rp.options)):
            stack.extend(chosen[:d] + [k] for k in range(1, rp.options[d]))
        yield rp.prob, res


def logp_of(probs):
    return np.array([math.log(p) if p > 0 else -math.inf for p in probs])


def exact_moments(probs, c, **kw):
    """(total prob, law of the token, E[w·1[x=v]], E[w²], P(dead)) by exact enumeration."""
    V = len(probs)
    logp = logp_of(probs)
    total, dead, ew2 = Fraction(0), Fraction(0), Fraction(0)
    law = [Fraction(0)] * V
    ew = [Fraction(0)] * V

    def run(order):
        return awrs_step(logp, lambda t: bool(c[t]), order=order, **kw)

    for pr, res in outcomes(probs, run):
        w = awrs_weight(res, probs)
        # the float log-space path computes the same weight
        assert abs(math.exp(res.log_weight) - float(w)) <= 1e-12 * max(1.0, float(w)), (res, w)
        total += pr
        if res.token is None:
            assert w == 0 and res.log_weight == -math.inf
            dead += pr
            continue
        assert c[res.token]
        law[res.token] += pr
        ew[res.token] += pr * w
        ew2 += pr * w * w
    return total, law, ew, ew2, dead


def random_instances(seed: int, count: int, max_v: int = 6):
    rnd = random.Random(seed)
    out = []
    for k in range(count):
        V = rnd.randint(1, max_v)
        ints = [rnd.randint(0 if k % 4 == 0 else 1, 9) for _ in range(V)]
        if not any(ints):
            ints[0] = 1
        probs = [Fraction(i, sum(ints)) for i in ints]
        mode = k % 6
        if mode == 0:
            c = [False] * V  # nothing allowed
        elif mode == 1:
            c = [False] * V
            c[rnd.randrange(V)] = True  # a single allowed token
        else:
            c = [rnd.random() < 0.5 for _ in range(V)]
        out.append((probs, c))
    # fixed corner cases: allowed token of probability 0, everything allowed
    out.append(([Fraction(1, 2), Fraction(0), Fraction(1, 2)], [False, True, False]))
    out.append(([Fraction(1, 3), Fraction(1, 6), Fraction(1, 2)], [True, True, True]))
    return out


INSTANCES = random_instances(seed=2025, count=60)
ESTIMATORS = [("recursive", {"peeks": 1}), ("recursive", {"peeks": 2}), ("two_pass", {})]


@pytest.mark.parametrize("estimator, extra", ESTIMATORS)
def test_exact_law_and_proper_weighting(estimator, extra):
    for probs, c in INSTANCES:
        Z = sum(p for p, ok in zip(probs, c) if ok)
        total, law, ew, ew2, dead = exact_moments(probs, c, estimator=estimator, **extra)
        assert total == 1
        for v in range(len(probs)):
            want = probs[v] * c[v]
            assert ew[v] == want, (probs, c, v)  # E[w·1[x=v]] = p(v)c(v)
            if Z > 0:
                assert law[v] == want / Z, (probs, c, v)  # the sample's law is exactly p·c/Z
        assert dead == (1 if Z == 0 else 0)  # weight 0 (state dead) exactly when nothing is allowed


def test_recursive_estimator_by_literal_permutations():
    """The recursive estimator reads a single order: enumerate all permutations of V."""
    for probs, c in INSTANCES:
        V = len(probs)
        support = [i for i in range(V) if probs[i] > 0]
        logp = logp_of(probs)
        ew = [Fraction(0)] * V
        for perm in itertools.permutations(support):
            pr, rem = Fraction(1), Fraction(1)
            for t in perm:
                pr *= probs[t] / rem
                rem -= probs[t]
            res = awrs_step(logp, lambda t: bool(c[t]), order=lambda lp, ex: iter(perm))
            if res.token is not None:
                ew[res.token] += pr * awrs_weight(res, probs)
        assert ew == [p * ok for p, ok in zip(probs, c)]


@pytest.mark.parametrize("max_checks", [0, 1, 2])
@pytest.mark.parametrize("peeks", [1, 2])
def test_capped_recursive_with_mask_fallback_stays_exact(max_checks, peeks):
    for probs, c in INSTANCES[:40]:
        Z = sum(p for p, ok in zip(probs, c) if ok)
        total, law, ew, _, _ = exact_moments(
            probs, c, estimator="recursive", peeks=peeks, max_checks=max_checks,
            fallback_mask=lambda: np.array(c, dtype=bool),
        )
        assert total == 1
        assert ew == [p * ok for p, ok in zip(probs, c)]
        if Z:
            assert law == [p * ok / Z for p, ok in zip(probs, c)]


def test_capped_without_fallback_dies_and_is_documented_as_biased():
    probs = [Fraction(1, 2), Fraction(1, 4), Fraction(1, 4)]
    c = [False, False, True]
    _, _, ew, _, dead = exact_moments(probs, c, estimator="recursive", max_checks=1)
    assert dead > 0 and ew[2] < probs[2]  # mass lost: biased, as documented
    res = awrs_step(logp_of(probs), lambda t: c[t], order=lambda lp, ex: iter([0, 1, 2]), max_checks=1)
    assert res.token is None and res.capped and res.checks == 1 and res.log_weight == -math.inf


def test_variance_recursive_decreases_with_peeks_and_usually_beats_two_pass():
    beats = n = 0
    for probs, c in INSTANCES[:40]:
        Z = sum(p for p, ok in zip(probs, c) if ok)
        if Z == 0:
            continue
        var = [exact_moments(probs, c, estimator="recursive", peeks=m)[3] - Z * Z for m in (1, 2, 3)]
        assert var[0] >= var[1] >= var[2] >= 0
        if sum(c) == 1 or all(ok for p, ok in zip(probs, c) if p > 0):
            assert var[0] == 0  # one allowed token, or everything allowed: Ẑ = Z exactly
        v2 = exact_moments(probs, c, estimator="two_pass")[3] - Z * Z
        beats += var[0] <= v2
        n += 1
        assert var[1] <= v2  # with two peeks it beats the second pass on every instance here
    assert beats >= 0.7 * n


# --------------------------------------------------------------------------- orders and numerics


@pytest.mark.parametrize("factory", [sequential_order, gumbel_order])
def test_lazy_orders_follow_plackett_luce(factory):
    rng = np.random.default_rng(0)
    p = np.array([0.4, 0.3, 0.0, 0.2, 0.1])
    logp = np.log(np.where(p > 0, p, 1e-300))
    logp[2] = -np.inf
    make = factory(rng)
    reps = 20000
    pairs: dict[tuple[int, int], int] = {}
    for _ in range(reps):
        seq = list(make(logp, ()))
        assert sorted(seq) == [0, 1, 3, 4]
        pairs[tuple(seq[:2])] = pairs.get(tuple(seq[:2]), 0) + 1
    for (a, b), k in pairs.items():
        exact = p[a] * p[b] / (1 - p[a])
        assert abs(k / reps - exact) <= 4 * math.sqrt(exact * (1 - exact) / reps) + 1e-9
    seq = list(make(logp, [0, 4]))
    assert sorted(seq) == [1, 3]
    assert list(make(np.full(3, -np.inf), ())) == []


def test_sequential_order_handles_extreme_masses():
    rng = np.random.default_rng(1)
    logp = np.array([0.0, -200.0, -400.0, -800.0, -np.inf])
    logp -= np.logaddexp.reduce(logp[:4])
    for _ in range(20):
        assert list(sequential_order(rng)(logp, ())) == [0, 1, 2, 3]  # each dominates the rest


def test_tiny_z_is_accurate_in_log_space():
    V = 5000
    rng = np.random.default_rng(3)
    logp = rng.normal(0, 2, V)
    logp[17] = -80.0  # the only allowed token: Z = p(17) ~ e^-80
    logp -= np.logaddexp.reduce(logp)
    res = awrs_step(logp, lambda t: t == 17, rng)
    assert res.token == 17 and res.log_weight == pytest.approx(logp[17], abs=1e-9)
    assert res.checks == V  # every other token was drawn first (tiny Z means many checks)
    res2 = awrs_step(logp, lambda t: t == 17, rng, estimator="two_pass")
    want = log_mass_excluding(logp, res2.rejected) - math.log(res2.rejections + 1)
    assert res2.token == 17 and res2.log_weight == pytest.approx(want, abs=1e-9)
    assert math.isfinite(res2.log_weight) and res2.log_weight < -70


def test_large_vocabulary_is_lazy_and_unbiased():
    V = 50_000
    rng = np.random.default_rng(7)
    logits = torch.randn(V) * 3
    allowed = torch.rand(V) < 0.3
    logp = torch.log_softmax(logits.double(), 0)
    Z = float(logp.exp()[allowed].sum())
    logp32 = logp.float()
    allowed = allowed.numpy()
    seen: set[int] = set()

    def allows(t):
        seen.add(t)
        return bool(allowed[t])

    ws, checks = [], []
    for _ in range(400):
        res = awrs_step(logp32, allows, rng)  # torch float32 input is fine
        assert allowed[res.token]
        ws.append(res.weight)
        checks.append(res.checks)
    assert len(seen) < V // 10  # only drawn tokens are checked
    ws = np.array(ws)
    assert abs(ws.mean() - Z) < 4 * ws.std() / math.sqrt(len(ws)) + 1e-3


def test_bad_arguments():
    logp = np.log(np.array([0.5, 0.5]))
    with pytest.raises(ValueError):
        awrs_step(logp, lambda t: True, np.random.default_rng(), estimator="three_pass")
    with pytest.raises(ValueError):
        awrs_step(logp, lambda t: True, np.random.default_rng(), peeks=0)
    with pytest.raises(ValueError):
        awrs_step(logp, lambda t: True, np.random.default_rng(), max_checks=-1)
    with pytest.raises(ValueError):
        awrs_step(logp, lambda t: True, None)  # rng needed for the default order
    with pytest.raises(ValueError):
        awrs_step(np.array([0.0, np.nan]), lambda t: True, np.random.default_rng())
    res = awrs_step(np.full(3, -np.inf), lambda t: True, np.random.default_rng())
    assert res.token is None and res.log_weight == -math.inf and res.checks == 0


# --------------------------------------------------------------------------- the class wrapper


class TableConstraint(Constraint):
    """States 0..; `table[state]` = (allowed non-EOS ids -> next state, accepting?)."""

    def __init__(self, vocab, table):
        self.vocab, self.table = vocab, table
        self.eos = set(vocab.eos_ids)
        self.calls = 0

    def initial(self):
        return 0

    def allows(self, state, tok):
        self.calls += 1
        if tok in self.eos:
            return self.table[state][1]
        return tok in self.table[state][0]

    def advance(self, state, tok):
        if not self.allows(state, tok):
            raise TokenRejected(state, tok, self.vocab[tok])
        return state if tok in self.eos else self.table[state][0][tok]

    def is_accepting(self, state):
        return self.table[state][1]

    def is_finished(self, state):
        return self.table[state][1] and not self.table[state][0]

    def fill_bitmask(self, state, row):
        row[:] = pack_mask(np.array([self.allows(state, t) for t in range(self.vocab.size)]))


def test_awrs_class_eos_finished_and_counters():
    vocab = Vocabulary.from_tokens([b"x", b"y", b"z", None, None], eos_ids=[3, 4])
    table = {0: ({0: 1, 1: 2}, False), 1: ({2: 1}, True), 2: ({}, True)}
    c = TableConstraint(vocab, table)
    sampler = AWRS(c, seed=0)
    logp = torch.log_softmax(torch.tensor([1.0, 0.5, 2.0, 1.5, -1.0]), 0)
    p = logp.double().exp().numpy()
    for _ in range(50):
        res = sampler.step(logp, 0)
        assert res.token in (0, 1)
        res = sampler.step(logp, 1)
        assert res.token in (2, 3, 4)  # EOS allowed through is_accepting
    c.calls = 0
    res = sampler.step(logp, 2)  # finished: exact EOS-only step, no checks
    assert res.token in (3, 4) and res.checks == 0 and c.calls == 0
    assert res.weight == pytest.approx(p[3] + p[4])
    st = sampler.stats
    assert st.steps == 101 and st.checks >= 200 and st.checks_per_step == st.checks / st.steps

    capped = AWRS(c, max_checks=0, seed=1)  # always the exact mask fallback
    res = capped.step(logp, 0)
    assert res.fallback and res.weight == pytest.approx(p[0] + p[1])
    assert capped.stats.fallbacks == 1 and capped.stats.capped == 1
