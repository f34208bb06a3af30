"""`tether.stream` and `tether.agenerate`: pieces as tokens are taken, held back until they decode,
joined equal to the final text; async generation off the event loop."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import torch

import tether
from tether.models import ModelStats
from tether.samplers import SMC, BeamSearch, Greedy, Sample

# "é" is two bytes, spelled here by two tokens, so its first byte must be held back.
TOKENS = [b"a", b"\xc3", b"\xa9", b"b", None]
EOS = 4


class ScriptLM:
    """Puts all probability on the next token of a script (then EOS); `gate`, if set, is waited
    on before every call after the first, so a test can see pieces before the generation ends."""

    def __init__(self, script, gate: threading.Event | None = None):
        self.vocab = tether.Vocabulary.from_tokens(TOKENS, eos_ids=[EOS])
        self.script, self.gate = list(script), gate
        self.stats = ModelStats()
        self.calls = 0

    def prompt_ids(self, prompt):
        return []

    def next_logprobs(self, prefixes):
        if self.gate is not None and self.calls:
            assert self.gate.wait(10), "the test never opened the gate"
        self.calls += 1
        rows = []
        for p in prefixes:
            row = torch.full((len(TOKENS),), 1e-6)
            row[self.script[len(p)] if len(p) < len(self.script) else EOS] = 1.0
            rows.append(torch.log(row / row.sum()))
        return torch.stack(rows)


SPEC = tether.regex(r"(a|é|b)+")


@pytest.mark.parametrize("sampler", [Greedy(), Sample(seed=0, top_k=1)])
def test_pieces_hold_back_split_characters_and_join_to_the_text(sampler):
    lm = ScriptLM([0, 1, 2, 3, 1, 2])
    pieces = list(tether.stream(lm, "", SPEC, sampler=sampler, max_tokens=10))
    assert [p.text for p in pieces[:-1]] == ["a", "é", "b", "é"]  # b"\xc3" alone yields nothing
    final = pieces[-1]
    assert final.generation is not None and final.generation.ok and final.generation.text == "aébé"
    assert all(p.generation is None for p in pieces[:-1])
    assert "".join(map(str, pieces)) == final.generation.text


def test_pieces_arrive_before_the_generation_ends():
    gate = threading.Event()
    lm = ScriptLM([0, 3, 0], gate)
    it = tether.stream(lm, "", SPEC, max_tokens=10)
    first = next(it)  # the model is blocked after its first call: this piece came mid-generation
    assert first.text == "a" and first.generation is None and lm.calls == 1
    gate.set()
    rest = list(it)
    assert rest[-1].generation.text == "aba"


def test_leaving_a_stream_early_stops_the_worker():
    lm = ScriptLM([0] * 50)
    it = tether.stream(lm, "", SPEC, max_tokens=50)
    assert next(it).text == "a"
    it.close()
    calls = lm.calls
    time.sleep(0.05)
    assert lm.calls == calls < 50
    assert not [t for t in threading.enumerate() if t.name == "tether-stream"]


@pytest.mark.parametrize("sampler", [BeamSearch(width=2), SMC(n_particles=2, seed=0)])
def test_samplers_that_may_drop_a_sequence_stream_their_result_at_the_end(sampler):
    lm = ScriptLM([0, 1, 2])
    pieces = list(tether.stream(lm, "", SPEC, sampler=sampler, max_tokens=10))
    assert len(pieces) == 1 and pieces[0].text == "aé" == pieces[0].generation.text


def test_an_incomplete_stream_still_ends_with_its_generation():
    lm = ScriptLM([0] * 20)
    pieces = list(tether.stream(lm, "", SPEC, max_tokens=3))
    assert pieces[-1].generation.status is tether.Status.INCOMPLETE
    assert "".join(p.text for p in pieces) == "aaa"


def test_errors_of_the_run_reach_the_consumer():
    lm = ScriptLM([0])
    with pytest.raises(ValueError, match="max_tokens"):
        list(tether.stream(lm, "", SPEC, max_tokens=0))
    with pytest.raises(TypeError, match="one prompt"):
        list(tether.stream(lm, ["a", "b"], SPEC))


def test_agenerate_runs_off_the_event_loop():
    gate = threading.Event()
    lm = ScriptLM([0, 3], gate)

    async def main():
        task = asyncio.create_task(tether.agenerate(lm, "", SPEC, max_tokens=5))
        await asyncio.sleep(0.05)  # the loop is free while the model waits on the gate
        assert not task.done()
        gate.set()
        return await task

    gen = asyncio.run(main())
    assert gen.ok and gen.text == "ab"


# ---------------------------------------------------------------- SmolLM2


@pytest.fixture(scope="module")
def smol():
    return tether.models.default(progress=False)


@pytest.mark.model
@pytest.mark.parametrize("sampler", [Greedy(), Sample(seed=3, temperature=0.8)], ids=["greedy", "sample"])
def test_smollm2_stream_joins_to_the_generated_text(smol, sampler):
    spec = tether.json_schema({"type": "object", "properties": {"city": {"type": "string", "maxLength": 20},
                                                                "population": {"type": "integer"}},
                               "required": ["city", "population"]})
    prompt = "Give the largest city of Japan and its population as JSON."
    arrivals, pieces = [], []
    for piece in tether.stream(smol, prompt, spec, sampler=sampler, max_tokens=48):
        arrivals.append(time.perf_counter())
        pieces.append(piece)
    gen = pieces[-1].generation
    assert gen is not None and gen.ok, gen
    assert "".join(p.text for p in pieces) == gen.text
    assert len(pieces) > 3 and arrivals[0] < arrivals[-1]  # pieces came one by one, not all at the end
    if isinstance(sampler, Greedy):
        assert gen.text == tether.generate(smol, prompt, spec, max_tokens=48).text
