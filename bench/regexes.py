"""Regexes from real JSON schemas: compile and token-mask times, tether side by side with peers.

The regex set is outlines-core's rendering of MaskBench schemas
(``outlines_core.json_schema.build_regex_from_schema``, default whitespace ``[ ]?``), a fixed-seed
sample of ``--per-subset`` schemas from every subset; schemas outlines-core cannot turn into a
regex are left out and counted. For every regex, ``--paths`` token paths are drawn once by a
seeded random walk over tether's allowed tokens (llguidance's, then xgrammar's where tether fails)
and cached with the regexes in ``<out>/regexes.json``, so every engine walks the same paths.

Every engine (tether, llguidance, xgrammar, outlines-core) runs in its own worker process, one
thread, warmed up once on a throwaway regex; a regex that runs past ``--timeout`` seconds (or
past ``--mem-gb`` of resident memory) is recorded as such and the worker is replaced by a fresh
one. Per regex and engine: compiled or not (error / timeout), time to first mask (compile + first
mask on the fresh object, CPU ms), then the paths on that object: time between masks (consume the
previous token + fill the next mask, CPU µs) on the first visit of each token prefix and again on
``--passes`` further walks of the same paths (steady). Masks on the first visits are compared bit
for bit with tether's (special ids left out; EOS apart).

    python bench/regexes.py                     # everything (cached regex set, ~15 min)
    python bench/regexes.py --limit 10 --engines tether llguidance
    python bench/regexes.py --rebuild           # redraw the schemas, regexes and paths

Writes ``<out>/regexes.md`` (printed too), ``regexes.csv`` (a row per regex and engine),
``regexes.png``, ``regexes-disagreements.log`` and ``regexes-workers.log`` (the workers' stderr).
"""

from __future__ import annotations

# _peers pins every thread pool to one thread before any engine is imported.
from _peers import REPO, TOKENIZER, Null, make_engine, read_tokenizer_json, row_view

import argparse
import collections
import csv
import gc
import json
import math
import os
import platform
import random
import re
import selectors
import shutil
import subprocess
import sys
import tarfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

MASKBENCH = REPO.parent / "shared" / "data" / "jsonschema" / "maskbench" / "maskbench_data.tar.xz"
ENGINES = ("tether", "llguidance", "xgrammar", "outlines-core")
WALKERS = ("tether", "llguidance", "xgrammar")  # who draws the token paths, in order of preference
THREADS = {"RAYON_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "NUMBA_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
WARMUP_REGEX = r"warm-up [a-z]+[0-9]?"
JSON_PUNCT = b'"{}[],:'
SET_VERSION = 1

cpu = time.process_time_ns
wall = time.perf_counter_ns


def short(exc: BaseException, n: int = 200) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:n] if text else ''}".rstrip(": ")


# ----------------------------------------------------------------------------------------------
# Worker side: one engine per process, JSON lines in on stdin and out on a private stdout
# ----------------------------------------------------------------------------------------------


def _unpack(row: np.ndarray, size: int) -> np.ndarray:
    """Packed int32 words (bit j of word i = token 32 i + j) to one bool per token."""
    return np.unpackbits(np.ascontiguousarray(row).view(np.uint8), bitorder="little")[:size].astype(bool)


