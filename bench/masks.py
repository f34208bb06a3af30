"""Token-mask bench: tether side by side with outlines-core, llguidance and xgrammar.

Same regexes, same Llama-3 vocabulary (128,256 ids), one process, one thread. For every regex
and engine it measures

* compile time (tether: ``tether.regex(p).compile(vocab)``; outlines-core: ``Index(regex, vocab)``;
  llguidance: ``grammar_from_regex`` + ``LLMatcher(...)``; xgrammar: ``compile_regex`` with
  ``max_threads=1`` and the cache disabled),
* time to first mask (TTFM: compile + the first mask fill on the fresh object),
* time between masks along real token paths: greedy tokenizations (``vocab.encode_greedy``) of
  sample strings that full-match the regex. For each path: fill mask, consume token, repeat,
  then one last mask in the accepting state. All paths of a regex run on ONE compiled object
  per engine (a server answering many requests for one schema); the inter-mask time of step
  k >= 1 is consume(token k-1) + fill(mask k). tether's first-visit ("cold") masks are also
  reported on their own.

While it runs it checks, at every step, that each peer allows exactly the tokens tether allows
(special-token ids, EOS included, are left out of that comparison; EOS is checked on its own:
tether allows EOS exactly in accepting states). Disagreements are counted and the first few per
(regex, engine) are written to ``<out>/masks-disagreements.log``.

    python bench/masks.py                       # everything
    python bench/masks.py --regex date uuid --paths 4 --out bench/out
"""

from __future__ import annotations

# _peers pins every thread pool to one thread before any engine is imported.
from _peers import (REPO, TOKENIZER, Engine, LLGuidance, Null, OutlinesCore, Tether, XGrammar,
                    read_tokenizer_json)

import argparse
import math
import platform
import re
import statistics
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

import tether
from tether.automata.bitmask import unpack_bitmask  # noqa: E402

perf = time.perf_counter_ns

# ----------------------------------------------------------------------------------------------
# Regexes of the kind JSON fields use, with hand-written full matches (explicit [0-9]: tether
# follows Python `re`, where \d is Unicode, peers read it as ASCII).
# ----------------------------------------------------------------------------------------------

_STR = r'"([^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"'
_INT = r"-?(0|[1-9][0-9]*)"
_NUM = r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?"
_DATE = r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_WS = r"[ ]?"

