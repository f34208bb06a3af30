"""What every fuzz target shares: the time budget, counters with a one-line status, a time limit
per case, the shared data, and the regression files that tests/test_fuzz_regressions.py replays.

    >>> stats = Stats("regex", seconds=30, seed=7)
    >>> stats["patterns"] += 1; stats.status(); print(stats.summary())
"""

from __future__ import annotations

import collections
import json
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["REPO_ROOT", "DATA_DIR", "Stats", "CaseTimeout", "time_limit", "regression_path", "load_cases",
           "save_case", "tokenizer_path"]

REPO_ROOT = Path(__file__).resolve().parents[1]
# The same place the tests read from: ../shared/data next to the repository.
DATA_DIR = REPO_ROOT.parent / "shared" / "data"


def tokenizer_path(name: str) -> Path:
    path = DATA_DIR / "tokenizers" / name / "tokenizer.json.gz"
    if not path.exists():
        raise FileNotFoundError(f"no tokenizer {name!r} at {path} (the shared data set lives in ../shared/data)")
    return path


class Stats(collections.Counter):
    """Named counts for one run, printed as a one-line status while running and a summary at the end.

    The status line rewrites itself on a terminal and is printed every `every` seconds elsewhere
    (CI logs), so a long run shows it is alive without flooding the log.
    """

    def __init__(self, target: str, seconds: float, seed: int):
        super().__init__()
        self.target, self.seconds, self.seed = target, seconds, seed
        self.start = time.monotonic()
        self._tty = sys.stderr.isatty()
        self._every = 1.0 if self._tty else 10.0
        self._last = self.start

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def expired(self) -> bool:
        return self.elapsed >= self.seconds

    def line(self, keys: tuple[str, ...] = ()) -> str:
        shown = keys or tuple(k for k in self if self[k])
        return ", ".join(f"{self[k]:,} {k}" for k in shown)

    def status(self, keys: tuple[str, ...] = (), force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self._every:
            return
        self._last = now
        text = f"fuzz {self.target} [{self.elapsed:4.0f}/{self.seconds:.0f} s, seed {self.seed}] {self.line(keys)}"
        if self._tty:
            sys.stderr.write("\r" + text[:160].ljust(160))
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def end_status(self) -> None:
        if self._tty:
            sys.stderr.write("\n")

    def summary(self, keys: tuple[str, ...] = ()) -> str:
        verdict = "FAILED" if self["failures"] else "ok"
        return (f"fuzz {self.target}: {verdict}: {self.line(keys)} in {self.elapsed:.1f} s "
                f"(seed {self.seed}; rerun with --seed {self.seed})")


class CaseTimeout(BaseException):
    """One case ran past its time limit (a slow pattern, in tether or in Python's re).

    A BaseException, so the `except Exception` that turns a crash into a failure lets it through.
    """


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise CaseTimeout in the main thread after `seconds` (re's matcher checks for signals, so
    catastrophic backtracking is interrupted too; numba kernels are interrupted when they return)."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum, frame):
        raise CaseTimeout(f"over {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ---------------------------------------------------------------- regression cases

def regression_path(target: str) -> Path:
    return REPO_ROOT / "tests" / "regressions" / f"{target}.jsonl"


def load_cases(target: str) -> list[dict]:
    """Every saved case of a target, in file order (one JSON object a line; blank lines skipped)."""
    lines = regression_path(target).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _identity(case: dict) -> str:
    # Provenance and notes do not make a case different.
    return json.dumps({k: v for k, v in case.items() if k not in ("found", "note")}, sort_keys=True)


def save_case(target: str, case: dict) -> bool:
    """Append `case` to tests/regressions/<target>.jsonl unless an identical case is there; True if appended."""
    path = regression_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and _identity(case) in {_identity(c) for c in load_cases(target)}:
        return False
    try:
        line = json.dumps(case, ensure_ascii=False)
        line.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: escaped, still valid JSON
        line = json.dumps(case)
    with path.open("a", encoding="utf-8") as f:
        f.write(line + "\n")
    return True


# ---------------------------------------------------------------- checks every target shares


def check_walk(c, case: dict, reference: str) -> str | None:
    """Walk case["ids"] through constraint c: allowed all the way and accepting at the end iff
    case["expected"] (what `reference`, e.g. "re" or "Lark", says of case["text"])."""
    state, ids = c.initial(), case["ids"]
    for i, token in enumerate(ids):
        if not c.allows(state, token):
            if case["expected"]:
                return (f"walk rejected: token {i} ({token} {c.vocab[token]!r}) refused, "
                        f"yet {reference} accepts {case['text']!r}")
            return None
        state = c.advance(state, token)
    accepting = bool(c.is_accepting(state))
    if accepting != case["expected"]:
        verdict = "accepts" if accepting else "does not accept"
        return (f"walk {'accepted' if accepting else 'rejected'}: tether {verdict} {ids}, "
                f"{reference} says {case['expected']} on {case['text']!r}")
    return None


def check_mask(c, case: dict) -> str | None:
    """The contract at the state after case["ids"]: mask == allows on case["tokens"], EOS iff
    accepting, some token allowed, and advance refuses what the mask forbids."""
    import numpy as np

    from tether.errors import TokenRejected

    vocab = c.vocab
    state = c.advance_many(c.initial(), case["ids"])
    mask = np.asarray(c.mask(state))
    if mask.shape != (vocab.size,):
        return f"mask: shape {mask.shape}, vocabulary size {vocab.size}"
    problems = []
    differ = [t for t in case["tokens"] if bool(mask[t]) != bool(c.allows(state, t))]
    if differ:
        problems.append(f"mask != allows on {len(differ)} ids " + ", ".join(
            f"{t} {vocab[t]!r} mask={bool(mask[t])}" for t in differ[:5]))
    accepting = bool(c.is_accepting(state))
    if any(bool(mask[e]) != accepting for e in vocab.eos_ids):
        problems.append(f"EOS iff accepting broken: mask allows EOS {[bool(mask[e]) for e in vocab.eos_ids]}, "
                        f"is_accepting {accepting}")
    if not mask.any():
        problems.append(f"dead end: no token allowed after {vocab.decode(case['ids'])!r}")
    for t in [t for t in case["tokens"] if not mask[t]][:3]:
        try:
            c.advance(state, t)
        except TokenRejected:
            continue
        problems.append(f"advance took a masked-out token {t} {vocab[t]!r}")
    return ("mask: " + "; ".join(problems)) if problems else None
