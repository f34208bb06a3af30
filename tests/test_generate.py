"""Locally constrained decoding and `tether.generate`: a toy model for exact behaviour, SmolLM2 end to end."""

from __future__ import annotations

import math
import re
import subprocess
import sys

import pytest
import torch

import tether
from tether.errors import ContextLengthExceeded, VocabularyMismatch
from tether.models import ModelStats
from tether.samplers import SMC, BeamSearch, Greedy, Sample, Status

from conftest import real_vocab

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


class VocabLM:
    """A model over any vocabulary: uniform next-token log-probs, counting its calls."""

    def __init__(self, vocab):
        self.vocab = vocab
        self.stats = ModelStats()

    def prompt_ids(self, prompt: str) -> list[int]:
        return [1]

    def next_logprobs(self, prefixes):
        with self.stats.timed(len(prefixes), sum(map(len, prefixes))):
            return torch.log_softmax(torch.zeros(len(prefixes), self.vocab.size), dim=-1)


MISMATCH_SAMPLERS = {"greedy": Greedy(), "sample": Sample(seed=0), "beam": BeamSearch(width=2),
                     "smc": SMC(2, seed=0), "awrs": SMC(1, seed=0)}


@pytest.mark.parametrize("sampler", list(MISMATCH_SAMPLERS))
def test_a_constraint_for_another_vocabulary_of_the_same_size_is_refused(sampler):
    """mistral-sp32k and llama-spm both have 32,000 ids, but most ids spell different text:
    a constraint compiled for one would let the other's model write text outside the language."""
    mistral, llama = real_vocab("mistral-sp32k"), real_vocab("llama-spm")
    assert mistral.size == llama.size and mistral.fingerprint != llama.fingerprint
    lm = VocabLM(llama)
    c = tether.regex(r"[0-9]{4}").compile(mistral)
    with pytest.raises(VocabularyMismatch, match="compile it with model.vocab") as info:
        tether.generate(lm, "Year?", c, sampler=MISMATCH_SAMPLERS[sampler], max_tokens=8)
    message = str(info.value)
    assert mistral.fingerprint[:12] in message and llama.fingerprint[:12] in message  # names both
    assert "pass the spec uncompiled" in message and "same size, but id" in message
    assert lm.stats.calls == 0  # refused before any work
    with pytest.raises(VocabularyMismatch):
        MISMATCH_SAMPLERS[sampler].run(lm, [[1]], c, 8)  # the samplers check on their own too


def test_bind_compares_fingerprints_and_the_uncompiled_spec_is_compiled_for_the_model():
    from tether.generation import bind

    llama = real_vocab("llama-spm")
    lm = VocabLM(llama)
    with pytest.raises(VocabularyMismatch):
        bind(tether.regex(r"[0-9]{4}").compile(real_vocab("mistral-sp32k")), lm)
    small = tether.Vocabulary.from_tokens([b"x", None], eos_ids=[1])
    with pytest.raises(tether.VocabularyError, match="compile it with model.vocab"):  # sizes differ too
        tether.generate(TableLM(uniform), "", tether.regex("a").compile(small))
    c = tether.regex(r"[0-9]{4}").compile(llama)
    assert bind(c, lm) is c
    g = tether.generate(lm, "Year?", tether.regex(r"[0-9]{4}"), max_tokens=8)
    assert g.ok and re.fullmatch(r"[0-9]{4}", g.text) and llama.decode(g.token_ids).decode() == g.text