REGEXES: dict[str, tuple[str, list[str]]] = {
    "date": (_DATE, ["2024-01-15", "1999-12-31", "2000-02-29", "0001-01-01", "2023-10-05",
                     "1970-01-01", "2038-01-19", "2100-06-30"]),
    "date-time": (_DATE + "T" + _TIME, [
        "2024-01-15T10:30:00Z", "1999-12-31T23:59:59.999+01:00", "2000-02-29T00:00:00-05:00",
        "2023-10-05T14:48:00.000Z", "1970-01-01T00:00:00Z", "2038-01-19T03:14:07+00:00",
        "2012-07-04T18:05:33.5-07:30", "2100-06-30T12:00:00.123456Z"]),
    "email": (r"[a-zA-Z0-9._%+-]+@[a-zA-Z0-9-]+(\.[a-zA-Z0-9-]+)*\.[a-zA-Z]{2,}", [
        "john.doe@example.com", "alice+news@mail.co.uk", "x@y.io", "first_last@sub.domain.org",
        "user123@gmail.com", "Jane.Smith@Company-Name.net", "a.b.c.d@e-f.museum",
        "support%team@help.example.travel"]),
    "integer": (_INT, ["0", "42", "-7", "123456789", "-1000000", "2147483647", "8", "-90210"]),
    "number": (_NUM, ["0", "3.14159", "-2.5e10", "1E-7", "42", "-0.001", "6.02214076e+23",
                      "100.0"]),
    "string": (_STR, ['"hello world"', '""', '"She said \\"hi\\" and left."',
                      '"line1\\nline2\\ttab"', '"caf\u00e9 na\u00efve \u65e5\u672c\u8a9e"',
                      '"emoji \U0001f600 ok"', '"path\\/to\\\\file \\u00e9"',
                      '"The quick brown fox jumps over the lazy dog, 1234567890!"']),
    "uuid": (r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", [
        "123e4567-e89b-12d3-a456-426614174000", "550e8400-e29b-41d4-a716-446655440000",
        "00000000-0000-0000-0000-000000000000", "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
        "6ba7b810-9dad-11d1-80b4-00c04fd430c8", "f47ac10b-58cc-4372-a567-0e02b2c3d479",
        "9C858901-8A57-4791-81FE-4C455B099BC9", "deadbeef-cafe-babe-f00d-0123456789ab"]),
    "phone": (r"(\+1 )?(\([0-9]{3}\) ?|[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}", [
        "(555) 123-4567", "+1 555-123-4567", "555.123.4567", "(212)555-0100", "+1 (800) 555 0199",
        "415 555 2671", "+1 646.555.0123", "999-999-9999"]),
    "url": (r"https?://[a-zA-Z0-9-]+(\.[a-zA-Z0-9-]+)+(:[0-9]{1,5})?(/[a-zA-Z0-9._~%-]*)*"
            r"(\?[a-zA-Z0-9._~%-]+=[a-zA-Z0-9._~%-]*(&[a-zA-Z0-9._~%-]+=[a-zA-Z0-9._~%-]*)*)?", [
        "https://example.com", "http://www.google.com/search?q=tether&hl=en",
        "https://api.github.com/repos/owner/name/issues", "http://localhost.localdomain:8080/",
        "https://en.wikipedia.org/wiki/Regular_expression", "https://a.b.co/x/y/z.html",
        "http://192.168.0.1:80/admin?user=root", "https://docs.python.org/3/library/re.html"]),
    "object": (r"\{" + _WS + r'"id"' + _WS + ":" + _WS + _INT + _WS + "," + _WS
               + r'"name"' + _WS + ":" + _WS + _STR + _WS + "," + _WS
               + r'"score"' + _WS + ":" + _WS + _NUM + _WS + "," + _WS
               + r'"active"' + _WS + ":" + _WS + r"(true|false)" + _WS + "," + _WS
               + r'"tags"' + _WS + ":" + _WS + r"\[" + _WS + "(" + _STR + "(" + _WS + "," + _WS
               + _STR + ")*)?" + _WS + r"\]" + _WS + r"\}", [
        '{"id": 1, "name": "Alice", "score": 9.5, "active": true, "tags": ["a", "b"]}',
        '{"id":42,"name":"Bob","score":-3,"active":false,"tags":[]}',
        '{"id": -7, "name": "", "score": 1e3, "active": true, "tags": ["x"]}',
        '{ "id" : 0 , "name" : "caf\u00e9" , "score" : 0.25 , "active" : false , "tags" : [ ] }',
        '{"id": 123456, "name": "O\'Brien \\"the\\" 3rd", "score": 100, "active": true, "tags": ["vip", "beta", "early"]}',
        '{"id": 9, "name": "\u65e5\u672c", "score": 2.5E-2, "active": false, "tags": ["\\u00e9"]}',
        '{"id":2,"name":"x y z","score":7.0,"active":true,"tags":["one","two","three","four"]}',
        '{"id": 77, "name": "The quick brown fox", "score": -0.5, "active": true, "tags": ["animals"]}']),
    "enum": (r'"(pending|active|suspended|deleted|archived|on_hold|in_review|rejected)"', [
        '"pending"', '"active"', '"suspended"', '"deleted"', '"archived"', '"on_hold"',
        '"in_review"', '"rejected"']),
    "ipv4": (r"(" + _OCTET + r"\.){3}" + _OCTET, [
        "192.168.1.1", "10.0.0.255", "255.255.255.255", "0.0.0.0", "172.16.254.3", "8.8.8.8",
        "127.0.0.1", "203.0.113.42"]),
}

ENGINE_NAMES = ("tether", "outlines-core", "llguidance", "xgrammar")
PEERS = ENGINE_NAMES[1:]


def sample_strings(name: str, pattern: str, n: int) -> list[str]:
    """The first n hand-written samples; more, if asked for, from hypothesis (derandomized)."""
    hand = REGEXES[name][1]
    out = list(hand[:n])
    if n > len(hand):
        try:
            from hypothesis import HealthCheck, Phase, given, settings
            from hypothesis import strategies as st
        except ImportError:
            return out
        extra: list[str] = []

        @settings(derandomize=True, database=None, max_examples=4 * n, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck), deadline=None)
        @given(st.from_regex(pattern, fullmatch=True))
        def collect(s: str) -> None:
            try:
                s.encode("utf-8")
            except UnicodeEncodeError:
                return
            if s not in extra and s not in out and re.fullmatch(pattern, s):
                extra.append(s)

        collect()
        out += extra[: n - len(out)]
    for s in out:
        if not re.fullmatch(pattern, s):
            raise SystemExit(f"bench bug: sample {s!r} does not full-match the {name} regex")
    return out


