"""`tether.integrations.transformers.LogitsProcessor` inside `model.generate`, and `apply_bitmask`.

Fast tests run a tiny randomly initialised Llama over the SmolLM2 tokenizer (its logits 64
columns wider than the tokenizer, as padded model heads are); the `model` tests run the real
SmolLM2-135M-Instruct. Every output must be in the constraint's language and end with EOS.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import transformers
from transformers import LogitsProcessorList

import tether
import tether.automata.bitmask as bitmask_module
from tether import Vocabulary
from tether.automata.bitmask import apply_bitmask, pack_mask
from tether.errors import VocabularyMismatch
from tether.integrations.transformers import LogitsProcessor

from conftest import real_vocab


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Small models on a busy 2-core machine: intra-op threads only add OpenMP spin-waits."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------- specs and prompts

YEAR = tether.regex(r"(19|20)[0-9]{2}")
SHORT = tether.regex(r"(yes|no|maybe|[0-9]{1,3})")
PERSON = tether.json_schema({
    "type": "object",
    "properties": {"name": {"type": "string", "pattern": "^[A-Z][a-z]{1,10}$"},
                   "age": {"type": "integer", "minimum": 1, "maximum": 99}},
    "required": ["name", "age"], "additionalProperties": False})
SUM = tether.lark('start: NUM OP NUM\nOP: "+" | "-"\nNUM: /[0-9]{1,3}/')

PROMPTS = [  # four lengths, so left padding differs per row
    "Answer:",
    "What year did people first walk on the Moon? Answer with the year only.",
    "Name a year.",
    "Give one number or a word, nothing else, as the reply to this rather long question, please:",
]

STRATEGIES = {
    "greedy": dict(do_sample=False),
    "sample": dict(do_sample=True, top_k=0, temperature=1.0),
    "beam": dict(do_sample=False, num_beams=4, num_return_sequences=4),
}


def left_pad(rows: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """input_ids and attention_mask for `generate`, left-padded by hand (no tokenizer state touched)."""
    width = max(map(len, rows))
    ids = torch.tensor([[pad_id] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return {"input_ids": ids, "attention_mask": mask}


def check_outputs(spec, proc: LogitsProcessor, tokenizer, out: torch.Tensor, prompt_len: int) -> list[str]:
    """Each row: EOS reached (not the length limit), and the text before it in the language."""
    texts = []
    for row in out[:, prompt_len:].tolist():
        ends = [i for i, t in enumerate(row) if t in proc.eos_token_id]
        assert ends, f"no EOS: generation hit the length limit, {row}"
        body = row[: ends[0]]
        text = tokenizer.decode(body, skip_special_tokens=True)
        assert spec.matches(proc.vocab.decode(body)), (proc.vocab.decode(body), body)
        assert spec.matches(text), text
        texts.append(text)
    return texts


def generate(model, proc, inputs, strategy: str, max_new_tokens: int, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    with torch.inference_mode():
        return model.generate(**inputs, logits_processor=LogitsProcessorList([proc]),
                              max_new_tokens=max_new_tokens, **STRATEGIES[strategy])


# --------------------------------------------------------------------------- tiny Llama


@pytest.fixture(scope="module")
def smol_tokenizer():
    """SmolLM2's tokenizer, read from the GGUF of the embedded model (no network)."""
    from tether.models.default import default_model_path

    path = default_model_path()
    return transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name,
                                                      local_files_only=True)


