"""tether on llama.cpp: the CausalLM adapter over the SmolLM2 GGUF (greedy, beam, SMC), its
agreement with the transformers adapter on the same file, its KV reuse, and the logits
processor for `create_completion`."""

from __future__ import annotations

import pytest
import torch

import tether
from tether.integrations.llamacpp import LogitsProcessor
from tether.models.llamacpp import LlamaCppLM

PERSON = tether.json_schema({
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"]})
CASES = [
    ("In which year did the Berlin Wall fall?", tether.regex(r"(19|20)[0-9]{2}")),
    ("Is the sea salty? Answer yes or no.", tether.regex(r"(yes|no)")),
    ("Describe a person as JSON.", PERSON),
    ("Write a sum of small numbers.", tether.lark('?start: sum\nsum: atom ("+" atom)~0..2\natom: /[1-9]/ | "(" sum ")"')),
]


@pytest.fixture(scope="module")
def lm():
    with LlamaCppLM.from_path(n_ctx=1024) as model:
        yield model


@pytest.fixture(scope="module")
def reference():
    return tether.models.default(progress=False)


@pytest.mark.parametrize("prompt,spec", CASES, ids=[c[0][:24] for c in CASES])
def test_greedy_is_in_the_language_and_agrees_with_the_transformers_adapter(lm, reference, prompt, spec):
    assert lm.prompt_ids(prompt) == reference.prompt_ids(prompt)
    ours = tether.generate(lm, prompt, spec, max_tokens=40)
    theirs = tether.generate(reference, prompt, spec, max_tokens=40)
    assert ours.ok and spec.matches(ours.text), ours
    assert ours.text == theirs.text


@pytest.mark.parametrize("sampler", [tether.BeamSearch(width=3), tether.SMC(4, seed=0)], ids=["beam", "smc"])
def test_beam_and_smc_run_on_llama_cpp(lm, sampler):
    for prompt, spec in CASES[:3]:
        out = tether.generate(lm, prompt, spec, sampler=sampler, max_tokens=40)
        assert out.ok and spec.matches(out.text), (prompt, out)


def test_log_probabilities_do_not_depend_on_what_was_scored_before(lm):
    a = lm.prompt_ids("Name a colour")
    b = lm.prompt_ids("Name an animal")
    lm.clear_cache()
    fresh = lm.next_logprobs([a + [28]])[0]
    lm.clear_cache()
    lm.next_logprobs([b, a])  # the KV cache now holds a
    lm.stats.reset()
    reused = lm.next_logprobs([a + [28]])[0]
    assert lm.stats.forward_tokens == 1  # only the new token ran
    assert torch.allclose(fresh, reused, atol=1e-4)
    lm.next_logprobs([b])
    again = lm.next_logprobs([a + [28]])[0]  # from the cache of log-probabilities
    assert torch.equal(again, reused)


def test_bad_prefixes_are_refused(lm):
    with pytest.raises(ValueError, match="at least one token"):
        lm.next_logprobs([[]])
    with pytest.raises(ValueError, match="outside"):
        lm.next_logprobs([[1, 10**6]])
    with pytest.raises(tether.ContextLengthExceeded):
        lm.next_logprobs([[1] * 2000])


def test_logits_processor_in_create_completion(lm):
    spec = tether.regex(r"(19|20)[0-9]{2}")
    proc = LogitsProcessor(spec, lm)
    for prompt in ["The Berlin Wall fell in the year", "The first Moon landing was in"]:
        out = lm.llama.create_completion(prompt, logits_processor=[proc], max_tokens=8, temperature=0.8, seed=3)
        text = out["choices"][0]["text"]
        assert spec.matches(text), text
        assert out["choices"][0]["finish_reason"] == "stop"
