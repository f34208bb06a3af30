"""tether inside vLLM (CPU, V1 model runner) on SmolLM2, and both processor classes driven directly.

The end-to-end test runs vLLM in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0) with the
`vllm.logits_processors` entry point the editable install registers: nothing is passed to
`LLM`, as a user with tether installed runs it. The direct tests replay batch updates (adds,
removals, one-way moves onto occupied rows, swaps) and compare every mask with one computed
from a state advanced independently.
"""

from __future__ import annotations

import os
import random
from types import SimpleNamespace

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import tether  # noqa: E402
from tether.automata.bitmask import allocate_bitmask, unpack_bitmask  # noqa: E402
from tether.integrations import vllm as tv  # noqa: E402
from tether.integrations.requests import compiled, tether_args  # noqa: E402
from tether.models.prompts import prompt_ids  # noqa: E402

from vllm import LLM, SamplingParams  # noqa: E402
from vllm.v1.sample.logits_processor import BatchUpdate, MoveDirectionality  # noqa: E402
from vllm.v1.worker.gpu.sample.logits_processor import LogitsContext, LogitsProcRequestState  # noqa: E402

YEAR = tether_args(regex=r"(19|20)[0-9]{2}")
ANSWER = tether_args(regex=r"(yes|no)(, because [a-z ]{1,30})?\.")
PERSON = tether_args(json_schema={
    "type": "object",
    "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 12},
                   "age": {"type": "integer", "minimum": 0, "maximum": 120}},
    "required": ["name", "age"], "additionalProperties": False})
# Recursive (parentheses), so it runs on the context-free engine, bounded so that it ends.
SUM = tether_args(lark='?start: sum\nsum: atom ("+" atom)~0..2\natom: /[1-9]/ | "(" sum ")"')
CONSTRAINTS = [YEAR, ANSWER, PERSON, SUM]
PROMPTS = ["In which year did the Berlin Wall fall?", "Is the sea salty?", "Describe a person as JSON.",
           "Write a short sum."]


def _spec(args):
    return tether.integrations.requests.spec_from_args(args["tether"])


@pytest.fixture(scope="module")
def llm(folder):
    # max_num_seqs=4 keeps later requests waiting: they join the batch as others finish.
    # float32, as the transformers adapter runs the same weights: greedy outputs must agree.
    return LLM(model=str(folder), dtype="float32", max_model_len=512, enforce_eager=True,
               gpu_memory_utilization=0.3, max_num_seqs=4, seed=0)


def _ids(tokenizer, prompt):
    return {"prompt_token_ids": prompt_ids(tokenizer, prompt)}


def test_the_safetensors_folder_holds_the_gguf_weights(folder):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(folder), torch_dtype=torch.float32)
    reference = tether.models.default(progress=False)
    ids = reference.prompt_ids("Name a colour")
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, -1]
    assert torch.allclose(torch.log_softmax(logits, -1), reference.next_logprobs([ids])[0], atol=1e-3)


def test_entry_point_is_registered():
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="vllm.logits_processors") if e.name == "tether"]
    assert ep.load() is tv.EntryPoint


def test_batch_with_four_constraints_joining_and_finishing_mid_batch(llm, tokenizer):
    engine = llm.llm_engine
    requests = []
    for i in range(8):
        greedy = i % 2 == 0
        params = SamplingParams(max_tokens=48, temperature=0.0 if greedy else 1.0, seed=i,
                                extra_args=CONSTRAINTS[i % 4])
        requests.append((f"r{i}", PROMPTS[i % 4], params))
    # A request without a constraint shares the batch and must be untouched.
    free = SamplingParams(max_tokens=12, temperature=0.0)
    (alone,) = llm.generate([_ids(tokenizer, PROMPTS[0])], free, use_tqdm=False)

    outputs, steps = {}, 0
    pending = list(requests)
    for rid, prompt, params in pending[:3]:
        engine.add_request(rid, _ids(tokenizer, prompt), params)
    engine.add_request("free", _ids(tokenizer, PROMPTS[0]), free)
    pending = pending[3:]
    while engine.has_unfinished_requests() or pending:
        if pending and steps % 2 == 1:  # the rest arrive while the first ones are running
            rid, prompt, params = pending.pop(0)
            engine.add_request(rid, _ids(tokenizer, prompt), params)
        for out in engine.step():
            if out.finished:
                outputs[out.request_id] = out.outputs[0]
        steps += 1
    assert set(outputs) == {r for r, _, _ in requests} | {"free"}
    assert outputs["free"].text.strip() and outputs["free"].text == alone.outputs[0].text

    reference = tether.models.default(progress=False)
    for i, (rid, prompt, params) in enumerate(requests):
        out, spec = outputs[rid], _spec(CONSTRAINTS[i % 4])
        assert out.finish_reason == "stop", (rid, out.text)
        assert spec.matches(out.text), (rid, out.text)
        if params.temperature == 0.0:  # greedy: what tether.generate picks on the same weights
            assert out.text == tether.generate(reference, prompt, spec, max_tokens=48).text, rid


