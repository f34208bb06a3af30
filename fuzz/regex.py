"""Regex constraints against Python's re.fullmatch: strings, greedy and random token walks, mask == allows.

    python -m fuzz regex --seconds 60
    python -m fuzz regex --seconds 300 --seed 3 --vocab llama-bpe

For each random pattern (fuzz/_regexgen.py: anchors, `(?i)`, counted repetitions, Unicode classes,
comments, literal braces such as `{٣}`; some patterns are then edited as text, to reach syntax
errors), with random flags:

- compiling agrees with `re.compile`: tether raises `InvalidPattern` (at re's position) exactly
  when re raises `re.error`;
- `Regex.matches` agrees with `re.fullmatch` on members (sampled from the tree and drawn with
  hypothesis's `from_regex`) and non-members (mutated members, random strings);
- on a real vocabulary: the greedy tokenization of every string, and other tokenizations of
  members, are accepted exactly when re accepts the string; random walks over the allowed
  tokens are accepted only when re full-matches their text; at every state of a walk,
  `mask(s)` agrees with `allows(s, t)` on a sample of the allowed ids and of all ids, EOS is
  allowed exactly in accepting states, some token is allowed (no dead ends), and `advance`
  refuses the ids the mask forbids.

Every check is a *case* (a small dict: kind, pattern, flags, and the text or token ids with
what re expects), checked by `check_case`; failing cases are shrunk and appended to
tests/regressions/regex.jsonl, which tests/test_fuzz_regressions.py replays with the same
function. `UnsupportedPattern` and `ConstraintTooLarge` are skips (counted), as is a pattern
that runs past --pattern-seconds; any other exception is a failure.
"""

from __future__ import annotations

import argparse
import functools
import random
import re
import sys
import time
import traceback
import warnings
from typing import Iterator

import numpy as np

import tether
from tether.errors import ConstraintTooLarge, EmptyLanguage, InvalidPattern, UnsupportedPattern

from . import _regexgen as gen
from ._harness import CaseTimeout, Stats, check_mask, check_walk, save_case, time_limit, tokenizer_path

__all__ = ["check_case", "match_case", "walk_case", "mask_case", "compile_case", "add_arguments", "run"]

TARGET = "regex"
SKIPS = (UnsupportedPattern, ConstraintTooLarge)
FLAG_CHOICES = [0] * 8 + [re.I, re.S, re.A, re.I | re.A, re.X, re.M, re.I | re.S]
MAX_TEXT = 40  # longer strings are dropped: re's backtracking is exponential on some patterns
SUMMARY_KEYS = ("patterns", "compiled", "invalid (both reject)", "skipped", "strings", "members", "non-members",
                "token walks", "mask states", "mask ids", "failures")


# ---------------------------------------------------------------- cases

def flag_names(flags: int) -> list[str]:
    """Flags as names in a case, so the saved file reads without a flag table."""
    return [name for name in ("IGNORECASE", "DOTALL", "ASCII", "VERBOSE", "MULTILINE") if flags & re.RegexFlag[name]]


def flag_value(names: list[str]) -> int:
    value = 0
    for name in names:
        value |= re.RegexFlag[name].value
    return value


