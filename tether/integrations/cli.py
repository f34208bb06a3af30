"""The `tether` command line.

    $ tether demo                                   # constrained generation on the embedded model
    $ tether generate "Pick a year" --regex "(19|20)[0-9]{2}" --sampler beam --json
    $ tether generate "A user record" --type myapp.models:User --n 3 --sampler sample --seed 1
    $ tether generate "Customers in Paris?" --sql shop.sqlite
    $ tether check --grammar sql.lark --vocab tokenizer.json     # compile only, no model
    $ tether sample --schema user.schema.json -n 5                # strings of the language, no model
    $ tether bench --regex "[a-z]+@[a-z]+\\.com"                  # mask speed on a vocabulary

Every constraint is compiled (and a bad one reported in one line naming what and where) before
a model loads. Exit status: 0 done, 1 a generation ended without a complete output, 2 bad input.
Progress goes to stderr, as bars only on a terminal.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from typing import Any, Iterable

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


class BadInput(Exception):
    """A command-line input that cannot be used; printed as one line, exit status 2."""


# ---------------------------------------------------------------------- constraints


def _read(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise BadInput(f"cannot read the {what} file {path}: {e.strerror}") from None


def _python_type(ref: str) -> Any:
    """`module:Name` (or `module:Outer.Inner`) imported from the current directory or sys.path."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise BadInput(f"--type wants module:Name (e.g. myapp.models:User), got {ref!r}")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        value: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise BadInput(f"--type {ref}: cannot import {module_name!r}: {e}") from None
    for part in attr.split("."):
        if not hasattr(value, part):
            raise BadInput(f"--type {ref}: {value.__name__ if hasattr(value, '__name__') else value!r} "
                           f"has no attribute {part!r}")
        value = getattr(value, part)
    return value


def _spec(args: argparse.Namespace) -> tuple[Any, str, str]:
    """The constraint the options name, as (spec, kind, shown); raises the spec's typed error."""
    import tether

    if args.regex is not None:
        return tether.regex(args.regex), "regex", args.regex
    if args.schema is not None:
        spec = tether.json_schema(_read(args.schema, "schema"), whitespace=args.whitespace,
                                  property_order="any" if args.any_order else "declared")
        return spec, "schema", args.schema
    if args.type is not None:
        spec = tether.json_schema(_python_type(args.type), whitespace=args.whitespace,
                                  property_order="any" if args.any_order else "declared")
        return spec, "type", args.type
    if args.grammar is not None:
        return tether.lark(_read(args.grammar, "grammar"), args.start or "start", source_path=args.grammar), \
            "lark", args.grammar
    if args.gbnf is not None:
        return tether.gbnf(_read(args.gbnf, "grammar"), args.start or "root"), "gbnf", args.gbnf
    if args.sql is not None:
        if args.sql.lower().endswith(".sql"):
            return tether.sql(ddl=_read(args.sql, "DDL")), "sql", args.sql
        return tether.sql(db=args.sql), "sql", args.sql
    raise BadInput("name a constraint: --regex, --schema, --type, --grammar, --gbnf or --sql")


def _constraint_options(p: argparse.ArgumentParser, required: bool = True) -> None:
    group = p.add_argument_group("constraint (exactly one)")
    spec = group.add_mutually_exclusive_group(required=required)
    spec.add_argument("--regex", metavar="PATTERN", help="a Python re pattern the whole output must match")
    spec.add_argument("--schema", metavar="FILE", help="a JSON Schema file: the output is an instance")
    spec.add_argument("--type", metavar="MODULE:NAME",
                      help="a Python type (msgspec Struct, dataclass, TypedDict, pydantic model, ...): "
                           "the output is its JSON, decoded to the type")
    spec.add_argument("--grammar", "--lark", dest="grammar", metavar="FILE", help="a Lark grammar file")
    spec.add_argument("--gbnf", metavar="FILE", help="a llama.cpp GBNF grammar file")
    spec.add_argument("--sql", metavar="DB",
                      help="SQLite SELECT statements naming only the tables and columns of this database "
                           "(a .sqlite file, opened read-only; or a .sql file of CREATE statements)")
    group.add_argument("--start", help="the start rule (default: start for Lark, root for GBNF)")
    group.add_argument("--whitespace", choices=["compact", "flexible"], default="compact",
                       help="JSON layout for --schema/--type (flexible: bounded whitespace between tokens)")
    group.add_argument("--any-order", action="store_true", help="for --schema/--type: properties in any order")


