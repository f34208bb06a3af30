"""JSON Schema constraints over MaskBench: coverage, compile time, masks, soundness, tether and peers.

MaskBench (JSONSchemaBench's mask benchmark: 11,305 real-world schemas in 15 subsets, with 13,964
valid and 23,047 invalid instances) is read in place from
``../shared/data/jsonschema/maskbench/maskbench_data.tar.xz``. Every schema is compiled by every
engine on the Llama-3 vocabulary (128,256 ids), one thread, each engine in its own worker process
(one schema at a time, ``RLIMIT_AS`` at ``--memory-gb``; a schema that runs past
``--compile-timeout`` seconds to its first mask is recorded as a timeout and the worker is
replaced by a fresh one). Measured, per subset and overall:

* **coverage**: share of schemas compiled, and why the others were not (tether: the keyword of
  each ``UnsupportedSchema``, ``InvalidSchema``, ``ConstraintTooLarge``, ``EmptyLanguage``;
  llguidance: the keywords it names as unimplemented; every engine: timeout, memory, crash, error);
* **compile time to first mask**: compile + the first mask on the fresh object, CPU ms,
  p50 / p90 / p99 / max over the compiled schemas;
* **time between masks**: consume a token + fill the next mask, CPU µs, p50 / p99 / max over every
  step of every valid instance's token walk;
* **valid instances accepted** (share, among the compiled schemas' valid instances) and **invalid
  instances accepted** (count): an instance is accepted when every token of its walk is in the
  mask before it is consumed and EOS is in the mask after the last one.

What each engine is given (the notes in the output repeat it):

* tether: ``tether.json_schema(schema, whitespace="compact", property_order="any",
  additional_properties="allow")``; instances serialised with
  ``tether.grammar.json_schema.canonical_json`` (compact, non-ASCII unescaped, numbers positional);
* llguidance: ``LLMatcher.grammar_from_json_schema(schema)`` with its defaults (flexible
  whitespace, keys in declared order); instances as ``json.dumps(separators=(",", ":"),
  ensure_ascii=False)``;
* xgrammar: ``GrammarCompiler.compile_json_schema(schema, any_whitespace=True)`` (strict mode:
  no undeclared properties; keys in declared order), one thread, cache off; compact instances;
* outlines-core: ``build_regex_from_schema(schema)`` (whitespace ``[ ]?``) + ``Index``; compact
  instances.

MaskBench's instances are stored with their keys in the order llguidance accepts, the declared
order (upstream reordered them, for the schemas llguidance compiles). Instances are tokenised with the real
Llama-3 tokenizer (``--tokenize real``, what MaskBench does) or by longest match over the
vocabulary (``--tokenize greedy``, ``tether.Vocabulary.encode_greedy``; llguidance refuses some
such splits the real tokenizer never makes, e.g. ``{"|alg|ebra`` where it writes ``{"|al|gebra``).

    python bench/json_schemas.py --sample 40                 # stratified quick run, ~5 min
    python bench/json_schemas.py                             # all 11,305 schemas (hours)
    python bench/json_schemas.py --engines tether,llguidance --ids Github_easy---o10000.json

Writes ``<out>/summary.md`` (printed too), ``summary.json``, ``json_schemas.png``,
``records.jsonl`` (one line per schema and engine) and ``workers.log`` (the workers' stderr).
"""

from __future__ import annotations

# _peers pins every thread pool to one thread before any engine is imported.
from _peers import REPO, TOKENIZER, make_engine, read_tokenizer_json, row_view

import argparse
import collections
import gc
import json
import math
import os
import platform
import random
import re
import resource
import selectors
import subprocess
import sys
import tarfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np

MASKBENCH = REPO.parent / "shared" / "data" / "jsonschema" / "maskbench" / "maskbench_data.tar.xz"
ENGINES = ("tether", "llguidance", "xgrammar", "outlines-core")
THREADS = {"RAYON_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "NUMBA_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
COLORS = {"tether": "#d62728", "llguidance": "#2ca02c", "xgrammar": "#9467bd", "outlines-core": "#1f77b4"}
GIVEN = {
    "tether": ('`tether.json_schema(schema, whitespace="compact", property_order="any", '
               'additional_properties="allow")`', "`canonical_json` (compact, non-ASCII unescaped, "
               "numbers positional)"),
    "llguidance": ("`LLMatcher.grammar_from_json_schema(schema)`, defaults (flexible whitespace, "
                   "declared key order)", "compact `json.dumps`, `ensure_ascii=False`"),
    "xgrammar": ("`compile_json_schema(schema, any_whitespace=True)`, strict mode (no undeclared "
                 "properties), declared key order, one thread, cache off",
                 "compact `json.dumps`, `ensure_ascii=False`"),
    "outlines-core": ("`build_regex_from_schema(schema)` (whitespace `[ ]?`, declared key order) + "
                      "`Index`", "compact `json.dumps`, `ensure_ascii=False`"),
}
WARMUP_SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "n": {"type": "integer"}},
                 "required": ["name"]}
WARMUP_TEXT = '{"name":"warm","n":1}'

cpu = time.process_time_ns
wall = time.perf_counter_ns


def short(exc: BaseException, n: int = 200) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:n] if text else ''}".rstrip(": ")


# ----------------------------------------------------------------------------------------------
# MaskBench: the schemas, a stratified sample, the instances per engine
# ----------------------------------------------------------------------------------------------


def schema_id(member: str) -> str:
    return member.rsplit("/", 1)[-1]