@functools.lru_cache(maxsize=64)
def reference(pattern: str, flags: int) -> re.Pattern:
    """Python's compiled pattern (raises re.error like re.compile)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FutureWarning on "[[" and friends: still valid patterns
        return re.compile(pattern, flags)


def spec(pattern: str, flags: int, limits: tether.Limits | None = None) -> tether.Regex:
    """`tether.regex(pattern)`, memoised with its error (each case of a pattern asks again)."""
    key = (pattern, flags, limits)
    if key not in _specs:
        if len(_specs) >= 8:
            del _specs[next(iter(_specs))]
        try:
            _specs[key] = tether.regex(pattern, flags=flags, limits=limits)
        except tether.TetherError as e:
            _specs[key] = e
    value = _specs[key]
    if isinstance(value, Exception):
        raise value.with_traceback(None)
    return value


_specs: dict[tuple, object] = {}
spec.cache_clear = _specs.clear  # type: ignore[attr-defined]  (as the lru_caches below)


@functools.lru_cache(maxsize=4)
def constraint(pattern: str, flags: int, vocab_name: str, limits: tether.Limits | None = None):
    return spec(pattern, flags, limits).compile(vocabulary(vocab_name))


@functools.lru_cache(maxsize=None)
def vocabulary(name: str) -> tether.Vocabulary:
    """A real vocabulary from ../shared/data/tokenizers/<name>, loaded once per process."""
    return tether.Vocabulary.from_file(tokenizer_path(name))


def _decoded(vocab_name: str, ids: list[int]) -> str | None:
    try:
        return vocabulary(vocab_name).decode(ids).decode("utf-8")
    except UnicodeDecodeError:  # ends inside a character: no str is spelled, so no member
        return None


def compile_case(pattern: str, flags: int) -> dict:
    """tether compiles `pattern` iff re does; when re refuses it, InvalidPattern is at re's position."""
    try:
        reference(pattern, flags)
        return {"kind": "compile", "pattern": pattern, "flags": flag_names(flags), "expected": "valid"}
    except re.error as e:
        return {"kind": "compile", "pattern": pattern, "flags": flag_names(flags), "expected": "invalid",
                "position": e.pos}


def match_case(pattern: str, flags: int, text: str) -> dict:
    """`Regex.matches(text)` is what `re.fullmatch` says."""
    expected = reference(pattern, flags).fullmatch(text) is not None
    return {"kind": "match", "pattern": pattern, "flags": flag_names(flags), "text": text, "expected": expected}


def walk_case(pattern: str, flags: int, vocab_name: str, ids: list[int]) -> dict:
    """The constraint accepts the token sequence `ids` iff re full-matches the text it spells."""
    text = _decoded(vocab_name, ids)
    expected = text is not None and reference(pattern, flags).fullmatch(text) is not None
    return {"kind": "walk", "pattern": pattern, "flags": flag_names(flags), "vocab": vocab_name,
            "ids": [int(t) for t in ids], "text": text, "expected": expected}


def mask_case(pattern: str, flags: int, vocab_name: str, prefix: list[int], tokens: list[int]) -> dict:
    """After `prefix`: mask agrees with allows on `tokens`, EOS iff accepting, no dead end, advance refuses."""
    return {"kind": "mask", "pattern": pattern, "flags": flag_names(flags), "vocab": vocab_name,
            "ids": [int(t) for t in prefix], "tokens": sorted({int(t) for t in tokens}),
            "expected": "mask == allows, EOS iff accepting, some token allowed, advance refuses what the mask forbids"}


def check_case(case: dict, limits: tether.Limits | None = None) -> str | None:
    """None if tether does what `case` expects, else what it did instead.

    Exceptions propagate: the fuzzer counts `UnsupportedPattern`/`ConstraintTooLarge` as skips and
    anything else as a failure; a replayed regression case fails on any of them.
    """
    pattern, flags = case["pattern"], flag_value(case["flags"])
    kind = case["kind"]
    if kind == "compile":
        return _check_compile(case, pattern, flags, limits)
    if kind == "match":
        try:
            got = bool(spec(pattern, flags, limits).matches(case["text"]))
        except EmptyLanguage:  # right as long as re has no member either
            if case["expected"]:
                return f"match: tether says the language is empty, re.fullmatch matches {case['text']!r}"
            return None
        if got != case["expected"]:
            return f"match: tether says {got}, re.fullmatch says {case['expected']}, on {case['text']!r}"
        return None
    c = constraint(pattern, flags, case["vocab"], limits)
    if kind == "walk":
        return check_walk(c, case, "re")
    if kind == "mask":
        return check_mask(c, case)
    raise ValueError(f"unknown case kind {kind!r}")


