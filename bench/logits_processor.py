"""The Hugging Face LogitsProcessor's cost: `apply_bitmask` old vs new, and per-step overhead in `generate`.

Part 1 (`--part bitmask`): `tether.apply_bitmask` against the implementation it replaced
(numpy unpacks to bool[batch, V] on the host, which is then copied to the logits' device),
for batch 1/4/16 on V = 49,152 (SmolLM2) and 128,256 (Llama-3), sparse masks (1% of ids
allowed plus a run of 100, like a digit class) and dense random ones (50%). Both tether
paths are timed: the host unpacking it uses for CPU logits, and the torch bit-op unpacking it
uses on other devices, forced here on the CPU.

Part 2 (`--part generate`): SmolLM2-135M-Instruct on the CPU, greedy, for a regex and a JSON
Schema, batch 1 and 4 (left-padded), each method warmed up once, then the three methods
interleaved `--repeats` times. ms/step is a run's wall time over its steps, the prompt's
prefill included, best run; constraint ms/step is measured inside the runs, median. On a
shared machine the wall-clock difference to unconstrained is within noise at these sizes;
the constraint column is the overhead:

* unconstrained `model.generate`, forced to the constrained run's length (min_new_tokens);
* `model.generate` with `tether.integrations.transformers.LogitsProcessor`: ms per step, and
  the processor's own time per call (prefix bookkeeping, bitmask fill, apply);
* `tether.generate(lm, prompt, spec, sampler=tether.Greedy())` (prefix cache cleared before
  each run): ms per step and its constraint seconds per step (fill, apply, advance).

    python bench/logits_processor.py                  # both parts (~2 min)
    python bench/logits_processor.py --part bitmask --repeats 50
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import statistics
import time

import numpy as np
import torch

import tether
import tether.automata.bitmask as bitmask_module
from tether.automata.bitmask import pack_mask

SCHEMA = {"type": "object",
          "properties": {"name": {"type": "string", "pattern": "^[A-Z][a-z]{1,10}$"},
                         "age": {"type": "integer", "minimum": 1, "maximum": 99},
                         "city": {"type": "string", "maxLength": 20}},
          "required": ["name", "age", "city"], "additionalProperties": False}
TASKS = {
    "regex": (r"(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])",
              ["On which date did Apollo 11 land on the Moon? Answer as YYYY-MM-DD.",
               "Today's date, as YYYY-MM-DD:", "Give a date in ISO format (YYYY-MM-DD), nothing else.",
               "A date?"]),
    "json_schema": (SCHEMA,
                    ["Describe a fictional person as JSON with the keys name, age and city.",
                     "A JSON record of a customer.", "Output only JSON: a person with a name, an age and a city.",
                     "Person, as JSON:"]),
}


# --------------------------------------------------------------------------- part 1: apply_bitmask


def apply_bitmask_old(logits: torch.Tensor, bitmask: np.ndarray) -> None:
    """The implementation `apply_bitmask` had before: bool[batch, V] built on the host, then copied."""
    words = bitmask.reshape(1, -1) if bitmask.ndim == 1 else bitmask
    rows = logits.unsqueeze(0) if logits.dim() == 1 else logits
    width = rows.shape[1]
    bits = np.unpackbits(np.ascontiguousarray(words, dtype="<i4").view(np.uint8), axis=1, bitorder="little")
    blocked = np.ones((words.shape[0], width), dtype=bool)
    n = min(width, bits.shape[1])
    np.equal(bits[:, :n], 0, out=blocked[:, :n])
    rows.masked_fill_(torch.from_numpy(blocked).to(rows.device, non_blocking=True), float("-inf"))


def apply_bitmask_device(logits: torch.Tensor, bitmask: np.ndarray) -> None:
    """tether.apply_bitmask with its device (torch bit-op) unpacking forced on the CPU."""
    saved = bitmask_module._unpack_on_host
    bitmask_module._unpack_on_host = lambda device: False
    try:
        tether.apply_bitmask(logits, bitmask)
    finally:
        bitmask_module._unpack_on_host = saved


def best_ms(fn, logits: torch.Tensor, bitmask: np.ndarray, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        x = logits.clone()
        start = time.perf_counter()
        fn(x, bitmask)
        times.append(time.perf_counter() - start)
    return min(times) * 1e3  # the least disturbed run: the machine is shared


def bench_bitmask(repeats: int) -> None:
    rng = np.random.default_rng(0)
    impls = {"old (host bool)": apply_bitmask_old, "new (CPU: host unpack)": tether.apply_bitmask,
             "new, device unpack on CPU": apply_bitmask_device}
    print("\n## apply_bitmask, CPU, one thread: best of", repeats, "(ms)\n")
    print("| V | batch | mask | " + " | ".join(impls) + " | new / old |")
    print("|---|---|---|" + "---|" * (len(impls) + 1))
    for vocab_size in (49_152, 128_256):
        for batch in (1, 4, 16):
            for name, density in (("sparse", 0.01), ("dense", 0.5)):
                masks = rng.random((batch, vocab_size)) < density
                masks[:, 1000:1100] = True
                words = np.stack([pack_mask(m) for m in masks])
                logits = torch.randn(batch, vocab_size)
                want = logits.clone()
                apply_bitmask_old(want, words)
                times = {}
                for label, fn in impls.items():
                    got = logits.clone()
                    fn(got, words)
                    assert torch.equal(got, want), label
                    times[label] = best_ms(fn, logits, words, repeats)
                cells = " | ".join(f"{t:.3f}" for t in times.values())
                ratio = times["new (CPU: host unpack)"] / times["old (host bool)"]
                print(f"| {vocab_size:,} | {batch} | {name} | {cells} | {ratio:.2f} |")


# --------------------------------------------------------------------------- part 2: generate


class Timed:
    """Wraps a logits processor, summing the seconds spent in its calls."""

    def __init__(self, proc):
        self.proc, self.seconds, self.calls = proc, 0.0, 0

    def __call__(self, input_ids, scores):
        start = time.perf_counter()
        out = self.proc(input_ids, scores)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return out


def left_pad(rows: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(map(len, rows))
    return {"input_ids": torch.tensor([[pad_id] * (width - len(r)) + r for r in rows]),
            "attention_mask": torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])}


def run_hf(lm, inputs, processors, max_new_tokens: int, min_new_tokens: int = 0):
    from transformers import LogitsProcessorList

    start = time.perf_counter()
    with torch.inference_mode():
        out = lm.model.generate(**inputs, logits_processor=LogitsProcessorList(processors), do_sample=False,
                                max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens)
    return out, time.perf_counter() - start


def bench_generate(repeats: int) -> None:
    from transformers import LogitsProcessor as HFProcessor

    from tether.integrations.transformers import LogitsProcessor

    class Steps(HFProcessor):
        """Counts generate's steps (one call each), so ms/step needs no guess at the length."""
        def __init__(self):
            self.calls = 0

        def __call__(self, input_ids, scores):
            self.calls += 1
            return scores

    lm = tether.models.default(progress=False)
    tok = lm.tokenizer
    print("\n## Per-step cost in generation, SmolLM2-135M-Instruct, CPU, one thread, greedy:", repeats,
          "runs (ms/step: best; constraint: median)\n")
    print("| task | batch | method | steps | ms/step | constraint ms/step | overhead vs unconstrained |")
    print("|---|---|---|---|---|---|---|")
    for task, (spec_source, prompts) in TASKS.items():
        spec = tether.regex(spec_source) if isinstance(spec_source, str) else tether.json_schema(spec_source)
        for batch in (1, 4):
            chosen = prompts[:batch]
            inputs = left_pad([lm.prompt_ids(p) for p in chosen], tok.pad_token_id)
            proc = LogitsProcessor(spec, tok, eos_token_id=lm.model.generation_config.eos_token_id)
            # warm-up of every method: the JIT, first masks, torch kernels, first-visited states
            steps = Steps()
            run_hf(lm, inputs, [proc, steps], 64)
            run_hf(lm, inputs, [Steps()], steps.calls, min_new_tokens=steps.calls)
            tether.generate(lm, chosen, spec, sampler=tether.Greedy(), max_tokens=64)
            rows = {"HF generate + LogitsProcessor": [], "unconstrained HF generate": [],
                    "tether.generate + Greedy": []}
            for _ in range(repeats):
                timed, steps = Timed(proc), Steps()
                _, seconds = run_hf(lm, inputs, [timed, steps], 64)
                rows["HF generate + LogitsProcessor"].append((steps.calls, seconds, timed.seconds))
                n = steps.calls
                free = Steps()
                _, seconds = run_hf(lm, inputs, [free], n, min_new_tokens=n)
                rows["unconstrained HF generate"].append((free.calls, seconds, 0.0))
                lm.clear_cache()
                start = time.perf_counter()
                gens = tether.generate(lm, chosen, spec, sampler=tether.Greedy(), max_tokens=64)
                seconds = time.perf_counter() - start
                assert all(g.ok for g in gens), [g.text for g in gens]
                tsteps = max(len(g.token_ids) for g in gens)
                rows["tether.generate + Greedy"].append(
                    (tsteps, seconds, sum(g.stats.constraint_seconds for g in gens)))
            # wall time: the best run (the machine is shared); constraint time: the median
            base = min(s / n for n, s, _ in rows["unconstrained HF generate"])
            for method, runs in rows.items():
                steps = statistics.median(n for n, _, _ in runs)
                per = min(s / n for n, s, _ in runs)
                cons = statistics.median(c / n for n, _, c in runs)
                print(f"| {task} | {batch} | {method} | {steps:.0f} | {per * 1e3:.1f} | {cons * 1e3:.2f} | "
                      f"{(per - base) * 1e3:+.1f} ms |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["bitmask", "generate", "all"], default="all")
    parser.add_argument("--repeats", type=int, default=None, help="runs per measurement (20 / 5)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.part in ("bitmask", "all"):
        bench_bitmask(args.repeats or 20)
    if args.part in ("generate", "all"):
        bench_generate(args.repeats or 5)


if __name__ == "__main__":
    main()
