"""Generation bench: unconstrained vs masked greedy vs AWRS-SMC on SmolLM2-135M-Instruct (CPU).

Same prompts for every method, one prompt at a time, the model's prefix cache cleared before
every run (so no method reuses another's prompt KV). Per task shape (JSON object, SELECT
statement, date, e-mail regexes) it measures

* (a) unconstrained greedy decoding: argmax of ``lm.next_logprobs`` (same adapter, no mask),
  stopping at EOS or ``max_tokens``: tokens/s;
* (b) masked greedy decoding (``tether.Greedy``): tokens/s, and the constraint's share of the
  step time (``stats.constraint_share``: fill bitmask + apply + advance, over model + constraint);
* (c) AWRS-SMC (``tether.samplers.SMC``, N particles, recursive estimator, ``max_checks=16`` with
  the exact mask fallback, and uncapped): wall time per generated (returned) token, constraint
  checks per sampled token (memoised verdicts excluded) and fallback masks per sampled token,
  vs masked decoding's one 49,152-id mask per token.

Warm-up (first use in the process: torch kernels, the constraint JIT, the first compile and mask)
is measured on a throwaway prompt/regex and reported apart; each task's compile + first mask
(TTFM) is reported apart too; everything else is steady state.

    python bench/generation.py            # 3 prompts per shape, N = 4 and 8
    python bench/generation.py --quick    # 1 prompt per shape, N = 4
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import platform
import re
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

import tether

TASKS = {
    "json": (
        r'\{"name": "[A-Z][a-z]{1,12}", "age": [0-9]{1,2}, "city": "[A-Z][a-z]{1,12}"\}',
        ['Output only a JSON object like {"name": "Anna", "age": 41, "city": "Paris"} describing a fictional person.',
         'Reply with JSON only, in the form {"name": ..., "age": ..., "city": ...}: a customer from Spain.',
         'Return only this JSON, filled in for a teacher: {"name": "", "age": 0, "city": ""}'],
        48,
    ),
    "sql": (
        r"SELECT (name|age|city) FROM (users|orders) WHERE (age|id) (>|<|=) [0-9]{1,3};",
        ["Output only the SQL query, no explanation: names of users older than 30 (table users).",
         "Reply with only SQL: SELECT the city FROM orders WHERE id = 7;",
         "Write only the SQL statement: ages of users with id below 100."],
        32,
    ),
    "date": (
        r"(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])",
        ["When did the Berlin Wall fall? Reply with only the date as YYYY-MM-DD.",
         "Reply with only a date in YYYY-MM-DD format: the first Moon landing.",
         "Output only the date (YYYY-MM-DD) of New Year's Day 2000."],
        16,
    ),
    "email": (
        r"[a-z]{1,12}(\.[a-z]{1,8})?@[a-z]{2,10}\.(com|org|net)",
        ["Output only the e-mail address: sales team of acme.com.",
         "Write only the e-mail address, in lowercase: the contact of info at mozilla.org.",
         "Give one example e-mail address like john.smith@example.com. Output only the address."],
        40,
    ),
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def unconstrained(lm, prompt_ids, max_tokens, eos):
    ids, out = list(prompt_ids), []
    for _ in range(max_tokens):
        t = int(lm.next_logprobs([ids + out])[0].argmax())
        out.append(t)
        if t in eos:
            break
    return out


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 prompt per shape, N = 4 only")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from tether.models import default
    from tether.samplers import SMC, Greedy

    n_prompts = 1 if args.quick else 3
    particles = [4] if args.quick else [4, 8]
    log("loading SmolLM2-135M-Instruct ...")
    t0 = time.perf_counter()
    lm = default(progress=False)
    load_s = time.perf_counter() - t0
    eos = set(lm.vocab.eos_ids)

    # ---- warm-up: first use of everything, on a throwaway regex and prompt
    log("warm-up ...")
    wp = lm.prompt_ids("Say a number.")
    _, w_model = timed(lambda: lm.next_logprobs([wp]))
    wc, w_compile = timed(lambda: tether.regex(r"[0-9]{1,3}( apples)?").compile(lm.vocab))
    _, w_mask = timed(lambda: wc.mask(wc.initial()))
    lm.clear_cache()
    _, w_greedy = timed(lambda: Greedy().run(lm, [wp], wc, 8))
    lm.clear_cache()
    _, w_smc = timed(lambda: SMC(4, seed=0).run(lm, [wp], wc, 8))

    rows = []  # one per (task, prompt)
    ttfm = {}
    total = len(TASKS) * n_prompts
    k = 0
    for name, (pattern, prompts, max_tokens) in TASKS.items():
        t = time.perf_counter()
        c = tether.regex(pattern).compile(lm.vocab)
        c.mask(c.initial())
        ttfm[name] = time.perf_counter() - t
        rx = re.compile(pattern)
        for prompt in prompts[:n_prompts]:
            k += 1
            log(f"[{k}/{total}] {name}: {prompt[:60]}")
            pids = lm.prompt_ids(prompt)
            r = {"task": name}
            lm.clear_cache()
            out, s = timed(lambda: unconstrained(lm, pids, max_tokens, eos))
            r["free_tokens"], r["free_s"] = len(out), s
            lm.clear_cache()
            g, s = timed(lambda: Greedy().run(lm, [pids], c, max_tokens)[0])
            r["greedy_tokens"], r["greedy_s"], r["greedy_share"] = len(g.token_ids), s, g.stats.constraint_share
            r["greedy_constraint_s"], r["greedy_ok"] = g.stats.constraint_seconds, g.ok and bool(rx.fullmatch(g.text))
            for n in particles:
                for cap in (16, None):
                    lm.clear_cache()
                    g, s = timed(lambda: SMC(n, seed=0, max_checks=cap).run(lm, [pids], c, max_tokens + 1)[0])
                    st = g.details.stats
                    key = f"smc{n}{'' if cap else 'u'}"
                    r[key] = dict(s=s, out_tokens=len(g.token_ids), tokens=st.tokens, calls=st.constraint_calls,
                                  verdicts=st.checks, masks=st.masks, constraint_s=st.constraint_seconds,
                                  model_s=st.model_seconds, ok=g.ok and bool(rx.fullmatch(g.text)), text=g.text)
                    log(f"    SMC N={n} cap={cap}: {g.text!r} {s:.2f}s, {st.calls_per_token:.2f} checks/token")
            rows.append(r)

    # ---- aggregate per task
    def agg(task_rows):
        a = {}
        a["free_tps"] = sum(r["free_tokens"] for r in task_rows) / sum(r["free_s"] for r in task_rows)
        gt, gs = sum(r["greedy_tokens"] for r in task_rows), sum(r["greedy_s"] for r in task_rows)
        a["greedy_tps"], a["greedy_ms"] = gt / gs, 1000 * gs / gt
        a["greedy_share"] = statistics.fmean(r["greedy_share"] for r in task_rows)
        a["greedy_us_tok"] = 1e6 * sum(r["greedy_constraint_s"] for r in task_rows) / gt
        a["greedy_ok"] = sum(r["greedy_ok"] for r in task_rows)
        for key in task_rows[0]:
            if key.startswith("smc"):
                d = [r[key] for r in task_rows]
                out_t, tok = sum(x["out_tokens"] for x in d), sum(x["tokens"] for x in d)
                a[key] = dict(ms=1000 * sum(x["s"] for x in d) / out_t, calls=sum(x["calls"] for x in d) / tok,
                              verdicts=sum(x["verdicts"] for x in d) / tok, masks=sum(x["masks"] for x in d) / tok,
                              us_tok=1e6 * sum(x["constraint_s"] for x in d) / tok,
                              share=sum(x["constraint_s"] for x in d) / sum(x["constraint_s"] + x["model_s"] for x in d),
                              ok=sum(x["ok"] for x in d))
        return a

    tasks = list(TASKS)
    A = {t: agg([r for r in rows if r["task"] == t]) for t in tasks}
    A["all"] = agg(rows)
    smc_keys = [k for k in rows[0] if k.startswith("smc")]

    def label(key):
        n = int(key[3:].rstrip("u"))
        return f"SMC N={n}" + (" uncapped" if key.endswith("u") else "")

    lines = ["## Generation: unconstrained vs masked greedy vs AWRS-SMC (SmolLM2-135M-Instruct, CPU)", ""]
    lines += [
        f"- {platform.processor() or platform.machine()}, Python {platform.python_version()}, torch "
        f"{torch.__version__}, {args.threads} thread(s); vocabulary {lm.vocab.size:,} ids; "
        f"{n_prompts} prompt(s) per shape, one prompt at a time, prefix cache cleared before every run",
        f"- one-off: model load {load_s:.1f} s. Warm-up (first use in the process, excluded below): first forward "
        f"{1000 * w_model:.0f} ms, first regex compile {1000 * w_compile:.1f} ms + first mask {1000 * w_mask:.1f} ms, "
        f"first Greedy run {1000 * w_greedy:.0f} ms, first SMC run {1000 * w_smc:.0f} ms",
        "- TTFM (compile + first mask) per shape: " + ", ".join(f"{t} {1000 * ttfm[t]:.2f} ms" for t in tasks),
        "- tokens/s: output tokens (EOS included) / wall time. Masked greedy's constraint share: constraint seconds / "
        "(model + constraint seconds). SMC ms/token: wall time / returned tokens (all particles' work included); "
        "checks and masks per *sampled* token (all particles), memoised verdicts excluded (verdicts asked in brackets). "
        "SMC gets max_tokens + 1 (it must sample EOS). Capped SMC: max_checks=16 + exact mask fallback.",
        "",
        "| shape | unconstrained tok/s | masked greedy tok/s | greedy constraint share | greedy constraint µs/token | "
        + " | ".join(f"{label(k)} ms/token | {label(k)} checks/token | {label(k)} masks/token" for k in smc_keys)
        + " | valid (greedy / " + " / ".join(label(k) for k in smc_keys) + ") |",
        "|---|---|---|---|---|" + "---|---|---|" * len(smc_keys) + "---|",
    ]
    n_per = {t: sum(r["task"] == t for r in rows) for t in tasks}
    n_per["all"] = len(rows)
    for t in tasks + ["all"]:
        a = A[t]
        cells = [f"**{t}**" if t == "all" else t, f"{a['free_tps']:.1f}", f"{a['greedy_tps']:.1f}",
                 f"{100 * a['greedy_share']:.2f}%", f"{a['greedy_us_tok']:.0f}"]
        for k in smc_keys:
            s = a[k]
            cells += [f"{s['ms']:.0f} ({s['ms'] / a['greedy_ms']:.1f}× greedy)",
                      f"{s['calls']:.2f} ({s['verdicts']:.2f})", f"{s['masks']:.3f}"]
        cells.append(f"{a['greedy_ok']} / " + " / ".join(str(a[k]["ok"]) for k in smc_keys) + f" of {n_per[t]}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Masked decoding computes one mask over all 49,152 ids per token (1.000 masks/token).", "",
              "### Outputs", "", "| shape | SMC output (first N, capped) |", "|---|---|"]
    for r in rows:
        lines.append(f"| {r['task']} | `{r[smc_keys[0]]['text']}` |")
    md = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "generation.md").write_text(md)
    print(md)

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
        x = range(len(tasks))
        series = [("unconstrained", [1000 / A[t]["free_tps"] for t in tasks]),
                  ("masked greedy", [A[t]["greedy_ms"] for t in tasks])]
        series += [(label(k), [A[t][k]["ms"] for t in tasks]) for k in smc_keys]
        w = 0.8 / len(series)
        for i, (name, ys) in enumerate(series):
            ax1.bar([xi + i * w for xi in x], ys, w, label=name)
        ax1.set_xticks([xi + 0.4 - w / 2 for xi in x], tasks)
        ax1.set_ylabel("ms per generated token (wall)")
        ax1.set_title("Time per output token")
        ax1.legend(fontsize=8)
        for i, k in enumerate(smc_keys):
            ax2.bar([xi + i * 0.8 / len(smc_keys) for xi in x], [A[t][k]["calls"] for t in tasks],
                    0.8 / len(smc_keys), label=label(k))
        ax2.set_yscale("log")
        ax2.axhline(3, color="k", lw=0.8, ls="--")
        ax2.set_xticks([xi + 0.4 - 0.4 / len(smc_keys) for xi in x], tasks)
        ax2.set_ylabel("constraint checks per sampled token (log)")
        ax2.set_title(f"AWRS checks per token (full mask: {lm.vocab.size:,} ids)")
        ax2.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.out / "generation.png", dpi=120)
        log(f"wrote {args.out / 'generation.md'} and {args.out / 'generation.png'}")
    except ImportError:
        log("matplotlib not installed: no plot")
    return 0


if __name__ == "__main__":
    sys.exit(main())