# ----------------------------------------------------------------------------------------------
# Engines: the wrappers live in _peers.py (shared with regexes.py); the harness's own cost here
# ----------------------------------------------------------------------------------------------


def harness_overhead_us(n: int = 20000) -> float:
    """p50 of a timed consume + fill on the Null engine, measured like every real step."""
    eng, row, cur, xs = Null(), np.zeros(4, dtype=np.int32), None, []
    for _ in range(n):
        t0 = perf()
        cur = eng.consume(cur, 0)
        t1 = perf()
        eng.fill(cur, row)
        t2 = perf()
        xs.append((t2 - t0) / 1e3)
    return pct(xs, 50)


# ----------------------------------------------------------------------------------------------
# Measurement
# ----------------------------------------------------------------------------------------------


@dataclass
class Result:
    engine: str
    regex: str
    error: str | None = None
    compile_ms: list[float] = field(default_factory=list)
    ttfm_ms: list[float] = field(default_factory=list)
    inter_us: list[float] = field(default_factory=list)  # steady passes: consume + fill, steps >= 1
    fill_us: list[float] = field(default_factory=list)  # steady passes: the fill alone, every step
    first_us: list[float] = field(default_factory=list)  # first pass: consume + fill, steps >= 1
    cold_us: list[float] = field(default_factory=list)  # tether: fills that computed a mask
    warm_us: list[float] = field(default_factory=list)  # tether: fills served from cache
    steps: int = 0
    disagreements: int = 0
    eos_disagreements: int = 0
    rejected_paths: int = 0


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    return float(np.percentile(np.asarray(xs), q))


def geomean(xs: list[float]) -> float:
    xs = [x for x in xs if x > 0 and math.isfinite(x)]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else float("nan")


def median(xs: list[float]) -> float:
    xs = [x for x in xs if math.isfinite(x)]
    return statistics.median(xs) if xs else float("nan")