@pytest.fixture(scope="module")
def tiny_model(smol_tokenizer):
    torch.manual_seed(0)
    tok = smol_tokenizer
    config = transformers.LlamaConfig(
        vocab_size=len(tok) + 64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    return transformers.LlamaForCausalLM(config).eval()


def tiny_inputs(tok, prompts=PROMPTS) -> dict[str, torch.Tensor]:
    return left_pad([tok(p)["input_ids"] for p in prompts], tok.pad_token_id)


@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize("spec", [SHORT, PERSON, SUM], ids=["regex", "json_schema", "lark"])
def test_tiny_generate_stays_in_the_language(tiny_model, smol_tokenizer, spec, strategy):
    proc = LogitsProcessor(spec, smol_tokenizer)
    inputs = tiny_inputs(smol_tokenizer)
    out = generate(tiny_model, proc, inputs, strategy, max_new_tokens=40)
    assert out.shape[0] == 4 * (4 if strategy == "beam" else 1)
    check_outputs(spec, proc, smol_tokenizer, out, inputs["input_ids"].shape[1])
    assert len(proc._states) <= out.shape[0]  # pruned: one prefix per row at most


@pytest.mark.parametrize("pattern", ["a", "(yes|no)"])
def test_tiny_beam_search_with_fewer_strings_than_beams(tiny_model, smol_tokenizer, pattern):
    """Four beams, four returned sequences, a language of one or two strings: beam search's
    candidates run out of allowed tokens, and every returned sequence is still in the language."""
    spec = tether.regex(pattern)
    proc = LogitsProcessor(spec, smol_tokenizer)
    inputs = tiny_inputs(smol_tokenizer, PROMPTS[:2])
    out = generate(tiny_model, proc, inputs, "beam", max_new_tokens=10)
    assert set(check_outputs(spec, proc, smol_tokenizer, out, inputs["input_ids"].shape[1])) <= {"a", "yes", "no"}


def test_tiny_ids_past_the_vocabulary_are_masked(tiny_model, smol_tokenizer):
    proc = LogitsProcessor(SHORT, smol_tokenizer)
    scores = torch.zeros(2, tiny_model.config.vocab_size)
    proc(torch.tensor([[5, 6], [7, 8]]), scores)
    assert torch.isneginf(scores[:, proc.vocab.size:]).all()
    allowed = torch.from_numpy(proc.constraint.mask(proc.constraint.initial()))
    assert torch.equal(torch.isfinite(scores[:, : proc.vocab.size]), allowed.expand(2, -1))


def test_tiny_processor_reused_across_generate_calls(tiny_model, smol_tokenizer):
    tok = smol_tokenizer
    proc = LogitsProcessor(SHORT, tok)
    calls = []
    for prompts, strategy in [(PROMPTS[:2], "greedy"), (PROMPTS[1:], "beam"), (PROMPTS[2:3], "sample"),
                              (PROMPTS[:2], "greedy")]:
        inputs = tiny_inputs(tok, prompts)
        out = generate(tiny_model, proc, inputs, strategy, max_new_tokens=40)
        check_outputs(SHORT, proc, tok, out, inputs["input_ids"].shape[1])
        assert proc.prompt_length == inputs["input_ids"].shape[1]
        calls.append(out)
    assert torch.equal(calls[0], calls[3])  # the same greedy call gives the same output after reuse


def test_tiny_new_prompt_one_token_longer_is_a_new_generation(tiny_model, smol_tokenizer):
    """A prompt exactly one token longer than the last call's rows, but not an extension of them."""
    tok = smol_tokenizer
    proc = LogitsProcessor(SHORT, tok)
    seen = []

    class Spy(transformers.LogitsProcessor):
        def __call__(self, input_ids, scores):
            seen.append(input_ids.shape[1])
            return scores

    first = tiny_inputs(tok, PROMPTS[:1])
    with torch.inference_mode():
        tiny_model.generate(**first, logits_processor=LogitsProcessorList([proc, Spy()]), max_new_tokens=40,
                            do_sample=False)
    prompt = tok("x " * (seen[-1] + 1))["input_ids"][: seen[-1] + 1]
    assert len(prompt) == seen[-1] + 1
    second = left_pad([prompt], tok.pad_token_id)
    out = generate(tiny_model, proc, second, "greedy", max_new_tokens=40)
    assert proc.prompt_length == len(prompt)
    check_outputs(SHORT, proc, tok, out, len(prompt))


# --------------------------------------------------------------------------- bookkeeping, by hand


def reference_allowed(proc: LogitsProcessor, generated: list[int], width: int) -> torch.Tensor:
    """From scratch for one row: the constraint's mask after its ids, with exactly the stop ids in
    accepting states; after an EOS or a rejected id, only the stop ids."""
    c, state = proc.constraint, proc.constraint.initial()
    stop = torch.zeros(width, dtype=torch.bool)
    stop[list(proc.eos_token_id)] = True
    for t in generated:
        if t in proc.eos_token_id or t in proc.vocab.eos_ids or t >= proc.vocab.size or not c.allows(state, t):
            return stop
        state = c.advance(state, t)
    allowed = torch.zeros(width, dtype=torch.bool)
    allowed[: proc.vocab.size] = torch.from_numpy(c.mask(state))
    allowed[list(proc.vocab.eos_ids)] = False
    return allowed | stop if c.is_accepting(state) else allowed


@pytest.mark.parametrize("spec", [SHORT, PERSON, SUM], ids=["regex", "json_schema", "lark"])
def test_random_beam_like_walk_matches_a_from_scratch_reference(smol_tokenizer, spec):
    """Rows reordered and duplicated between calls (as beam search does), rows that end and get
    padding, rows that take a rejected id: every call's mask equals the from-scratch one."""
    rng = random.Random(1)
    proc = LogitsProcessor(spec, smol_tokenizer)
    width, pad = proc.vocab.size + 64, 0
    rows = [[rng.randrange(3, 1000) for _ in range(5)]] * 8  # eight beams of one prompt
    prompt_len = 5
    for step in range(30):
        scores = torch.randn(len(rows), width)
        proc(torch.tensor(rows), scores)
        assert len(proc._states) <= len(rows)
        for row, got in zip(rows, scores):
            want = reference_allowed(proc, row[prompt_len:], width)
            assert torch.equal(torch.isfinite(got), want), (step, row[prompt_len:])
        children = []  # two per row, like beam search's 2 x num_beams candidates
        for row, got in zip(rows, scores):
            allowed = torch.isfinite(got).nonzero()[:, 0].tolist()
            for _ in range(2):
                if any(t in proc.eos_token_id for t in row[prompt_len:]):
                    t = pad  # generate feeds finished rows padding
                elif rng.random() < 0.02:
                    # a rejected id, as beam search keeps -inf beams: in the vocabulary or a padded column
                    t = rng.randrange(proc.vocab.size) if rng.random() < 0.5 else rng.randrange(proc.vocab.size, width)
                else:
                    t = rng.choice(allowed)
                children.append(row + [t])
        rows = [rng.choice(children) for _ in rows]  # reordered, some duplicated, some dropped
    assert proc.prompt_length == prompt_len


def test_eos_ids_are_what_generate_stops_on(smol_tokenizer):
    """A constraint whose vocabulary has two EOS ids (0 and 2): with eos_token_id=2 only 2 is
    offered in accepting states, 0 never; without it the tokenizer's eos_token_id (2)."""
    vocab = Vocabulary.from_tokenizer(smol_tokenizer)
    assert set(vocab.eos_ids) == {0, 2}
    c = tether.regex(r"[0-9]{1,2}").compile(vocab)
    digit = smol_tokenizer.convert_tokens_to_ids("7")
    for proc in (LogitsProcessor(c, smol_tokenizer, eos_token_id=[2]), LogitsProcessor(c, smol_tokenizer)):
        assert proc.eos_token_id == (2,)
        scores = torch.zeros(3, vocab.size)
        proc(torch.tensor([[9, 9], [9, 9], [9, 9]]), scores)  # the initial state: not accepting
        assert torch.isneginf(scores[:, [0, 2]]).all()
        scores = torch.zeros(3, vocab.size)
        proc(torch.tensor([[9, 9, digit], [9, 9, digit], [9, 9, digit]]), scores)  # "7": accepting
        assert torch.isfinite(scores[:, 2]).all() and torch.isneginf(scores[:, 0]).all()
        assert torch.isfinite(scores[0]).sum() > 1
        scores = torch.zeros(3, vocab.size)
        proc(torch.tensor([[9, 9, digit, digit]] * 3), scores)  # "77": finished, only EOS
        assert torch.isfinite(scores).sum(1).tolist() == [1, 1, 1] and torch.isfinite(scores[:, 2]).all()


def test_a_vocabulary_can_stand_for_the_tokenizer(smol_tokenizer):
    vocab = Vocabulary.from_tokenizer(smol_tokenizer, eos_ids=[2])
    proc = LogitsProcessor(SHORT, vocab)
    assert proc.vocab.fingerprint == vocab.fingerprint and proc.eos_token_id == (2,)
    compiled = LogitsProcessor(SHORT.compile(vocab), smol_tokenizer)  # the same vocabulary, rebuilt
    assert compiled.vocab.fingerprint == vocab.fingerprint


# --------------------------------------------------------------------------- bad input


def test_vocabulary_bigger_than_the_scores(smol_tokenizer):
    proc = LogitsProcessor(SHORT, smol_tokenizer)
    with pytest.raises(VocabularyMismatch, match="49,152 ids"):
        proc(torch.tensor([[1, 2]]), torch.zeros(1, 1000))


def test_constraint_compiled_for_another_vocabulary(smol_tokenizer):
    with pytest.raises(VocabularyMismatch):
        LogitsProcessor(SHORT.compile(real_vocab("gpt-2")), smol_tokenizer)
    smol = Vocabulary.from_tokenizer(smol_tokenizer, eos_ids=[2])
    wider = Vocabulary.from_tokenizer(smol_tokenizer, eos_ids=[2], size=smol.size + 64)
    with pytest.raises(VocabularyMismatch):
        LogitsProcessor(SHORT.compile(wider), smol)
    smaller = Vocabulary.from_tokens([b"1", b"2", None], eos_ids=[2])  # fewer ids than the tokenizer
    with pytest.raises(VocabularyMismatch):
        LogitsProcessor(SHORT.compile(smaller), smol_tokenizer)


def test_wrong_types(smol_tokenizer):
    with pytest.raises(TypeError, match="specification"):
        LogitsProcessor(r"[0-9]+", smol_tokenizer)
    with pytest.raises(TypeError, match="tokenizer"):
        LogitsProcessor(SHORT, 42)
    with pytest.raises(TypeError, match="eos_token_id"):
        LogitsProcessor(SHORT, smol_tokenizer, eos_token_id="2")
    with pytest.raises(ValueError, match="eos_token_id=.1000000"):
        LogitsProcessor(SHORT, smol_tokenizer, eos_token_id=10**6)
    vocab = Vocabulary.from_tokenizer(smol_tokenizer, eos_ids=[2])
    with pytest.raises(ValueError, match="eos_token_id=.1000000. outside the vocabulary's 49,152 ids"):
        LogitsProcessor(SHORT, vocab, eos_token_id=10**6)


# --------------------------------------------------------------------------- apply_bitmask


def reference_apply(logits: torch.Tensor, words: np.ndarray, rows=None) -> torch.Tensor:
    """Disallowed -> -inf, the slow way: bit i % 32 of word i // 32 by shifts, per id."""
    out = logits.clone()
    view = out.unsqueeze(0) if out.dim() == 1 else out
    words = words.reshape(1, -1) if words.ndim == 1 else words
    width = view.shape[1]
    ids = np.arange(width)
    for r, w in zip(range(len(view)) if rows is None else rows, words):
        bits = np.zeros(width, dtype=bool)
        inside = ids < 32 * len(w)
        bits[inside] = (w.astype(np.int64)[ids[inside] >> 5] >> (ids[inside] & 31)) & 1 == 1
        view[r][~torch.from_numpy(bits)] = float("-inf")
    return out


@pytest.fixture(params=["host", "device"])
def unpack(request, monkeypatch):
    """Both unpackings: numpy's for CPU logits, and the torch one other devices use, forced here."""
    if request.param == "device":
        monkeypatch.setattr(bitmask_module, "_unpack_on_host", lambda device: False)
    return request.param


@pytest.mark.parametrize("vocab_size,width", [(49_152, 49_152), (100, 100), (100, 77), (100, 160), (33, 31),
                                              (128_256, 128_300)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_apply_bitmask_matches_reference(unpack, vocab_size, width, dtype):
    rng = np.random.default_rng(vocab_size + width)
    batch = 3
    density = rng.choice([0.001, 0.3, 0.97])
    masks = rng.random((batch, vocab_size)) < density
    masks[:, -1] = True  # the last id of the vocabulary (bit 31 of a word when V % 32 == 0)
    words = np.stack([pack_mask(m) for m in masks])
    logits = torch.randn(batch, width).to(dtype)
    for bm in (words, torch.from_numpy(words)):
        got = logits.clone()
        apply_bitmask(got, bm)
        assert torch.equal(got, reference_apply(logits, words))
    one = logits[1].clone()
    apply_bitmask(one, words[1])  # (V,) logits and a (words,) row
    assert torch.equal(one, reference_apply(logits[1], words[1]))


def test_apply_bitmask_indices(unpack):
    rng = np.random.default_rng(5)
    words = rng.integers(-2**31, 2**31, size=(2, 4), dtype=np.int64).astype(np.int32)
    logits = torch.randn(5, 120)
    got = logits.clone()
    apply_bitmask(got, torch.from_numpy(words), indices=[4, 1])
    assert torch.equal(got, reference_apply(logits, words, rows=[4, 1]))
    assert torch.equal(got[[0, 2, 3]], logits[[0, 2, 3]])


def test_apply_bitmask_sign_bit_and_all_ones(unpack):
    words = np.array([[-1, -2**31], [0, 1]], dtype=np.int32)  # all 32 ids; only id 63; none; only id 32
    logits = torch.zeros(2, 64)
    apply_bitmask(logits, words)
    assert torch.isfinite(logits[0]).nonzero()[:, 0].tolist() == list(range(32)) + [63]
    assert torch.isfinite(logits[1]).nonzero()[:, 0].tolist() == [32]


def test_apply_bitmask_rejects_bad_input(unpack):
    logits = torch.zeros(2, 64)
    with pytest.raises(ValueError, match="int32"):
        apply_bitmask(logits, np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="int32"):
        apply_bitmask(logits, torch.zeros((2, 2), dtype=torch.int64))
    with pytest.raises(ValueError, match="2 logits rows but 3 bitmask rows"):
        apply_bitmask(logits, np.zeros((3, 2), dtype=np.int32))
    with pytest.raises(TypeError):
        apply_bitmask(np.zeros((2, 64)), np.zeros((2, 2), dtype=np.int32))


# --------------------------------------------------------------------------- SmolLM2


@pytest.fixture(scope="module")
def smol():
    return tether.models.default(progress=False)


REAL = {  # spec, prompts (four lengths), max_new_tokens: ample for every output
    "regex": (YEAR, ["What year did people first walk on the Moon? Answer with the year only.",
                     "Pick a year.",
                     "In which year did the Berlin Wall fall? Reply with only the year, no words.",
                     "Year of the first iPhone?"], 8),
    "json_schema": (PERSON, ["Describe a fictional person as JSON with the keys name and age.",
                             "A JSON object for Anna, 41.",
                             "Give me a JSON record of a person (a name and an age in years), nothing else.",
                             "Person as JSON."], 40),
    "lark": (SUM, ["Write a sum of two numbers, like 3+4.", "An arithmetic expression:",
                   "Write a subtraction of two small numbers and nothing else, for example 9-2.",
                   "1+1 or similar:"], 16),
}


@pytest.mark.model
@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize("kind", list(REAL))
def test_smollm2_generate_stays_in_the_language(smol, kind, strategy):
    spec, prompts, budget = REAL[kind]
    tok, model = smol.tokenizer, smol.model
    proc = LogitsProcessor(spec, tok, eos_token_id=model.generation_config.eos_token_id)
    assert proc.vocab.fingerprint == smol.vocab.fingerprint
    inputs = left_pad([smol.prompt_ids(p) for p in prompts], tok.pad_token_id)
    out = generate(model, proc, inputs, strategy, max_new_tokens=budget)
    texts = check_outputs(spec, proc, tok, out, inputs["input_ids"].shape[1])
    assert len(texts) == 4 * (4 if strategy == "beam" else 1)


@pytest.mark.model
def test_smollm2_greedy_agrees_with_tether_generate(smol):
    """One prompt, greedy: the processor in `generate` and `tether.generate` with Greedy pick the
    same tokens (same model, same masks)."""
    prompt = REAL["regex"][1][0]
    tok, model = smol.tokenizer, smol.model
    proc = LogitsProcessor(YEAR.compile(smol.vocab), tok)
    ids = smol.prompt_ids(prompt)
    out = generate(model, proc, left_pad([ids], tok.pad_token_id), "greedy", max_new_tokens=8)
    ours = tether.generate(smol, prompt, YEAR, sampler=tether.Greedy(), max_tokens=8)
    row = out[0, len(ids):].tolist()
    assert row[: row.index(2)] == list(ours.token_ids)[: len(row[: row.index(2)])]
    assert tok.decode(row, skip_special_tokens=True) == ours.text


@pytest.mark.model
def test_smollm2_processor_reused_across_generate_calls(smol):
    tok, model = smol.tokenizer, smol.model
    proc = LogitsProcessor(PERSON, tok)
    for prompts, strategy in [(REAL["json_schema"][1][:1], "greedy"), (REAL["json_schema"][1], "beam")]:
        inputs = left_pad([smol.prompt_ids(p) for p in prompts], tok.pad_token_id)
        out = generate(model, proc, inputs, strategy, max_new_tokens=40)
        check_outputs(PERSON, proc, tok, out, inputs["input_ids"].shape[1])
        assert proc.prompt_length == inputs["input_ids"].shape[1]