def subset_of(member: str) -> str:
    """``data/Github_easy---o1.json`` -> Github_easy; ``data/BFCL_simple_3.json`` -> BFCL."""
    base = schema_id(member)
    return base.split("---")[0] if "---" in base else re.match(r"[A-Za-z]+", base).group(0)


def stratified(by_subset: dict[str, list[str]], n: int, rng: random.Random) -> dict[str, list[str]]:
    """n names spread evenly over the subsets (a small subset's unused share goes to the others)."""
    quota = {s: 0 for s in by_subset}
    left = n
    while left > 0:
        open_ = [s for s in sorted(by_subset) if quota[s] < len(by_subset[s])]
        if not open_:
            break
        share, extra = divmod(left, len(open_))
        for k, s in enumerate(rng.sample(open_, len(open_))):
            add = min(share + (k < extra), len(by_subset[s]) - quota[s])
            quota[s] += add
            left -= add
    return {s: rng.sample(sorted(names), quota[s]) for s, names in by_subset.items()}


def interleave(picks: dict[str, list[str]]) -> list[str]:
    """Round robin over the subsets, so that a run cut short still spans them."""
    out, k = [], 0
    while len(out) < sum(map(len, picks.values())):
        out.extend(picks[s][k] for s in sorted(picks) if k < len(picks[s]))
        k += 1
    return out


def load_maskbench(sample: int, seed: int, ids: list[str]) -> tuple[list[dict], dict[str, int]]:
    """The schemas to run, in run order: {"id", "subset", "schema" (JSON text), "tests"}; and the
    size of every subset."""
    if not MASKBENCH.exists():
        raise SystemExit(f"missing MaskBench data: expected {MASKBENCH} (the shared data folder next "
                         f"to the repository: ../shared/data/jsonschema/maskbench/)")
    with tarfile.open(MASKBENCH, "r:xz") as tar:
        names = [m.name for m in tar.getmembers() if m.isfile() and m.name.endswith(".json")]
        by: dict[str, list[str]] = collections.defaultdict(list)
        for name in names:
            by[subset_of(name)].append(name)
        if ids:
            order = [n for i in ids for n in names if schema_id(n) == i]
            missing = set(ids) - {schema_id(n) for n in order}
            if missing:
                raise SystemExit(f"no such MaskBench schema: {', '.join(sorted(missing))}")
        elif sample:
            order = interleave(stratified(by, sample, random.Random(seed)))
        else:
            order = interleave({s: sorted(v) for s, v in by.items()})
        wanted, got = set(order), {}
        for m in tar:  # in archive order: an xz stream does not seek backwards cheaply
            if m.name in wanted:
                d = json.load(tar.extractfile(m))
                got[m.name] = {"id": schema_id(m.name), "subset": subset_of(m.name),
                               "schema": json.dumps(d["schema"], ensure_ascii=False),
                               "tests": [{"data": t["data"], "valid": bool(t["valid"])} for t in d["tests"]]}
    return [got[n] for n in order], {s: len(v) for s, v in by.items()}


def serialiser(engine: str) -> Callable[[Any], str]:
    """How an engine's instances are written (see GIVEN)."""
    if engine == "tether":
        try:
            from tether.grammar.json_schema import canonical_json
        except ImportError as exc:
            def missing(value, _why=short(exc)):
                raise RuntimeError(f"tether.grammar.json_schema.canonical_json is missing ({_why})")
            return missing
        return canonical_json
    return lambda value: json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class Tokeniser:
    """Text to Llama-3 ids: the real tokenizer ("real") or longest match ("greedy"); ids to text."""

    def __init__(self, kind: str):
        import tokenizers

        self.tok = tokenizers.Tokenizer.from_str(read_tokenizer_json())
        if kind == "greedy":
            import tether

            vocab = tether.Vocabulary.from_file(TOKENIZER)
            self.encode = lambda text: list(vocab.encode_greedy(text))
        else:
            self.encode = lambda text: self.tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=False)


def instances_for(engine: str, schema: dict, dump: Callable, encode: Callable[[str], list[int]]) -> list[dict]:
    """The schema's tests as this engine gets them: text, token ids, valid; or why not."""
    out = []
    for t in schema["tests"]:
        try:
            text = dump(t["data"])
        except Exception as exc:
            out.append({"valid": t["valid"], "error": f"serialise: {short(exc, 120)}"})
            continue
        out.append({"valid": t["valid"], "text": text, "ids": encode(text)})
    return out


# ----------------------------------------------------------------------------------------------
# Worker side: one engine per process; JSON lines in on stdin, out on a private stdout
# ----------------------------------------------------------------------------------------------


def compile_schema(eng, schema: str):
    """The engine's compiled object for one schema (JSON text): what `eng.start` takes."""
    if eng.name == "tether":
        import tether

        g = tether.json_schema(schema, whitespace="compact", property_order="any",
                               additional_properties="allow")
        return g.compile(eng.vocab)
    if eng.name == "llguidance":
        grm = eng._llg.LLMatcher.grammar_from_json_schema(schema)
        m = eng._llg.LLMatcher(eng.tok, grm, log_level=0)
        if m.is_error():
            raise RuntimeError(m.get_error())
        return m
    if eng.name == "xgrammar":
        return eng.compiler.compile_json_schema(schema, any_whitespace=True)
    if eng.name == "outlines-core":
        from outlines_core.json_schema import build_regex_from_schema

        return eng.compile(build_regex_from_schema(schema))
    raise ValueError(eng.name)


_QUOTED = re.compile(r"[`'\"]([$A-Za-z_][\w$-]*)[`'\"]")