def _check_compile(case: dict, pattern: str, flags: int, limits) -> str | None:
    try:
        spec(pattern, flags, limits)
    except InvalidPattern as e:
        if case["expected"] == "valid":
            return f"compile: tether rejects a pattern re compiles: {e}"
        if case.get("position") is not None and e.position != case["position"]:
            return f"compile: InvalidPattern at {e.position}, re.error at {case['position']}: {e}"
        return None
    except EmptyLanguage:
        if case["expected"] == "invalid":
            return "compile: re rejects the pattern, tether raises EmptyLanguage"
        return None  # the match cases check that re has no member either
    except SKIPS as e:
        if case["expected"] == "invalid":
            return f"compile: re rejects the pattern, tether raises {type(e).__name__}: {e}"
        raise
    if case["expected"] == "invalid":
        return f"compile: tether compiles a pattern re rejects at position {case.get('position')}"
    return None


# ---------------------------------------------------------------- running cases

def attempt(case: dict, limits: tether.Limits | None) -> tuple[str, str]:
    """("ok", ""), ("skip", reason) or ("fail", what happened) for one case."""
    try:
        problem = check_case(case, limits)
    except SKIPS as e:
        return "skip", (getattr(e, "construct", None) or type(e).__name__).split(" (")[0]
    except Exception as e:  # a crash is a finding like any other
        where = traceback.extract_tb(e.__traceback__)[-1]
        return "fail", f"{type(e).__name__}: {e} (at {where.filename.rpartition('/')[2]}:{where.lineno})"
    return ("fail", problem) if problem else ("ok", "")


def _signature(detail: str) -> str:
    """The kind of failure, kept while shrinking so that a case does not drift to another bug:
    the detail up to its first list or aside, without its numbers."""
    head = re.split(r"[,;(\[]", detail, maxsplit=1)[0]
    return re.sub(r"\d+", "N", ":".join(head.split(":")[:2])).strip()


def _rebuild(case: dict, **changes) -> dict | None:
    """`case` with a changed pattern, flags, text or ids and what re now expects; None if re refuses it."""
    c = {**case, **changes}
    pattern, flags = c["pattern"], flag_value(c["flags"])
    try:
        if c["kind"] == "compile":
            return compile_case(pattern, flags)
        reference(pattern, flags)
        if c["kind"] == "match":
            return match_case(pattern, flags, c["text"])
        if c["kind"] == "walk":
            return walk_case(pattern, flags, c["vocab"], c["ids"])
        return mask_case(pattern, flags, c["vocab"], c["ids"], c["tokens"])
    except re.error:
        return None


def _smaller(case: dict, tree: gen.Node | None) -> Iterator[tuple[dict | None, gen.Node | None]]:
    """Candidate simplifications of a case: the text or ids first (the compiled pattern is reused,
    so they are cheap), then flags and the pattern (each a fresh compile)."""
    if case["kind"] == "match":
        for cut in _cuts(case["text"]):
            yield _rebuild(case, text=cut), tree
    if case["kind"] == "walk":
        ids = case["ids"]
        for i in range(len(ids)):
            yield _rebuild(case, ids=ids[:i] + ids[i + 1:]), tree
    if case["kind"] == "mask" and case["tokens"]:
        yield _rebuild(case, tokens=[]), tree  # enough for a dead end or a wrong EOS
        half = len(case["tokens"]) // 2
        yield _rebuild(case, tokens=case["tokens"][:half]), tree
        yield _rebuild(case, tokens=case["tokens"][half:]), tree
    if case["flags"]:
        yield _rebuild(case, flags=[]), tree
    if tree is not None:
        for t in tree.shrinks():
            yield _rebuild(case, pattern=t.render()), t
    else:
        for cut in _cuts(case["pattern"]):
            yield _rebuild(case, pattern=cut), None


def _cuts(text: str) -> Iterator[str]:
    """`text` without one span of 4, 3, 2 or 1 characters."""
    for width in (4, 3, 2, 1):
        for i in range(len(text) - width + 1):
            yield text[:i] + text[i + width:]


