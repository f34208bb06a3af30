"""tether constraints inside vLLM: one constraint state per request, one bitmask per batch step.

    >>> llm = LLM(model=str(tether.models.safetensors_folder()), dtype="bfloat16")  # the entry point is active
    >>> params = SamplingParams(max_tokens=16, extra_args=tether_args(regex=r"(19|20)[0-9]{2}"))
    >>> llm.generate(["Year the Berlin Wall fell:"], params)[0].outputs[0].text

A request opts in by naming its constraint in `SamplingParams.extra_args` (see
`tether.integrations.requests` for the format: a regex, JSON Schema, Lark or GBNF grammar,
SQL, or a registered key); requests without it are untouched. Each processor compiles a
constraint once per distinct arguments, keeps one state per request of the persistent batch,
advances it by the request's new output tokens every step, and writes the masks of all
constrained rows with `fill_bitmask` into one packed int32 bitmask applied in one step. The
request's stop ids (its EOS unless `ignore_eos`, and `stop_token_ids`) are allowed exactly
where the output is complete, and only they once the constraint is finished.

Three classes, one per way vLLM loads processors:

- `LogitsProcessor`: the V1 model runner's interface (`vllm.v1.sample.logits_processor`),
  the one vLLM uses on CPU. Pass it as `LLM(logits_processors=[LogitsProcessor])` where the
  entry point is not installed.
- `LogitsProcessorV2`: Model Runner V2's (`vllm.v1.worker.gpu.sample.logits_processor`), the
  GPU default. Speculative decoding is refused (its rows hold draft tokens).
- `EntryPoint`: what `pip install tether` registers under the `vllm.logits_processors` entry
  point group. vLLM loads that group for both runners, and V2 refuses a class that is not its
  subclass, so `EntryPoint` is a `LogitsProcessorV2` that builds a `LogitsProcessor` when V1
  constructs it. With tether installed every `LLM` has it: do not also pass a class in
  `logits_processors` (the masks would be applied twice).

Structured outputs (`StructuredOutputsParams`) are vLLM's other route to constraints; its
backends (`vllm.v1.structured_output.backend_types.StructuredOutputBackend` and
`StructuredOutputGrammar`: `accept_tokens`, `rollback`, `fill_bitmask`, `is_terminated`)
map one to one onto tether's Matcher, but vLLM picks a backend by name from a fixed list in
`StructuredOutputManager`, with no registry for third parties; a tether backend needs that
list to grow an entry (or a plugin hook) upstream. Logits processors need no change to vLLM.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .._optional import require

require("vllm", "tether.integrations.vllm")
torch = require("torch", "tether.integrations.vllm")

from vllm import SamplingParams  # noqa: E402
from vllm.v1.sample.logits_processor import BatchUpdate, MoveDirectionality  # noqa: E402
from vllm.v1.sample.logits_processor import LogitsProcessor as _V1  # noqa: E402
from vllm.v1.worker.gpu.sample.logits_processor import LogitsProcessor as _V2  # noqa: E402

from ..errors import TetherError  # noqa: E402
from ..vocab import Vocabulary  # noqa: E402
from .batch import BatchRows  # noqa: E402
from .requests import KEY, compiled, spec_from_args, tether_args  # noqa: E402

if TYPE_CHECKING:
    from vllm.config import VllmConfig
    from vllm.v1.worker.gpu.sample.logits_processor import LogitsContext, LogitsProcRequestState

__all__ = ["LogitsProcessor", "LogitsProcessorV2", "EntryPoint", "tether_args", "vocabulary"]


def _args(params: SamplingParams) -> Any:
    extra = params.extra_args
    return None if not extra or KEY not in extra else extra[KEY]


def _validate(params: SamplingParams) -> None:
    args = _args(params)
    if args is None:
        return
    try:
        spec_from_args(args)
    except TetherError as exc:  # vLLM turns a ValueError into a rejected request (HTTP 400)
        raise ValueError(f"tether: {exc}") from exc


def _stop_ids(params: SamplingParams) -> set[int]:
    """What ends this request in vLLM: its EOS (unless `ignore_eos`) and its stop token ids."""
    stop = set(params.stop_token_ids or ())
    if params.eos_token_id is not None:
        stop.add(params.eos_token_id)
    return stop


_vocab_lock = threading.Lock()
_vocabularies: dict[tuple, Vocabulary] = {}


def vocabulary(vllm_config: "VllmConfig") -> Vocabulary:
    """The `Vocabulary` of the engine's tokenizer, as wide as the model's logits (built once per
    tokenizer in a process)."""
    model_config = vllm_config.model_config
    size = model_config.get_vocab_size()
    key = (model_config.tokenizer, model_config.tokenizer_revision, size)
    with _vocab_lock:
        vocab = _vocabularies.get(key)
        if vocab is None:
            from transformers import AutoTokenizer

            from ..models.default import _eos_ids

            tokenizer = AutoTokenizer.from_pretrained(model_config.tokenizer, revision=model_config.tokenizer_revision,
                                                      trust_remote_code=model_config.trust_remote_code)
            vocab = _vocabularies[key] = Vocabulary.from_tokenizer(tokenizer, eos_ids=_eos_ids(tokenizer, None),
                                                                   size=size)
    return vocab


class _Rows:
    """A processor's batch rows, built at its first tether request (so an engine that never sees
    one never loads the tokenizer a second time); before that every call is a no-op."""

    def __init__(self, vllm_config: "VllmConfig"):
        self._config = vllm_config
        self.rows: BatchRows | None = None

    def add(self, index: int, params: SamplingParams, tokens: list[int] | None) -> bool:
        args = _args(params)
        if args is None:
            self.remove(index)
            return False
        if self.rows is None:
            self.rows = BatchRows(vocabulary(self._config))
        self.rows.add(index, compiled(args, self.rows.vocab), tokens, stop_ids=_stop_ids(params))
        return True

    def remove(self, index: int) -> None:
        if self.rows is not None:
            self.rows.remove(index)

    def move(self, source: int, target: int, direction: MoveDirectionality) -> None:
        if self.rows is None:
            return
        if direction == MoveDirectionality.SWAP:
            self.rows.swap(source, target)
        else:
            self.rows.move(source, target)

    def sync(self) -> None:
        if self.rows is not None:
            self.rows.sync()

    def apply(self, logits: torch.Tensor, rows: list[int] | None = None) -> None:
        if self.rows is not None:
            self.rows.apply(logits, rows)


class LogitsProcessor(_V1):
    """tether's processor for vLLM's V1 model runner (vLLM on CPU).

        >>> llm = LLM(model=folder, logits_processors=[LogitsProcessor])   # without the entry point
        >>> llm.generate(prompts, SamplingParams(extra_args=tether_args(regex=r"[0-9]+")))
    """

    def __init__(self, vllm_config: "VllmConfig", device: torch.device, is_pin_memory: bool):
        self._state = _Rows(vllm_config)

    @classmethod
    def validate_params(cls, sampling_params: SamplingParams) -> None:
        _validate(sampling_params)

    def is_argmax_invariant(self) -> bool:
        return False  # a mask changes what greedy picks

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        if batch_update is not None:  # in vLLM's order: removed, added, moved
            for index in batch_update.removed:
                self._state.remove(index)
            for index, params, _prompt, output in batch_update.added:
                self._state.add(index, params, output)  # `output` is the request's live output list
            for source, target, direction in batch_update.moved:
                self._state.move(source, target, direction)
        self._state.sync()

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        self._state.apply(logits)
        return logits


class LogitsProcessorV2(_V2):
    """tether's processor for vLLM's Model Runner V2 (the GPU default).

    State is kept per request slot; each step reads the slots' new tokens from the runner's
    token history (`req_states.all_token_ids` up to `total_len`) in two transfers for the
    whole batch.
    """

    def __init__(self, vllm_config: "VllmConfig", req_states: "LogitsProcRequestState"):
        if getattr(vllm_config, "speculative_config", None):
            raise ValueError("tether's vLLM processor does not support speculative decoding: its logits rows "
                             "hold draft tokens a constraint has not seen")
        self._state = _Rows(vllm_config)
        self.req_states = req_states

    @classmethod
    def validate_params(cls, sampling_params: SamplingParams) -> None:
        _validate(sampling_params)

    def add_request(self, req_idx: int, sampling_params: SamplingParams) -> bool:
        return self._state.add(req_idx, sampling_params, None)

    def apply(self, logits: torch.Tensor, ctx: "LogitsContext") -> torch.Tensor:
        rows = self._state.rows
        if rows is None or not len(rows):
            return logits
        slots = [int(s) for s in ctx.idx_mapping_np]  # one logits row per request without drafts
        mine = [s for s in slots if s in rows]
        if mine:
            self._feed(rows, mine)
            rows.apply(logits, rows=slots)
        return logits

    def _feed(self, rows: BatchRows, slots: list[int]) -> None:
        """Advance each slot by its tokens past the prompt that it has not seen."""
        rs = self.req_states
        device_slots = torch.as_tensor(slots, dtype=torch.long, device=rs.total_len.gpu.device)
        ends = rs.total_len.gpu[device_slots].cpu().tolist()
        starts = [int(rs.prompt_len.np[s]) + rows.consumed(s) for s in slots]
        which, positions = [], []
        for k, (start, end) in enumerate(zip(starts, ends)):
            which.extend([slots[k]] * max(0, end - start))
            positions.extend(range(start, end))
        if not positions:
            return
        history = rs.all_token_ids.gpu
        flat = history[torch.as_tensor(which, device=history.device),
                       torch.as_tensor(positions, device=history.device)].cpu().tolist()
        at = 0
        for k, (start, end) in enumerate(zip(starts, ends)):
            n = max(0, end - start)
            if n:
                rows.feed(slots[k], flat[at:at + n])
                at += n


class EntryPoint(LogitsProcessorV2):
    """The `vllm.logits_processors` entry point: a V2 processor, or a V1 one when V1 builds it."""

    def __new__(cls, vllm_config: "VllmConfig", *args: Any, **kwargs: Any):
        if len(args) + len(kwargs) == 2:  # V1: (vllm_config, device, is_pin_memory)
            return LogitsProcessor(vllm_config, *args, **kwargs)
        return super().__new__(cls)

