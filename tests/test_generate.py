"""Locally constrained decoding and `tether.generate`: a toy model for exact behaviour, SmolLM2 end to end."""

from __future__ import annotations

import math
import re

import pytest
import torch

import tether
from tether.models import ModelStats
from tether.samplers import BeamSearch, Greedy, Sample, Status

# ---------------------------------------------------------------- a toy model with known probabilities

TOKENS = [b"a", b"b", b"c", b"ab", b"1", None]  # id 5 is EOS
EOS = 5


class TableLM:
    """Next-token probabilities from a function of the generated suffix (after the prompt)."""

    def __init__(self, table):
        self.vocab = tether.Vocabulary.from_tokens(TOKENS, eos_ids=[EOS])
        self.table = table
        self.stats = ModelStats()

    def prompt_ids(self, prompt: str) -> list[int]:
        return []

    def next_logprobs(self, prefixes):
        with self.stats.timed(len(prefixes), sum(map(len, prefixes))):
            rows = [torch.tensor(self.table(tuple(p)), dtype=torch.float32) for p in prefixes]
            return torch.log(torch.stack(rows))


def uniform(prefix):
    return [1 / 6] * 6


def test_greedy_takes_the_most_likely_allowed_token():
    lm = TableLM(lambda p: [0.05, 0.5, 0.1, 0.05, 0.25, 0.05])  # "b" is likeliest but not allowed
    g = tether.generate(lm, "", tether.regex(r"[ac1]{3}"), sampler=Greedy(), max_tokens=5)
    assert g.status is Status.COMPLETE and g.text == "111" and g.value == "111"
    assert g.logprob == pytest.approx(3 * math.log(0.25 / 0.4))


def test_top_k_one_and_tiny_top_p_equal_greedy():
    table = lambda p: [0.1, 0.2, 0.3, 0.15, 0.2, 0.05]  # noqa: E731
    spec = tether.regex(r"(a|b|c|ab){1,4}")
    greedy = tether.generate(TableLM(table), "", spec, max_tokens=6)
    for sampler in [Sample(top_k=1, seed=1), Sample(top_p=1e-6, seed=2), Sample(temperature=1e-3, seed=3)]:
        assert tether.generate(TableLM(table), "", spec, sampler=sampler, max_tokens=6).text == greedy.text


def test_sampling_follows_the_masked_distribution():
    lm = TableLM(lambda p: [0.1, 0.2, 0.3, 0.15, 0.2, 0.05] if not p else [0, 0, 0, 0, 0, 1.0])
    gens = tether.generate(lm, [""], tether.regex(r"a|b|c"), sampler=Sample(seed=0), max_tokens=2, n=3000)
    freq = {t: sum(g.text == t for g in gens) / len(gens) for t in "abc"}
    for t, p in zip("abc", [0.1 / 0.6, 0.2 / 0.6, 0.3 / 0.6]):
        assert abs(freq[t] - p) < 4 * math.sqrt(p * (1 - p) / len(gens)), freq
    assert all(g.ok for g in gens)


def test_top_p_keeps_the_nucleus_of_allowed_tokens():
    lm = TableLM(lambda p: [0.1, 0.2, 0.3, 0.15, 0.2, 0.05] if not p else [0, 0, 0, 0, 0, 1.0])
    gens = tether.generate(lm, [""], tether.regex(r"a|b|c"), sampler=Sample(top_p=0.6, seed=0), max_tokens=2, n=400)
    # Masked: c .5, b .33, a .17; the nucleus for 0.6 is {c, b}.
    assert {g.text for g in gens} == {"b", "c"}


def test_max_tokens_before_acceptance_is_incomplete_not_valid():
    g = tether.generate(TableLM(uniform), "", tether.regex(r"a{5}"), max_tokens=3)
    assert g.status is Status.INCOMPLETE and not g.ok and g.value is None
    assert g.text == "aaa" and str(g).startswith("<incomplete")


def test_stops_when_nothing_but_eos_can_follow():
    lm = TableLM(uniform)
    g = tether.generate(lm, "", tether.regex(r"ab"), max_tokens=10)
    assert g.ok and g.text == "ab" and EOS not in g.token_ids


def test_beam_search_beats_greedy_on_a_garden_path():
    # Greedy takes "a" (0.6) but then every continuation is unlikely; "b" then "c" is likelier overall.
    def table(p):
        if not p:
            return [0.6, 0.4, 0.0, 0.0, 0.0, 0.0]
        if p == (0,):
            return [0.0, 0.3, 0.3, 0.0, 0.0, 0.4]  # continuation mass mostly on EOS, which the regex forbids
        if p == (1,):
            return [0.0, 0.0, 0.9, 0.0, 0.1, 0.0]
        return [0, 0, 0, 0, 0, 1.0]

    spec = tether.regex(r"[ab][bc]")
    greedy = tether.generate(TableLM(table), "", spec, max_tokens=3)
    beam = tether.generate(TableLM(table), "", spec, sampler=BeamSearch(width=2), max_tokens=3)
    assert greedy.text in ("ab", "ac") and beam.text == "bc"
    assert beam.logprob > greedy.logprob