def shrink(case: dict, detail: str, tree: gen.Node | None, limits, seconds: float = 3.0) -> tuple[dict, str]:
    """A smaller case failing the same way, found greedily within `seconds` (a little, if cheap)."""
    best = [case, detail]
    deadline = time.monotonic() + seconds
    try:
        with time_limit(seconds + 1):
            progress = True
            while progress and time.monotonic() < deadline:
                progress = False
                for candidate, t in _smaller(best[0], tree):
                    if time.monotonic() > deadline:
                        break
                    if candidate is None or candidate == best[0]:
                        continue
                    outcome, what = attempt(candidate, limits)
                    if outcome == "fail" and _signature(what) == _signature(best[1]):
                        best[:] = [candidate, what]
                        tree, progress = t, True
                        break
    except CaseTimeout:
        spec.cache_clear()  # whatever was interrupted may be half-built
        constraint.cache_clear()
    return best[0], best[1]


# ---------------------------------------------------------------- strings and walks

def hypothesis_members(pattern: re.Pattern, n: int, seed: int) -> list[str]:
    """Up to `n` strings drawn by hypothesis's `from_regex(pattern, fullmatch=True)`, reproducibly."""
    try:
        from hypothesis import HealthCheck, Phase, given, settings
        from hypothesis import seed as with_seed
        from hypothesis import strategies as st
    except ImportError:  # the `test` extra is not installed: the trees' own samples remain
        return []
    drawn: list[str] = []

    @with_seed(seed)
    @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(st.from_regex(pattern, fullmatch=True))
    def draw(text: str) -> None:
        drawn.append(text)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            draw()
        except Exception:  # constructs hypothesis cannot draw from (or no member at all)
            pass
    return drawn[:n]


class _Pieces:
    """Token ids by their bytes, to find every token that spells a prefix of some text."""

    def __init__(self, vocab: tether.Vocabulary):
        self.ids: dict[bytes, list[int]] = {}
        for i, piece in enumerate(vocab):
            if piece:
                self.ids.setdefault(piece, []).append(i)
        self.longest = max(map(len, self.ids))

    def prefixes(self, data: bytes) -> list[int]:
        return [t for k in range(1, min(self.longest, len(data)) + 1) for t in self.ids.get(data[:k], ())]


@functools.lru_cache(maxsize=None)
def pieces(vocab_name: str) -> _Pieces:
    return _Pieces(vocabulary(vocab_name))