@pytest.mark.parametrize("code", [
    # the module lives at tether.generation; importing it leaves the function in place
    "import tether.generation\n"
    "assert inspect.isfunction(tether.generate) and tether.generate is tether.generation.generate\n",
    # `import tether.generate` must not replace the function with a module (it used to)
    "try:\n"
    "    import tether.generate\n"
    "except ImportError:\n"
    "    pass\n"
    "assert inspect.isfunction(tether.generate), tether.generate\n",
])
def test_no_module_shadows_the_function_tether_generate(code):
    done = subprocess.run([sys.executable, "-c", "import inspect, tether\n" + code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


# ---------------------------------------------------------------- n results per prompt, batched beams


def test_beam_search_returns_the_n_best_distinct_beams_ranked():
    lm = TableLM(lambda p: [0.1, 0.2, 0.3, 0.15, 0.2, 0.05] if not p else [0, 0, 0, 0, 0, 1.0])
    gens = tether.generate(lm, "", tether.regex(r"a|b|c"), sampler=BeamSearch(width=3), max_tokens=2, n=2)
    assert [g.text for g in gens] == ["c", "b"] and all(g.ok for g in gens)
    # log-probabilities under the masked distribution (a, b, c hold 0.6 of the mass)
    assert gens[0].logprob == pytest.approx(math.log(0.3 / 0.6)) and gens[1].logprob == pytest.approx(math.log(0.2 / 0.6))


def test_beam_search_counts_two_tokenizations_of_one_text_once():
    # "ab" is spelled a+b (0.4, then b is the only allowed token) or ab (0.35); "c" (0.15) is the
    # second distinct text, not the second spelling of "ab"
    def table(p):
        if not p:
            return [0.4, 0.05, 0.15, 0.35, 0.0, 0.05]
        return [0.0, 0.9, 0.0, 0.0, 0.0, 0.1] if p == (0,) else [0, 0, 0, 0, 0, 1.0]

    gens = tether.generate(TableLM(table), [""], tether.regex(r"ab|c"), sampler=BeamSearch(width=3), max_tokens=3, n=2)
    assert [g.text for g in gens] == ["ab", "c"]
    assert gens[0].token_ids == [0, 1] and gens[0].logprob == pytest.approx(math.log(0.4 / 0.9))


def test_beam_search_pads_with_dead_results_when_fewer_than_n_strings_exist():
    gens = tether.generate(TableLM(uniform), "", tether.regex(r"a"), sampler=BeamSearch(width=2), max_tokens=3, n=2)
    assert [(g.text, g.status) for g in gens] == [("a", Status.COMPLETE), ("", Status.DEAD)]


def test_n_that_cannot_be_honoured_is_a_clear_error():
    spec = tether.regex(r"a|b|c")
    with pytest.raises(ValueError, match=r"Sample\(.*BeamSearch"):
        tether.generate(TableLM(uniform), "", spec, n=2)  # Greedy: n identical results
    with pytest.raises(ValueError, match=r"width=3"):
        tether.generate(TableLM(uniform), "", spec, sampler=BeamSearch(width=2), n=3)
    with pytest.raises(ValueError, match="n must be"):
        tether.generate(TableLM(uniform), "", spec, sampler=Sample(), n=0)
    assert len(tether.generate(TableLM(uniform), "", spec, n=1)) == 1


class PromptLM(TableLM):
    """TableLM whose prompts are ids: one "1" (id 4) per character, so prompts differ in the prefix."""

    def prompt_ids(self, prompt: str) -> list[int]:
        return [4] * len(prompt)


def test_beam_search_batches_every_prompt_into_one_call_per_step():
    lm = PromptLM(uniform)
    gens = tether.generate(lm, ["x", "yy", "zzz"], tether.regex(r"[c1]{3}"), sampler=BeamSearch(width=2),
                           max_tokens=5, n=2)
    assert len(gens) == 6 and all(g.ok and re.fullmatch(r"[c1]{3}", g.text) for g in gens)
    assert lm.stats.calls == 3  # 3 steps x 1 call, not 3 steps x 3 prompts
    assert lm.stats.sequences == 3 * (1 + 2 + 2)  # each call holds every prompt's live beams
    assert [len(g.token_ids) for g in gens] == [3] * 6
    assert gens[0].text != gens[1].text


def test_every_generation_has_its_own_stats():
    # after "xx" the model prefers "a" (done in 1 step); after "x" it prefers "b" (3 steps)
    def table(p):
        return [0.6, 0.2, 0.1, 0.0, 0.0, 0.1] if p[:2] == (4, 4) else [0.1, 0.6, 0.1, 0.0, 0.1, 0.1]

    lm = PromptLM(table)
    gens = tether.generate(lm, ["x", "xx"], tether.regex(r"a|bbb"), max_tokens=5)
    assert [g.text for g in gens] == ["bbb", "a"]
    long, short = gens[0].stats, gens[1].stats
    assert long is not short
    assert (long.steps, long.tokens, long.masks, long.model_calls) == (3, 3, 3, 3)
    assert (short.steps, short.tokens, short.masks, short.model_calls) == (1, 1, 1, 1)
    assert lm.stats.calls == 3
    # the first call is shared by both: each gets half of its seconds
    assert long.model_seconds > short.model_seconds > 0
    beams = tether.generate(lm, ["x", "xx"], tether.regex(r"a|bbb"), sampler=BeamSearch(width=2), max_tokens=5)
    assert beams[0].stats is not beams[1].stats and beams[0].stats.steps != beams[1].stats.steps


# ---------------------------------------------------------------- helpful errors for common mistakes


def test_a_raw_hugging_face_model_is_a_type_error_that_says_to_wrap_it():
    import transformers

    config = transformers.LlamaConfig(vocab_size=16, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                                      num_attention_heads=2, num_key_value_heads=1)
    raw = transformers.LlamaForCausalLM(config)
    with pytest.raises(TypeError, match=r"tether\.models\.TransformersLM\(model, tokenizer\)"):
        tether.generate(raw, "Hi", tether.regex("a"))
    with pytest.raises(TypeError, match="load it first"):
        tether.generate("HuggingFaceTB/SmolLM2-135M-Instruct", "Hi", tether.regex("a"))
    with pytest.raises(TypeError, match="tether CausalLM"):
        tether.generate(object(), "Hi", tether.regex("a"))


@pytest.mark.parametrize("prompt, fix", [
    ([1, 2, 3], r"token ids.*tokenizer\.decode"),
    (torch.tensor([1, 2, 3]), "token ids"),
    ([[1, 2], [3]], r"prompt 0 of the batch: the prompt is a list of token ids"),
    (b"Hi", r"decode\('utf-8'\)"),
    ({"role": "user", "content": "Hi"}, "pass a list of messages"),
    (None, "a prompt must be a str or a list of"),
    (["Hi", 3], "prompt 1 of the batch"),
])
def test_a_prompt_that_is_not_text_or_messages_is_a_type_error_naming_the_fix(prompt, fix):
    with pytest.raises(TypeError, match=fix):
        tether.generate(TableLM(uniform), prompt, tether.regex("a"))


class ChatLM(TableLM):
    """TableLM that records the prompts it was asked to encode."""

    def __init__(self, table):
        super().__init__(table)
        self.seen = []

    def prompt_ids(self, prompt):
        self.seen.append(prompt)
        return []


def test_chat_messages_are_one_prompt_and_a_list_of_them_a_batch():
    lm = ChatLM(uniform)
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say a"}]
    g = tether.generate(lm, chat, tether.regex("a"))
    assert isinstance(g, tether.Generation) and g.ok and lm.seen == [chat]
    gens = tether.generate(lm, [chat, "plain text", chat[1:]], tether.regex("a"))
    assert len(gens) == 3 and lm.seen[1:] == [chat, "plain text", chat[1:]]
    assert len(tether.generate(lm, chat, tether.regex("a"), sampler=Sample(seed=0), n=2)) == 2


@pytest.mark.parametrize("chat, error, match", [
    ([{"role": "usr", "content": "Hi"}], ValueError, "role 'usr'; expected one of"),
    ([{"role": "user"}], ValueError, "message 0 has no 'content' key"),
    ([{"role": "user", "content": ["Hi"]}], TypeError, "content of type list; it must be a str"),
    ([{"role": "user", "content": "Hi"}, "Hi"], TypeError, "message 1 must be a dict"),
])
def test_bad_messages_are_clear_errors(chat, error, match):
    with pytest.raises(error, match=match):
        tether.generate(ChatLM(uniform), chat, tether.regex("a"))


# ---------------------------------------------------------------- the model's context


class ShortLM(PromptLM):
    context_length = 8


@pytest.mark.parametrize("sampler", [Greedy(), Sample(seed=0), BeamSearch(width=2), SMC(2, seed=0)])
def test_a_prompt_beyond_the_context_is_a_typed_error_before_any_model_call(sampler):
    lm = ShortLM(uniform)
    with pytest.raises(ContextLengthExceeded, match=r"9 tokens, more than the model's context of 8") as info:
        tether.generate(lm, "x" * 9, tether.regex("a+"), sampler=sampler, max_tokens=2)
    assert (info.value.prompt_tokens, info.value.max_tokens, info.value.context_length) == (9, 2, 8)
    with pytest.raises(ContextLengthExceeded, match=r"6 tokens \+ max_tokens=3 .* max_tokens=2 or less"):
        tether.generate(lm, "x" * 6, tether.regex("a+"), sampler=sampler, max_tokens=3)
    assert lm.stats.calls == 0
    assert isinstance(info.value, ValueError) and isinstance(info.value, tether.TetherError)
    assert tether.generate(lm, "x" * 6, tether.regex("a"), sampler=sampler, max_tokens=2)  # fits exactly


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
    steps = max(g.stats.steps for g in gens)
    assert smol.stats.calls - before == steps and all(g.stats.model_calls == g.stats.steps for g in gens)
    assert all(g.ok and re.fullmatch(r"[0-9]{6}", g.text) for g in gens)


@pytest.mark.model
def test_smollm2_json_value_is_parsed(smol):
    import json

    pattern = r'\{"answer": (true|false)\}'
    g = tether.generate(smol, "Is the Earth round? Reply as JSON.", tether.regex(pattern, parse=json.loads))
    assert g.ok and g.value in ({"answer": True}, {"answer": False})
