"""A database's tables and columns, read from SQLite itself.

    >>> s = Schema.from_ddl("CREATE TABLE singer (id INTEGER, name TEXT);")
    >>> s.columns("SINGER")
    ('id', 'name')

Everything is read through SQLite: a DDL text is run in an empty in-memory database (so it means
exactly what SQLite makes of it, and a statement SQLite refuses is refused here), a database
file is opened read-only, and tables and views come from `sqlite_master` and `PRAGMA
table_info`. Names compare without regard to ASCII letter case, as SQLite compares them.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass

from ...errors import SQLSchemaError

__all__ = ["Schema", "Table", "open_read_only", "functions_of"]


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]
    kind: str = "table"  # or "view"


@dataclass(frozen=True)
class Schema:
    """Tables (and views) with their columns, in the database's order."""

    tables: tuple[Table, ...]

    def __post_init__(self) -> None:
        if not self.tables:
            raise SQLSchemaError("the schema has no table or view, so no query could name one")

    @property
    def by_name(self) -> dict[str, Table]:
        return {t.name.lower(): t for t in self.tables}

    def columns(self, table: str) -> tuple[str, ...] | None:
        t = self.by_name.get(table.lower())
        return None if t is None else t.columns

    @classmethod
    def from_connection(cls, conn: sqlite3.Connection) -> "Schema":
        rows = conn.execute("SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
                            "AND name NOT LIKE 'sqlite!_%' ESCAPE '!' ORDER BY rowid").fetchall()
        tables = []
        for name, kind in rows:
            quoted = '"' + name.replace('"', '""') + '"'
            try:
                info = conn.execute(f"PRAGMA table_info({quoted})").fetchall()
            except sqlite3.Error as e:  # a view over a table that no longer exists
                raise SQLSchemaError(f"cannot read the columns of {kind} {name!r}: {e}") from None
            tables.append(Table(name, tuple(row[1] for row in info), kind))
        return cls(tuple(tables))

    @classmethod
    def from_path(cls, path: str | os.PathLike) -> "Schema":
        conn = open_read_only(path)
        try:
            return cls.from_connection(conn)
        finally:
            conn.close()

    @classmethod
    def from_ddl(cls, ddl: str) -> "Schema":
        """The schema that running `ddl` (CREATE statements; INSERTs are run too) leaves behind."""
        conn = sqlite3.connect(":memory:")
        try:
            run_script(conn, ddl)
            return cls.from_connection(conn)
        finally:
            conn.close()


def run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run `script` one statement at a time, so a failure names its statement and line."""
    start, line = 0, 1
    for i, ch in enumerate(script):
        if ch != ";":
            continue
        pending = script[start:i + 1]
        if not sqlite3.complete_statement(pending):
            continue
        _run(conn, pending, line)
        line += pending.count("\n")
        start = i + 1
    rest = script[start:]
    if rest.strip():
        _run(conn, rest, line)


def _run(conn: sqlite3.Connection, statement: str, line: int) -> None:
    try:
        conn.execute(statement)
    except sqlite3.Error as e:
        first = statement.strip().splitlines()[0] if statement.strip() else statement
        at = line + statement[: len(statement) - len(statement.lstrip())].count("\n")
        raise SQLSchemaError(f"SQLite refuses the DDL statement at line {at} ({first[:80]!r}): {e}") from None


def open_read_only(path: str | os.PathLike) -> sqlite3.Connection:
    """A connection to an existing database file that cannot change it (`mode=ro`)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise SQLSchemaError(f"no database file at {path!r}")
    from urllib.parse import quote

    try:
        conn = sqlite3.connect(f"file:{quote(os.path.abspath(path))}?mode=ro", uri=True)
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1")
    except sqlite3.Error as e:
        raise SQLSchemaError(f"{path!r} is not a SQLite database: {e}") from None
    return conn


def functions_of(conn: sqlite3.Connection) -> frozenset[str]:
    """The names of the SQL functions a connection can call."""
    try:
        return frozenset(row[0].lower() for row in conn.execute("PRAGMA function_list"))
    except sqlite3.Error:  # SQLite before 3.30: no function list, assume the core set
        from .grammar import FUNCTIONS

        return frozenset(FUNCTIONS)
