"""Text-to-SQL on SmolLM2-135M-Instruct: 30 Spider questions, with and without `tether.sql`.

    python bench/sql_smollm2.py                      # all four runs, ~15 minutes on 2 cores
    python bench/sql_smollm2.py --runs greedy        # one of greedy, greedy+sql, smc, smc+sql

The questions (tests/data/spider_questions.jsonl) are on Spider training databases built with their
rows from ../shared/data/sql/spider/schemas; each has a gold query from train_gold.sql. The
prompt gives the database's CREATE statements and the question. Four runs: greedy decoding and
AWRS-SMC with 4 particles, each unconstrained (the text up to the first `;` or blank line, code
fences dropped, is taken as the SQL) and constrained by `tether.sql(db=conn)` bound to the
question's database. Per run: the share of outputs SQLite executes, and execution accuracy
(the rows equal the gold query's rows: in order when the gold query has ORDER BY, as multisets
otherwise). Prints a table and writes bench/out/sql_smollm2/results.json.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sqlite3
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import tether  # noqa: E402
from fuzz import _spider as spider  # noqa: E402
from tether.samplers import SMC, Greedy  # noqa: E402

QUESTIONS = REPO / "tests" / "data" / "spider_questions.jsonl"
OUT = REPO / "bench" / "out" / "sql_smollm2"
SYSTEM = "You write SQLite queries. Answer with one SQL query and nothing else."
RUNS = ("greedy", "greedy+sql", "smc", "smc+sql")


def questions() -> list[dict]:
    return [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]


def prompt(q: dict) -> list[dict]:
    ddl = spider.schema_ddl(q["db_id"])
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Database schema:\n{ddl}\n\nQuestion: {q['question']}\nSQL:"}]


def extract(text: str) -> str:
    """The SQL of an unconstrained answer: code fences dropped, up to the first `;` or blank line."""
    text = re.sub(r"```(?:sql)?", "", text, flags=re.I).strip()
    text = re.split(r";|\n\s*\n", text, maxsplit=1)[0]
    return text.strip()


def rows_equal(got: list, gold: list, ordered: bool) -> bool:
    return got == gold if ordered else collections.Counter(got) == collections.Counter(gold)


def run(lm, name: str, qs: list[dict], max_tokens: int) -> list[dict]:
    results = []
    for i, q in enumerate(qs):
        conn = spider.database(q["db_id"])
        constraint = tether.sql(db=conn) if name.endswith("+sql") else tether.regex(r"(?s).*")
        sampler = SMC(4, seed=i) if name.startswith("smc") else Greedy()
        t0 = time.perf_counter()
        gen = tether.generate(lm, prompt(q), constraint, sampler=sampler, max_tokens=max_tokens)
        seconds = time.perf_counter() - t0
        sql = gen.text.strip() if name.endswith("+sql") else extract(gen.text)
        gold = conn.execute(q["gold"]).fetchall()
        try:
            got = conn.execute(sql).fetchall()
            error = None
        except (sqlite3.Error, sqlite3.Warning, ValueError) as e:
            got, error = None, str(e)
        correct = got is not None and rows_equal(got, gold, "order by" in q["gold"].lower())
        results.append({"db_id": q["db_id"], "question": q["question"], "sql": sql, "status": gen.status.value,
                        "executes": error is None, "error": error, "correct": correct, "seconds": seconds})
        print(f"  {name:10} {i + 1:2}/{len(qs)} {'ok ' if error is None else 'ERR'} {'=' if correct else ' '} "
              f"{seconds:5.1f}s  {sql[:90]!r}", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", choices=RUNS, default=list(RUNS))
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--limit", type=int, default=None, help="only the first N questions")
    args = parser.parse_args(argv)
    from tether.models import default

    lm = default()
    qs = questions()[: args.limit]
    table = {}
    for name in args.runs:
        table[name] = run(lm, name, qs, args.max_tokens)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(table, indent=1))
    print(f"\n{'run':12} {'executes':>10} {'exec. accuracy':>15} {'s / question':>13}")
    for name, rs in table.items():
        n = len(rs)
        print(f"{name:12} {sum(r['executes'] for r in rs):4}/{n} {100 * sum(r['executes'] for r in rs) / n:4.0f}% "
              f"{sum(r['correct'] for r in rs):5}/{n} {100 * sum(r['correct'] for r in rs) / n:4.0f}% "
              f"{sum(r['seconds'] for r in rs) / n:13.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