class Bench:
    def __init__(self, engines: dict[str, Engine], vocab: tether.Vocabulary, log, repeats: int):
        self.engines = engines
        self.vocab = vocab
        self.log = log
        self.repeats = repeats
        self.words = (vocab.size + 31) // 32
        special = np.zeros(vocab.size, dtype=bool)
        special[list(vocab.special_ids)] = True
        self.compare = ~special  # tokens compared bit for bit (special ids, EOS among them, left out)
        self.max_examples = 5
        self.rejected: set[tuple[str, str]] = set()

    # -- compile and time to first mask: fresh objects, median of `repeats` ------------------------

    def measure_compile(self, eng: Engine, pattern: str, res: Result) -> Any:
        row = np.zeros(self.words, dtype=np.int32)
        compiled = None
        for _ in range(self.repeats):
            t0 = perf()
            compiled = eng.compile(pattern)
            t1 = perf()
            cur = eng.start(compiled)
            eng.fill(cur, row)
            t2 = perf()
            res.compile_ms.append((t1 - t0) / 1e6)
            res.ttfm_ms.append((t2 - t0) / 1e6)
        return compiled  # the last fresh object serves every path (its first mask is computed)

    # -- token paths on one compiled object per engine --------------------------------------------

    def run_paths(self, name: str, paths: list[tuple[str, list[int]]], compiled: dict[str, Any],
                  results: dict[str, Result], cursors: dict[str, Any], first: bool) -> None:
        """One pass over every path. The first pass visits states for the first time (cold, and
        checks agreement); later passes are the steady state a long-running server sees."""
        vocab = self.vocab
        row = {e: np.zeros(self.words, dtype=np.int32) for e in self.engines}
        tc = compiled.get("tether")
        for text, ids in paths:
            alive = {e: (text, e) not in self.rejected for e in self.engines if e in compiled}
            for e in alive:
                eng = self.engines[e]
                cursors[e] = eng.start(compiled[e]) if e not in cursors else eng.restart(cursors[e])
            for step in range(len(ids) + 1):
                masks: dict[str, np.ndarray] = {}
                for e in list(alive):
                    if not alive[e]:
                        continue
                    eng, res = self.engines[e], results[e]
                    r = row[e]
                    before = tc.mask_computations if e == "tether" else 0
                    try:
                        if step:
                            t0 = perf()
                            cursors[e] = eng.consume(cursors[e], ids[step - 1])
                            t1 = perf()
                            eng.fill(cursors[e], r)
                            t2 = perf()
                            (res.first_us if first else res.inter_us).append((t2 - t0) / 1e3)
                        else:
                            t1 = perf()
                            eng.fill(cursors[e], r)
                            t2 = perf()
                    except Exception as exc:  # a peer rejecting a token tether accepted
                        alive[e] = False
                        self.rejected.add((text, e))
                        res.rejected_paths += 1
                        self.log.write(f"[{name}] {e} REJECTED path {text!r} at step {step} "
                                       f"(token {ids[step - 1]} = {vocab[ids[step - 1]]!r}): {exc}\n")
                        continue
                    fill = (t2 - t1) / 1e3
                    if not first:
                        res.fill_us.append(fill)
                        continue
                    if e == "tether":
                        (res.cold_us if tc.mask_computations > before else res.warm_us).append(fill)
                    masks[e] = (eng.row_for(r) if hasattr(eng, "row_for") else r).copy()
                    res.steps += 1
                if first:
                    self.check(name, text, ids, step, masks, results,
                                          accepting=tc.is_accepting(cursors["tether"][1]) if "tether" in masks else None)

    def check(self, name, text, ids, step, masks, results, accepting) -> None:
        ref = masks.get("tether")
        if ref is None:
            return
        vocab = self.vocab
        ref_bits = unpack_bitmask(ref, vocab.size)
        for e, m in masks.items():
            if e == "tether":
                continue
            res = results[e]
            bits = unpack_bitmask(m, vocab.size)
            diff = (bits != ref_bits) & self.compare
            eos_bad = [t for t in self.engines[e].eos_ids if bool(bits[t]) != bool(accepting)]
            if eos_bad:
                res.eos_disagreements += 1
            if diff.any():
                res.disagreements += 1
                if res.disagreements <= self.max_examples:
                    prefix = vocab.decode(ids[:step])
                    only_peer = np.flatnonzero(diff & bits)
                    only_tether = np.flatnonzero(diff & ref_bits)
                    show = lambda ts: ", ".join(f"{int(t)}:{vocab[int(t)]!r}" for t in ts[:12])
                    self.log.write(
                        f"[{name}] {e} step {step} of {text!r} after prefix {prefix!r} "
                        f"(tether accepting={accepting}): {diff.sum()} tokens differ\n"
                        f"    allowed only by {e} ({len(only_peer)}): {show(only_peer)}\n"
                        f"    allowed only by tether ({len(only_tether)}): {show(only_tether)}\n"
                        f"    tokens allowed: tether {int((ref_bits & self.compare).sum())}, "
                        f"{e} {int((bits & self.compare).sum())}"
                        + (f"; {e} allows {show(np.flatnonzero(bits & self.compare))}"
                           if (bits & self.compare).sum() <= 12 else "") + "\n")
            if eos_bad and res.eos_disagreements <= self.max_examples:
                self.log.write(f"[{name}] {e} EOS step {step} of {text!r}: tether accepting={accepting}, "
                               f"{e} EOS bits {[(t, bool(bits[t])) for t in self.engines[e].eos_ids]}\n")


# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------


def fmt(x: float, digits: int = 3) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def ratio(a: float, b: float) -> str:
    if not (math.isfinite(a) and math.isfinite(b)) or b == 0:
        return "—"
    return f"{a / b:.2f}×"