def test_a_bad_constraint_is_refused_when_the_request_is_made(llm):
    from vllm.exceptions import VLLMValidationError

    with pytest.raises(VLLMValidationError, match="tether: invalid regex"):
        llm.generate(["x"], SamplingParams(max_tokens=4, extra_args={"tether": {"regex": "(unclosed"}}),
                     use_tqdm=False)
    with pytest.raises(VLLMValidationError, match="exactly one of"):
        llm.generate(["x"], SamplingParams(max_tokens=4, extra_args={"tether": {"pattern": "a"}}),
                     use_tqdm=False)


# ---------------------------------------------------------------------- the processors driven directly


def _config(folder):
    model_config = SimpleNamespace(tokenizer=str(folder), tokenizer_revision=None, trust_remote_code=False,
                                   get_vocab_size=lambda: 49152)
    return SimpleNamespace(model_config=model_config, speculative_config=None)


class _Reference:
    """What a row's mask must be: a state advanced by the same tokens, one request at a time."""

    def __init__(self, vocab, args, stop):
        self.constraint = compiled(args["tether"], vocab)
        self.stop = tether.integrations.batch.StopIds(stop, vocab)
        self.state = self.constraint.initial()

    def advance(self, token):
        self.state = tether.integrations.batch.step(self.constraint, self.state, token, self.stop)

    def mask(self, size):
        row = allocate_bitmask(1, size)[0]
        tether.integrations.batch.fill_row(self.constraint, self.state, row, self.stop)
        return unpack_bitmask(row, size)


def _pick(rng, logits_row):
    allowed = torch.isfinite(logits_row).nonzero().reshape(-1).tolist()
    assert allowed, "a row was fully masked"
    return rng.choice(allowed)


def _params(args, stop=(2,)):
    p = SamplingParams(max_tokens=64, extra_args=args, stop_token_ids=list(stop))
    return p


def test_v1_processor_follows_adds_removes_moves_and_swaps(folder):
    # A request may also name a spec registered in the engine's process (here: a Python type).
    from typing import TypedDict

    class Person(TypedDict):
        name: str
        age: int

    tether.integrations.requests.register("person", tether.json_schema(Person))
    proc = tv.LogitsProcessor(_config(folder), torch.device("cpu"), False)
    vocab = tv.vocabulary(_config(folder))
    rng = random.Random(0)
    rows: dict[int, tuple[list[int], _Reference | None]] = {}
    size = vocab.size

    def add(index, args):
        params = _params(args) if args is not None else SamplingParams(max_tokens=64)
        return (index, params, [1, 2, 3], [])

    script = [
        dict(added=[add(0, YEAR), add(1, PERSON), add(2, None), add(3, SUM), add(4, {"tether": {"key": "person"}})]),
        {}, {},
        dict(removed=[0], added=[add(0, ANSWER)]),                      # a slot reused
        {},
        dict(moved=[(3, 1, MoveDirectionality.UNIDIRECTIONAL)]),         # a move onto an occupied row
        dict(moved=[(0, 2, MoveDirectionality.SWAP)]),
        dict(added=[add(3, PERSON)]), {}, {}, {}, {},
    ]
    for number, update in enumerate(script):
        for index in update.get("removed", ()):  # in vLLM's order: removed, added, moved
            rows.pop(index, None)
        for index, params, _, output in update.get("added", ()):
            args = (params.extra_args or {}).get("tether")
            rows[index] = (output, None if args is None else _Reference(vocab, {"tether": args}, {2}))
        for a, b, direction in update.get("moved", ()):
            if direction == MoveDirectionality.SWAP:
                rows[a], rows[b] = rows[b], rows[a]
            else:
                rows[b] = rows.pop(a)
        batch = BatchUpdate(batch_size=max(rows) + 1, removed=update.get("removed", []),
                            added=update.get("added", []), moved=update.get("moved", []))
        proc.update_state(batch if update else None)
        logits = torch.randn(max(rows) + 1, size)
        before = logits.clone()
        proc.apply(logits)
        for index in range(logits.shape[0]):
            output, ref = rows.get(index, (None, None))
            if ref is None:
                assert torch.equal(logits[index], before[index]), f"row {index} has no constraint"
                continue
            got, want = torch.isfinite(logits[index]).numpy(), ref.mask(size)
            assert np.array_equal(got, want), (number, index)
            token = _pick(rng, logits[index])
            output.append(token)
            ref.advance(token)
        for index, (output, ref) in rows.items():
            if ref is None:
                output.append(rng.randrange(size))


