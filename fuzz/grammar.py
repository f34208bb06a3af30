"""Lark grammars against Lark's own Earley parser: membership, greedy and random token walks, mask == allows.

    python -m fuzz grammar --seconds 60
    python -m fuzz grammar --seconds 300 --seed 3 --vocab none

For each random grammar (fuzz/_grammargen.py: left and right recursion, ambiguity, empty
alternatives, nullable cycles, `?`/`*`/`+`/`~`, keyword/identifier overlaps, regex terminals,
sometimes `%ignore`) that Lark builds (the ones it refuses are counted, not tested):

- `tether.lark(grammar, start=...)` compiles it (a `GrammarError` is only right for a grammar
  with a rule that derives no string), and a grammar without any recursion (none in any rule,
  as written: `"a"*` is no recursion) runs on the DFA path (`engine == "dfa"`, checked last);
- `matches(text)` (str and UTF-8 bytes) is what `Lark(grammar, parser="earley",
  lexer="dynamic_complete").parse(text)` says, on derivations (members), their mutations
  (characters and whole terminals inserted, deleted, duplicated, swapped), random strings of
  the grammar's terminals, and "";
- on a real vocabulary (--vocab, default gpt-2): the greedy tokenization of each string is
  accepted exactly when Lark accepts it; random walks over the allowed tokens are accepted
  only when Lark accepts their text; at each state of a walk the mask agrees with `allows` on a
  sample of ids, EOS is allowed exactly in accepting states, some token is allowed (no dead
  ends), and `advance` refuses ids the mask forbids.

Every check is a *case* (a dict: kind, grammar text, start rule, the text or token ids, what Lark
expects), checked by `check_case`. The first failing case of each kind (its message without
numbers and details) is shrunk (the text, then the grammar's rules, alternatives and items) and
appended to tests/regressions/grammar.jsonl, which tests/test_fuzz_regressions.py replays with
the same function; later failures of a kind are only counted, and the run stops after
--max-failures kinds. `UnsupportedPattern` and `ConstraintTooLarge` are skips, as is a grammar
that runs past --grammar-seconds (the first grammar of each is printed at the end: on small
grammars they are worth a look); a crash leaves the case in flight in --inflight. Strings are
at most 30 characters: Earley on ambiguous grammars is cubic, and Lark is pure Python. A
derivation Lark rejects would be a generator bug ("derivations Lark rejects" counts them).
"""

from __future__ import annotations

import argparse
import faulthandler
import functools
import json
import os
import random
import re
import sys
import tempfile
import time
import traceback
from typing import Iterator

import numpy as np

from . import _grammargen as gen
from ._harness import CaseTimeout, Stats, check_mask, check_walk, save_case, time_limit, tokenizer_path

__all__ = ["check_case", "match_case", "walk_case", "mask_case", "compile_case", "lark_accepts", "lark_parser",
           "add_arguments", "run"]

TARGET = "grammar"
MAX_TEXT = gen.MAX_TEXT
SUMMARY_KEYS = ("grammars", "lark rejects", "built", "compiled", "engine dfa", "engine cfg", "skipped", "strings",
                "members", "non-members", "derivations Lark rejects", "token walks", "mask states", "cases",
                "failures", "failures of a kind already shown")


def _tether():
    import tether  # late: the fuzzer's Lark side runs (and --help works) without the engine

    return tether


def _skips() -> tuple[type, ...]:
    from tether.errors import ConstraintTooLarge, UnsupportedPattern

    return UnsupportedPattern, ConstraintTooLarge


# ---------------------------------------------------------------- the reference

@functools.lru_cache(maxsize=64)
def lark_parser(grammar: str, start: str = "start"):
    """Lark's Earley parser with the complete dynamic lexer (raises whatever Lark raises on a bad grammar)."""
    import lark

    return lark.Lark(grammar, parser="earley", lexer="dynamic_complete", start=start)


def lark_accepts(grammar: str, start: str, text: str | bytes | None) -> bool:
    """Whether Lark parses `text` (bytes: as UTF-8; bytes that are not UTF-8 are no member)."""
    import lark

    if text is None:
        return False
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            return False
    try:
        lark_parser(grammar, start).parse(text)
        return True
    except lark.exceptions.LarkError:
        return False


@functools.lru_cache(maxsize=64)
def lark_unproductive(grammar: str, start: str = "start") -> tuple[str, ...]:
    """The rules (of Lark's BNF, reachable from `start`) that derive no string: tether may refuse
    such a grammar with a GrammarError (its documented choice), though Lark builds it."""
    rules = lark_parser(grammar, start).rules
    done: set[str] = set()
    changed = True
    while changed:
        changed = False
        for r in rules:
            name = r.origin.name
            if name not in done and all(sym.is_term or sym.name in done for sym in r.expansion):
                done.add(name)
                changed = True
    return tuple(sorted({r.origin.name for r in rules} - done))


