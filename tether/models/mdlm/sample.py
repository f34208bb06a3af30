"""A plain, unconstrained sampler for the MDLM, to measure what the model writes on its own.

    python -m tether.models.mdlm.sample --prompt '{"' --n 20 --length 64 --check json
    python -m tether.models.mdlm.sample --prompt 'SELECT' --n 20 --check sql

Not tether's diffusion sampler (that one enforces constraints, in tether.samplers): this one
only fills `length` masked positions after the prompt, for a quality check of the weights.

Two orders:
- ``ancestral``: MDLM's reverse process for alpha_t = 1 - t over `steps` steps: from t to
  s = t - 1/steps, every still-masked position is revealed with probability (t - s) / t,
  with its token drawn from the model (the paper's sampler);
- ``confidence``: each step reveals the masked positions whose drawn token has the highest
  probability (LLaDA's low-confidence remasking without remasking), the same number per step.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from typing import Any, Sequence

from ..._optional import require

torch = require("torch", "sampling tether's MDLM")

__all__ = ["sample", "is_json", "is_sql", "main"]


def sample(lm: Any, prompt: Sequence[int], length: int, *, n: int = 1, steps: int | None = None,
           order: str = "ancestral", temperature: float = 1.0, seed: int = 0) -> torch.Tensor:
    """(n, len(prompt) + length) ids: the prompt, then `length` positions filled by the model.

        >>> out = sample(lm, lm.prompt_ids('{"'), 32, n=4)
        >>> [lm.decode(row) for row in out]
    """
    if order not in ("ancestral", "confidence"):
        raise ValueError(f"order must be 'ancestral' or 'confidence', got {order!r}")
    steps = steps or length
    gen = torch.Generator().manual_seed(seed)
    x = torch.full((n, len(prompt) + length), lm.mask_id, dtype=torch.long)
    x[:, : len(prompt)] = torch.tensor(list(prompt), dtype=torch.long)
    for k in range(steps, 0, -1):
        masked = x == lm.mask_id
        if not masked.any():
            break
        logp = lm.logprobs(x)
        probs = torch.softmax(logp / temperature, dim=-1) if temperature != 1.0 else logp.exp()
        flat = probs[masked]
        draw = torch.multinomial(flat, 1, generator=gen).squeeze(-1)
        proposal = x.clone()
        proposal[masked] = draw
        if order == "ancestral" or k == 1:
            t, s = k / steps, (k - 1) / steps
            reveal = masked & (torch.rand(x.shape, generator=gen) < (t - s) / t)
        else:
            conf = torch.full(x.shape, -1.0)
            conf[masked] = flat.gather(-1, draw.unsqueeze(-1)).squeeze(-1)
            per_row = -(-int(masked.sum(1).max()) // k)  # ceil: every position revealed by the end
            top = conf.topk(per_row, dim=1).indices
            reveal = torch.zeros_like(masked).scatter_(1, top, True) & masked
        x = torch.where(reveal, proposal, x)
    return x


def is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def is_sql(text: str) -> bool:
    """Whether SQLite's parser accepts `text` as one statement (unknown tables/columns are fine:
    only a syntax error or incomplete input counts against it)."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("EXPLAIN " + text)
    except sqlite3.Warning:
        return False  # more than one statement
    except sqlite3.Error as e:
        msg = str(e)
        return not ("syntax error" in msg or "incomplete input" in msg or "unrecognized token" in msg)
    finally:
        conn.close()
    return True


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tether.models.mdlm.sample", description=__doc__.split("\n")[0])
    p.add_argument("--prompt", default="")
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--length", type=int, default=64)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--order", choices=("ancestral", "confidence"), default="ancestral")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--check", choices=("json", "sql", "none"), default="none")
    p.add_argument("--weights", default=None, help="a trained folder (default: the shipped weights)")
    p.add_argument("--json", dest="as_json", action="store_true", help="print one JSON summary")
    args = p.parse_args(argv)
    from . import default, load

    lm = load(args.weights) if args.weights else default()
    ids = lm.prompt_ids(args.prompt)
    out = sample(lm, ids, args.length, n=args.n, steps=args.steps, order=args.order,
                 temperature=args.temperature, seed=args.seed)
    texts = [args.prompt + lm.decode(row[len(ids):]) for row in out]
    ended = [lm.eos_id in row[len(ids):].tolist() for row in out]
    check = {"json": is_json, "sql": is_sql}.get(args.check)
    ok = [check(t) for t in texts] if check else [None] * len(texts)
    if args.as_json:
        print(json.dumps({"prompt": args.prompt, "order": args.order, "length": args.length, "n": args.n,
                          "ended": sum(ended), "ok": sum(bool(o) for o in ok) if check else None,
                          "samples": texts}))
    else:
        for text, o, e in zip(texts, ok, ended):
            mark = "" if o is None else ("ok  " if o else "bad ")
            print(f"{mark}{'' if e else '[no EOS] '}{text!r}")
        if check:
            print(f"{sum(ok)}/{len(ok)} parse as {args.check}; {sum(ended)}/{len(ended)} ended with EOS",
                  file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