def report(results: dict[str, dict[str, Result]], names: list[str], engines: list[str],
           header: list[str], missing: dict[str, str]) -> str:
    lines = list(header)
    peers = [e for e in engines if e != "tether"]
    R = lambda n, e: results[n].get(e)

    def stat(n, e, what):
        r = R(n, e)
        if r is None or r.error:
            return float("nan")
        return {
            "compile": lambda: median(r.compile_ms),
            "ttfm": lambda: median(r.ttfm_ms),
            "p50": lambda: pct(r.inter_us, 50),
            "p99": lambda: pct(r.inter_us, 99),
            "max": lambda: max(r.inter_us) if r.inter_us else float("nan"),
            "fill50": lambda: pct(r.fill_us, 50),
            "first50": lambda: pct(r.first_us, 50),
            "first99": lambda: pct(r.first_us, 99),
            "firstmax": lambda: max(r.first_us) if r.first_us else float("nan"),
            "cold50": lambda: pct(r.cold_us, 50),
            "warm50": lambda: pct(r.warm_us, 50),
        }[what]()

    def summary(rows_fn, cols):
        g = ["**geomean**"] + [fmt(geomean([rows_fn(n, c) for n in names])) for c in cols]
        m = ["**median**"] + [fmt(median([rows_fn(n, c) for n in names])) for c in cols]
        return ["| " + " | ".join(g) + " |", "| " + " | ".join(m) + " |"]

    # table 1: compile and time to first mask
    lines += ["", "### Compile and time to first mask (ms, median of fresh compiles)", ""]
    cols = [(e, k) for e in engines for k in ("compile", "ttfm")]
    hdr = ["regex"] + [f"{e} {'compile' if k == 'compile' else 'TTFM'}" for e, k in cols]
    has_oc = "outlines-core" in engines
    if has_oc:
        hdr += ["tether TTFM / outlines-core Index"]
    best_peer_ttfm = lambda n: min([stat(n, p, "ttfm") for p in peers if math.isfinite(stat(n, p, "ttfm"))],
                                   default=float("nan"))
    if peers:
        hdr += ["tether TTFM / best peer TTFM"]
    lines += ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
    for n in names:
        cells = [n] + [fmt(stat(n, e, k)) for e, k in cols]
        if has_oc:
            cells.append(ratio(stat(n, "tether", "ttfm"), stat(n, "outlines-core", "compile")))
        if peers:
            cells.append(ratio(stat(n, "tether", "ttfm"), best_peer_ttfm(n)))
        lines.append("| " + " | ".join(cells) + " |")
    extra_fns = []
    if has_oc:
        extra_fns.append(lambda n: stat(n, "tether", "ttfm") / stat(n, "outlines-core", "compile"))
    if peers:
        extra_fns.append(lambda n: stat(n, "tether", "ttfm") / best_peer_ttfm(n))
    for label, agg in (("**geomean**", geomean), ("**median**", median)):
        cells = [label] + [fmt(agg([stat(n, e, k) for n in names])) for e, k in cols]
        cells += [f"{agg([f(n) for n in names]):.2f}×" for f in extra_fns]
        lines.append("| " + " | ".join(cells) + " |")

    # table 2: time between masks
    lines += ["", "### Time between masks, steady state (µs; consume + fill; passes 2.. over the paths, "
              "one compiled object per engine)", ""]
    hdr = ["regex", "steps"] + [f"{e} p50 / p99 / max" for e in engines]
    if "tether" in engines:
        hdr += ["tether fill alone p50"]
    if peers and "tether" in engines:
        hdr += ["best peer p50", "tether p50 / best peer p50"]
    lines += ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
    best_peer_p50 = lambda n: min([stat(n, p, "p50") for p in peers if math.isfinite(stat(n, p, "p50"))],
                                  default=float("nan"))
    best_peer_name = lambda n: min([p for p in peers if math.isfinite(stat(n, p, "p50"))],
                                   key=lambda p: stat(n, p, "p50"), default="—")
    for n in names:
        steps = len(results[n]["tether"].inter_us) if "tether" in results[n] else 0
        cells = [n, str(steps)]
        for e in engines:
            cells.append(" / ".join(fmt(stat(n, e, k)) for k in ("p50", "p99", "max")))
        if "tether" in engines:
            cells.append(fmt(stat(n, "tether", "fill50")))
        if peers and "tether" in engines:
            cells += [f"{fmt(best_peer_p50(n))} ({best_peer_name(n)})",
                      ratio(stat(n, "tether", "p50"), best_peer_p50(n))]
        lines.append("| " + " | ".join(cells) + " |")
    for label, agg in (("**geomean**", geomean), ("**median**", median)):
        cells = [label, ""]
        for e in engines:
            cells.append(" / ".join(fmt(agg([stat(n, e, k) for n in names])) for k in ("p50", "p99", "max")))
        if "tether" in engines:
            cells.append(fmt(agg([stat(n, "tether", "fill50") for n in names])))
        if peers and "tether" in engines:
            cells += [fmt(agg([best_peer_p50(n) for n in names])),
                      f"{agg([stat(n, 'tether', 'p50') / best_peer_p50(n) for n in names]):.2f}×"]
        lines.append("| " + " | ".join(cells) + " |")

    # table 2b: the first pass (first visits: tether and llguidance compute masks lazily)
    lines += ["", "### Time between masks, first pass (µs; every state visited for the first time "
              "on the object whose first mask TTFM already counted)", ""]
    hdr = ["regex"] + [f"{e} p50 / p99 / max" for e in engines]
    if "tether" in engines:
        hdr += ["tether cold (mask-computing) fill p50", "tether first-pass p50 / best peer first-pass p50"]
    lines += ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
    best_first = lambda n: min([stat(n, p, "first50") for p in peers if math.isfinite(stat(n, p, "first50"))],
                               default=float("nan"))
    for n in names:
        cells = [n] + [" / ".join(fmt(stat(n, e, k)) for k in ("first50", "first99", "firstmax")) for e in engines]
        if "tether" in engines:
            cells += [fmt(stat(n, "tether", "cold50")), ratio(stat(n, "tether", "first50"), best_first(n))]
        lines.append("| " + " | ".join(cells) + " |")
    for label, agg in (("**geomean**", geomean), ("**median**", median)):
        cells = [label] + [" / ".join(fmt(agg([stat(n, e, k) for n in names])) for k in ("first50", "first99", "firstmax"))
                           for e in engines]
        if "tether" in engines:
            cells += [fmt(agg([stat(n, "tether", "cold50") for n in names])),
                      f"{agg([stat(n, 'tether', 'first50') / best_first(n) for n in names]):.2f}×"]
        lines.append("| " + " | ".join(cells) + " |")

    # table 3: agreement
    if peers and "tether" in engines:
        lines += ["", "### Mask agreement with tether (masks compared bit for bit, special ids excluded)", ""]
        hdr = ["regex"] + [f"{p}: differing masks / EOS diffs / rejected paths" for p in peers]
        lines += ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
        tot = {p: [0, 0, 0, 0] for p in peers}
        for n in names:
            cells = [n]
            for p in peers:
                r = R(n, p)
                if r is None or r.error:
                    cells.append("error" if r is not None else "—")
                    continue
                cells.append(f"{r.disagreements} of {r.steps} / {r.eos_disagreements} / {r.rejected_paths}")
                t = tot[p]
                t[0] += r.disagreements; t[1] += r.steps; t[2] += r.eos_disagreements; t[3] += r.rejected_paths
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("| **total** | " + " | ".join(f"{t[0]} of {t[1]} / {t[2]} / {t[3]}" for t in tot.values()) + " |")

    # headline figures
    if "tether" in engines and peers:
        lines += ["", "### Headline figures", ""]
        if has_oc:
            ok = [n for n in names if stat(n, "tether", "ttfm") <= stat(n, "outlines-core", "compile")]
            lines.append(f"- time to first mask at or below outlines-core's Index build time: "
                         f"{len(ok)} of {len(names)} regexes (geomean ratio "
                         f"{geomean([stat(n, 'tether', 'ttfm') / stat(n, 'outlines-core', 'compile') for n in names]):.3f}×)")
        ok = [n for n in names if stat(n, "tether", "p50") <= 2 * best_peer_p50(n)]
        bad = [f"{n} ({stat(n, 'tether', 'p50') / best_peer_p50(n):.2f}× {best_peer_name(n)})"
               for n in names if n not in ok]
        lines.append(f"- time between masks p50 (steady state) no worse than 2× the best peer: {len(ok)} of "
                     f"{len(names)} regexes" + (f"; misses: {', '.join(bad)}" if bad else ""))
        ok = [n for n in names if stat(n, "tether", "first50") <= 2 * best_first(n)]
        lines.append(f"- the same on the first pass (cold states): {len(ok)} of {len(names)} regexes")
        for p in peers:
            lines.append(f"- tether vs {p}: TTFM geomean ratio "
                         f"{geomean([stat(n, 'tether', 'ttfm') / stat(n, p, 'ttfm') for n in names]):.3f}×, "
                         f"mask p50 geomean ratio {geomean([stat(n, 'tether', 'p50') / stat(n, p, 'p50') for n in names]):.2f}×, "
                         f"p99 {geomean([stat(n, 'tether', 'p99') / stat(n, p, 'p99') for n in names]):.2f}×")
    errs = [(n, e, r.error) for n in names for e, r in results[n].items() if r.error]
    if errs or missing:
        lines += ["", "### Missing engines and errors", ""]
        lines += [f"- {e}: not importable ({why})" for e, why in missing.items()]
        lines += [f"- {e} on {n}: {err}" for n, e, err in errs]
    return "\n".join(lines) + "\n"