class _Ctx:
    """What a worker holds: its engine, the vocabulary and a few masks over it."""

    def __init__(self, kind: str):
        import tether

        t0 = wall()
        self.vocab = vocab = tether.Vocabulary.from_file(TOKENIZER)
        _ = vocab.trie
        self.size, self.words = vocab.size, (vocab.size + 31) // 32
        self.eng = make_engine(kind, vocab, read_tokenizer_json())
        self.setup_s = (wall() - t0) / 1e9
        special = np.zeros(vocab.size, dtype=bool)
        special[list(vocab.special_ids)] = True
        self.regular = ~special & np.array([vocab[i] is not None for i in range(vocab.size)])
        self.punct = np.array([b is not None and any(c in b for c in JSON_PUNCT) for b in vocab])
        self.row = np.zeros(self.words, dtype=np.int32)
        # warm-up: tether's numba kernels (loaded from cache or compiled), the peers' first use
        t0 = wall()
        eng = self.eng
        cur = eng.start(eng.compile(WARMUP_REGEX))
        eng.fill(cur, self.row)
        cur = eng.consume(cur, vocab.encode_greedy("warm")[0])
        eng.fill(cur, self.row)
        self.warmup_ms = (wall() - t0) / 1e6
        null, r, c, xs = Null(), np.zeros(4, dtype=np.int32), None, []
        for _ in range(20000):  # the harness alone, timed exactly like a step
            t0 = cpu()
            c = null.consume(c, 0)
            null.fill(c, r)
            xs.append((cpu() - t0) / 1e3)
        self.overhead_us = float(np.median(xs))

    def hello(self, kind: str) -> dict:
        from importlib import metadata

        dist = {"outlines-core": "outlines_core"}.get(kind, kind)
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            version = getattr(self.eng, "version", "")
        return {"ready": True, "engine": kind, "version": version, "setup_s": self.setup_s,
                "warmup_ms": self.warmup_ms, "overhead_us": self.overhead_us, "size": self.size,
                "eos_ids": list(self.vocab.eos_ids), "special_ids": sorted(self.vocab.special_ids)}

    def walk(self, job: dict) -> dict:
        """Seeded random walks over the allowed regular tokens (a third of the steps prefer
        tokens with JSON punctuation, so that walks leave string bodies); a walk stops in an
        accepting state with probability 1/2, or at max_tokens."""
        eng, row = self.eng, self.row
        cur = eng.start(eng.compile(job["regex"]))
        view = row_view(eng, row)
        eos = self.vocab.eos_ids[0]
        rng = random.Random(job["seed"])
        paths, accepting = [], []
        for _ in range(job["n"]):
            cur = eng.restart(cur)
            ids: list[int] = []
            while True:
                eng.fill(cur, row)
                bits = _unpack(view, self.size)
                acc = bool(bits[eos])
                if len(ids) >= job["max_tokens"] or (acc and rng.random() < 0.5):
                    break
                allowed = bits & self.regular
                cand = np.flatnonzero(allowed & self.punct) if rng.random() < 1 / 3 else np.empty(0)
                if not cand.size:
                    cand = np.flatnonzero(allowed)
                if not cand.size:
                    break
                t = int(cand[rng.randrange(cand.size)])
                cur = eng.consume(cur, t)
                ids.append(t)
            paths.append(ids)
            accepting.append(acc)
        return {"paths": paths, "accepting": accepting}

    def bench(self, job: dict, send) -> None:
        eng, row = self.eng, self.row
        paths, passes = job["paths"], job["passes"]
        gc.collect()
        w0, c0 = wall(), cpu()
        try:
            compiled = eng.compile(job["regex"])
            c1 = cpu()
            cur = eng.start(compiled)
            eng.fill(cur, row)
            c2, w2 = cpu(), wall()
        except Exception as exc:
            send({"phase": "error", "error": short(exc)})
            return
        send({"phase": "compiled", "compile_ms": (c1 - c0) / 1e6, "ttfm_ms": (c2 - c0) / 1e6,
              "ttfm_wall_ms": (w2 - w0) / 1e6})
        view = row_view(eng, row)
        keys, masks = [(0, 0)], [view.copy()]  # first-visit masks, for the agreement check
        first: list[float] = []
        steady: list[float] = []
        rejected: dict[int, tuple[int, str]] = {}
        seen: set[tuple[int, ...]] = set()
        budget = wall() + int(job.get("budget_s", 0) * 1e9)  # past it, stop walking and report
        cut = False
        gc.disable()
        try:
            for p in range(1 + passes):
                for k, ids in enumerate(paths):
                    if k in rejected or cut:
                        continue
                    cur = eng.restart(cur)
                    if p or k:
                        eng.fill(cur, row)  # step 0 (untimed; the very first one is in TTFM)
                    for s in range(1, len(ids) + 1):
                        if job.get("budget_s") and wall() > budget:
                            cut = True
                            break
                        try:
                            t0 = cpu()
                            cur = eng.consume(cur, ids[s - 1])
                            eng.fill(cur, row)
                            t1 = cpu()
                        except Exception as exc:  # the engine rejects a token of the path
                            rejected[k] = (s, short(exc))
                            break
                        if p:
                            steady.append((t1 - t0) / 1e3)
                            continue
                        prefix = tuple(ids[:s])
                        if prefix in seen:
                            continue
                        seen.add(prefix)
                        first.append((t1 - t0) / 1e3)
                        keys.append((k, s))
                        masks.append(view.copy())
        finally:
            gc.enable()
        if job.get("masks"):
            np.savez(job["masks"], keys=np.array(keys, dtype=np.int32), masks=np.stack(masks))
        send({"phase": "done", "cut": cut, "first_us": [round(x, 3) for x in first],
              "steady_us": [round(x, 3) for x in steady],
              "rejected": {str(k): v for k, v in rejected.items()}})


