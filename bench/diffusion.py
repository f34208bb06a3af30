"""Diffusion bench: unconstrained vs DINGO vs CFG-constrained decoding on tether's trained MDLM (CPU).

For 5 regular tasks (regexes and regular JSON Schemas) and 2 context-free ones (SQL SELECT bound
to a Spider schema, arithmetic), `--samples` draws each (temperature 1, confidence order, blocks
of `--block`), it reports

* valid: the share of outputs in the language, for unconstrained `Diffusion` (checked after the
  fact), `DINGO` (regular tasks) and `GrammarDiffusion` (every task);
* log-probability of the outputs under the model, DINGO against greedy-then-repair (unconstrained
  greedy, then its longest valid prefix completed by the shortest completion): both scored the
  same way, left to right (position i given the output's tokens before it and masks after it),
  EOS padding included;
* seconds per sample, and the ratio to unconstrained decoding (the target is under 2x).

    python bench/diffusion.py                 # 20 samples per task
    python bench/diffusion.py --samples 5     # quicker
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch

import tether
from tether.samplers import DINGO, Diffusion, GrammarDiffusion, Status

SPIDER = REPO.parent / "shared" / "data" / "sql" / "spider" / "schemas" / "concert_singer" / "schema.sql"

ARITH = r"""
?start: sum
?sum: product | sum "+" product | sum "-" product
?product: atom | product "*" atom
?atom: INT | "(" sum ")"
INT: /[0-9]{1,4}/
"""


def tasks() -> list[tuple[str, str, object, int]]:
    """(name, kind, spec, positions)."""
    return [
        ("date", "regular", tether.regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}"), 16),
        ("email", "regular", tether.regex(r"[a-z]{2,10}@[a-z]{2,10}\.(com|org|net)"), 16),
        ("person", "regular", tether.json_schema({
            "type": "object", "properties": {"name": {"type": "string", "maxLength": 16},
                                             "age": {"type": "integer", "minimum": 0, "maximum": 120}},
            "required": ["name", "age"]}), 24),
        ("ints", "regular", tether.json_schema({"type": "array", "items": {"type": "integer", "minimum": 0,
                                                                             "maximum": 999},
                                                "minItems": 1, "maxItems": 5}), 16),
        ("item", "regular", tether.json_schema({
            "type": "object", "properties": {"id": {"type": "integer", "minimum": 1, "maximum": 9999},
                                             "kind": {"enum": ["book", "film", "song"]},
                                             "public": {"type": "boolean"}},
            "required": ["id", "kind", "public"]}), 24),
        ("sql", "context-free", tether.sql(ddl=SPIDER.read_text()), 32),
        ("arith", "context-free", tether.lark(ARITH), 16),
    ]


def ordered_logprob(lm, tokens: list[int]) -> float:
    """log p of `tokens` revealed left to right: position i given tokens[:i] and masks after it."""
    n = len(tokens)
    rows = torch.full((n, n), lm.mask_id, dtype=torch.long)
    for i in range(n):
        rows[i, :i] = torch.tensor(tokens[:i], dtype=torch.long)
    logp = lm.logprobs(rows)
    return float(sum(logp[i, i, t] for i, t in enumerate(tokens)))


def repaired(constraint, tokens: list[int], length: int) -> list[int] | None:
    """The longest valid prefix of `tokens`, completed by the shortest completion and EOS padding."""
    vocab = constraint.vocab
    eos = vocab.eos_ids[0]
    state, kept = constraint.initial(), []
    for t in tokens:
        if t in vocab.eos_ids or not constraint.allows(state, t):
            break
        state = constraint.advance(state, t)
        kept.append(t)
    from tether.automata.infill import Completer

    found = Completer(constraint).complete([None], start=state)  # the shortest completion's bytes
    if found is None:
        return None
    tail = vocab.encode_greedy(found[0]) if found[0] else []
    out = kept + list(tail)
    if len(out) > length:
        return None
    return out + [eos] * (length - len(out))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--block", type=int, default=8, help="semi-autoregressive block size")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from tether.models import mdlm

    lm = mdlm.default()
    print(f"model: {lm!r}", file=sys.stderr)
    rows = []
    for name, kind, spec, length in tasks():
        constraint = spec.compile(lm.vocab)
        results = {}
        samplers = {"unconstrained": Diffusion(block_size=args.block, temperature=1.0, seed=args.seed)}
        if kind == "regular":
            samplers["DINGO"] = DINGO(block_size=args.block, temperature=1.0, seed=args.seed)
        samplers["CFG"] = GrammarDiffusion(block_size=args.block, temperature=1.0, seed=args.seed)
        for label, sampler in samplers.items():
            tether.generate(lm, "", constraint, sampler=sampler, max_tokens=length)  # warm-up: JIT, masks
            start = time.perf_counter()
            gens = tether.generate(lm, "", constraint, sampler=sampler, max_tokens=length, n=args.samples)
            seconds = (time.perf_counter() - start) / args.samples
            valid = sum(g.status is Status.COMPLETE for g in gens) / len(gens)
            results[label] = (valid, seconds, gens)
        dingo_lp = repair_lp = float("nan")
        if "DINGO" in results:
            greedy_dingo = tether.generate(lm, "", constraint, sampler=DINGO(block_size=args.block), max_tokens=length)
            dingo_lp = ordered_logprob(lm, greedy_dingo.token_ids)
            greedy = tether.generate(lm, "", constraint, sampler=Diffusion(block_size=args.block), max_tokens=length)
            fixed = repaired(constraint, greedy.token_ids, length)
            repair_lp = ordered_logprob(lm, fixed) if fixed is not None else float("nan")
        base = results["unconstrained"][1]
        rows.append((name, kind, length, results, dingo_lp, repair_lp, base))
        print(f"  {name}: done", file=sys.stderr)
    print(f"\nMDLM ({lm!r}), {args.samples} samples per task, temperature 1, blocks of {args.block}\n")
    head = (f"{'task':<8}{'kind':<14}{'len':>4}  {'valid: unc.':>11}{'DINGO':>7}{'CFG':>7}  "
            f"{'logp DINGO':>11}{'repair':>9}  {'s/sample unc.':>14}{'DINGO':>8}{'CFG':>8}")
    print(head)
    print("-" * len(head))
    for name, kind, length, results, dlp, rlp, base in rows:
        def v(label):
            return f"{100 * results[label][0]:.0f}%" if label in results else "-"

        def t(label):
            return f"{results[label][1]:.2f}" + (f" ({results[label][1] / base:.1f}x)" if label != "unconstrained" else "") \
                if label in results else "-"

        print(f"{name:<8}{kind:<14}{length:>4}  {v('unconstrained'):>11}{v('DINGO'):>7}{v('CFG'):>7}  "
              f"{dlp:>11.1f}{rlp:>9.1f}  {t('unconstrained'):>14}{t('DINGO'):>14}{t('CFG'):>14}")
    for name, _, _, results, *_ in rows:
        for label, (_, _, gens) in results.items():
            print(f"\n{name} / {label}: " + " | ".join(repr(g.text)[:40] for g in gens[:3]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