def plot(results, names, engines, path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    colors = {"tether": "#d62728", "outlines-core": "#1f77b4", "llguidance": "#2ca02c", "xgrammar": "#9467bd"}
    fig, axes = plt.subplots(4, 1, figsize=(max(10, 1.1 * len(names) + 3), 15), sharex=True)
    width = 0.8 / len(engines)
    x = np.arange(len(names))
    panels = [
        ("time to first mask (ms)", lambda r: median(r.ttfm_ms)),
        ("time between masks p50, steady (µs)", lambda r: pct(r.inter_us, 50)),
        ("time between masks p50, first pass (µs)", lambda r: pct(r.first_us, 50)),
        ("time between masks p99, steady (µs)", lambda r: pct(r.inter_us, 99)),
    ]
    for ax, (title, fn) in zip(axes, panels):
        for k, e in enumerate(engines):
            vals = []
            for n in names:
                r = results[n].get(e)
                vals.append(fn(r) if r is not None and not r.error else np.nan)
            ax.bar(x + (k - (len(engines) - 1) / 2) * width, vals, width, label=e, color=colors.get(e))
        if title.startswith("time between masks p50, first") and "tether" in engines:
            cold = [pct(results[n]["tether"].cold_us, 50) if "tether" in results[n] else np.nan for n in names]
            k = engines.index("tether")
            ax.scatter(x + (k - (len(engines) - 1) / 2) * width, cold, marker="v", color="black", zorder=3,
                       label="tether cold (first-visit) fill p50")
        ax.set_yscale("log")
        ax.set_ylabel(title)
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0].legend(ncol=len(engines) + 1, fontsize=8)
    axes[2].legend(ncol=len(engines) + 1, fontsize=8)
    axes[-1].set_xticks(x)
    axes[-1].set_xticklabels(names, rotation=30, ha="right")
    fig.suptitle("Regex token masks, Llama-3 vocabulary (128,256 ids), one thread — lower is better")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ----------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------