class _Slots:
    """Model Runner V2's per-slot buffers, as plain tensors on the CPU."""

    def __init__(self, slots, length):
        self.all_token_ids = SimpleNamespace(gpu=torch.zeros(slots, length, dtype=torch.int32))
        self.prompt_len = SimpleNamespace(np=np.zeros(slots, dtype=np.int32))
        self.prefill_len = SimpleNamespace(np=np.zeros(slots, dtype=np.int32))
        self.total_len = SimpleNamespace(gpu=torch.zeros(slots, dtype=torch.int32))

    def admit(self, slot, prompt):
        self.prompt_len.np[slot] = self.prefill_len.np[slot] = len(prompt)
        self.all_token_ids.gpu[slot, :len(prompt)] = torch.tensor(prompt)
        self.total_len.gpu[slot] = len(prompt)

    def append(self, slot, token):
        self.all_token_ids.gpu[slot, int(self.total_len.gpu[slot])] = token
        self.total_len.gpu[slot] += 1


def test_v2_processor_reads_each_slots_new_tokens_and_masks_only_its_requests(folder):
    buffers = _Slots(6, 256)
    state = LogitsProcRequestState(device=torch.device("cpu"), max_num_reqs=6, vocab_size=49152,
                                   all_token_ids=buffers.all_token_ids, prompt_len=buffers.prompt_len,
                                   prefill_len=buffers.prefill_len, total_len=buffers.total_len)
    proc = tv.LogitsProcessorV2(_config(folder), state)
    vocab = tv.vocabulary(_config(folder))
    rng = random.Random(1)
    live: dict[int, _Reference | None] = {}

    def admit(slot, args):
        buffers.admit(slot, [1, 5, 9][: 1 + slot % 3])
        params = _params(args) if args is not None else SamplingParams(max_tokens=64)
        assert proc.add_request(slot, params) is (args is not None)
        live[slot] = None if args is None else _Reference(vocab, args, {2})

    for slot, args in [(4, YEAR), (1, PERSON), (0, None), (2, SUM)]:
        admit(slot, args)
    for step in range(14):
        if step == 5:
            del live[4]
            admit(4, ANSWER)  # a recycled slot starts afresh
        order = list(live)
        rng.shuffle(order)  # rows are reordered every step
        logits = torch.randn(len(order), vocab.size)
        before = logits.clone()
        ctx = LogitsContext(expanded_idx_mapping=torch.tensor(order), idx_mapping=torch.tensor(order),
                            idx_mapping_np=np.array(order), expanded_local_pos=torch.zeros(len(order)),
                            input_ids=torch.zeros(len(order)), pos=torch.zeros(len(order)),
                            seq_lens_upper_bound_np=np.zeros(len(order)))
        proc.apply(logits, ctx)
        for row, slot in enumerate(order):
            ref = live[slot]
            if ref is None:
                assert torch.equal(logits[row], before[row])
                token = rng.randrange(vocab.size)
            else:
                assert np.array_equal(torch.isfinite(logits[row]).numpy(), ref.mask(vocab.size)), (step, slot)
                token = _pick(rng, logits[row])
                ref.advance(token)
            buffers.append(slot, token)


def test_v2_refuses_speculative_decoding(folder):
    config = _config(folder)
    config.speculative_config = object()
    with pytest.raises(ValueError, match="speculative"):
        tv.LogitsProcessorV2(config, None)


def test_the_entry_point_builds_the_processor_of_each_runner(folder):
    assert type(tv.EntryPoint(_config(folder), torch.device("cpu"), False)) is tv.LogitsProcessor
    state = LogitsProcRequestState(torch.device("cpu"), 1, 49152, None, None, None, None)
    assert isinstance(tv.EntryPoint(_config(folder), state), tv.LogitsProcessorV2)