# ---------------------------------------------------------------------- models and progress


def _progress() -> bool:
    return sys.stderr.isatty()


def _model(args: argparse.Namespace):
    from tether.models import default, load

    if args.model is None:
        return default(progress=_progress())
    if not os.path.exists(args.model):
        raise BadInput(f"--model {args.model}: no such file or folder (a local Hugging Face folder or a .gguf file)")
    return load(args.model, progress=_progress())


def _vocabulary(args: argparse.Namespace):
    from tether.models.default import default_model_path, load_vocabulary

    path = args.vocab or default_model_path()
    if args.vocab and not os.path.exists(args.vocab):
        raise BadInput(f"--vocab {args.vocab}: no such file or folder (a tokenizer.json, a model folder or a .gguf file)")
    return load_vocabulary(path)


def _bar(items: Iterable, total: int, desc: str) -> Iterable:
    """`items` with a tqdm bar on a terminal's stderr; plain `items` elsewhere or without tqdm."""
    if not _progress():
        return items
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, total=total, desc=desc, file=sys.stderr, leave=False)


def _sampler(args: argparse.Namespace):
    from ..samplers import SMC, BeamSearch, Greedy, Sample

    if args.sampler == "greedy":
        return Greedy()
    if args.sampler == "sample":
        return Sample(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    if args.sampler == "beam":
        return BeamSearch(width=max(args.beams, args.n or 1))
    return SMC(n_particles=args.particles, seed=args.seed)


def _sampling_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("sampling")
    group.add_argument("--sampler", choices=["greedy", "sample", "beam", "smc"], default="greedy",
                       help="greedy (default), multinomial sampling, beam search, or AWRS-SMC")
    group.add_argument("--max-tokens", type=int, default=64, help="the most tokens to generate (default 64)")
    group.add_argument("--temperature", type=float, default=1.0, help="for --sampler sample (default 1.0)")
    group.add_argument("--top-k", type=int, help="for --sampler sample: keep the k likeliest allowed tokens")
    group.add_argument("--top-p", type=float, help="for --sampler sample: keep the nucleus of mass p")
    group.add_argument("--beams", type=int, default=4, help="for --sampler beam: the beam width (default 4)")
    group.add_argument("--particles", type=int, default=8, help="for --sampler smc: particles (default 8)")
    group.add_argument("--seed", type=int, help="seed of --sampler sample or smc (runs replay)")
    group.add_argument("--model", metavar="PATH",
                       help="a local Hugging Face model folder or GGUF file (default: the embedded SmolLM2-135M-Instruct)")


def _record(prompt: str, gen, seconds: float) -> dict:
    value = gen.value
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        value = _jsonable(value)
    return {"prompt": prompt, "text": gen.text, "value": value, "status": gen.status.value,
            "tokens": len(gen.token_ids), "seconds": round(seconds, 3)}


def _jsonable(value: Any) -> Any:
    """A decoded Python value (a Struct, dataclass, date, ...) as JSON data, through msgspec."""
    import msgspec

    try:
        return msgspec.to_builtins(value)
    except TypeError:
        return repr(value)


def _show(prompt: str, pattern: str, gen, seconds: float, kind: str = "regex") -> None:
    print(f"\nprompt : {prompt}")
    print(f"{kind:<7}: {pattern}")
    print(f"output : {gen.text}")
    if gen.ok:
        print(f"value  : {gen.value!r}")
    print(f"status : {gen.status.value}, {len(gen.token_ids)} tokens in {seconds:.2f} s "
          f"(constraint {100 * gen.stats.constraint_share:.1f}% of model+constraint time)")


# ---------------------------------------------------------------------- commands


def demo(args: argparse.Namespace) -> int:
    import tether

    print("tether demo: constrained generation with SmolLM2-135M-Instruct on the CPU", file=sys.stderr)
    specs = [(prompt, kind, spec, tether.regex(spec) if kind == "regex" else tether.json_schema(spec))
             for prompt, kind, spec in DEMOS]
    args.model = None
    lm = _model(args)
    sampler = _sampler(args)
    failures = 0
    for prompt, kind, spec, constraint in specs:
        start = time.perf_counter()
        gen = tether.generate(lm, prompt, constraint, sampler=sampler, max_tokens=args.max_tokens)
        _show(prompt, spec if kind == "regex" else json.dumps(spec), gen, time.perf_counter() - start, kind)
        failures += not gen.ok
    return 1 if failures else 0


def generate(args: argparse.Namespace) -> int:
    import tether

    spec, kind, shown = _spec(args)  # a bad constraint fails here, before any model loads
    if args.n is not None and args.n < 1:
        raise BadInput(f"--n must be at least 1, got {args.n}")
    lm = _model(args)
    start = time.perf_counter()
    result = tether.generate(lm, args.prompt, spec, sampler=_sampler(args), max_tokens=args.max_tokens, n=args.n)
    seconds = time.perf_counter() - start
    gens = result if isinstance(result, list) else [result]
    if args.json:
        records = [_record(args.prompt, g, seconds / len(gens)) for g in gens]
        print(json.dumps(records if args.n is not None else records[0], ensure_ascii=False))
    else:
        for g in gens:
            _show(args.prompt, shown, g, seconds / len(gens), kind)
    return 0 if all(g.ok for g in gens) else 1


def check(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    spec, kind, shown = _spec(args)
    spec_seconds = time.perf_counter() - start
    vocab = _vocabulary(args)
    start = time.perf_counter()
    constraint = spec.compile(vocab)
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    constraint.mask(constraint.initial())
    mask_seconds = time.perf_counter() - start
    report = {"constraint": kind, "source": shown, "vocabulary": vocab.size,
              "states": _states(constraint), "spec_seconds": round(spec_seconds, 4),
              "compile_seconds": round(compile_seconds, 4), "first_mask_seconds": round(mask_seconds, 4),
              "cache_bytes": constraint.cache_bytes()}
    if args.json:
        print(json.dumps(report))
    else:
        print(f"ok: {kind} {shown}")
        print(f"  vocabulary     {vocab.size:,} ids")
        print(f"  states built   {report['states'] if report['states'] is not None else 'n/a'}")
        print(f"  spec compile   {1000 * spec_seconds:.1f} ms")
        print(f"  for vocabulary {1000 * compile_seconds:.1f} ms, first mask {1000 * mask_seconds:.1f} ms")
        print(f"  cache memory   {report['cache_bytes']:,} bytes")
    return 0


def _states(constraint: Any) -> int | None:
    """States built so far (automata grow lazily), through wrappers such as uniqueness or SQL scope."""
    while not hasattr(constraint, "n_states") and hasattr(constraint, "inner"):
        constraint = constraint.inner
    return constraint.n_states() if hasattr(constraint, "n_states") else None


def sample(args: argparse.Namespace) -> int:
    spec, _, _ = _spec(args)
    if args.n < 1:
        raise BadInput(f"-n must be at least 1, got {args.n}")
    from tether.automata.walk import sample as draw

    texts = list(_bar(draw(spec, args.n, seed=args.seed, max_size=args.max_size), args.n, "sampling"))
    if args.json:
        print(json.dumps(texts, ensure_ascii=False))
    else:
        for text in texts:
            print(text)
    return 0


def bench(args: argparse.Namespace) -> int:
    import numpy as np

    spec, kind, shown = _spec(args)
    vocab = _vocabulary(args)
    start = time.perf_counter()
    constraint = spec.compile(vocab)
    compile_seconds = time.perf_counter() - start
    from tether.automata.bitmask import allocate_bitmask, unpack_bitmask

    rng = np.random.default_rng(args.seed)
    row = allocate_bitmask(1, vocab.size)[0]
    first, steady, paths = [], [], []
    for _ in _bar(range(args.walks), args.walks, "walks"):
        state, path = constraint.initial(), []
        for _ in range(args.steps):
            t0 = time.perf_counter()
            constraint.fill_bitmask(state, row)  # what a sampler pays per step
            first.append(time.perf_counter() - t0)
            path.append(state)
            allowed = np.flatnonzero(unpack_bitmask(row, vocab.size))
            if not allowed.size or constraint.is_finished(state):
                break
            token = int(rng.choice(allowed))
            if token in vocab.eos_ids:
                break
            state = constraint.advance(state, token)
        paths.append(path)
    for path in paths:  # the same states again: cached masks
        for state in path:
            t0 = time.perf_counter()
            constraint.fill_bitmask(state, row)
            steady.append(time.perf_counter() - t0)
    us = lambda xs, q: float(np.percentile(np.array(xs) * 1e6, q)) if xs else float("nan")  # noqa: E731
    report = {"constraint": kind, "source": shown, "vocabulary": vocab.size, "walks": args.walks,
              "masks": len(first), "compile_seconds": round(compile_seconds, 4),
              "first_p50_us": us(first, 50), "first_p99_us": us(first, 99), "first_max_us": us(first, 100),
              "steady_p50_us": us(steady, 50), "steady_p99_us": us(steady, 99),
              "cache_bytes": constraint.cache_bytes()}
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{kind} {shown} on {vocab.size:,} ids: compiled in {1000 * compile_seconds:.1f} ms; "
              f"{len(first):,} masks over {args.walks} random walks")
        print(f"  {'mask':<14}{'p50 µs':>12}{'p99 µs':>12}{'max µs':>12}")
        print(f"  {'first visit':<14}{report['first_p50_us']:>12.1f}{report['first_p99_us']:>12.1f}"
              f"{report['first_max_us']:>12.1f}")
        print(f"  {'cached':<14}{report['steady_p50_us']:>12.1f}{report['steady_p99_us']:>12.1f}{'':>12}")
        print(f"  cache memory {report['cache_bytes']:,} bytes")
    return 0


# ---------------------------------------------------------------------- the parser


def _vocab_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vocab", metavar="PATH", help="a tokenizer.json (or .json.gz), a model folder or a GGUF file "
                                                   "(default: the embedded model's tokenizer)")