def test_vocabulary_mismatch_is_a_clear_error():
    other = tether.Vocabulary.from_tokens([b"x", None], eos_ids=[1])
    with pytest.raises(tether.VocabularyError, match="compile it with model.vocab"):
        tether.generate(TableLM(uniform), "", tether.regex("a").compile(other))


def test_one_forward_per_step_for_a_batch():
    lm = TableLM(uniform)
    gens = tether.generate(lm, [""] * 8, tether.regex(r"[c1]{4}"), sampler=Sample(seed=0), max_tokens=4)
    assert lm.stats.calls == 4 and lm.stats.sequences == 32
    assert all(g.ok and re.fullmatch(r"[c1]{4}", g.text) for g in gens)


# ---------------------------------------------------------------- SmolLM2 end to end

TASKS = [
    (r"(19|20)[0-9]{2}", "In which year {}? Answer with the year only.",
     ["did the Berlin Wall fall", "was the first iPhone released", "did World War II end",
      "did humans land on the Moon", "was the World Wide Web invented"]),
    (r"(yes|no)", "Answer yes or no: {}",
     ["Is water wet?", "Is the Sun a star?", "Can fish fly?", "Is 7 a prime number?", "Is Paris in Spain?"]),
    (r"(red|green|blue|yellow|black|white)", "What colour is {}? One word.",
     ["the sky", "grass", "snow", "a banana", "coal"]),
    (r"[0-9]{1,3}", "How many {}? Answer with a number.",
     ["legs does a spider have", "days are in a week", "minutes are in an hour", "sides has a hexagon",
      "continents are there"]),
    (r"[0-9]{4}-[0-9]{2}-[0-9]{2}", "Write the date of {} as YYYY-MM-DD.",
     ["New Year's Day 2024", "Christmas 2023", "the first day of 2000", "July 4th 1976", "today"]),
    (r"[a-z]{2,10}@[a-z]{2,8}\.(com|org)", "Write an e-mail address for {}.",
     ["a baker", "a teacher", "a pilot", "a company", "a student"]),
    (r"[A-Z][a-z]{1,10}", "Name {}. One word.", ["a planet", "a city in France", "a river", "a fruit", "a month"]),
    (r"([01][0-9]|2[0-3]):[0-5][0-9]", "At what time (HH:MM) {}?",
     ["is noon", "do people eat breakfast", "is midnight", "does school start", "is sunset"]),
    (r"\{\"city\": \"[A-Z][a-z]{1,10}\", \"country\": \"[A-Z][a-z]{1,10}\"\}", "Give JSON with the city and country of {}.",
     ["the Eiffel Tower", "Big Ben", "the Colosseum", "the Statue of Liberty", "the Sydney Opera House"]),
    (r"(positive|negative|neutral)", "Sentiment of: '{}'",
     ["I love it", "This is awful", "It is a chair", "Best day ever", "I hate waiting"]),
]
assert sum(len(t[2]) for t in TASKS) == 50

SAMPLERS = {
    "greedy": Greedy(),
    "multinomial": Sample(seed=0),
    "top_k": Sample(top_k=5, temperature=0.8, seed=1),
    "top_p": Sample(top_p=0.9, seed=2),
    "beam": BeamSearch(width=3),
}


@pytest.fixture(scope="module")
def smol():
    return tether.models.default(progress=False)


@pytest.mark.model
@pytest.mark.parametrize("sampler_name", list(SAMPLERS))
def test_smollm2_outputs_full_match_their_regex(smol, sampler_name):
    sampler = SAMPLERS[sampler_name]
    for pattern, template, subjects in TASKS:
        spec = tether.regex(pattern)
        gens = tether.generate(smol, [template.format(s) for s in subjects], spec, sampler=sampler, max_tokens=40)
        assert len(gens) == len(subjects)
        for g in gens:
            assert g.status is Status.COMPLETE, (pattern, g)
            assert re.fullmatch(pattern, g.text), (pattern, g.text)
            assert g.value == g.text


@pytest.mark.model
def test_smollm2_batch_of_eight_is_one_forward_per_step(smol):
    before = smol.stats.calls
    gens = tether.generate(smol, "Pick a number.", tether.regex(r"[0-9]{6}"), sampler=Sample(seed=4),
                           max_tokens=12, n=8)
    steps = gens[0].stats.steps
    assert smol.stats.calls - before == steps == gens[0].stats.model_calls
    assert all(g.ok and re.fullmatch(r"[0-9]{6}", g.text) for g in gens)


@pytest.mark.model
def test_smollm2_json_value_is_parsed(smol):
    import json

    pattern = r'\{"answer": (true|false)\}'
    g = tether.generate(smol, "Is the Earth round? Reply as JSON.", tether.regex(pattern, parse=json.loads))
    assert g.ok and g.value in ({"answer": True}, {"answer": False})
