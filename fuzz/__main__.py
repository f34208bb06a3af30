"""`python -m fuzz <target> --seconds N [--seed S] [target options]`, or `all` for every target in turn.

    python -m fuzz regex --seconds 60 --vocab gpt-2
    python -m fuzz all --seconds 30
"""

from __future__ import annotations

import argparse
import random
import sys

from . import targets


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=60, help="time budget per target (default 60)")
    parser.add_argument("--seed", type=int, default=None,
                        help="random seed (default: a fresh one, printed so that a run can be repeated)")
    parser.add_argument("--max-failures", type=int, default=5, help="stop after this many failures (default 5)")
    parser.add_argument("--no-save", dest="save", action="store_false",
                        help="do not append failing cases to tests/regressions/<target>.jsonl")


def main(argv: list[str] | None = None) -> int:
    registry = targets()
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="target", required=True, metavar="{all," + ",".join(registry) + "}")
    _common(sub.add_parser("all", help="every target in turn, each with its default options"))
    for name, module in registry.items():
        target_parser = sub.add_parser(name, help=(module.__doc__ or name).splitlines()[0])
        _common(target_parser)
        module.add_arguments(target_parser)
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(10**6)
    if args.target != "all":
        return registry[args.target].run(args)
    # Each target gets its own defaults, then the shared options of this run.
    status = 0
    for name, module in registry.items():
        target_args = parser.parse_args([name, "--seconds", str(args.seconds), "--seed", str(args.seed),
                                         "--max-failures", str(args.max_failures)] + ([] if args.save else ["--no-save"]))
        status |= module.run(target_args)
    return status


if __name__ == "__main__":
    sys.exit(main())
