"""AWRS-SMC end to end on SmolLM2-135M-Instruct through `tether.generate`.

Regexes of the shapes real tasks take (a JSON object with typed fields, an e-mail field, a date,
a fixed-shape SELECT statement), a few prompts each, N = 4 particles. Every output must be COMPLETE
and full-match its regex, and the constraint work must stay a handful of one-token checks per
generated token, where masked decoding evaluates the constraint over all 49,152 ids every step.

The searches run with SMC's defaults: at most 16 checks per step, then the exact mask fallback
(exact with the recursive estimator, see `tether.samplers.awrs`): a particle that wanders into a state whose allowed mass is
tiny (e.g. a non-canonical split such as "S"+"EL" for "SELECT") costs one full mask instead of
thousands of checks. Such masks are counted and bounded separately.
"""

from __future__ import annotations

import re

import pytest

import tether
from tether.samplers import SMC, Status

pytestmark = pytest.mark.model

VOCAB_SIZE = 49_152

TASKS = {
    "json": (
        r'\{"name": "[A-Z][a-z]{1,12}", "age": [0-9]{1,2}, "city": "[A-Z][a-z]{1,12}"\}',
        ['Output only a JSON object like {"name": "Anna", "age": 41, "city": "Paris"} describing a fictional person.',
         'Reply with JSON only, in the form {"name": ..., "age": ..., "city": ...}: a customer from Spain.',
         'Return only this JSON, filled in for a teacher: {"name": "", "age": 0, "city": ""}'],
        48,
    ),
    "email": (
        r"[a-z]{1,12}(\.[a-z]{1,8})?@[a-z]{2,10}\.(com|org|net)",
        ["Output only the e-mail address: sales team of acme.com.",
         "Write only the e-mail address, in lowercase: the contact of info at mozilla.org.",
         "Give one example e-mail address like john.smith@example.com. Output only the address."],
        40,
    ),
    "date": (
        r"(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])",
        ["When did the Berlin Wall fall? Reply with only the date as YYYY-MM-DD.",
         "Reply with only a date in YYYY-MM-DD format: the first Moon landing.",
         "Output only the date (YYYY-MM-DD) of New Year's Day 2000."],
        16,
    ),
    "sql": (
        r"SELECT (name|age|city) FROM (users|orders) WHERE (age|id) (>|<|=) [0-9]{1,3};",
        ["Output only the SQL query, no explanation: names of users older than 30 (table users).",
         "Reply with only SQL: SELECT the city FROM orders WHERE id = 7;",
         "Write only the SQL statement: ages of users with id below 100."],
        32,
    ),
}


@pytest.fixture(scope="module")
def lm():
    import torch

    torch.set_num_threads(1)  # the test machines are small and shared
    from tether.models import default

    return default(progress=False)


@pytest.fixture(scope="module")
def runs(lm):
    out = {}
    for name, (pattern, prompts, max_tokens) in TASKS.items():
        c = tether.regex(pattern).compile(lm.vocab)
        gens = tether.generate(lm, prompts, c, sampler=SMC(4, seed=0), max_tokens=max_tokens)
        out[name] = (pattern, gens)
    return out


def _totals(gens):
    calls = sum(g.stats.constraint_checks for g in gens)
    tokens = sum(g.stats.tokens for g in gens)
    masks = sum(g.stats.masks for g in gens)
    return calls, tokens, masks


@pytest.mark.parametrize("shape", list(TASKS))
def test_every_output_is_complete_and_valid(runs, shape):
    pattern, gens = runs[shape]
    assert len(gens) == len(TASKS[shape][1])
    for g in gens:
        assert g.status is Status.COMPLETE, (shape, g)
        assert re.fullmatch(pattern, g.text), (shape, g.text)
        assert g.value == g.text and g.details.posterior.get(g.text, 0) > 0
        assert g.details.log_ml > float("-inf")
        accepted = [p for p in g.details.particles if p.status == "accepted"]
        assert accepted and all(re.fullmatch(pattern, p.string) for p in accepted), (shape, g.details.particles)


def test_constraint_checks_per_token_are_a_handful_not_the_vocabulary(lm, runs):
    assert lm.vocab.size == VOCAB_SIZE
    per_shape = {}
    total_calls = total_tokens = total_masks = 0
    for shape, (_, gens) in runs.items():
        calls, tokens, masks = _totals(gens)
        per_shape[shape] = (calls / tokens, masks / tokens)
        total_calls, total_tokens, total_masks = total_calls + calls, total_tokens + tokens, total_masks + masks
    mean = total_calls / total_tokens
    report = ", ".join(f"{s}: {c:.2f} checks + {m:.3f} masks" for s, (c, m) in per_shape.items())
    # masked decoding: 1 mask (all 49,152 ids) per token; AWRS-SMC: ~2-4 one-token checks
    assert mean <= 3.0, f"mean {mean:.2f} checks/token (vs {VOCAB_SIZE:,} ids per full mask); {report}"
    assert all(c <= 6.0 for c, _ in per_shape.values()), report  # the e-mail shape is the hardest (~3.5)
    assert total_masks / total_tokens <= 0.15, report  # fallback masks: rare (masked decoding: 1.0)
    print(f"\nAWRS-SMC on SmolLM2: {mean:.2f} constraint checks per token (full mask: {VOCAB_SIZE:,} ids); {report}")


def test_statistics_are_filled(runs):
    for _, gens in runs.values():
        for g in gens:
            s, d = g.stats, g.details.stats
            assert s.steps == d.steps >= len(g.token_ids) and s.tokens == d.tokens >= len(g.token_ids)
            assert s.model_calls == d.model_calls == d.steps and s.model_seconds > 0
            assert 0 < s.constraint_checks <= d.checks and s.constraint_seconds > 0
            assert _eos(g) and g.token_ids[-1] in _eos(g)  # at least one particle accepted, with EOS


def _eos(g):
    return {p.eos for p in g.details.particles if p.eos is not None}


def test_one_particle_is_awrs_decoding_and_exact_awrs_needs_no_cap(lm):
    pattern, prompts, max_tokens = TASKS["date"]
    c = tether.regex(pattern).compile(lm.vocab)
    gens = tether.generate(lm, prompts[:2], c, sampler=SMC(1, seed=3, max_checks=None), max_tokens=max_tokens)
    for g in gens:
        assert g.ok and re.fullmatch(pattern, g.text)
        assert len(g.details.particles) == 1 and not g.details.resampled_at
        assert g.details.particles[0].status == "accepted"
        assert g.stats.masks == 0
