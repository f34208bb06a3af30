"""Differential fuzzer: tether's byte DFA against Python's `re.fullmatch`, and token walks on a real vocabulary.

Runs until --seconds pass (or --cases are done) and stops at the first disagreement, printing a
reproducer. Not part of the test run; the tests hold a bounded slice of the same checks.

    python fuzz/regex_differential.py --seconds 60
    python fuzz/regex_differential.py --seconds 300 --vocab gpt-2
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
import warnings
from pathlib import Path

import tether
from tether.errors import ConstraintTooLarge

ATOMS = ["a", "b", "c", "é", "ß", "😀", "0", "9", ".", r"\d", r"\w", r"\s", r"\D", r"\W", r"\S", "[ab]", "[^a]",
         "[a-c]", "[0-9é]", r"[\d\s]", r"[^\w]", r"\.", r"\n", " ", "[b-é]", r"\u00e9", r"\x41", "A", "K", "(?:)"]
QUANTIFIERS = ["*", "+", "?", "{2}", "{0,3}", "{1,}", "{,2}", "*?", "+?", "{2,3}?"]
ALPHABET = list("abcABCé😀09 .\n_-ßK") + ["ǅ", "٣", "\u00a0", "K", "ſ"]


def random_regex(rng: random.Random, depth: int = 0) -> str:
    roll = rng.random()
    if depth > 3 or roll < 0.3:
        return rng.choice(ATOMS)
    if roll < 0.55:
        return random_regex(rng, depth + 1) + random_regex(rng, depth + 1)
    if roll < 0.7:
        return f"(?:{random_regex(rng, depth + 1)}|{random_regex(rng, depth + 1)})"
    if roll < 0.9:
        return f"(?:{random_regex(rng, depth + 1)}){rng.choice(QUANTIFIERS)}"
    return f"(?{rng.choice('isa')}:{random_regex(rng, depth + 1)})"


def random_text(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 8)))


def check(pattern: str, rng: random.Random, vocab) -> str | None:
    """None if tether agrees with `re` on this pattern, else a description of the disagreement."""
    reference = re.compile(pattern)
    try:
        spec = tether.regex(pattern)
    except ConstraintTooLarge:
        return None
    for text in [random_text(rng) for _ in range(20)]:
        if spec.matches(text) != (reference.fullmatch(text) is not None):
            return f"{pattern!r} on {text!r}: re says {reference.fullmatch(text) is not None}"
    if vocab is not None:
        c = spec.compile(vocab)
        state, ids = c.initial(), []
        for _ in range(rng.randint(1, 12)):
            allowed = c.mask(state).nonzero()[0]
            if not len(allowed):
                return f"{pattern!r}: dead end after {vocab.decode(ids)!r}"
            token = int(rng.choice(allowed))
            if token in vocab.eos_ids:
                break
            state = c.advance(state, token)
            ids.append(token)
        if c.is_accepting(state) and not reference.fullmatch(vocab.decode(ids).decode()):
            return f"{pattern!r}: accepted {vocab.decode(ids)!r}, which re rejects"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--cases", type=int, default=10**9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vocab", help="also walk tokens of ../shared/data/tokenizers/<name>")
    args = parser.parse_args()
    vocab = None
    if args.vocab:
        path = Path(__file__).resolve().parents[2] / "shared" / "data" / "tokenizers" / args.vocab / "tokenizer.json.gz"
        vocab = tether.Vocabulary.from_file(path)
    rng = random.Random(args.seed)
    deadline = time.monotonic() + args.seconds
    done = 0
    while done < args.cases and time.monotonic() < deadline:
        pattern = random_regex(rng)
        problem = check(pattern, rng, vocab)
        if problem:
            print(f"DISAGREEMENT after {done} cases: {problem}")
            return 1
        done += 1
        if done % 500 == 0:
            print(f"{done} patterns agree", file=sys.stderr)
    print(f"{done} patterns, no disagreement")
    return 0


if __name__ == "__main__":
    sys.exit(main())