# ---------------------------------------------------------------- tether, memoised

_specs: dict[tuple, object] = {}


def spec(grammar: str, start: str):
    """`tether.lark(grammar, start=start)`, memoised with its error."""
    key = (grammar, start)
    if key not in _specs:
        if len(_specs) >= 8:
            del _specs[next(iter(_specs))]
        try:
            _specs[key] = _tether().lark(grammar, start=start)
        except Exception as e:  # noqa: BLE001 (re-raised on every use)
            _specs[key] = e
    value = _specs[key]
    if isinstance(value, BaseException):
        raise value.with_traceback(None)
    return value


spec.cache_clear = _specs.clear  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=4)
def constraint(grammar: str, start: str, vocab_name: str):
    return spec(grammar, start).compile(vocabulary(vocab_name))


@functools.lru_cache(maxsize=None)
def vocabulary(name: str):
    return _tether().Vocabulary.from_file(tokenizer_path(name))


def _decoded(vocab_name: str, ids: list[int]) -> str | None:
    try:
        return vocabulary(vocab_name).decode(ids).decode("utf-8")
    except UnicodeDecodeError:
        return None


# ---------------------------------------------------------------- cases

def compile_case(grammar: str, start: str, productive: bool, engine: str | None = None) -> dict:
    """tether compiles what Lark builds (GrammarError allowed only when a rule derives no string);
    with `engine`, it runs on that engine ("dfa" for a grammar without any recursion)."""
    case = {"kind": "compile", "grammar": grammar, "start": start,
            "expected": "valid" if productive else "valid or GrammarError"}
    if engine:
        case["engine"] = engine
    return case


def match_case(grammar: str, start: str, text: str) -> dict:
    """`matches(text)` is what Lark says."""
    return {"kind": "match", "grammar": grammar, "start": start, "text": text,
            "expected": lark_accepts(grammar, start, text)}


def walk_case(grammar: str, start: str, vocab_name: str, ids: list[int]) -> dict:
    """The constraint accepts the token sequence `ids` iff Lark accepts the text it spells."""
    text = _decoded(vocab_name, ids)
    return {"kind": "walk", "grammar": grammar, "start": start, "vocab": vocab_name, "ids": [int(t) for t in ids],
            "text": text, "expected": lark_accepts(grammar, start, text)}


def mask_case(grammar: str, start: str, vocab_name: str, prefix: list[int], tokens: list[int]) -> dict:
    return {"kind": "mask", "grammar": grammar, "start": start, "vocab": vocab_name,
            "ids": [int(t) for t in prefix], "tokens": sorted({int(t) for t in tokens}),
            "expected": "mask == allows, EOS iff accepting, some token allowed, advance refuses what the mask forbids"}


def check_case(case: dict) -> str | None:
    """None if tether does what `case` expects, else what it did instead (exceptions propagate)."""
    grammar, start, kind = case["grammar"], case.get("start", "start"), case["kind"]
    if kind == "compile":
        return _check_compile(case, grammar, start)
    if kind == "match":
        text = case["text"]
        if isinstance(text, dict):  # {"bytes_hex": ...}: a text that is no str
            text = bytes.fromhex(text["bytes_hex"])
        try:
            g = spec(grammar, start)
        except _tether().GrammarError as e:
            if case["expected"] and not lark_unproductive(grammar, start):
                return f"match: tether refuses the grammar ({e}), Lark accepts {text!r}"
            return None  # Lark finds no member, or a rule derives nothing: the refusal is documented
        got = bool(g.matches(text))
        if got != case["expected"]:
            return f"match: tether says {got}, Lark says {case['expected']}, on {text!r}"
        if isinstance(text, str):
            got_bytes = bool(g.matches(text.encode("utf-8")))
            if got_bytes != got:
                return f"match: matches(bytes) says {got_bytes}, matches(str) says {got}, on {text!r}"
        return None
    c = constraint(grammar, start, case["vocab"])
    if kind == "walk":
        return check_walk(c, case, "Lark")
    if kind == "mask":
        return check_mask(c, case)
    raise ValueError(f"unknown case kind {kind!r}")


