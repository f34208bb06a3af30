"""Spider (../shared/data/sql/spider): its training gold queries and its databases, built in SQLite.

    >>> queries = gold()                       # [(sql, db_id), ...], 8,659 of them
    >>> conn = database("concert_singer")      # an in-memory database with the DDL's rows

A database is built from its script under `schemas/<db_id>/` (DDL and INSERTs). A few scripts are
absent from the data set (too large) or do not run (one is corrupt); those databases are built
from `tables.json` instead (tables and columns with their types, no rows), and `source(db_id)`
says which.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPIDER = ROOT.parent / "shared" / "data" / "sql" / "spider"

__all__ = ["SPIDER", "gold", "ddl", "database", "empty_database", "source", "db_ids", "require"]


def require() -> Path:
    if not (SPIDER / "train_gold.sql").is_file():
        raise FileNotFoundError(f"Spider data missing: {SPIDER} (see ../shared/data/README.md)")
    return SPIDER


@functools.cache
def gold() -> list[tuple[str, str]]:
    lines = (require() / "train_gold.sql").read_text(encoding="utf-8").splitlines()
    return [tuple(line.rsplit("\t", 1)) for line in lines if line.strip()]


@functools.cache
def _tables_json() -> dict[str, dict]:
    return {d["db_id"]: d for d in json.loads((require() / "tables.json").read_text(encoding="utf-8"))}


def db_ids() -> list[str]:
    return sorted(_tables_json())


def _from_tables_json(db_id: str) -> str:
    d = _tables_json()[db_id]
    types = {"number": "NUMERIC", "text": "TEXT", "time": "TEXT", "boolean": "INTEGER", "others": "TEXT"}
    columns: dict[int, list[str]] = {}
    for (table, name), kind in zip(d["column_names_original"], d["column_types"]):
        if table >= 0:
            quoted = '"' + name.replace('"', '""') + '"'
            columns.setdefault(table, []).append(f"{quoted} {types.get(kind, 'TEXT')}")
    statements = []
    for i, table in enumerate(d["table_names_original"]):
        if table.lower().startswith("sqlite_"):  # SQLite's own table, listed by Spider
            continue
        quoted = '"' + table.replace('"', '""') + '"'
        statements.append(f"CREATE TABLE {quoted} ({', '.join(columns.get(i, ['id INTEGER']))});")
    return "\n".join(statements)


@functools.cache
def _script(db_id: str) -> tuple[str, str]:
    folder = require() / "schemas" / db_id
    scripts = sorted(folder.glob("*.sql")) if folder.is_dir() else []
    if scripts:
        text = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in scripts)
        try:
            sqlite3.connect(":memory:").executescript(text)
            return text, "schema.sql"
        except sqlite3.Error:
            pass
    return _from_tables_json(db_id), "tables.json"


def ddl(db_id: str) -> str:
    """The database's script (DDL and INSERTs), or DDL made from tables.json."""
    return _script(db_id)[0]


def source(db_id: str) -> str:
    """"schema.sql" or "tables.json": where `ddl(db_id)` comes from."""
    return _script(db_id)[1]


def database(db_id: str) -> sqlite3.Connection:
    """A fresh in-memory database with the script run (rows included)."""
    conn = sqlite3.connect(":memory:")
    conn.executescript(ddl(db_id))
    return conn


@functools.cache
def schema_ddl(db_id: str) -> str:
    """Only the CREATE statements that the script leaves in the database."""
    rows = database(db_id).execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL "
                                   "AND name NOT LIKE 'sqlite!_%' ESCAPE '!' ORDER BY rowid").fetchall()
    return ";\n".join(r[0] for r in rows) + ";"


def empty_database(db_id: str) -> sqlite3.Connection:
    """The database's tables (and views), without rows."""
    conn = sqlite3.connect(":memory:")
    conn.executescript(schema_ddl(db_id))
    return conn