def worker_main(kind: str) -> int:
    proto = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # anything an engine prints goes to stderr, never into the protocol
    sys.stdout = sys.stderr

    def send(msg: dict) -> None:
        proto.write(json.dumps(msg) + "\n")
        proto.flush()

    if kind == "regexgen":
        from outlines_core.json_schema import build_regex_from_schema

        send({"ready": True, "engine": kind})
        for line in sys.stdin.buffer:
            job = json.loads(line)
            try:
                rx = build_regex_from_schema(job["schema"], job.get("whitespace"))
                send({"regex": rx})
            except BaseException as exc:  # pyo3 panics derive from BaseException
                send({"error": short(exc, 120)})
        return 0

    ctx = _Ctx(kind)
    send(ctx.hello(kind))
    for line in sys.stdin.buffer:
        job = json.loads(line)
        try:
            if job["op"] == "walk":
                send(ctx.walk(job))
            else:
                ctx.bench(job, send)
        except Exception as exc:
            traceback.print_exc()
            send({"phase": "error", "error": short(exc)})
    return 0


# ----------------------------------------------------------------------------------------------
# Parent side: worker processes with a wall-clock and memory limit per job
# ----------------------------------------------------------------------------------------------


class Worker:
    """A worker process for one engine; killed and replaced whenever a job runs past a limit."""

    def __init__(self, kind: str, log, mem_bytes: int, startup_s: float = 600):
        self.kind, self.log, self.mem_bytes, self.startup_s = kind, log, mem_bytes, startup_s
        self.proc: subprocess.Popen | None = None
        self.hello: dict = {}
        self.starts = 0
        self.buf = b""

    def ensure(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", self.kind],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, cwd=REPO,
            env={**os.environ, **THREADS})
        self.starts += 1
        self.buf = b""
        msg, status = self.read(self.startup_s)
        if status:
            raise RuntimeError(f"{self.kind} worker did not start ({status}; see regexes-workers.log)")
        self.hello = msg

    def send(self, job: dict) -> None:
        self.ensure()
        try:
            self.proc.stdin.write((json.dumps(job) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError:  # died between jobs: one fresh try
            self.kill()
            self.ensure()
            self.proc.stdin.write((json.dumps(job) + "\n").encode())
            self.proc.stdin.flush()

    def rss(self) -> int:
        try:
            with open(f"/proc/{self.proc.pid}/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return 0

    def read(self, timeout: float) -> tuple[dict | None, str | None]:
        """The next message, or (None, 'timeout' | 'memory' | 'crashed') with the worker gone."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        sel = selectors.DefaultSelector()
        sel.register(fd, selectors.EVENT_READ)
        try:
            while b"\n" not in self.buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.kill()
                    return None, "timeout"
                if sel.select(min(left, 0.1)):
                    chunk = os.read(fd, 1 << 20)
                    if not chunk:
                        rc = self.proc.wait()
                        self.proc = None
                        return None, f"crashed (exit {rc})"
                    self.buf += chunk
                elif self.mem_bytes and self.rss() > self.mem_bytes:
                    self.kill()
                    return None, "memory"
        finally:
            sel.close()
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line), None

    def kill(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc = None

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None


# ----------------------------------------------------------------------------------------------
# The regex set: schemas -> regexes -> token paths, cached
# ----------------------------------------------------------------------------------------------


def subset_of(member: str) -> str:
    base = member.rsplit("/", 1)[-1]
    return base.split("---")[0] if "---" in base else re.match(r"[A-Za-z]+", base).group(0)


def sample_schemas(per_subset: int, seed: int) -> tuple[list[tuple[str, str, str]], dict[str, int]]:
    """(member, subset, schema JSON) for a fixed-seed sample, interleaved across subsets."""
    if not MASKBENCH.exists():
        raise SystemExit(f"missing MaskBench data: expected {MASKBENCH}")
    with tarfile.open(MASKBENCH, "r:xz") as tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile() and m.name.endswith(".json")}
        by: dict[str, list[str]] = collections.defaultdict(list)
        for name in members:
            by[subset_of(name)].append(name)
        rng = random.Random(seed)
        picks = {s: rng.sample(sorted(by[s]), min(per_subset, len(by[s]))) for s in sorted(by)}
        out = []
        for k in range(per_subset):  # round robin, so that --limit N spans the subsets
            for s in sorted(picks):
                if k < len(picks[s]):
                    d = json.load(tar.extractfile(members[picks[s][k]]))
                    out.append((picks[s][k].rsplit("/", 1)[-1], s, json.dumps(d["schema"])))
    return out, {s: len(v) for s, v in by.items()}


def build_set(args, log) -> dict:
    t_start = time.monotonic()
    schemas, subset_sizes = sample_schemas(args.per_subset, args.seed)
    print(f"regex set: {len(schemas)} schemas ({args.per_subset} per subset, seed {args.seed}) "
          f"-> outlines-core regexes ...", file=sys.stderr)
    gen = Worker("regexgen", log, int(args.mem_gb * 2**30))
    regexes, dropped = [], []
    for i, (name, subset, schema) in enumerate(schemas):
        gen.send({"schema": schema, "whitespace": None})
        msg, status = gen.read(args.timeout)
        if status or "error" in msg:
            dropped.append({"name": name, "subset": subset, "reason": status or msg["error"]})
        else:
            regexes.append({"name": name, "subset": subset, "schema_chars": len(schema),
                            "regex": msg["regex"]})
        print(f"  [{i + 1}/{len(schemas)}] {name}: {status or msg.get('error', 'ok')[:70]}",
              file=sys.stderr, flush=True)
    gen.close()
    print(f"{len(regexes)} regexes, {len(dropped)} schemas dropped; drawing {args.paths} token paths "
          f"each ...", file=sys.stderr)
    walkers = {e: Worker(e, log, int(args.mem_gb * 2**30)) for e in WALKERS}
    for i, rx in enumerate(regexes):
        rx["paths"], rx["accepting"], rx["paths_by"], why = [], [], None, []
        for e in WALKERS:
            try:
                walkers[e].send({"op": "walk", "regex": rx["regex"], "n": args.paths,
                                 "max_tokens": args.max_tokens, "seed": f"{args.seed}:{rx['name']}"})
            except RuntimeError as exc:
                why.append(f"{e}: {exc}")
                continue
            msg, status = walkers[e].read(args.timeout)
            if status or "error" in msg:
                why.append(f"{e}: {status or msg['error']}")
                continue
            rx.update(paths=msg["paths"], accepting=msg["accepting"], paths_by=e)
            break
        if why:
            rx["paths_note"] = "; ".join(why)
        lens = [len(p) for p in rx["paths"]]
        print(f"  [{i + 1}/{len(regexes)}] {rx['name']}: paths by {rx['paths_by']} {lens}"
              + (f" ({rx.get('paths_note')})" if why else ""), file=sys.stderr, flush=True)
    for w in walkers.values():
        w.close()
    from importlib import metadata

    return {"version": SET_VERSION, "seed": args.seed, "per_subset": args.per_subset,
            "whitespace_pattern": None, "outlines_core": metadata.version("outlines_core"),
            "tokenizer": str(TOKENIZER.relative_to(REPO.parent)), "paths": args.paths,
            "max_tokens": args.max_tokens, "sampled": len(schemas), "subset_sizes": subset_sizes,
            "build_s": round(time.monotonic() - t_start, 1), "dropped": dropped, "regexes": regexes}


# ----------------------------------------------------------------------------------------------
# One regex on one engine; agreement with tether
# ----------------------------------------------------------------------------------------------


def run_one(w: Worker, rx: dict, args, masks_path: Path | None) -> dict:
    r: dict[str, Any] = {"status": "ok", "error": "", "first_us": [], "steady_us": [], "rejected": {}}
    try:
        w.send({"op": "bench", "regex": rx["regex"], "paths": rx["paths"], "passes": args.passes,
                "budget_s": args.timeout, "masks": str(masks_path) if masks_path else None})
    except RuntimeError as exc:
        return {**r, "status": "error", "error": str(exc)}
    msg, status = w.read(args.timeout)
    if status:
        return {**r, "status": status.split(" ")[0], "error": status}
    if msg["phase"] == "error":
        return {**r, "status": "error", "error": msg["error"]}
    r.update(compile_ms=msg["compile_ms"], ttfm_ms=msg["ttfm_ms"], ttfm_wall_ms=msg["ttfm_wall_ms"])
    msg, status = w.read(2 * args.timeout + 5)  # the worker stops walking by itself at --timeout
    if status:
        r["paths_status"] = status
    elif msg["phase"] == "error":
        r["paths_status"] = msg["error"]
    else:
        r.update(first_us=msg["first_us"], steady_us=msg["steady_us"], rejected=msg["rejected"],
                 masks=masks_path)
        if msg["cut"]:
            r["paths_status"] = f"cut at {args.timeout:g} s"
    return r


class Agreement:
    def __init__(self, hello: dict, log):
        self.size = hello["size"]
        self.eos = hello["eos_ids"][0]
        self.compare = np.ones(self.size, dtype=bool)
        self.compare[hello["special_ids"]] = False
        self.log = log
        self.vocab = None
        self.examples: collections.Counter = collections.Counter()

    def unpack(self, masks: np.ndarray) -> np.ndarray:
        return np.unpackbits(np.ascontiguousarray(masks).view(np.uint8), axis=1,
                             bitorder="little")[:, : self.size].astype(bool)

    def token(self, t: int) -> str:
        if self.vocab is None:
            try:
                import tether
                self.vocab = tether.Vocabulary.from_file(TOKENIZER)
            except Exception:
                self.vocab = False
        return f"{t}:{self.vocab[t]!r}" if self.vocab else str(t)

    def check(self, rx: dict, res: dict[str, dict]) -> None:
        ref = res.get("tether", {}).get("masks")
        if not ref:
            return
        with np.load(ref) as z:
            tkeys = {tuple(k): i for i, k in enumerate(z["keys"].tolist())}
            tbits = self.unpack(z["masks"])
        for e, r in res.items():
            if e == "tether" or not r.get("masks"):
                continue
            with np.load(r["masks"]) as z:
                keys = [tuple(k) for k in z["keys"].tolist()]
                bits = self.unpack(z["masks"])
            rows = [(i, tkeys[k]) for i, k in enumerate(keys) if k in tkeys]
            r["compared"] = len(rows)
            if not rows:
                continue
            a = bits[[i for i, _ in rows]]
            b = tbits[[j for _, j in rows]]
            diff = (a != b) & self.compare
            bad = np.flatnonzero(diff.any(axis=1))
            r["differing"] = int(bad.size)
            more = (diff & a).any(axis=1)  # the peer allows a token tether does not
            fewer = (diff & b).any(axis=1)  # tether allows a token the peer does not
            r["fewer"] = int((fewer & ~more).sum())
            r["more"] = int((more & ~fewer).sum())
            r["eos_diffs"] = int((a[:, self.eos] != b[:, self.eos]).sum())
            for n in bad[:3]:
                k = keys[rows[n][0]]
                only_e = np.flatnonzero(diff[n] & a[n])
                only_t = np.flatnonzero(diff[n] & b[n])
                path = rx["paths"][k[0]][: k[1]]
                show = lambda ts: ", ".join(self.token(int(t)) for t in ts[:8])
                self.log.write(
                    f"[{rx['name']}] {e} path {k[0]} step {k[1]} (prefix ids {path[-6:]}): "
                    f"{int(diff[n].sum())} tokens differ; allowed by {e} {int((a[n] & self.compare).sum())}, "
                    f"by tether {int((b[n] & self.compare).sum())}\n"
                    f"    only {e} ({only_e.size}): {show(only_e)}\n"
                    f"    only tether ({only_t.size}): {show(only_t)}\n")
        self.log.flush()


# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------


def pct(xs, q) -> float:
    return float(np.percentile(np.asarray(xs, dtype=float), q)) if len(xs) else float("nan")


def fmt(x: float) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def summarize(results: list[dict[str, dict]], engines: list[str]) -> dict[str, dict]:
    s = {}
    common = [i for i, res in enumerate(results) if all(res[e]["status"] == "ok" for e in engines)]
    for e in engines:
        rs = [res[e] for res in results]
        ok = [r for r in rs if r["status"] == "ok"]
        ttfm = [r["ttfm_ms"] for r in ok]
        s[e] = {
            "compiled": len(ok), "n": len(rs),
            "timeouts": sum(r["status"] == "timeout" for r in rs),
            "memory": sum(r["status"] == "memory" for r in rs),
            "errors": sum(r["status"] not in ("ok", "timeout", "memory") for r in rs),
            "ttfm": ttfm,
            "ttfm_common": [results[i][e]["ttfm_ms"] for i in common],
            "first": [x for r in ok for x in r["first_us"]],
            "steady": [x for r in ok for x in r["steady_us"]],
            "paths_cut": sum(1 for r in ok if r.get("paths_status")),  # cut, or lost entirely
            "rejected": sum(len(r["rejected"]) for r in ok),
            "compared": sum(r.get("compared", 0) for r in ok),
            "differing": sum(r.get("differing", 0) for r in ok),
            "eos_diffs": sum(r.get("eos_diffs", 0) for r in ok),
            "fewer": sum(r.get("fewer", 0) for r in ok),
            "more": sum(r.get("more", 0) for r in ok),
            "error_kinds": collections.Counter(
                re.sub(r"\d+", "N", r["error"])[:90] for r in rs if r["status"] not in ("ok",)),
        }
    s["_common"] = len(common)
    return s


def table(s: dict, engines: list[str], n: int) -> list[str]:
    rows = [["", *engines], ["---"] * (len(engines) + 1)]
    tri = lambda xs, a, b, c: " / ".join(fmt(pct(xs, q)) if q != "max" else fmt(max(xs) if xs else math.nan)
                                         for q in (a, b, c))
    def failed(e):
        parts = [(s[e]["timeouts"], "timeout"), (s[e]["memory"], "over memory"), (s[e]["errors"], "error")]
        parts = [f"{k} {w}{'s' if k > 1 and w != 'over memory' else ''}" for k, w in parts if k]
        return f" ({', '.join(parts)})" if parts else ""

    rows.append([f"compiled, of {n}"] + [f"{s[e]['compiled']}{failed(e)}" for e in engines])
    rows.append(["time to first mask p50 / p90 / max (ms)"] + [tri(s[e]["ttfm"], 50, 90, "max") for e in engines])
    rows.append([f"the same, on the {s['_common']} regexes all compiled"]
                + [tri(s[e]["ttfm_common"], 50, 90, "max") for e in engines])
    rows.append(["mask, first visit p50 / p99 (µs)"]
                + [" / ".join(fmt(pct(s[e]["first"], q)) for q in (50, 99)) for e in engines])
    rows.append(["mask, steady p50 / p99 (µs)"]
                + [" / ".join(fmt(pct(s[e]["steady"], q)) for q in (50, 99)) for e in engines])
    rows.append(["mask steps timed, first visit / steady"]
                + [f"{len(s[e]['first']):,} / {len(s[e]['steady']):,}" for e in engines])
    if "tether" in engines:
        rows.append(["masks differing from tether's, of compared (allowing only fewer / only more tokens); EOS bit differs"]
                    + ["—" if e == "tether" else
                       f"{s[e]['differing']:,} of {s[e]['compared']:,} ({s[e]['fewer']:,} / {s[e]['more']:,}); {s[e]['eos_diffs']}"
                       for e in engines])
    rows.append(["paths rejected part-way (token refused)"] + [str(s[e]["rejected"]) for e in engines])
    rows.append(["regexes whose paths ran past the limit (walk cut)"] + [str(s[e]["paths_cut"]) for e in engines])
    return ["| " + " | ".join(r) + " |" for r in rows]


def plot(s: dict, engines: list[str], n: int, path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    colors = {"tether": "#d62728", "outlines-core": "#1f77b4", "llguidance": "#2ca02c", "xgrammar": "#9467bd"}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 5.5))
    for e in engines:
        xs = np.sort(s[e]["ttfm"])
        if xs.size:
            ax1.step(xs, np.arange(1, xs.size + 1) / n, where="post", color=colors.get(e),
                     label=f"{e} ({xs.size}/{n} compiled)")
    ax1.set_xscale("log")
    ax1.set_ylim(0, 1)
    ax1.set_xlabel("time to first mask, compile + first mask (CPU ms, log)")
    ax1.set_ylabel("share of regexes (timeouts and errors never arrive)")
    ax1.grid(which="both", alpha=0.3)
    ax1.legend(loc="lower right", fontsize=8)
    groups = [("first visit p50", "first", 50), ("first visit p99", "first", 99),
              ("steady p50", "steady", 50), ("steady p99", "steady", 99)]
    width = 0.8 / len(engines)
    x = np.arange(len(groups))
    for k, e in enumerate(engines):
        vals = [pct(s[e][key], q) for _, key, q in groups]
        ax2.bar(x + (k - (len(engines) - 1) / 2) * width, vals, width, label=e, color=colors.get(e))
    ax2.set_xticks(x)
    ax2.set_xticklabels([g[0] for g in groups])
    ax2.set_yscale("log")
    ax2.set_ylabel("time between masks: consume + fill (CPU µs, log)")
    ax2.grid(axis="y", which="both", alpha=0.3)
    ax2.legend(fontsize=8)
    fig.suptitle(f"{n} regexes from MaskBench schemas (outlines-core rendering), Llama-3 vocabulary, "
                 "one thread — lower / further left is better")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


CSV_FIELDS = ["index", "name", "subset", "regex_chars", "paths_by", "path_tokens", "engine", "status",
              "error", "compile_ms", "ttfm_ms", "ttfm_wall_ms", "first_steps", "first_p50_us",
              "first_p99_us", "steady_steps", "steady_p50_us", "steady_p99_us", "compared_masks",
              "differing_masks", "fewer_masks", "more_masks", "eos_diffs", "rejected_paths", "paths_status"]


def csv_rows(regs: list[dict], results: list[dict[str, dict]], engines: list[str]):
    for i, (rx, res) in enumerate(zip(regs, results)):
        for e in engines:
            r = res[e]
            f = lambda x: "" if x is None or (isinstance(x, float) and not math.isfinite(x)) else (
                f"{x:.4g}" if isinstance(x, float) else x)
            yield {"index": i, "name": rx["name"], "subset": rx["subset"], "regex_chars": len(rx["regex"]),
                   "paths_by": rx.get("paths_by") or "", "path_tokens": " ".join(str(len(p)) for p in rx["paths"]),
                   "engine": e, "status": r["status"], "error": r["error"],
                   "compile_ms": f(r.get("compile_ms")), "ttfm_ms": f(r.get("ttfm_ms")),
                   "ttfm_wall_ms": f(r.get("ttfm_wall_ms")), "first_steps": len(r["first_us"]),
                   "first_p50_us": f(pct(r["first_us"], 50)), "first_p99_us": f(pct(r["first_us"], 99)),
                   "steady_steps": len(r["steady_us"]), "steady_p50_us": f(pct(r["steady_us"], 50)),
                   "steady_p99_us": f(pct(r["steady_us"], 99)), "compared_masks": r.get("compared", ""),
                   "differing_masks": r.get("differing", ""), "fewer_masks": r.get("fewer", ""),
                   "more_masks": r.get("more", ""), "eos_diffs": r.get("eos_diffs", ""),
                   "rejected_paths": len(r["rejected"]), "paths_status": r.get("paths_status", "")}


# ----------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    ap.add_argument("--limit", type=int, help="only the first N regexes of the set (0: build or load the set only)")
    ap.add_argument("--timeout", type=float, default=20.0,
                    help="wall-clock seconds per regex and engine, for the compile + first mask and "
                         "again for the paths (default 20)")
    ap.add_argument("--mem-gb", type=float, default=8.0,
                    help="resident memory per worker before a regex counts as failed (default 8)")
    ap.add_argument("--passes", type=int, default=2, help="steady walks of the paths after the first (default 2)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    ap.add_argument("--rebuild", action="store_true", help="redraw the regex set and its paths")
    ap.add_argument("--per-subset", type=int, default=15, help="schemas drawn per MaskBench subset (with --rebuild)")
    ap.add_argument("--seed", type=int, default=0, help="sampling and walk seed (with --rebuild)")
    ap.add_argument("--paths", type=int, default=3, help="token paths per regex (with --rebuild)")
    ap.add_argument("--max-tokens", type=int, default=60, help="tokens per path at most (with --rebuild)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker_main(args.worker)
    if not TOKENIZER.exists():
        read_tokenizer_json()  # exits with the message
    engines = [e for e in ENGINES if e in args.engines]
    args.out.mkdir(parents=True, exist_ok=True)
    wlog = open(args.out / "regexes-workers.log", "w", encoding="utf-8")

    cache = args.out / "regexes.json"
    if args.rebuild or not cache.exists():
        regset = build_set(args, wlog)
        cache.write_text(json.dumps(regset), encoding="utf-8")
        print(f"regex set cached in {cache} ({regset['build_s']:.0f} s)", file=sys.stderr)
    else:
        regset = json.loads(cache.read_text(encoding="utf-8"))
        print(f"regex set from {cache} (--rebuild to redraw)", file=sys.stderr)
    regs = regset["regexes"][: args.limit]
    n = len(regs)
    print(f"{len(regset['regexes'])} regexes from {regset['sampled']} schemas ({len(regset['dropped'])} "
          f"dropped); running {n}", file=sys.stderr)
    if not n:
        return 0

    tmp = args.out / "regexes-masks.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    mem = int(args.mem_gb * 2**30)
    workers: dict[str, Worker] = {}
    missing: dict[str, str] = {}
    hellos: dict[str, dict] = {}
    for e in engines:
        w = Worker(e, wlog, mem)
        try:
            w.ensure()
        except RuntimeError as exc:
            missing[e] = str(exc)
            print(f"engine {e} unavailable: {exc}", file=sys.stderr)
            continue
        workers[e], hellos[e] = w, w.hello
        print(f"{e} {w.hello['version']}: setup {w.hello['setup_s']:.1f} s, warm-up "
              f"{w.hello['warmup_ms']:,.0f} ms", file=sys.stderr)
    engines = [e for e in engines if e in workers]
    if not engines:
        raise SystemExit("no engine could start; see " + str(args.out / "regexes-workers.log"))
    alog = open(args.out / "regexes-disagreements.log", "w", encoding="utf-8")
    agree = Agreement(next(iter(hellos.values())), alog)

    results: list[dict[str, dict]] = []
    t_start = time.monotonic()
    for i, rx in enumerate(regs):
        res: dict[str, dict] = {}
        for e in engines:
            mp = tmp / f"{i}-{e}.npz" if "tether" in engines else None
            res[e] = run_one(workers[e], rx, args, mp)
        agree.check(rx, res)
        for r in res.values():
            if r.get("masks"):
                Path(r["masks"]).unlink(missing_ok=True)
                r["masks"] = None
        results.append(res)
        cell = lambda r: (f"{r['ttfm_ms']:,.1f} ms" if r["status"] == "ok" else r["status"]) + (
            f"{'' if not r.get('differing') else ' ≠' + str(r['differing'])}")
        print(f"[{i + 1}/{n}] {rx['name'][:48]} ({len(rx['regex']):,} chars): "
              + " | ".join(f"{e} {cell(res[e])}" for e in engines)
              + f"  [{time.monotonic() - t_start:,.0f} s]", file=sys.stderr, flush=True)
    for w in workers.values():
        w.close()
    shutil.rmtree(tmp, ignore_errors=True)
    alog.close()
    elapsed = time.monotonic() - t_start

    s = summarize(results, engines)
    drop = collections.Counter(
        "outlines-core refuses the schema" if not d["reason"].split(" ")[0] in ("timeout", "memory", "crashed")
        else d["reason"].split(" ")[0] for d in regset["dropped"])
    all_paths = [p for rx in regs for p in rx["paths"]]
    by = collections.Counter(rx.get("paths_by") or "nobody" for rx in regs)
    lines = [
        "## Regexes from MaskBench schemas: compile and mask times",
        "",
        f"- regexes: {n}"
        + (f" (first {n} of {len(regset['regexes'])})" if n < len(regset["regexes"]) else "")
        + f", outlines-core {regset['outlines_core']}'s `build_regex_from_schema` (default whitespace `[ ]?`) "
        f"on {regset['sampled']} MaskBench schemas ({regset['per_subset']} per subset, seed {regset['seed']}); "
        f"{len(regset['dropped'])} schemas dropped ("
        + ", ".join(f"{k}: {v}" for k, v in drop.most_common()) + "). "
        f"Regex length p50 {pct([len(r['regex']) for r in regs], 50):,.0f} chars, max {max((len(r['regex']) for r in regs), default=0):,}.",
        f"- vocabulary: Llama-3 BPE ({hellos[engines[0]]['size']:,} ids); engines: "
        + ", ".join(f"{e} {hellos[e]['version']}" for e in engines)
        + (f"; unavailable: {', '.join(missing)}" if missing else "")
        + f"; Python {platform.python_version()}, {platform.machine()}",
        f"- token paths: {len(all_paths)} ({regset['paths']} per regex; drawn by "
        + ", ".join(f"{k} for {v}" for k, v in by.most_common())
        + f"), {pct([len(p) for p in all_paths], 50):.0f} tokens p50 (at most {regset['max_tokens']}), "
        f"{sum(a for rx in regs for a in rx['accepting'])} end in an accepting state. Every engine walks the same paths.",
        "- each engine in its own worker process, one thread (RAYON/OMP/MKL/NUMBA threads 1, xgrammar "
        f"`max_threads=1`, cache off); limit {args.timeout:g} s wall-clock per regex for compile + first mask "
        f"(and again for the paths: past it the walk stops and keeps the steps timed so far), "
        f"{args.mem_gb:g} GB resident; a fresh worker after every timeout. "
        "Warm-up on a throwaway regex once per worker (ms): "
        + ", ".join(f"{e} {hellos[e]['warmup_ms']:,.0f}" for e in engines) + ".",
        "- time to first mask: compile + first mask fill on the fresh object, CPU time (`time.process_time`), "
        "over the regexes that engine compiled. Mask: consume the previous token + fill the next mask, CPU µs; "
        "first visit = the first time a token prefix is walked on the compiled object, steady = "
        f"{args.passes} more walks of the same paths. Harness overhead in every step (timer + wrapper, "
        "no-op engine): " + ", ".join(f"{hellos[e]['overhead_us']:.2f}" for e in engines[:1]) + " µs, not subtracted.",
        "- agreement: every first-visit mask compared bit for bit with tether's, special ids left out; the EOS "
        "bit apart. Examples in `regexes-disagreements.log`.",
        f"- wall time of this run: {elapsed / 60:.1f} min.",
        "",
        *table(s, engines, n),
    ]
    errs = [(e, k, c) for e in engines for k, c in s[e]["error_kinds"].most_common(4)]
    if errs:
        lines += ["", "Failures, most common per engine:", ""]
        lines += [f"- {e}: {c}× {k}" for e, k, c in errs]
    text = "\n".join(lines) + "\n"
    print(text)
    (args.out / "regexes.md").write_text(text, encoding="utf-8")
    with open(args.out / "regexes.csv", "w", newline="", encoding="utf-8") as f:
        wr = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        wr.writeheader()
        wr.writerows(csv_rows(regs, results, engines))
    png = args.out / "regexes.png"
    plotted = plot(s, engines, n, png)
    print(f"written: {args.out / 'regexes.md'}, regexes.csv" + (", regexes.png" if plotted else ""),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
