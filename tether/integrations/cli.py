"""The `tether` command line.

    $ tether demo                                   # constrained generation on the embedded model
    $ tether generate "Pick a year" --regex "(19|20)[0-9]{2}" --sampler beam
    $ tether generate "A JSON list of primes" --gbnf json.gbnf --sampler smc
    $ tether generate "A user record" --schema user.schema.json --whitespace flexible
"""

from __future__ import annotations

import argparse
import json
import sys
import time

__all__ = ["main"]

PERSON = {"type": "object", "properties": {
    "name": {"type": "string", "pattern": "^[A-Z][a-z]+( [A-Z][a-z]+)?$", "maxLength": 30},
    "age": {"type": "integer", "minimum": 1, "maximum": 99},
    "email": {"type": "string", "format": "email", "maxLength": 40}},
    "required": ["name", "age", "email"]}

DEMOS = [
    ("What year did people first walk on the Moon? Answer with the year only.", "regex", r"(19|20)[0-9]{2}"),
    ("Is the Pacific the largest ocean on Earth? Answer yes or no.", "regex", r"(yes|no)"),
    ("Describe a fictional person as JSON with the keys name, age and email.", "schema", PERSON),
]


def _sampler(args: argparse.Namespace):
    from ..samplers import SMC, BeamSearch, Greedy, Sample

    if args.sampler == "greedy":
        return Greedy()
    if args.sampler == "sample":
        return Sample(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    if args.sampler == "beam":
        return BeamSearch(width=args.beams)
    if args.sampler == "smc":
        return SMC(n_particles=args.particles, seed=args.seed)
    raise NotImplementedError(args.sampler)


def _show(prompt: str, pattern: str, gen, seconds: float, kind: str = "regex") -> None:
    print(f"\nprompt : {prompt}")
    print(f"{kind:<7}: {pattern}")
    print(f"output : {gen.text}")
    if gen.ok:
        print(f"value  : {gen.value!r}")
    print(f"status : {gen.status.value}, {len(gen.token_ids)} tokens in {seconds:.2f} s "
          f"(constraint {100 * gen.stats.constraint_share:.1f}% of model+constraint time)")


def demo(args: argparse.Namespace) -> int:
    import tether
    from tether.models import default

    print("tether demo: constrained generation with SmolLM2-135M-Instruct on the CPU", file=sys.stderr)
    lm = default(progress=True)
    sampler = _sampler(args)
    failures = 0
    for prompt, kind, spec in DEMOS:
        start = time.perf_counter()
        constraint = tether.regex(spec) if kind == "regex" else tether.json_schema(spec)
        gen = tether.generate(lm, prompt, constraint, sampler=sampler, max_tokens=args.max_tokens)
        shown = spec if kind == "regex" else json.dumps(spec)
        _show(prompt, shown, gen, time.perf_counter() - start, kind)
        failures += not gen.ok
    return 1 if failures else 0


def generate(args: argparse.Namespace) -> int:
    import tether
    from tether.models import default

    if args.regex is not None:
        spec, kind, shown = tether.regex(args.regex), "regex", args.regex
    elif args.schema is not None:
        with open(args.schema, encoding="utf-8") as f:
            text = f.read()
        spec = tether.json_schema(text, whitespace=args.whitespace,
                                  property_order="any" if args.any_order else "declared")
        kind, shown = "schema", args.schema
    else:
        path = args.lark or args.gbnf
        with open(path, encoding="utf-8") as f:
            text = f.read()
        kind, shown = ("lark", path) if args.lark else ("gbnf", path)
        spec = tether.lark(text, args.start or "start", source_path=path) if args.lark else \
            tether.gbnf(text, args.start or "root")
    lm = default(progress=True)
    start = time.perf_counter()
    gen = tether.generate(lm, args.prompt, spec, sampler=_sampler(args), max_tokens=args.max_tokens)
    _show(args.prompt, shown, gen, time.perf_counter() - start, kind)
    return 0 if gen.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tether", description="Constrained generation for language models.")
    sub = parser.add_subparsers(dest="command", required=True)

    def sampling_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--sampler", choices=["greedy", "sample", "beam", "smc"], default="greedy")
        p.add_argument("--max-tokens", type=int, default=64)
        p.add_argument("--temperature", type=float, default=1.0)
        p.add_argument("--top-k", type=int)
        p.add_argument("--top-p", type=float)
        p.add_argument("--beams", type=int, default=4)
        p.add_argument("--particles", type=int, default=8)
        p.add_argument("--seed", type=int)

    p_demo = sub.add_parser("demo", help="regex and JSON answers from the embedded SmolLM2 model")
    sampling_options(p_demo)
    p_demo.set_defaults(run=demo)

    p_gen = sub.add_parser("generate", help="answer a prompt under a regex, grammar or JSON Schema")
    p_gen.add_argument("prompt")
    spec = p_gen.add_mutually_exclusive_group(required=True)
    spec.add_argument("--regex", help="a Python re pattern the whole answer must match")
    spec.add_argument("--lark", metavar="FILE", help="a Lark grammar file")
    spec.add_argument("--gbnf", metavar="FILE", help="a llama.cpp GBNF grammar file")
    spec.add_argument("--schema", metavar="FILE", help="a JSON Schema file: the answer is an instance")
    p_gen.add_argument("--start", help="the start rule (default: start for Lark, root for GBNF)")
    p_gen.add_argument("--whitespace", choices=["compact", "flexible"], default="compact",
                       help="JSON layout for --schema (flexible: bounded whitespace between tokens)")
    p_gen.add_argument("--any-order", action="store_true", help="for --schema: properties in any order")
    sampling_options(p_gen)
    p_gen.set_defaults(run=generate)

    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ImportError as exc:
        print(f"tether: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a typed tether error reads better without a traceback
        from tether.errors import TetherError

        if isinstance(exc, TetherError):
            print(f"tether: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