class Fuzzer:
    """One run: patterns until the budget is spent or --max-failures failures were found."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.rng = random.Random(args.seed)
        self.stats = Stats(TARGET, args.seconds, args.seed)
        self.vocab_name = None if args.vocab in (None, "", "none") else args.vocab
        self.limits = tether.Limits(compile_seconds=args.pattern_seconds / 2)
        self.failures: list[tuple[dict, str, gen.Node | None]] = []
        self.reported: dict[str, int] = {}  # shrunk case -> the failure that first showed it

    # -- one case

    def check(self, case: dict, tree: gen.Node | None) -> None:
        """Check a case; a skip or a failure ends the pattern (raising _Skip or _Failed)."""
        outcome, what = attempt(case, self.limits)
        if outcome == "skip":
            raise _Skip(what)
        if outcome == "fail":  # the rest of this pattern would mostly find the same bug again
            self.failures.append((case, what, tree))
            raise _Failed(what)

    # -- one pattern

    def pattern(self, index: int) -> None:
        tree: gen.Node | None = gen.random_pattern(self.rng)
        pattern = tree.render()
        if self.rng.random() < 0.1:
            pattern, tree = gen.mutate_pattern_text(pattern, self.rng), None
        flags = self.rng.choice(FLAG_CHOICES)
        self.stats["patterns"] += 1
        try:
            compiled = compile_case(pattern, flags)
        except (OverflowError, RecursionError, ValueError) as e:  # re gives up on some edited patterns
            raise _Skip(f"re raises {type(e).__name__}") from e
        self.check(compiled, tree)
        if compiled["expected"] == "invalid":
            self.stats["invalid (both reject)"] += 1
            return
        compiles = _compiles(pattern, flags, self.limits)  # False: an empty language, so re must find no member
        self.stats["compiled" if compiles else "empty language"] += 1
        members, others = [], []
        for text in self.strings(tree, reference(pattern, flags), index):
            case = match_case(pattern, flags, text)
            self.check(case, tree)
            (members if case["expected"] else others).append(text)
        self.stats["strings"] += len(members) + len(others)
        self.stats["members"] += len(members)
        self.stats["non-members"] += len(others)
        if self.vocab_name is not None and compiles:
            self.walks(pattern, flags, tree, members, others)

    def strings(self, tree: gen.Node | None, ref: re.Pattern, index: int) -> list[str]:
        rng = self.rng
        members = [tree.sample(rng) for _ in range(6)] if tree is not None else []
        members += hypothesis_members(ref, 4, self.args.seed * 100_003 + index)
        others = [gen.mutate(m, rng) for m in members[:6]] + [gen.random_text(rng) for _ in range(4)] + [""]
        keep = []
        for text in dict.fromkeys(members + others):
            if len(text) <= MAX_TEXT and not any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
                keep.append(text)
        return keep

    def walks(self, pattern: str, flags: int, tree: gen.Node | None, members: list[str], others: list[str]) -> None:
        vocab, name, rng = vocabulary(self.vocab_name), self.vocab_name, self.rng
        for text in members[:4] + others[:4]:
            ids = _spelled(vocab, text)
            if ids is not None:
                self.check(walk_case(pattern, flags, name, ids), tree)
                self.stats["token walks"] += 1
        for text in members[:2]:  # another tokenization: a random token that spells a prefix of the rest
            ids = _spelled(vocab, text)
            if not ids:
                continue
            i = rng.randrange(len(ids))
            rest = vocab.decode(ids[i:])
            token = rng.choice(pieces(name).prefixes(rest))
            tail = rest[len(vocab[token]):]
            other = ids[:i] + [token] + (vocab.encode_greedy(tail) if tail else [])
            self.check(walk_case(pattern, flags, name, other), tree)
            self.stats["token walks"] += 1
        for _ in range(3):
            self.random_walk(pattern, flags, tree, rng.randint(1, 12))

    def random_walk(self, pattern: str, flags: int, tree: gen.Node | None, length: int) -> None:
        c, name, rng = constraint(pattern, flags, self.vocab_name, self.limits), self.vocab_name, self.rng
        vocab = c.vocab
        draw = np.random.default_rng(rng.getrandbits(63))  # vectorised draws over 10^5 ids, still seeded
        eos = np.asarray(vocab.eos_ids)
        state, ids = c.initial(), []
        for _ in range(length):
            allowed = np.flatnonzero(np.asarray(c.mask(state)))
            # Up to 300 allowed ids and 200 random ones: an id the mask allows wrongly shows up in the
            # first half, one it forbids wrongly in the second (allows() on all 10^5 ids is too slow).
            sample = set(draw.choice(allowed, min(len(allowed), 300), replace=False).tolist()) if len(allowed) else set()
            sample |= set(draw.choice(vocab.size, 200, replace=False).tolist()) | set(vocab.eos_ids)
            self.stats["mask states"] += 1
            self.stats["mask ids"] += len(sample)
            self.check(mask_case(pattern, flags, name, ids, sorted(sample)), tree)
            moves = allowed[~np.isin(allowed, eos)]
            if not len(moves) or (c.is_accepting(state) and rng.random() < 0.3):
                break
            token = int(moves[draw.integers(len(moves))])
            try:
                state = c.advance(state, token)
            except Exception:  # replayed as a case, so that it is saved; else a driver error
                self.check(walk_case(pattern, flags, name, ids + [token]), tree)
                raise
            ids.append(token)
        self.check(walk_case(pattern, flags, name, ids), tree)
        self.stats["token walks"] += 1

    # -- the run

    def run(self) -> int:
        args, stats = self.args, self.stats
        setup = time.monotonic()
        if self.vocab_name:
            vocabulary(self.vocab_name)
            pieces(self.vocab_name)
            c = constraint("[a-z]+", 0, self.vocab_name)  # the mask kernel compiles (or loads) once, off the clock
            c.mask(c.advance(c.initial(), c.vocab.encode_greedy("ab")[0]))
        print(f"fuzz {TARGET}: seed {args.seed}, {args.seconds:g} s, vocabulary {self.vocab_name or 'none'} "
              f"(setup {time.monotonic() - setup:.1f} s)", flush=True)
        stats.start = time.monotonic()
        index = 0
        while not stats.expired() and stats["failures"] < args.max_failures:
            index += 1
            try:
                with time_limit(args.pattern_seconds):
                    self.pattern(index)
            except _Failed:
                pass
            except _Skip as skip:
                stats["skipped"] += 1
                stats[f"skipped: {skip.reason}"] += 1
            except CaseTimeout:
                stats["skipped"] += 1
                stats["skipped: slow"] += 1
                spec.cache_clear()  # whatever was interrupted may be half-built
                constraint.cache_clear()
            except Exception:  # outside any case (tether, or this fuzzer): a failure without a case to save
                stats["failures"] += 1
                print(f"\nFAILURE {stats['failures']}: error in the fuzzer's driver on pattern {index}:\n"
                      + traceback.format_exc(), flush=True)
            self.report_failures()
            stats.status(SUMMARY_KEYS)
        stats.end_status()
        skips = ", ".join(f"{k.partition(': ')[2]} {v:,}" for k, v in stats.most_common() if k.startswith("skipped: "))
        print(stats.summary(SUMMARY_KEYS) + (f" [skips: {skips}]" if skips else ""))
        return 1 if stats["failures"] else 0

    def report_failures(self) -> None:
        for case, what, tree in self.failures:
            self.stats["failures"] += 1
            n = self.stats["failures"]
            small, why = shrink(case, what, tree, self.limits)
            key = repr(sorted(small.items()))
            if key in self.reported:  # another pattern that shrinks to the same case: one line
                print(f"\nFAILURE {n}: same case as failure {self.reported[key]} (from {case['pattern']!r})", flush=True)
                continue
            self.reported[key] = n
            small = {**small, "found": f"python -m fuzz regex --seed {self.args.seed}", "note": why}
            saved = self.args.save and save_case(TARGET, small)
            print(f"\nFAILURE {n}: {why}\n  case: {small}"
                  + ("\n  saved to tests/regressions/regex.jsonl" if saved else ""), flush=True)
        self.failures.clear()


class _Skip(Exception):
    def __init__(self, reason: str):
        self.reason = reason


class _Failed(Exception):
    """Ends a pattern at its first failure."""


def _spelled(vocab: tether.Vocabulary, text: str) -> list[int] | None:
    try:
        return vocab.encode_greedy(text)
    except tether.VocabularyError:  # a vocabulary without byte fallback that cannot spell it
        return None


def _compiles(pattern: str, flags: int, limits) -> bool:
    try:
        spec(pattern, flags, limits)
        return True
    except (EmptyLanguage, *SKIPS):
        return False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vocab", default="gpt-2",
                        help="vocabulary for token walks, from ../shared/data/tokenizers (default gpt-2; 'none': strings only)")
    parser.add_argument("--pattern-seconds", type=float, default=10.0,
                        help="a pattern that takes longer than this is skipped as slow (default 10)")


def run(args: argparse.Namespace) -> int:
    return Fuzzer(args).run()


if __name__ == "__main__":
    sys.exit("run the fuzzers as: python -m fuzz regex --seconds N")
