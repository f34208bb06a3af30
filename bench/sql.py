"""Schema-bound SQL: compile time and mask times on a large Spider schema (Llama-3 vocabulary).

    python bench/sql.py                       # the Spider database with the most columns
    python bench/sql.py --db soccer_1 --queries 40

Compile: the SQLite grammar itself (`tether.sql()` the first time in a process: Lark, the IR,
the CFG tables), then binding the schema (`tether.sql(db=conn)`: reading it from SQLite) and
the vocabulary (`compile(vocab)` and the first mask). Masks: the database's gold queries from
Spider's training set, tokenized greedily, a mask (`fill_bitmask`, the schema checker included)
at every prefix; p50 / p99 / max over all of them. One thread. No peer engine binds a grammar to
a database schema, so there is no peer column here: the README puts these figures beside the
peers' figures from bench/grammars.py. Writes bench/out/sql/results.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fuzz import _spider as spider  # noqa: E402

OUT = REPO / "bench" / "out" / "sql"


def widest() -> str:
    """The Spider database with a schema script whose tables have the most columns in all."""
    best, most = None, -1
    for db in spider.db_ids():
        if spider.source(db) != "schema.sql":
            continue
        conn = spider.empty_database(db)
        n = sum(len(conn.execute(f'PRAGMA table_info("{t}")').fetchall())
                for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'"))
        if n > most:
            best, most = db, n
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=None, help="Spider database (default: the one with the most columns)")
    parser.add_argument("--queries", type=int, default=40, help="gold queries to mask along (default 40)")
    parser.add_argument("--vocab", default=str(REPO.parent / "shared" / "data" / "tokenizers" / "llama-bpe"
                                               / "tokenizer.json.gz"))
    args = parser.parse_args(argv)
    import tether

    db = args.db or widest()
    conn = spider.empty_database(db)
    tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type IN ('table', 'view')").fetchone()[0]
    vocab = tether.Vocabulary.from_file(args.vocab)
    t0 = time.perf_counter()
    tether.sql()
    grammar_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    q = tether.sql(db=conn)
    schema_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    c = q.compile(vocab)
    row = np.zeros((vocab.size + 31) // 32, dtype=np.int32)
    c.fill_bitmask(c.initial(), row)
    bind_s = time.perf_counter() - t0
    columns = sum(len(t.columns) for t in q.schema.tables)
    queries = [s for s, d in spider.gold() if d == db][: args.queries]
    times = []
    for i, sql in enumerate(queries):
        state = c.initial()
        for t in vocab.encode_greedy(sql.encode()):
            t1 = time.perf_counter()
            c.fill_bitmask(state, row)
            times.append(time.perf_counter() - t1)
            state = c.advance(state, t)
        print(f"  {i + 1}/{len(queries)} queries, {len(times)} masks", end="\r", flush=True)
    us = np.array(times) * 1e6
    result = {"db": db, "tables": tables, "columns": columns, "queries": len(queries), "masks": len(times),
              "grammar_compile_ms": grammar_s * 1e3, "schema_bind_ms": schema_s * 1e3,
              "vocab_bind_and_first_mask_ms": bind_s * 1e3,
              "mask_us": {"p50": float(np.percentile(us, 50)), "p99": float(np.percentile(us, 99)),
                          "max": float(us.max())}}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(result, indent=1))
    print(f"\nschema-bound SQL on Spider {db!r} ({tables} tables, {columns} columns), Llama-3 vocabulary")
    print(f"{'compile: grammar':34} {grammar_s * 1e3:10,.0f} ms (once per process)")
    print(f"{'compile: schema':34} {schema_s * 1e3:10,.1f} ms")
    print(f"{'compile: vocabulary + first mask':34} {bind_s * 1e3:10,.0f} ms")
    m = result["mask_us"]
    print(f"{'masks p50 / p99 / max':34} {m['p50']:,.0f} / {m['p99']:,.0f} / {m['max']:,.0f} µs "
          f"({len(times):,} masks along {len(queries)} gold queries)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
