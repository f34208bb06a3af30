"""The serving integrations' cost: tether's processor inside vLLM, and inside llama.cpp.

vLLM (CPU, V1 model runner, in one process): SmolLM2-135M-Instruct (bfloat16), a batch of 8
requests with 4 constraints (2 regexes, a JSON Schema, a recursive Lark grammar), half greedy
and half at temperature 1, 32 new tokens each (`ignore_eos`, so every run has the same rows
for the same steps; a constraint that is finished then offers only EOS). The same batch runs
without constraints, interleaved `--repeats` times. ms/step is wall time per engine step (the
prefill step included), best run; processor ms/step is the time inside the processor's
`update_state` and `apply` (advancing 8 states, filling one bitmask, masking), median.

llama.cpp: `create_completion` on the SmolLM2 GGUF (Q4_1), greedy, with
`tether.integrations.llamacpp.LogitsProcessor` for the JSON Schema, then without it for as
many tokens: ms per token (prompt included) and the processor's own ms per token.

    .venv-engines/bin/python bench/serving.py            # (make test-engines sets it up)
"""

from __future__ import annotations

import os

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import statistics
import time

import tether
from tether.integrations import vllm as tv
from tether.integrations.requests import tether_args
from tether.models.prompts import prompt_ids

PERSON = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 24},
                                           "age": {"type": "integer", "minimum": 0}},
          "required": ["name", "age"]}
CONSTRAINTS = [
    ("year regex", tether_args(regex=r"(19|20)[0-9]{2}")),
    ("answer regex", tether_args(regex=r"(yes|no), because [a-z ,]{1,80}\.")),
    ("person schema", tether_args(json_schema=PERSON)),
    ("sum grammar", tether_args(lark='?start: sum\nsum: atom ("+" atom)*\natom: /[0-9]+/ | "(" sum ")"')),
]
PROMPTS = ["In which year did the Berlin Wall fall?", "Is the sea salty? Say why.", "Describe a person as JSON.",
           "Write a long sum."]


class Timer:
    """Seconds spent inside the wrapped methods (a processor's), since the last reset."""

    def __init__(self):
        self.seconds = 0.0

    def wrap(self, cls, name):
        original = getattr(cls, name)

        def timed(proc, *args, **kwargs):
            start = time.perf_counter()
            try:
                return original(proc, *args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        setattr(cls, name, timed)


def run_vllm(llm, tokenizer, constrained: bool, timer: Timer, tokens: int) -> tuple[float, float, int, list[str]]:
    from vllm import SamplingParams

    engine = llm.llm_engine
    for i in range(8):
        args = CONSTRAINTS[i % 4][1] if constrained else None
        params = SamplingParams(max_tokens=tokens, min_tokens=tokens, ignore_eos=True, temperature=0.0 if i % 2 == 0 else 1.0,
                                seed=i, extra_args=args)
        engine.add_request(f"r{i}", {"prompt_token_ids": prompt_ids(tokenizer, PROMPTS[i % 4])}, params)
    timer.seconds = 0.0
    steps, texts = 0, {}
    start = time.perf_counter()
    while engine.has_unfinished_requests():
        for out in engine.step():
            if out.finished:
                texts[out.request_id] = out.outputs[0].text
        steps += 1
    wall = time.perf_counter() - start
    return wall / steps * 1e3, timer.seconds / steps * 1e3, steps, [texts[f"r{i}"] for i in range(8)]


def bench_vllm(repeats: int, tokens: int) -> None:
    from transformers import AutoTokenizer
    from vllm import LLM

    folder = tether.models.safetensors_folder(progress=False)
    llm = LLM(model=str(folder), dtype="bfloat16", max_model_len=512, enforce_eager=True,
              gpu_memory_utilization=0.15, seed=0)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    timer = Timer()
    timer.wrap(tv.LogitsProcessor, "update_state")
    timer.wrap(tv.LogitsProcessor, "apply")
    results = {False: [], True: []}
    run_vllm(llm, tokenizer, True, timer, tokens)  # warm-up: compiles the 4 constraints
    run_vllm(llm, tokenizer, False, timer, tokens)
    for _ in range(repeats):
        for constrained in (False, True):
            results[constrained].append(run_vllm(llm, tokenizer, constrained, timer, tokens))
    best = {c: min(r[0] for r in rs) for c, rs in results.items()}
    proc = {c: statistics.median(r[1] for r in rs) for c, rs in results.items()}
    print(f"\nvLLM {getattr(__import__('vllm'), '__version__', '?')} on CPU, SmolLM2-135M bf16, batch of 8, "
          f"{tokens} tokens each, best of {repeats}")
    print("| run | ms/step | processor ms/step | processor share |")
    print("|---|---|---|---|")
    for constrained in (False, True):
        name = "4 tether constraints" if constrained else "unconstrained"
        print(f"| {name} | {best[constrained]:.1f} | {proc[constrained]:.2f} | "
              f"{proc[constrained] / best[constrained]:.1%} |")
    texts = results[True][-1][3]
    for (name, args), text in zip(CONSTRAINTS * 2, texts):
        spec = tether.integrations.requests.spec_from_args(args["tether"])
        print(f"  {name:14s} complete in its language: {spec.matches(text)!s:5s} {text[:60]!r}")


def bench_llamacpp(repeats: int, tokens: int) -> None:
    from tether.integrations.llamacpp import LogitsProcessor
    from tether.models.llamacpp import LlamaCppLM

    with LlamaCppLM.from_path(n_ctx=512) as lm:
        spec = tether.json_schema(PERSON)
        proc = LogitsProcessor(spec, lm)
        prompt = "Describe a person as JSON: "
        calls = Timer()
        calls.wrap(LogitsProcessor, "__call__")
        rows = {}
        n = tokens
        for name, processors in (("tether processor", [proc]), ("unconstrained", None)):
            times, inside = [], []
            for _ in range(repeats + 1):
                lm.llama.reset()
                calls.seconds = 0.0
                start = time.perf_counter()
                out = lm.llama.create_completion(prompt, max_tokens=n, temperature=0.0, logits_processor=processors)
                done = out["usage"]["completion_tokens"]
                times.append((time.perf_counter() - start) / done * 1e3)
                inside.append(calls.seconds / done * 1e3)
            rows[name] = (min(times[1:]), statistics.median(inside[1:]), done, out["choices"][0]["text"])
            n = done  # the unconstrained run generates as many tokens as the constrained one
        print(f"\nllama.cpp create_completion, SmolLM2 Q4_1, greedy, up to {tokens} tokens, best of {repeats}")
        print("| run | tokens | ms/token (prompt included) | processor ms/token |")
        print("|---|---|---|---|")
        for name in ("unconstrained", "tether processor"):
            ms, inside, done, _ = rows[name]
            print(f"| {name} | {done} | {ms:.1f} | {inside:.2f} |")
        text = rows["tether processor"][3]
        print(f"  constrained output: {text!r} (valid: {spec.matches(text)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args()
    bench_vllm(args.repeats, args.tokens)
    bench_llamacpp(args.repeats, args.tokens)


if __name__ == "__main__":
    main()