def classify(engine: str, exc: BaseException) -> tuple[str, str]:
    """(reason, message) for a failed compile; the reason is what the tables count."""
    msg = short(exc, 300)
    if isinstance(exc, MemoryError) or "memory allocation" in msg:
        return "memory", msg
    if engine == "tether":
        import tether

        if isinstance(exc, getattr(tether, "UnsupportedSchema", ())):
            kw = getattr(exc, "keyword", None)
            if not kw:
                m = _QUOTED.search(str(exc))
                kw = m.group(1) if m else "?"
            return f"unsupported: {kw}", msg
        for name, reason in (("InvalidSchema", "invalid schema"), ("ConstraintTooLarge", "too large"),
                             ("EmptyLanguage", "empty language")):
            if isinstance(exc, getattr(tether, name, ())):
                return reason, msg
        if isinstance(exc, tether.TetherError):
            return f"error: {type(exc).__name__}", msg
        return f"bug: {type(exc).__name__}", msg  # not a TetherError: worth a look
    if engine == "llguidance":
        m = re.search(r"[Uu]nimplemented keys?: \[([^\]]*)\]", str(exc))
        if m:
            kws = sorted(k.strip().strip("\"'") for k in m.group(1).split(",") if k.strip())
            return f"unsupported: {', '.join(kws)}", msg
    return "error", msg