def parser() -> argparse.ArgumentParser:
    from tether import __version__

    top = argparse.ArgumentParser(prog="tether", description="Constrained generation for language models: "
                                  "outputs that match a regex, a grammar, a JSON Schema, a Python type or SQL.")
    top.add_argument("--version", action="version", version=f"tether {__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="regex and JSON answers from the embedded SmolLM2 model",
                       description="Three constrained answers from the embedded SmolLM2-135M-Instruct on the CPU.")
    _sampling_options(p)
    p.set_defaults(run=demo, n=None)

    p = sub.add_parser("generate", help="answer a prompt under a constraint",
                       description="Answer a prompt with a model, the output constrained to a language.")
    p.add_argument("prompt", help="the prompt (a user turn of the model's chat template)")
    _constraint_options(p)
    _sampling_options(p)
    p.add_argument("--n", type=int, help="outputs per prompt (sample/smc: independent draws; beam: the n best)")
    p.add_argument("--json", action="store_true", help="print the result as JSON (a list with --n)")
    p.set_defaults(run=generate)

    p = sub.add_parser("check", help="compile a constraint for a vocabulary and report it (no model)",
                       description="Compile a constraint for a tokenizer's vocabulary and report states, compile "
                                   "time and cache memory, or the exact error. No model weights are loaded.")
    _constraint_options(p)
    _vocab_option(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=check)

    p = sub.add_parser("sample", help="draw strings from a constraint's language (no model)",
                       description="Draw random strings of a constraint's language by random walks on its "
                                   "automaton, byte by byte. No model is involved.")
    _constraint_options(p)
    p.add_argument("-n", "--n", type=int, default=10, help="how many strings (default 10)")
    p.add_argument("--seed", type=int, help="seed of the walks (runs replay)")
    p.add_argument("--max-size", type=int, default=256, help="aim for strings of at most this many bytes (default 256)")
    p.add_argument("--json", action="store_true", help="print a JSON list of the strings")
    p.set_defaults(run=sample)

    p = sub.add_parser("bench", help="time a constraint's masks on a vocabulary (no model)",
                       description="Compile a constraint for a vocabulary, then time its masks along random "
                                   "token walks: first visits and cached visits.")
    _constraint_options(p)
    _vocab_option(p)
    p.add_argument("--walks", type=int, default=20, help="random walks (default 20)")
    p.add_argument("--steps", type=int, default=64, help="the most tokens per walk (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seed of the walks (default 0)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(run=bench)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from tether.errors import TetherError

    try:
        return args.run(args)
    # ValueError: an option a sampler refuses (e.g. --n with greedy); its message names the fix.
    except (BadInput, TetherError, ImportError, FileNotFoundError, ValueError) as exc:
        print("tether: " + " | ".join(line.strip() for line in str(exc).splitlines() if line.strip()),
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
