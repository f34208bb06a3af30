"""SQL against SQLite's own parser: mutated Spider gold queries and schema-bound walks.

    python -m fuzz sql --seconds 60
    python -m fuzz sql --seconds 600 --seed 1 --walks 0.02

Cases come from Spider's training gold queries (../shared/data/sql/spider, required), mutated a
few times each (a word dropped, repeated, swapped with its neighbour or replaced by a keyword,
a name of the schema, another query's word or a random one; a character inserted or deleted;
letter case changed), and from random walks through the schema-bound constraint on the Llama-3
vocabulary (fuzz/_sqlwalk.py), a --walks share of the cases. The oracle is SQLite: `EXPLAIN` on
an empty database with the query's schema (fuzz/_spider.py). The rules:

- soundness, a failure: a text the schema-bound grammar accepts must prepare in SQLite; a text
  the schema-free grammar accepts must prepare, or fail only for what depends on the schema (a
  name it lacks, the number of columns a `*` stands for); a finished walk must run;
- completeness is counted, not failed: texts SQLite prepares that tether refuses, by the first
  word of tether's reason (the grammar is stricter in documented places: blanks between words,
  names in the select list, ...).

Failing cases are shrunk (words dropped while the failure stays) and appended to
tests/regressions/sql.jsonl, which tests/test_fuzz_regressions.py replays with `check_case`.
"""

from __future__ import annotations

import argparse
import functools
import random
import re
import sqlite3
import sys
import time

from . import _spider as spider
from ._harness import Stats, save_case

TARGET = "sql"
NAME_ERRORS = ("no such table", "no such column", "ambiguous column name")
# What the schema-free grammar cannot know: names, and the number of columns a `*` stands for.
SCHEMA_ERRORS = NAME_ERRORS + ("SELECTs to the left and right of", "sub-select returns", "row value misused",
                               "misuse of aggregate")  # (whose query a column is, hence its aggregate)
_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|[A-Za-z_][A-Za-z0-9_]*|[0-9]+(?:\.[0-9]+)?|\S")
KEYWORDS = ("SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "AS", "JOIN", "ON", "GROUP", "BY", "ORDER",
            "HAVING", "LIMIT", "UNION", "EXCEPT", "INTERSECT", "DISTINCT", "COUNT", "(", ")", ",", "*", "=", ".",
            "LIKE", "BETWEEN", "IS", "NULL", "CASE", "WHEN", "THEN", "END", "OVER", "USING", "LEFT", "WITH", ";")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--walks", type=float, default=0.02, help="share of cases that are walks (default 0.02)")
    parser.add_argument("--vocab", default="llama-bpe", help="vocabulary of the walks (default llama-bpe)")


@functools.lru_cache(maxsize=32)
def _bound(db_id: str):
    import tether

    return tether.sql(db=_empty(db_id))


@functools.lru_cache(maxsize=None)
def _empty(db_id: str) -> sqlite3.Connection:
    return spider.empty_database(db_id)


@functools.cache
def _generic():
    import tether

    return tether.sql()


def sqlite_error(db_id: str, text: str) -> str | None:
    try:
        _empty(db_id).execute("EXPLAIN " + text)
    except (sqlite3.Error, sqlite3.Warning, ValueError) as e:
        return str(e) or type(e).__name__
    return None


def check_case(case: dict) -> str | None:
    """None if tether does what SQLite says about case["text"] on case["db"] (see the rules)."""
    db, text = case["db"], case["text"]
    error = sqlite_error(db, text)
    if case["kind"] == "walk":
        if not _bound(db).matches(text):
            return f"a finished walk is not in matches: {_bound(db).why_not(text)}"
        try:
            _empty(db).execute(text).fetchall()
        except sqlite3.Error as e:
            return f"a finished walk does not run: {e}"
        return None
    if _bound(db).matches(text) and error is not None:
        return f"schema-bound grammar accepts what SQLite refuses ({error})"
    if _generic().matches(text) and error is not None and not error.startswith(SCHEMA_ERRORS):
        return f"grammar accepts what SQLite's parser refuses ({error})"
    return None