def _check_compile(case: dict, grammar: str, start: str) -> str | None:
    tether = _tether()
    try:
        g = spec(grammar, start)
    except tether.GrammarError as e:
        if case["expected"] == "valid" and not lark_unproductive(grammar, start):
            return f"compile: tether raises GrammarError on a grammar Lark builds: {e}"
        return None
    engine = getattr(g, "engine", None)
    if engine not in ("dfa", "cfg"):
        return f"compile: engine is {engine!r}, not 'dfa' or 'cfg'"
    if case.get("engine") and engine != case["engine"]:
        return f"compile: engine {engine!r} for a grammar without recursion (expected {case['engine']!r})"
    return None


# ---------------------------------------------------------------- running cases

def attempt(case: dict) -> tuple[str, str]:
    """("ok", ""), ("skip", reason) or ("fail", what happened) for one case."""
    try:
        problem = check_case(case)
    except _skips() as e:
        return "skip", type(e).__name__
    except Exception as e:  # a crash is a finding like any other
        where = traceback.extract_tb(e.__traceback__)[-1]
        return "fail", f"{type(e).__name__}: {e} (at {where.filename.rpartition('/')[2]}:{where.lineno})"
    return ("fail", problem) if problem else ("ok", "")


def _signature(detail: str) -> str:
    head = re.split(r"[,;(\[]", detail, maxsplit=1)[0]
    return re.sub(r"\d+", "N", ":".join(head.split(":")[:2])).strip()


def _builds(grammar: str, start: str) -> bool:
    try:
        lark_parser(grammar, start)
        return True
    except Exception:  # noqa: BLE001 (Lark raises several kinds on a bad grammar)
        return False


def _rebuild(case: dict, tree: gen.Grammar | None, **changes) -> dict | None:
    """`case` with another grammar or text and what Lark now expects; None if Lark refuses the grammar."""
    c = {**case, **changes}
    grammar, start = c["grammar"], c.get("start", "start")
    if not _builds(grammar, start):
        return None
    if c["kind"] == "compile":
        productive = tree.productive() if tree is not None else c["expected"] == "valid"
        engine = c.get("engine")
        if engine and tree is not None and tree.recursive():
            return None  # a shrink that made the grammar recursive says nothing about the DFA path
        return compile_case(grammar, start, productive, engine)
    if c["kind"] == "match":
        return match_case(grammar, start, c["text"])
    if c["kind"] == "walk":
        return walk_case(grammar, start, c["vocab"], c["ids"])
    return mask_case(grammar, start, c["vocab"], c["ids"], c["tokens"])


def _smaller(case: dict, tree: gen.Grammar | None) -> Iterator[tuple[dict | None, gen.Grammar | None]]:
    if case["kind"] == "match" and isinstance(case["text"], str):
        for cut in _cuts(case["text"]):
            yield _rebuild(case, tree, text=cut), tree
    if case["kind"] == "walk":
        ids = case["ids"]
        for i in range(len(ids)):
            yield _rebuild(case, tree, ids=ids[:i] + ids[i + 1:]), tree
    if case["kind"] == "mask" and case["tokens"]:
        yield _rebuild(case, tree, tokens=[]), tree
        half = len(case["tokens"]) // 2
        yield _rebuild(case, tree, tokens=case["tokens"][:half]), tree
        yield _rebuild(case, tree, tokens=case["tokens"][half:]), tree
    if tree is not None:
        for t in tree.shrinks():
            yield _rebuild(case, t, grammar=t.render()), t


def _cuts(text: str) -> Iterator[str]:
    for width in (4, 3, 2, 1):
        for i in range(len(text) - width + 1):
            yield text[:i] + text[i + width:]


def shrink(case: dict, detail: str, tree: gen.Grammar | None, seconds: float = 5.0) -> tuple[dict, str]:
    """A smaller case failing the same way, found greedily within `seconds`."""
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
                    outcome, what = attempt(candidate)
                    if outcome == "fail" and _signature(what) == _signature(best[1]):
                        best[:] = [candidate, what]
                        tree, progress = t, True
                        break
    except CaseTimeout:
        spec.cache_clear()
        constraint.cache_clear()
    return best[0], best[1]


# ---------------------------------------------------------------- the run

class _Skip(Exception):
    def __init__(self, reason: str):
        self.reason = reason


class _Failed(Exception):
    """Ends a grammar at its first failure."""