class Session:
    """What a worker holds: its engine on the Llama-3 vocabulary, one mask row, the EOS id."""

    def __init__(self, kind: str):
        import tether

        t0 = wall()
        self.kind = kind
        self.vocab = vocab = tether.Vocabulary.from_file(TOKENIZER)
        self.eng = make_engine(kind, vocab, read_tokenizer_json())
        self.row = np.zeros((vocab.size + 31) // 32, dtype=np.int32)
        self.view = row_view(self.eng, self.row)
        self.eos = vocab.eos_ids[0]
        self.setup_s = (wall() - t0) / 1e9
        self.unavailable = ""
        if kind == "tether" and not hasattr(tether, "json_schema"):
            self.unavailable = "tether.json_schema is not there (the JSON Schema API has not landed)"
        self.warmup_ms = math.nan if self.unavailable else self.warm_up()

    def allowed(self, t: int) -> bool:
        return bool((int(self.view[t >> 5]) >> (t & 31)) & 1)

    def warm_up(self) -> float:
        """One throwaway schema and instance: tether's kernels, the peers' first use."""
        t0 = wall()
        eng = self.eng
        cur = eng.start(compile_schema(eng, json.dumps(WARMUP_SCHEMA)))
        eng.fill(cur, self.row)
        for t in self.vocab.encode_greedy(WARMUP_TEXT):
            cur = eng.consume(cur, t)
            eng.fill(cur, self.row)
        return (wall() - t0) / 1e6

    def hello(self) -> dict:
        from importlib import metadata

        try:
            version = metadata.version({"outlines-core": "outlines_core"}.get(self.kind, self.kind))
        except metadata.PackageNotFoundError:
            version = getattr(self.eng, "version", "")
        return {"ready": True, "engine": self.kind, "version": version, "setup_s": self.setup_s,
                "warmup_ms": self.warmup_ms, "unavailable": self.unavailable}

    def bench(self, job: dict, send) -> None:
        """Compile + first mask (timed), then walk every instance on the compiled object."""
        if self.unavailable:
            send({"phase": "failed", "reason": "unavailable", "message": self.unavailable})
            return
        eng, schema = self.eng, job["schema"]
        gc.collect()
        try:
            w0, c0 = wall(), cpu()
            compiled = compile_schema(eng, schema)
            c1 = cpu()
            cur = eng.start(compiled)
            eng.fill(cur, self.row)
            c2, w2 = cpu(), wall()
        except BaseException as exc:  # pyo3 panics derive from BaseException
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            reason, msg = classify(self.kind, exc)
            send({"phase": "failed", "reason": reason, "message": msg})
            return
        send({"phase": "compiled", "compile_ms": (c1 - c0) / 1e6, "ttfm_ms": (c2 - c0) / 1e6,
              "ttfm_wall_ms": (w2 - w0) / 1e6})
        send(self.walk_all(job, cur, lambda: eng.start(compile_schema(eng, schema))))

    def walk_all(self, job: dict, cur, fresh: Callable) -> dict:
        deadline = wall() + int(job["walk_budget_s"] * 1e9)
        steps: list[float] = []
        results: list[dict] = []
        slowest = {"us": -1.0}  # the slowest timed step: which instance, which step
        cut = False
        gc.disable()
        try:
            for k, inst in enumerate(job["tests"]):
                if "ids" not in inst:
                    results.append({"skipped": inst.get("error", "no text")})
                    continue
                if wall() > deadline:
                    cut = True
                    break
                if results and cur is not None:  # the first walk starts from the timed first mask
                    cur = self.restart(cur, fresh)
                if cur is None:  # the engine failed and could not be rebuilt: the rest is not walked
                    results.append({"accepted": False, "why": "not walked: the engine failed earlier"})
                    continue
                start = len(steps)
                res, cur = self.walk(cur, inst["ids"], steps if inst["valid"] else None, fresh)
                if len(steps) > start and max(steps[start:]) > slowest["us"]:
                    s = int(np.argmax(steps[start:]))
                    slowest = {"us": steps[start + s], "test": k, "step": s}
                if self.kind == "tether" and res["accepted"] != inst["valid"]:
                    res["matches"] = self.reference(job["schema"], inst["text"])
                results.append(res)
        finally:
            gc.enable()
        return {"phase": "done", "cut": cut, "tests": results, "step_us": [round(x, 3) for x in steps],
                "slowest": slowest if steps else None}

    def restart(self, cur, fresh: Callable):
        """The cursor back at the start with its first mask filled; None when the engine fails."""
        try:
            cur = self.eng.restart(cur)
            self.eng.fill(cur, self.row)
            return cur
        except Exception:
            traceback.print_exc()
            return self.rebuild(fresh)

    def rebuild(self, fresh: Callable):
        """A fresh compiled object with its first mask (untimed), or None when that fails too."""
        try:
            cur = fresh()
            self.eng.fill(cur, self.row)
            return cur
        except Exception:
            traceback.print_exc()
            return None

    def walk(self, cur, ids: list[int], steps: list[float] | None, fresh: Callable) -> tuple[dict, Any]:
        """One instance: at each step the token must be in the mask, then consume + fill (timed
        into `steps` when given); accepted when EOS is in the last mask."""
        eng, row = self.eng, self.row
        for s, t in enumerate(ids):
            if not self.allowed(t):
                return {"accepted": False, "step": s, "token": t, "why": "not in the mask"}, cur
            try:
                c0 = cpu()
                cur = eng.consume(cur, t)
                eng.fill(cur, row)
                c1 = cpu()
            except Exception as exc:  # refused although in the mask, or failed: a fresh object next
                traceback.print_exc()
                return ({"accepted": False, "step": s, "token": t, "why": f"engine error: {short(exc, 160)}"},
                        self.rebuild(fresh))
            if steps is not None:
                steps.append((c1 - c0) / 1e3)
        if not self.allowed(self.eos):
            return {"accepted": False, "step": len(ids), "why": "EOS not in the final mask"}, cur
        return {"accepted": True}, cur

    @staticmethod
    def reference(schema: str, text: str) -> Any:
        """tether's own language check of the text (``Grammar.matches``), for disagreements."""
        import tether

        try:
            g = tether.json_schema(schema, whitespace="compact", property_order="any",
                                   additional_properties="allow")
            return bool(g.matches(text))
        except Exception as exc:
            return short(exc, 120)


def cap_memory(gb: float) -> None:
    if gb > 0:
        limit = int(gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def worker_main(kind: str, memory_gb: float) -> int:
    proto = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # anything an engine prints goes to stderr, never into the protocol
    sys.stdout = sys.stderr

    def send(msg: dict) -> None:
        proto.write(json.dumps(msg) + "\n")
        proto.flush()

    cap_memory(memory_gb)
    session = Session(kind)
    send(session.hello())
    for line in sys.stdin.buffer:
        job = json.loads(line)
        print(f"---- {kind}: {job['id']}", file=sys.stderr, flush=True)
        try:
            session.bench(job, send)
        except Exception as exc:
            traceback.print_exc()
            send({"phase": "failed", "reason": classify(kind, exc)[0], "message": short(exc)})
    return 0


# ----------------------------------------------------------------------------------------------
# Parent side: a worker process per engine, replaced whenever a schema runs past a limit
# ----------------------------------------------------------------------------------------------


class Worker:
    """One engine's worker process; `read` kills it when a message does not come in time."""

    def __init__(self, kind: str, log, memory_gb: float, startup_s: float = 600):
        self.kind, self.log, self.memory_gb, self.startup_s = kind, log, memory_gb, startup_s
        self.proc: subprocess.Popen | None = None
        self.hello: dict = {}
        self.starts = 0
        self.buf = b""

    def ensure(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", self.kind, str(self.memory_gb)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, cwd=REPO,
            env={**os.environ, **THREADS})
        self.starts += 1
        self.buf = b""
        msg, status = self.read(self.startup_s)
        if status:
            raise RuntimeError(f"{self.kind} worker did not start ({status}; see workers.log)")
        self.hello = msg

    def send(self, job: dict) -> None:
        self.ensure()
        data = (json.dumps(job) + "\n").encode()
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except BrokenPipeError:  # died between jobs: one fresh try
            self.kill()
            self.ensure()
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def read(self, timeout: float) -> tuple[dict | None, str | None]:
        """The next message, or (None, "timeout" | "crashed (...)") with the worker gone."""
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
                if sel.select(min(left, 0.5)):
                    chunk = os.read(fd, 1 << 20)
                    if not chunk:
                        rc = self.proc.wait()
                        self.proc = None
                        return None, f"crashed (exit {rc})"
                    self.buf += chunk
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


def log_since(log, since: int, limit: int = 1 << 20) -> str:
    """What the worker wrote to the log after offset `since` (its last `limit` bytes)."""
    log.flush()
    with open(log.name, "rb") as f:
        f.seek(max(since, os.lseek(log.fileno(), 0, os.SEEK_CUR) - limit))
        return f.read().decode("utf-8", "replace")


def warnings_in(text: str) -> int:
    """Warning lines an engine printed (xgrammar warns about the keywords it ignores)."""
    return sum(1 for line in text.splitlines()
               if not line.startswith("---- ") and re.search(r"\bwarn(ing)?\b", line, re.I))


def lost_worker(status: str, tail: str) -> tuple[str, str]:
    """(reason, message) for a worker killed by the watchdog or dead on its own."""
    if status == "timeout":
        return "timeout", status
    if re.search(r"memory allocation|MemoryError|bad_alloc|Cannot allocate|out of memory", tail):
        return "memory", f"{status}: " + next((ln for ln in tail.splitlines()
                                               if re.search(r"memory|alloc", ln)), "")[:200]
    return "crashed", f"{status}: " + (tail.strip().splitlines() or [""])[-1][:200]


def run_schema(w: Worker, schema: dict, tests: list[dict], args, tok: Tokeniser) -> dict:
    rec: dict[str, Any] = {"id": schema["id"], "subset": schema["subset"], "status": "failed",
                           "n_valid": sum(t["valid"] for t in tests),
                           "n_invalid": sum(not t["valid"] for t in tests)}
    since = os.lseek(w.log.fileno(), 0, os.SEEK_CUR)
    try:
        w.send({"id": schema["id"], "schema": schema["schema"], "tests": tests,
                "walk_budget_s": args.walk_timeout})
    except RuntimeError as exc:
        return {**rec, "reason": "crashed", "message": str(exc)}
    msg, status = w.read(args.compile_timeout)
    if status:
        reason, message = lost_worker(status, log_since(w.log, since, 4000))
        return {**rec, "reason": reason, "message": message}
    if msg["phase"] == "failed":
        return {**rec, "reason": msg["reason"], "message": msg["message"]}
    rec.update(status="compiled", compile_ms=msg["compile_ms"], ttfm_ms=msg["ttfm_ms"],
               ttfm_wall_ms=msg["ttfm_wall_ms"])
    msg, status = w.read(2 * args.walk_timeout + 10)  # the worker stops walking by itself
    if status or msg["phase"] != "done":
        rec["walk_status"] = (lost_worker(status, log_since(w.log, since, 4000))[1] if status
                              else msg.get("message", str(msg)))
        return rec
    rec.update(tests=msg["tests"], step_us=msg["step_us"], cut=msg["cut"],
               warnings=warnings_in(log_since(w.log, since)))
    for inst, res in zip(tests, msg["tests"]):
        res["valid"] = inst["valid"]
        if "accepted" in res and (res["accepted"] != inst["valid"] or "error" in res.get("why", "")):
            res["text"] = inst.get("text", "")[:300]
            if "step" in res:
                res["context"] = tok.decode(inst["ids"][:res["step"] + 1])[-60:]
    slow = msg.get("slowest")
    if slow:
        ids = tests[slow["test"]]["ids"]
        rec["slowest_step"] = {**slow, "context": tok.decode(ids[:slow["step"] + 1])[-60:]}
    return rec


class Progress:
    """`[engine] done/total` on stderr: redrawn on a terminal, a line every 5% otherwise."""

    def __init__(self, engine: str, total: int):
        self.engine, self.total, self.t0 = engine, total, time.monotonic()
        self.tty = sys.stderr.isatty()
        self.every = max(1, total // 20)
        self.counts: collections.Counter = collections.Counter()

    def update(self, done: int, rec: dict) -> None:
        self.counts["compiled" if rec["status"] == "compiled" else rec["reason"].split(":")[0]] += 1
        if not (self.tty or done % self.every == 0 or done == self.total):
            return
        what = ", ".join(f"{k} {v}" for k, v in self.counts.most_common())
        line = f"[{self.engine}] {done}/{self.total} schemas ({what}) {time.monotonic() - self.t0:,.0f} s"
        sys.stderr.write(("\r\033[K" + line) if self.tty else line + "\n")
        if self.tty and done == self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def run_engine(engine: str, schemas: list[dict], args, tok: Tokeniser, log) -> tuple[list[dict], dict]:
    dump = serialiser(engine)
    w = Worker(engine, log, args.memory_gb)
    try:
        w.ensure()
    except RuntimeError as exc:
        print(f"[{engine}] {exc}", file=sys.stderr)
        return [{"id": s["id"], "subset": s["subset"], "status": "failed", "reason": "unavailable",
                 "message": str(exc), "n_valid": 0, "n_invalid": 0} for s in schemas], {}
    hello = dict(w.hello)
    if hello.get("unavailable"):
        print(f"[{engine}] unavailable: {hello['unavailable']}", file=sys.stderr)
    progress = Progress(engine, len(schemas))
    records = []
    for k, schema in enumerate(schemas):
        rec = run_schema(w, schema, instances_for(engine, schema, dump, tok.encode), args, tok)
        records.append(rec)
        progress.update(k + 1, rec)
    w.close()
    hello["worker_starts"] = w.starts
    return records, hello


# ----------------------------------------------------------------------------------------------
# Analysis
# ----------------------------------------------------------------------------------------------


def pct(xs, q) -> float:
    return float(np.percentile(np.asarray(xs, dtype=float), q)) if len(xs) else math.nan


def fmt(x: float) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def summarise(records: list[dict]) -> dict:
    """Coverage, failure reasons, compile and step percentiles, instance acceptance."""
    compiled = [r for r in records if r["status"] == "compiled"]
    ttfm = [r["ttfm_ms"] for r in compiled]
    steps = [x for r in compiled for x in r.get("step_us", ())]
    tests = [t for r in compiled for t in r.get("tests", ()) if "accepted" in t]
    valid = [t for t in tests if t["valid"]]
    invalid = [t for t in tests if not t["valid"]]
    return {
        "schemas": len(records), "compiled": len(compiled),
        "coverage": len(compiled) / len(records) if records else math.nan,
        "reasons": dict(collections.Counter(r["reason"] for r in records if r["status"] != "compiled")
                        .most_common()),
        "ttfm_p50": pct(ttfm, 50), "ttfm_p90": pct(ttfm, 90), "ttfm_p99": pct(ttfm, 99),
        "ttfm_max": max(ttfm) if ttfm else math.nan,
        "steps": len(steps), "step_p50": pct(steps, 50), "step_p99": pct(steps, 99),
        "step_max": max(steps) if steps else math.nan,
        "valid": len(valid), "valid_accepted": sum(t["accepted"] for t in valid),
        "invalid": len(invalid), "invalid_accepted": sum(t["accepted"] for t in invalid),
        "walks_cut": sum(1 for r in compiled if r.get("cut") or r.get("walk_status")),
        "compiled_warned": sum(1 for r in compiled if r.get("warnings")),
        "walk_errors": sum(1 for t in tests if t.get("why", "").startswith("engine error"))
                       + sum(1 for r in compiled if r.get("walk_status")),
    }


def summarise_all(records: dict[str, list[dict]], subsets: list[str]) -> dict:
    """{"overall" | subset: {engine: summary}}."""
    out = {"overall": {e: summarise(rs) for e, rs in records.items()}}
    for s in subsets:
        out[s] = {e: summarise([r for r in rs if r["subset"] == s]) for e, rs in records.items()}
    return out


def failure_cell(s: dict, top: int = 3) -> str:
    if not s["reasons"]:
        return "—"
    kinds: collections.Counter = collections.Counter()
    for reason, n in s["reasons"].items():
        kinds[reason.split(":")[0]] += n
    return ", ".join(f"{k} {n}" for k, n in kinds.most_common(top))


def metric_rows() -> list[tuple[str, Callable[[dict], str]]]:
    pc = lambda a, b: f"{100 * a / b:.1f}%" if b else "—"
    return [
        ("compiled", lambda s: f"{pc(s['compiled'], s['schemas'])} ({s['compiled']:,} of {s['schemas']:,})"),
        ("not compiled, by kind", failure_cell),
        ("compiled with warnings printed", lambda s: f"{s['compiled_warned']:,}"),
        ("compile + first mask p50 / p90 (ms, compiled schemas)", lambda s: f"{fmt(s['ttfm_p50'])} / {fmt(s['ttfm_p90'])}"),
        ("compile + first mask p99 / max (ms, compiled schemas)", lambda s: f"{fmt(s['ttfm_p99'])} / {fmt(s['ttfm_max'])}"),
        ("between masks p50 / p99 / max (µs)",
         lambda s: f"{fmt(s['step_p50'])} / {fmt(s['step_p99'])} / {fmt(s['step_max'])}"),
        ("steps timed", lambda s: f"{s['steps']:,}"),
        ("valid accepted (of compiled)", lambda s: f"{pc(s['valid_accepted'], s['valid'])} "
                                                   f"({s['valid_accepted']:,} of {s['valid']:,})"),
        ("invalid accepted", lambda s: f"{s['invalid_accepted']:,} of {s['invalid']:,}"),
        ("walks stopped by an engine error", lambda s: f"{s['walk_errors']:,}"),
    ]


def engine_table(title: str, per_engine: dict[str, dict], engines: list[str]) -> list[str]:
    out = [f"### {title}", "", "| | " + " | ".join(engines) + " |", "|---|" + "---|" * len(engines)]
    for name, cell in metric_rows():
        out.append(f"| {name} | " + " | ".join(cell(per_engine[e]) for e in engines) + " |")
    return out + [""]


def matrix(title: str, summary: dict, subsets: list[str], engines: list[str], cell) -> list[str]:
    out = [f"### {title}", "", "| subset | schemas | " + " | ".join(engines) + " |",
           "|---|---|" + "---|" * len(engines)]
    for s in subsets + ["overall"]:
        n = summary[s][engines[0]]["schemas"]
        label = f"**{s}**" if s == "overall" else s
        out.append(f"| {label} | {n:,} | " + " | ".join(cell(summary[s][e]) for e in engines) + " |")
    return out + [""]


def normalise(message: str) -> str:
    """An error message with its JSON pointer and numbers blanked, so that alike ones count together."""
    message = re.sub(r" at /\S*", " at <pointer>", message)
    return re.sub(r"\d+", "N", message)[:150]


def reason_lines(records: dict[str, list[dict]], engines: list[str], top: int = 12) -> list[str]:
    out = ["### Why schemas did not compile", ""]
    for e in engines:
        c = collections.Counter(r["reason"] for r in records[e] if r["status"] != "compiled")
        if not c:
            out.append(f"- **{e}**: every schema compiled.")
            continue
        out.append(f"- **{e}**: " + "; ".join(f"{k} {n}" for k, n in c.most_common(top))
                   + ("; ..." if len(c) > top else ""))
        msgs = collections.Counter(normalise(r["message"]) for r in records[e] if r["status"] != "compiled")
        for m, n in msgs.most_common(5):
            out.append(f"  - {n} x `{m}`")
    return out + [""]


def problem_lines(records: list[dict], engine: str, limit: int = 12) -> list[str]:
    """One engine's schemas worth a look: errors that are not declared unsupported keywords,
    timeouts, rejected valid and accepted invalid instances, the slowest compiles."""
    out = [f"### {engine}: schemas worth a look", ""]
    bad = [r for r in records if r["status"] != "compiled" and not r["reason"].startswith("unsupported")]
    for r in bad[:limit]:
        out.append(f"- `{r['id']}`: {r['reason']}: {r['message'][:200]}")
    for r in [r for r in records if r.get("walk_status")][:limit]:
        out.append(f"- `{r['id']}`: compiled, then the walk stopped: {r['walk_status'][:200]}")
    wrong = [(r, t) for r in records for t in r.get("tests", ())
             if "accepted" in t and (t["accepted"] != t["valid"] or t.get("why", "").startswith("engine error"))]
    for r, t in wrong[:limit]:
        what = ("valid instance rejected" if t["valid"] else
                "invalid instance accepted" if t["accepted"] else "invalid instance")
        where = (f" at step {t['step']} ({t['why']}, after {t.get('context', '')!r})" if "step" in t else "")
        ref = f"; `matches()` says {t['matches']}" if "matches" in t else ""
        out.append(f"- `{r['id']}`: {what}{where}{ref}: `{t.get('text', '')[:160]}`")
    slow = sorted((r for r in records if r["status"] == "compiled"), key=lambda r: -r["ttfm_ms"])[:5]
    if slow:
        out.append("- slowest compile + first mask: " + ", ".join(f"`{r['id']}` {fmt(r['ttfm_ms'])} ms"
                                                                  for r in slow))
    steps = sorted((r for r in records if r.get("slowest_step")), key=lambda r: -r["slowest_step"]["us"])[:5]
    if steps:
        out.append("- slowest steps (consume + fill): " + "; ".join(
            f"`{r['id']}` {fmt(r['slowest_step']['us'] / 1e3)} ms at step {r['slowest_step']['step']} of "
            f"instance {r['slowest_step']['test']} (after {r['slowest_step']['context'][-30:]!r})" for r in steps))
    if len(bad) > limit or len(wrong) > limit:
        out.append(f"- ... {len(bad)} failures and {len(wrong)} wrong verdicts in all (records.jsonl)")
    return out + ([] if len(out) > 2 else ["- nothing"]) + [""]


def note_lines(args, hellos: dict, engines: list[str], n: int, subset_sizes: dict, elapsed: float) -> list[str]:
    versions = ", ".join(f"{e} {hellos.get(e, {}).get('version', '?')}" for e in engines)
    sample = (f"a stratified sample of {n:,} (seed {args.seed})" if args.sample and not args.ids
              else f"{n:,} schemas" + (" (--ids)" if args.ids else ""))
    out = ["## JSON Schema over MaskBench: coverage, compile time, masks, soundness", "",
           f"- MaskBench: {sample} of {sum(subset_sizes.values()):,} schemas in {len(subset_sizes)} subsets; "
           f"Llama-3 vocabulary (128,256 ids); {versions}; Python {platform.python_version()}, "
           f"{platform.machine()}; one thread; each engine in its own worker process, one schema at a time.",
           f"- limits per schema: {args.compile_timeout:g} s wall to the first mask (then the worker is "
           f"replaced and the schema counts as a timeout), {args.walk_timeout:g} s of instance walking, "
           f"`RLIMIT_AS` {args.memory_gb:g} GiB per worker.",
           "- compile + first mask: CPU ms on a fresh object after a warm-up schema in the same process; "
           "between masks: consume + fill the next mask, CPU µs, every step of every valid instance.",
           "- accepted: every token of the instance in the mask before it is consumed and EOS in the last "
           "mask; valid accepted is a share of the compiled schemas' valid instances, invalid accepted a "
           "count of their invalid ones.",
           "- tokenisation: " + ("the real Llama-3 tokenizer." if args.tokenize == "real"
                                 else "longest match over the vocabulary (`encode_greedy`)."),
           "- what each engine was given (schema; instance layout):"]
    out += [f"  - {e}: {GIVEN[e][0]}; instances: {GIVEN[e][1]}." for e in engines]
    out += ["- layouts: tether's canonical layout is compact and it was asked for keys in any order and "
            "undeclared properties allowed; llguidance (flexible whitespace), xgrammar (`any_whitespace`) "
            "and outlines-core (`[ ]?`) accept the compact text but also allow whitespace, so their masks "
            "are wider, and accept keys only in the declared order (xgrammar in strict mode and "
            "outlines-core never accept undeclared properties). MaskBench stores its instances with keys "
            "in the declared order where llguidance compiles the schema, so the peers lose little to key order; tether's numbers are written "
            "positionally (`1e-05` as `0.00001`), the peers get Python's `json.dumps` spelling.",
            "- \"compiled with warnings printed\": schemas for which the engine wrote a warning to stderr "
            "(xgrammar warns about keywords it ignores, which it then does not enforce).",
            f"- wall time of this run: {elapsed / 60:.1f} min; worker starts: "
            + ", ".join(f"{e} {hellos.get(e, {}).get('worker_starts', 0)}" for e in engines) + ".", ""]
    return out


def report(summary: dict, records: dict, subsets: list[str], engines: list[str], notes: list[str]) -> str:
    pc = lambda a, b: f"{100 * a / b:.1f}%" if b else "—"
    lines = list(notes)
    lines += engine_table("Overall", summary["overall"], engines)
    lines += matrix("Compiled, by subset", summary, subsets, engines, lambda s: pc(s["compiled"], s["schemas"]))
    lines += matrix("Compile + first mask p50 / p99 (ms), by subset", summary, subsets, engines,
                    lambda s: f"{fmt(s['ttfm_p50'])} / {fmt(s['ttfm_p99'])}")
    lines += matrix("Valid instances accepted (of compiled) / invalid accepted, by subset", summary, subsets,
                    engines, lambda s: f"{pc(s['valid_accepted'], s['valid'])} / {s['invalid_accepted']}")
    lines += reason_lines(records, engines)
    lines += ["## Per subset", ""]
    for s in subsets:
        lines += engine_table(s, summary[s], engines)
    lines += ["## Schemas worth a look", ""]
    for e in engines:
        lines += problem_lines(records[e], e)
    return "\n".join(lines) + "\n"


def plot(summary: dict, records: dict, subsets: list[str], engines: list[str], path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig = plt.figure(figsize=(14, 9))
    ax = fig.add_subplot(2, 1, 1)
    x = np.arange(len(subsets) + 1)
    width = 0.8 / len(engines)
    for k, e in enumerate(engines):
        vals = [100 * summary[s][e]["coverage"] for s in subsets + ["overall"]]
        ax.bar(x + (k - (len(engines) - 1) / 2) * width, vals, width, label=e, color=COLORS.get(e))
    ax.set_xticks(x)
    ax.set_xticklabels(subsets + ["overall"], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("schemas compiled (%)")
    ax.set_ylim(0, 105)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=len(engines))
    ax.set_title("coverage per subset", fontsize=10)
    for j, (key, title) in enumerate((("ttfm_ms", "compile + first mask (CPU ms)"),
                                      ("step_us", "time between masks (CPU µs)"))):
        ax = fig.add_subplot(2, 2, 3 + j)
        for e in engines:
            rs = [r for r in records[e] if r["status"] == "compiled"]
            xs = np.sort([r[key] for r in rs] if key == "ttfm_ms" else [v for r in rs for v in r.get(key, ())])
            # compile times over all the schemas run (the curve tops out at the coverage); steps over all steps
            total = len(records[e]) if key == "ttfm_ms" else xs.size
            if xs.size:
                ax.step(xs, np.arange(1, xs.size + 1) / total, where="post", label=e, color=COLORS.get(e))
        ax.set_xscale("log")
        ax.set_ylim(0, 1.01)
        ax.set_xlabel(title)
        ax.set_ylabel("share of all schemas (tops out at coverage)" if key == "ttfm_ms" else "share of steps")
        ax.grid(which="both", alpha=0.3)
        if ax.get_lines():
            ax.legend(fontsize=8)
        ax.set_title(f"CDF: {title}", fontsize=10)
    fig.suptitle("JSON Schema over MaskBench, Llama-3 vocabulary, one thread")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def finite(x: Any) -> Any:
    """NaN (a percentile of nothing) as null, so that summary.json is strict JSON."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [finite(v) for v in x]
    return x


def write_outputs(args, summary, records, subsets, engines, notes, hellos) -> None:
    text = report(summary, records, subsets, engines, notes)
    print(text)
    (args.out / "summary.md").write_text(text, encoding="utf-8")
    blob = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "worker"},
            "engines": {e: {**hellos.get(e, {}), "given": GIVEN[e][0], "instances": GIVEN[e][1]} for e in engines},
            "summary": summary}
    (args.out / "summary.json").write_text(json.dumps(finite(blob), indent=1), encoding="utf-8")
    with open(args.out / "records.jsonl", "w", encoding="utf-8") as f:
        for e in engines:
            for r in records[e]:
                f.write(json.dumps({"engine": e, **{k: v for k, v in r.items() if k != "step_us"},
                                    "steps": len(r.get("step_us", ())),
                                    "step_max_us": max(r["step_us"]) if r.get("step_us") else None},
                                   ensure_ascii=False) + "\n")
    plotted = plot(summary, records, subsets, engines, args.out / "json_schemas.png")
    print(f"written: {args.out / 'summary.md'}, summary.json, records.jsonl, workers.log"
          + (", json_schemas.png" if plotted else ""), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engines", default=",".join(ENGINES), help="comma-separated, of " + ",".join(ENGINES))
    ap.add_argument("--sample", type=int, default=0,
                    help="N schemas spread evenly over the subsets (default 0: all 11,305)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ids", default="", help="comma-separated schema ids (file names, e.g. "
                                              "Github_easy---o10000.json) instead of a sample")
    ap.add_argument("--compile-timeout", type=float, default=20.0,
                    help="wall seconds per schema to the first mask (default 20)")
    ap.add_argument("--walk-timeout", type=float, default=30.0,
                    help="wall seconds per schema of instance walking; past it the walk stops (default 30)")
    ap.add_argument("--memory-gb", type=float, default=8.0, help="RLIMIT_AS per worker, GiB (default 8)")
    ap.add_argument("--tokenize", choices=("real", "greedy"), default="real",
                    help="the Llama-3 tokenizer (default) or longest match over the vocabulary")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "json_schemas")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker_main(args.worker[0], float(args.worker[1]))
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    for e in engines:
        if e not in ENGINES:
            ap.error(f"unknown engine {e!r} (of {', '.join(ENGINES)})")
    ids = [i.strip() for i in args.ids.split(",") if i.strip()]
    read_tokenizer_json()  # exits with a message when the tokenizer is missing
    args.out.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()

    schemas, subset_sizes = load_maskbench(args.sample, args.seed, ids)
    subsets = sorted({s["subset"] for s in schemas})
    n_tests = sum(len(s["tests"]) for s in schemas)
    print(f"MaskBench: {len(schemas):,} schemas from {len(subsets)} subsets, {n_tests:,} instances",
          file=sys.stderr)
    tok = Tokeniser(args.tokenize)
    records: dict[str, list[dict]] = {}
    hellos: dict[str, dict] = {}
    with open(args.out / "workers.log", "w", encoding="utf-8") as log:
        for e in engines:
            records[e], hellos[e] = run_engine(e, schemas, args, tok, log)
    summary = summarise_all(records, subsets)
    notes = note_lines(args, hellos, engines, len(schemas), subset_sizes, time.monotonic() - t_start)
    write_outputs(args, summary, records, subsets, engines, notes, hellos)
    return 0


if __name__ == "__main__":
    sys.exit(main())