def mutate(query: str, rng: random.Random, names: list[str], pool: list[str]) -> str:
    tokens = _TOKEN.findall(query)
    for _ in range(rng.randint(1, 3)):
        if not tokens:
            break
        i = rng.randrange(len(tokens))
        how = rng.randrange(8)
        if how == 0:
            del tokens[i]
        elif how == 1:
            tokens.insert(i, tokens[i])
        elif how == 2 and i + 1 < len(tokens):
            tokens[i], tokens[i + 1] = tokens[i + 1], tokens[i]
        elif how == 3:
            tokens[i] = rng.choice(KEYWORDS)
        elif how == 4 and names:
            tokens[i] = rng.choice(names)
        elif how == 5:
            tokens[i] = rng.choice(pool)
        elif how == 6:
            tokens[i] = tokens[i].swapcase()
        else:
            t = tokens[i]
            j = rng.randrange(len(t) + 1)
            tokens[i] = t[:j] + rng.choice("x_1'\"() ,.*-") + t[j:] if rng.random() < 0.5 else t[:j] + t[j + 1:]
    glue = [" " if rng.random() < 0.9 else "" for _ in tokens]
    return "".join(t + g for t, g in zip(tokens, glue)).strip()


def shrink(case: dict) -> dict:
    """Drop words while the case still fails."""
    tokens = _TOKEN.findall(case["text"])
    i = 0
    while i < len(tokens):
        smaller = {**case, "text": " ".join(tokens[:i] + tokens[i + 1:])}
        if check_case(smaller) is not None:
            tokens = tokens[:i] + tokens[i + 1:]
        else:
            i += 1
    return {**case, "text": " ".join(tokens)}


def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    gold = spider.gold()
    pool = [w for q, _ in rng.sample(gold, 200) for w in _TOKEN.findall(q)]
    stats = Stats(TARGET, args.seconds, args.seed)
    vocab = None
    print(f"fuzz {TARGET}: seed {args.seed}, {args.seconds:g} s, walks {args.walks:g} on {args.vocab}", flush=True)
    reported = set()
    while not stats.expired() and stats["failures"] < args.max_failures:
        query, db = rng.choice(gold)
        if rng.random() < args.walks:
            import tether
            from ._harness import tokenizer_path
            from ._sqlwalk import walk

            vocab = vocab or tether.Vocabulary.from_file(tokenizer_path(args.vocab))
            text, how = walk(_bound(db).compile(vocab), vocab, random.Random(rng.randrange(10**9)))
            stats[f"walks {how}"] += 1
            if how != "done":
                continue
            case = {"kind": "walk", "db": db, "text": text.decode("utf-8")}
        else:
            schema = _bound(db).schema
            names = [t.name for t in schema.tables] + [c for t in schema.tables for c in t.columns]
            case = {"kind": "mutation", "db": db, "text": mutate(query, rng, names, pool)}
        stats["cases"] += 1
        try:
            problem = check_case(case)
        except Exception as e:  # a crash is a failure too
            problem = f"crash: {type(e).__name__}: {e}"
        if problem is None:
            if case["kind"] == "mutation":
                error = sqlite_error(db, case["text"])
                ours = _bound(db).why_not(case["text"])
                if error is None and ours is not None:
                    stats["completeness misses"] += 1
                    stats[f"miss: {ours.split(' ')[0]}"] += 1
                stats["sqlite accepts" if error is None else "sqlite refuses"] += 1
            stats.status(("cases", "sqlite accepts", "completeness misses", "failures"))
            continue
        stats["failures"] += 1
        small = shrink(case) if not problem.startswith("crash") else case
        key = (small["kind"], problem.split("(")[0])
        small = {**small, "expected": None, "found": f"python -m fuzz sql --seed {args.seed}", "note": problem}
        saved = args.save and key not in reported and save_case(TARGET, small)
        reported.add(key)
        print(f"\nFAILURE {stats['failures']}: {problem}\n  case: {small}"
              + ("\n  saved to tests/regressions/sql.jsonl" if saved else ""), flush=True)
    stats.end_status()
    misses = ", ".join(f"{k[6:]} {v:,}" for k, v in stats.most_common() if k.startswith("miss: "))
    print(stats.summary(("cases", "sqlite accepts", "sqlite refuses", "completeness misses", "failures"))
          + (f" [misses by reason: {misses}]" if misses else ""))
    return 1 if stats["failures"] else 0


if __name__ == "__main__":
    sys.exit("run the fuzzers as: python -m fuzz sql --seconds N")