class Fuzzer:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.rng = random.Random(args.seed)
        self.stats = Stats(TARGET, args.seconds, args.seed)
        self.vocab_name = None if args.vocab in (None, "", "none") else args.vocab
        self.failures: list[tuple[dict, str, gen.Grammar | None]] = []
        self.reported: dict[str, int] = {}
        self.kinds: dict[str, int] = {}  # failure signature -> the first failure of that kind
        self.too_large: dict[str, tuple[str, bytes, str]] = {}  # skip reason -> (grammar, walked text, error)
        self.current = ""
        self.inflight = None if args.inflight in ("", "none") else args.inflight

    def check(self, case: dict, tree: gen.Grammar | None) -> None:
        self.stats["cases"] += 1
        if self.inflight:  # a crash (a segfault in a kernel) leaves the case it died on here
            with open(self.inflight, "w", encoding="utf-8") as f:
                json.dump(case, f)
        outcome, what = attempt(case)
        if outcome == "skip":
            raise _Skip(what)
        if outcome == "fail":
            self.failures.append((case, what, tree))
            raise _Failed(what)

    def grammar(self) -> None:
        rng, stats = self.rng, self.stats
        tree = gen.random_grammar(rng)
        grammar, start = tree.render(), tree.start
        self.current = grammar
        stats["grammars"] += 1
        try:
            lark_parser(grammar, start)
        except CaseTimeout:
            raise
        except Exception as e:  # noqa: BLE001 (not tether's test case: Lark itself refuses it)
            stats["lark rejects"] += 1
            stats[f"lark rejects: {type(e).__name__}"] += 1
            return
        stats["built"] += 1
        self.check(compile_case(grammar, start, tree.productive()), tree)
        try:
            engine = spec(grammar, start).engine
            stats["compiled"] += 1
            stats[f"engine {engine}"] += 1
        except _tether().GrammarError:
            stats["refused (a rule derives nothing)"] += 1
            engine = None
        members, others = [], []
        texts, derived = self.strings(tree)
        for text in texts:
            case = match_case(grammar, start, text)
            if text in derived and not case["expected"]:
                stats["derivations Lark rejects"] += 1
            self.check(case, tree)
            (members if case["expected"] else others).append(text)
        stats["strings"] += len(members) + len(others)
        stats["members"] += len(members)
        stats["non-members"] += len(others)
        if self.vocab_name is not None and engine is not None:
            self.walks(grammar, start, tree, members, others)
        if engine is not None and not tree.recursive():  # last: it would end the grammar's other checks
            self.check(compile_case(grammar, start, tree.productive(), "dfa"), tree)

    def strings(self, tree: gen.Grammar) -> tuple[list[str], set[str]]:
        """Strings to check (at most MAX_TEXT characters), and which of them are derivations."""
        rng = self.rng
        derivations = [d for d in (tree.derive(rng) for _ in range(6)) if d is not None]
        derived = {"".join(d) for d in derivations}
        texts = ["".join(d) for d in derivations]
        texts += [gen.mutate(d, rng, tree) for d in derivations for _ in range(2)]
        texts += [gen.random_text(rng, tree) for _ in range(3)] + [""]
        return [t for t in dict.fromkeys(texts) if len(t) <= MAX_TEXT], derived

    def walks(self, grammar: str, start: str, tree: gen.Grammar, members: list[str], others: list[str]) -> None:
        vocab, name = vocabulary(self.vocab_name), self.vocab_name
        for text in members[:3] + others[:3]:
            try:
                ids = vocab.encode_greedy(text)
            except _tether().VocabularyError:
                continue
            self.check(walk_case(grammar, start, name, ids), tree)
            self.stats["token walks"] += 1
        for _ in range(2):
            self.random_walk(grammar, start, tree, self.rng.randint(1, 8))

    def random_walk(self, grammar: str, start: str, tree: gen.Grammar, length: int) -> None:
        try:
            c = constraint(grammar, start, self.vocab_name)
        except _skips() as e:
            raise _Skip(type(e).__name__) from e
        name, rng = self.vocab_name, self.rng
        vocab = c.vocab
        draw = np.random.default_rng(rng.getrandbits(63))
        eos = np.asarray(vocab.eos_ids)
        state, ids = c.initial(), []
        for _ in range(length):
            try:
                allowed = np.flatnonzero(np.asarray(c.mask(state)))
            except _skips() as e:  # e.g. ConstraintTooLarge: counted, and the grammar is kept for the summary
                self.too_large.setdefault(type(e).__name__, (grammar, vocab.decode(ids), str(e)))
                raise _Skip(type(e).__name__) from e
            sample = set(draw.choice(allowed, min(len(allowed), 60), replace=False).tolist()) if len(allowed) else set()
            sample |= set(draw.choice(vocab.size, 60, replace=False).tolist()) | set(vocab.eos_ids)
            self.stats["mask states"] += 1
            self.check(mask_case(grammar, start, name, ids, sorted(sample)), tree)
            moves = allowed[~np.isin(allowed, eos)]
            if not len(moves) or (c.is_accepting(state) and rng.random() < 0.3):
                break
            token = int(moves[draw.integers(len(moves))])
            if len(vocab.decode(ids + [token])) > MAX_TEXT:
                break
            try:
                state = c.advance(state, token)
            except Exception:
                self.check(walk_case(grammar, start, name, ids + [token]), tree)
                raise
            ids.append(token)
        self.check(walk_case(grammar, start, name, ids), tree)
        self.stats["token walks"] += 1

    def run(self) -> int:
        args, stats = self.args, self.stats
        setup = time.monotonic()
        _tether()  # fails here, not per case, when the engine is missing
        if self.vocab_name:
            vocabulary(self.vocab_name)
        print(f"fuzz {TARGET}: seed {args.seed}, {args.seconds:g} s, vocabulary {self.vocab_name or 'none'} "
              f"(setup {time.monotonic() - setup:.1f} s)" + (f"; if it crashes, the case in flight is in {self.inflight}"
                                                             if self.inflight else ""), flush=True)
        faulthandler.enable()
        stats.start = time.monotonic()
        while not stats.expired() and len(self.kinds) < args.max_failures:
            try:
                with time_limit(args.grammar_seconds):
                    self.grammar()
            except _Failed:
                pass
            except _Skip as skip:
                stats["skipped"] += 1
                stats[f"skipped: {skip.reason}"] += 1
            except CaseTimeout:
                stats["skipped"] += 1
                stats["skipped: slow"] += 1
                self.too_large.setdefault("slow grammar", (self.current, b"", f"over {args.grammar_seconds:g} s"))
                spec.cache_clear()
                constraint.cache_clear()
            except Exception:  # outside any case: a failure without a case to save
                stats["failures"] += 1
                print(f"\nFAILURE {stats['failures']}: error in the fuzzer's driver, on the grammar\n"
                      f"{_indent(self.current)}\n" + traceback.format_exc(), flush=True)
            self.report_failures()
            stats.status(SUMMARY_KEYS)
        stats.end_status()
        skips = ", ".join(f"{k.partition(': ')[2]} {v:,}" for k, v in stats.most_common()
                          if k.startswith("skipped: "))
        for reason, (grammar, text, error) in self.too_large.items():
            print(f"first {reason}" + (f" in a walk (after {text!r})" if text else "") + f": {error}\n{_indent(grammar)}")
        rate = stats["cases"] / max(stats.elapsed, 1e-9)
        print(stats.summary(SUMMARY_KEYS) + f" [{rate:.1f} cases/s, {stats['grammars'] / max(stats.elapsed, 1e-9):.1f} "
              f"grammars/s]" + (f" [skips: {skips}]" if skips else ""))
        return 1 if stats["failures"] else 0

    def report_failures(self) -> None:
        for case, what, tree in self.failures:
            self.stats["failures"] += 1
            n = self.stats["failures"]
            kind = _signature(what)
            if kind in self.kinds:  # counted, not shrunk again: the run goes on looking for other kinds
                self.stats["failures of a kind already shown"] += 1
                continue
            self.kinds[kind] = n
            small, why = shrink(case, what, tree)
            key = repr(sorted((k, repr(v)) for k, v in small.items()))
            if key in self.reported:
                print(f"\nFAILURE {n}: same case as failure {self.reported[key]}", flush=True)
                continue
            self.reported[key] = n
            small = {**small, "found": f"python -m fuzz grammar --seed {self.args.seed}", "note": why}
            saved = self.args.save and save_case(TARGET, small)
            print(f"\nFAILURE {n}: {why}\n  grammar:\n{_indent(small['grammar'])}\n  case: {small}"
                  + (f"\n  saved to tests/regressions/{TARGET}.jsonl" if saved else ""), flush=True)
        self.failures.clear()


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vocab", default="gpt-2",
                        help="vocabulary for token walks, from ../shared/data/tokenizers (default gpt-2; 'none': strings only)")
    parser.add_argument("--inflight", default=os.path.join(tempfile.gettempdir(), "tether-fuzz-grammar-inflight.json"),
                        help="file holding the case being checked, for a run that crashes ('none': no file)")
    parser.add_argument("--grammar-seconds", type=float, default=10.0,
                        help="a grammar that takes longer than this (in Lark or tether) is skipped as slow (default 10)")


def run(args: argparse.Namespace) -> int:
    return Fuzzer(args).run()


if __name__ == "__main__":
    sys.exit("run the fuzzers as: python -m fuzz grammar --seconds N")