def progress(total: int):
    try:
        from tqdm import tqdm
        return tqdm(total=total, file=sys.stderr, dynamic_ncols=True)
    except ImportError:
        class P:
            n = 0
            def update(self, k=1):
                self.n += k
                print(f"  [{self.n}/{total}] {self.desc}", file=sys.stderr, flush=True)
            def set_description(self, d):
                self.desc = d
            def close(self):
                pass
        return P()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--regex", nargs="+", choices=list(REGEXES), metavar="NAME",
                    help=f"regexes to run (default all): {', '.join(REGEXES)}")
    ap.add_argument("--paths", type=int, default=8, help="token paths per regex (default 8)")
    ap.add_argument("--passes", type=int, default=3,
                    help="steady-state passes over the paths after the first (cold) pass (default 3)")
    ap.add_argument("--repeats", type=int, default=3, help="fresh compiles per regex and engine (default 3)")
    ap.add_argument("--engines", nargs="+", choices=ENGINE_NAMES, default=list(ENGINE_NAMES))
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    args = ap.parse_args(argv)
    if "tether" not in args.engines:
        ap.error("tether is the reference engine; keep it in --engines")
    names = args.regex or list(REGEXES)
    args.out.mkdir(parents=True, exist_ok=True)

    tokenizer_json = read_tokenizer_json()

    print(f"loading vocabulary {TOKENIZER.relative_to(REPO.parent)} ...", file=sys.stderr)
    t0 = perf()
    vocab = tether.Vocabulary.from_file(TOKENIZER)
    _ = vocab.trie
    vocab_s = (perf() - t0) / 1e9

    # JIT warm-up: the first tether compile + mask in this process loads (or compiles) the numba
    # kernels; measured once, reported apart from the steady state.
    t0 = perf()
    wc = tether.regex(r"warm-up [a-z]+[0-9]?").compile(vocab)
    row = tether.allocate_bitmask(1, vocab.size)[0]
    wc.fill_bitmask(wc.initial(), row)
    wc.advance(wc.initial(), vocab.encode_greedy("warm")[0])
    jit_s = (perf() - t0) / 1e9
    t0 = perf()
    wc2 = tether.regex(r"second [a-z]+[0-9]?").compile(vocab)
    wc2.fill_bitmask(wc2.initial(), row)
    second_s = (perf() - t0) / 1e9

    engines: dict[str, Engine] = {}
    missing: dict[str, str] = {}
    setup: dict[str, float] = {}
    warmup: dict[str, float] = {"tether": jit_s}
    makers: dict[str, Callable[[], Engine]] = {
        "tether": lambda: Tether(vocab),
        "outlines-core": lambda: OutlinesCore(vocab),
        "llguidance": lambda: LLGuidance(vocab, tokenizer_json),
        "xgrammar": lambda: XGrammar(vocab, tokenizer_json),
    }
    for e in args.engines:
        try:
            t0 = perf()
            engines[e] = makers[e]()
            setup[e] = (perf() - t0) / 1e9
        except Exception as exc:  # missing or broken peer: report, keep going
            missing[e] = f"{type(exc).__name__}: {exc}"
            print(f"engine {e} unavailable: {missing[e]}", file=sys.stderr)
            continue
        if e != "tether":  # the peers' own first-use warm-up, same throwaway regex
            try:
                t0 = perf()
                eng = engines[e]
                cur = eng.start(eng.compile(r"warm-up [a-z]+[0-9]?"))
                eng.fill(cur, np.zeros((vocab.size + 31) // 32, dtype=np.int32))
                warmup[e] = (perf() - t0) / 1e9
            except Exception as exc:
                warmup[e] = float("nan")
                print(f"engine {e} warm-up failed: {exc}", file=sys.stderr)
    order = [e for e in ENGINE_NAMES if e in engines]
    overhead = harness_overhead_us()

    log_path = args.out / "masks-disagreements.log"
    log = open(log_path, "w", encoding="utf-8")
    bench = Bench(engines, vocab, log, args.repeats)
    results: dict[str, dict[str, Result]] = {}
    bar = progress(len(names) * (len(order) + 1))
    for n in names:
        pattern = REGEXES[n][0]
        samples = sample_strings(n, pattern, args.paths)
        paths = [(s, vocab.encode_greedy(s)) for s in samples]
        results[n] = {}
        compiled: dict[str, Any] = {}
        for e in order:
            bar.set_description(f"{n}: compile {e}")
            res = results[n][e] = Result(e, n)
            try:
                compiled[e] = bench.measure_compile(engines[e], pattern, res)
            except Exception as exc:
                res.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
                log.write(f"[{n}] {e} failed to compile: {traceback.format_exc()}\n")
            bar.update()
        bar.set_description(f"{n}: {len(paths)} paths")
        if "tether" in compiled:
            cursors: dict[str, Any] = {}  # one cursor per engine, restarted for every path
            for k in range(1 + args.passes):
                bench.run_paths(n, paths, compiled, results[n], cursors, first=k == 0)
        bar.update()
        log.flush()
    bar.close()
    log.close()

    def ver(e):
        from importlib import metadata
        dist = {"outlines-core": "outlines_core"}.get(e, e)
        try:
            return f"{e} {metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            return f"{e} {engines[e].version}".strip()

    header = [
        "## Regex token masks: tether vs outlines-core, llguidance, xgrammar",
        "",
        f"- vocabulary: Llama-3 BPE, {vocab.size:,} ids (EOS {vocab.eos_ids}); "
        f"{len(names)} regexes, up to {args.paths} token paths each (greedy tokenizations of full matches)",
        f"- engines: {', '.join(ver(e) for e in order)}; Python {platform.python_version()}, "
        f"{platform.machine()}",
        "- single-threaded: RAYON_NUM_THREADS=1, OMP/MKL/NUMBA threads 1, torch.set_num_threads(1), "
        "xgrammar GrammarCompiler(max_threads=1, cache_enabled=False)",
        f"- JIT warm-up (first tether compile + mask in the process, numba kernels loaded from "
        f"cache or compiled): {jit_s * 1e3:,.0f} ms; a second throwaway regex right after: "
        f"{second_s * 1e3:.2f} ms. Excluded from every figure below.",
        "- peers' first-use warm-up (same throwaway regex): "
        + ", ".join(f"{e} {warmup[e] * 1e3:,.1f} ms" for e in order if e != "tether"),
        "- one-off vocabulary setup (not in any figure): tether load + trie "
        f"{vocab_s:.2f} s; " + ", ".join(f"{e} {setup[e]:.2f} s" for e in order if e != "tether"),
        f"- compile / TTFM: median of {args.repeats} fresh compiles. Time between masks: "
        "consume(previous token) + fill(next mask), every path of a regex on one compiled object "
        f"per engine: one first pass (states visited for the first time: cold), then {args.passes} "
        "steady-state passes (what a server serving many requests for one schema sees).",
        f"- harness overhead in every inter-mask figure (timer calls and the bench's engine "
        f"wrapper, measured on a no-op engine): {overhead:.2f} µs p50, not subtracted.",
        "- TTFM = compile + first mask. outlines-core's Index build does all the work up front; "
        "tether's compile is cheap and masks are computed lazily per state.",
        "- agreement: masks compared bit for bit with tether's, special ids (EOS among them) left "
        "out; EOS checked apart (tether allows EOS exactly in accepting states). Examples in "
        f"`{log_path.name}`.",
    ]
    text = report(results, names, order, header, missing)
    print(text)
    (args.out / "masks.md").write_text(text, encoding="utf-8")
    png = args.out / "masks.png"
    if plot(results, names, order, png):
        print(f"plot: {png}", file=sys.stderr)
    print(f"table: {args.out / 'masks.md'}; disagreements log: {log_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
