"""Train tether's small MDLM on CPU within a wall-clock budget, and write weights + record.json.

    python -m tether.models.mdlm.train --minutes 20 --out tether/models/mdlm/weights --seed 0

Steps: build the corpus (corpus.py), train the byte-level BPE tokenizer on the training split
(tokenizer.py), encode and bucket the documents (data.py), then AdamW on the MDLM NELBO
(model.py) until the budget runs out, with a learning rate that warms up and decays by the
share of the budget spent (the number of steps is not known in advance). Every `--eval-every`
seconds the NELBO on a fixed held-out subset (fixed t and masks) picks the best weights so far;
at the end those weights, rounded to float16 as shipped, are scored on the whole held-out split.

Output in `--out`: model.safetensors (float16), config.json, tokenizer.json, record.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from ..._optional import require

torch = require("torch", "training tether's MDLM")

from .corpus import SOURCES, build_corpus
from .data import BucketSampler, Row, encode_documents
from .model import MDLMConfig, MDLMTransformer, nelbo, nelbo_rows, sample_times
from .tokenizer import EOS, MASK, load_tokenizer, train_tokenizer

__all__ = ["main", "heldout_nelbo", "train"]

WEIGHTS_FILE = "model.safetensors"
FILES = (WEIGHTS_FILE, "config.json", "tokenizer.json")
# Documents per source drawn per step, relative to their natural share: SQL is the smallest
# source and a target output, English the largest and only context.
SOURCE_WEIGHTS = {"json": 1.0, "sql": 3.0, "english": 0.5}


def heldout_nelbo(net: MDLMTransformer, rows: Sequence[Row], *, repeats: int = 1, seed: int = 1234,
                  batch: int = 64) -> dict[str, Any]:
    """NELBO in nats per token on `rows`, each scored at its own length (no padding), with
    `repeats` draws of (t, mask) per row from a fixed seed, so two calls are comparable.

        >>> heldout_nelbo(net, rows)["nelbo"]       # an upper bound on -log p(x) / len(x)
    """
    gen = torch.Generator().manual_seed(seed)
    by_len: dict[int, list[Row]] = {}
    for r in rows:
        by_len.setdefault(len(r.ids), []).append(r)
    total = {s: 0.0 for s in SOURCES}
    tokens = {s: 0 for s in SOURCES}
    was_training = net.training
    net.eval()
    with torch.inference_mode():
        for length in sorted(by_len):
            group = by_len[length]
            for _ in range(repeats):
                for i in range(0, len(group), batch):
                    chunk = group[i : i + batch]
                    x = torch.tensor([r.ids for r in chunk], dtype=torch.long)
                    t = sample_times(len(chunk), generator=gen)
                    per_row = nelbo_rows(net, x, t=t, generator=gen).tolist()
                    for r, value in zip(chunk, per_row):
                        total[r.source] += value
                        tokens[r.source] += length
    net.train(was_training)
    n_all = sum(tokens.values())
    out: dict[str, Any] = {"nelbo": sum(total.values()) / max(n_all, 1), "tokens": n_all // repeats,
                           "rows": len(rows), "repeats": repeats}
    out["ppl_bound"] = math.exp(min(out["nelbo"], 50.0))
    out["by_source"] = {s: round(total[s] / tokens[s], 4) for s in SOURCES if tokens[s]}
    return out


def _lr(frac: float, peak: float, warmup: float = 0.03, floor: float = 0.1) -> float:
    """Linear warm-up over the first `warmup` of the budget, then cosine down to floor * peak."""
    if frac < warmup:
        return peak * max(frac / warmup, 0.02)
    p = min((frac - warmup) / (1 - warmup), 1.0)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p)))


class _Progress:
    """tqdm on a terminal, a line every `every` seconds otherwise."""

    def __init__(self, total_s: float, every: float = 30.0):
        self.tty = sys.stderr.isatty()
        self.every, self.last = every, time.monotonic()
        self.bar = None
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=round(total_s), unit="s", desc="mdlm", file=sys.stderr)

    def update(self, elapsed: float, step: int, loss: float, lr: float) -> None:
        if self.bar is not None:
            self.bar.n = min(round(elapsed), self.bar.total)
            self.bar.set_postfix(step=step, loss=f"{loss:.3f}", lr=f"{lr:.1e}", refresh=True)
        elif time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            print(f"mdlm: {elapsed:6.0f} s  step {step:5d}  loss {loss:.3f}  lr {lr:.2e}", file=sys.stderr,
                  flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _fp16_roundtrip(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.to(torch.float16).to(torch.float32) for k, v in state.items()}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Run one training (see the module docstring); returns the record it writes."""
    from safetensors.torch import save_file

    start_wall, start_cpu = time.time(), time.process_time()
    load_start = list(os.getloadavg()) if hasattr(os, "getloadavg") else None  # other work on the machine
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = lambda msg: print(f"mdlm: {msg}", file=sys.stderr, flush=True)  # noqa: E731

    corpus = build_corpus(args.data_dir, max_per_source=args.max_docs)
    counts = corpus.counts()
    log(f"corpus: {len(corpus.train):,} train / {len(corpus.heldout):,} held-out documents "
        f"({time.time() - start_wall:.0f} s)")
    if args.tokenizer:
        tok = load_tokenizer(args.tokenizer)
    else:
        tok = train_tokenizer(corpus.train, vocab_size=args.vocab_size)
    tok.save(str(out / "tokenizer.json"))
    vocab_size = tok.get_vocab_size()
    train_rows = encode_documents(corpus.train, tok, context_length=args.context)
    held_rows = encode_documents(corpus.heldout, tok, context_length=args.context)
    for split, rows in (("train", train_rows), ("heldout", held_rows)):
        for s in SOURCES:
            mine = [r for r in rows if r.source == s]
            counts[split][f"{s}_tokens"] = sum(len(r.ids) for r in mine)
            counts[split][f"{s}_truncated"] = sum(r.truncated for r in mine)
    log(f"tokenizer: {vocab_size:,} tokens; {sum(len(r.ids) for r in train_rows):,} training tokens "
        f"({time.time() - start_wall:.0f} s)")

    cfg = MDLMConfig(vocab_size=vocab_size, mask_id=tok.token_to_id(MASK), context_length=args.context,
                     d_model=args.d_model, n_layers=args.layers, n_heads=args.heads)
    net = MDLMTransformer(cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01)
    weights = _source_weights(args.source_weights)
    sampler = BucketSampler(train_rows, weights=weights, context_length=args.context, seed=args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    # A fixed, source-balanced subset for choosing the checkpoint; the full split scores it at the end.
    probe = held_rows[:: max(1, len(held_rows) // args.probe_rows)][: args.probe_rows]
    bf16 = args.bf16 and _bf16_ok()

    budget = args.minutes * 60.0
    train_start = time.monotonic()
    step = rows_seen = tokens_seen = 0
    evals: list[dict[str, Any]] = []
    best: tuple[float, dict[str, torch.Tensor] | None, int] = (math.inf, None, 0)
    last_eval = train_start
    ema = None
    progress = _Progress(budget)

    def evaluate() -> None:
        nonlocal best
        score = heldout_nelbo(net, probe, seed=args.seed + 1)["nelbo"]
        evals.append({"step": step, "seconds": round(time.monotonic() - train_start, 1), "probe_nelbo": round(score, 4),
                      "train_loss_ema": round(ema, 4) if ema is not None else None})
        if score < best[0]:
            best = (score, {k: v.detach().clone() for k, v in net.state_dict().items()}, step)

    net.train()
    while True:
        elapsed = time.monotonic() - train_start
        if elapsed >= budget and step > 0:
            break
        lr = _lr(elapsed / budget if budget > 0 else 1.0, args.lr)
        for group in opt.param_groups:
            group["lr"] = lr
        x = sampler.next(args.tokens_per_step)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss_sum, n = nelbo(net, x, generator=gen)
        loss = loss_sum / n
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        step += 1
        rows_seen += x.shape[0]
        tokens_seen += x.numel()
        value = loss.item()
        ema = value if ema is None else 0.98 * ema + 0.02 * value
        progress.update(time.monotonic() - train_start, step, ema, lr)
        if time.monotonic() - last_eval >= args.eval_every:
            evaluate()
            last_eval = time.monotonic()
    train_seconds = time.monotonic() - train_start
    progress.close()
    evaluate()
    log(f"trained {step:,} steps in {train_seconds:.0f} s; best probe NELBO {best[0]:.3f} at step {best[2]}")

    state = _fp16_roundtrip(best[1])  # score exactly what ships
    net.load_state_dict(state)
    held = heldout_nelbo(net, held_rows, repeats=args.eval_repeats, seed=args.seed + 2)
    log(f"held-out NELBO {held['nelbo']:.3f} nats/token (perplexity bound {held['ppl_bound']:.1f}) "
        f"over {held['tokens']:,} tokens x {held['repeats']} draws; by source {held['by_source']}")

    save_file({k: v.to(torch.float16).contiguous() for k, v in state.items()}, str(out / WEIGHTS_FILE),
              metadata={"format": "pt", "config": json.dumps(cfg.to_dict())})
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")

    import tokenizers

    record = {
        "what": "tether's small masked diffusion LM (MDLM, Sahoo et al. 2024), trained by "
                "python -m tether.models.mdlm.train",
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": ["python", "-m", "tether.models.mdlm.train"] + list(args.argv),
        "seed": args.seed,
        "corpus": {"data_dir": str(args.data_dir) if args.data_dir else "../shared/data (next to the repository)",
                   "source_weights": weights,
                   "heldout": "sha1(text) mod 1000 < 20", **counts},
        "tokenizer": {"type": "byte-level BPE (tokenizers)", "vocab_size": vocab_size,
                      "trained_on": "training split" if not args.tokenizer else str(args.tokenizer),
                      "eos": [EOS, tok.token_to_id(EOS)], "mask": [MASK, tok.token_to_id(MASK)],
                      "pad": "EOS (rows are EOS-padded)"},
        "architecture": {**cfg.to_dict(), "parameters": net.n_params(), "kind": "pre-norm bidirectional "
                         "transformer, RoPE, GELU MLP, tied embeddings, no time conditioning"},
        "objective": "MDLM NELBO: absorbing state, alpha_t = 1 - t, antithetic t ~ U(1e-3, 1), SUBS, weight 1/t",
        "training": {"steps": step, "best_step": best[2], "rows": rows_seen, "tokens": tokens_seen,
                     "tokens_per_step": args.tokens_per_step, "peak_lr": args.lr, "optimizer": "AdamW(0.9, 0.98), "
                     "wd 0.01, clip 1.0, warm-up 3% then cosine to 10% by wall clock",
                     "bf16_autocast": bf16, "threads": args.threads, "budget_minutes": args.minutes,
                     "train_seconds": round(train_seconds, 1),
                     "total_wall_seconds": round(time.time() - start_wall, 1),
                     "process_cpu_seconds": round(time.process_time() - start_cpu, 1),
                     "load_average_start": load_start,
                     "load_average_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
                     "evals": evals},
        "heldout": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in held.items()},
        "weights_dtype": "float16",
        "versions": {"torch": torch.__version__, "tokenizers": tokenizers.__version__,
                     "python": platform.python_version()},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
    }
    record["files"] = {name: {"bytes": (out / name).stat().st_size, "sha256": _sha256(out / name)}
                       for name in FILES}
    record["total_bytes"] = sum(f["bytes"] for f in record["files"].values())
    (out / "record.json").write_text(json.dumps(record, indent=2) + "\n")
    log(f"wrote {out} ({record['total_bytes'] / 2**20:.1f} MiB)")
    return record


def _source_weights(spec: str | None) -> dict[str, float]:
    """"json=1,sql=3,english=0.5" as a dict (SOURCE_WEIGHTS when None); ValueError naming a bad part."""
    if not spec:
        return dict(SOURCE_WEIGHTS)
    out = dict(SOURCE_WEIGHTS)
    for part in spec.split(","):
        name, _, value = part.partition("=")
        if name.strip() not in SOURCES:
            raise ValueError(f"--source-weights: unknown source {name.strip()!r}; sources are {', '.join(SOURCES)}")
        out[name.strip()] = float(value)
    return out


def _bf16_ok() -> bool:
    """bfloat16 autocast on CPU pays only with native bf16 instructions (AVX512-BF16 / AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tether.models.mdlm.train", description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=20.0, help="training budget, wall clock (default 20)")
    p.add_argument("--out", default="mdlm-weights", help="output folder (default ./mdlm-weights)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None, help="the shared data folder (default ../shared/data)")
    p.add_argument("--max-docs", type=int, default=None, help="documents per source (for quick runs)")
    p.add_argument("--tokenizer", default=None, help="reuse this tokenizer.json instead of training one")
    p.add_argument("--vocab-size", type=int, default=4096)
    p.add_argument("--context", type=int, default=128)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--tokens-per-step", type=int, default=4096)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: on 2 shared cores a second thread mostly waits at barriers)")
    p.add_argument("--eval-every", type=float, default=120.0, help="seconds between checkpoint evaluations")
    p.add_argument("--probe-rows", type=int, default=256, help="held-out rows scored to pick the checkpoint")
    p.add_argument("--eval-repeats", type=int, default=2, help="(t, mask) draws per row in the final score")
    p.add_argument("--source-weights", default=None,
                   help="per-document sampling weight by source, e.g. json=1,sql=3,english=0.5 (the default)")
    p.add_argument("--no-bf16", dest="bf16", action="store_false", help="train in float32")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    if args.minutes < 0:
        parser().error("--minutes must be >= 0")
    args.argv = argv
    train(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
