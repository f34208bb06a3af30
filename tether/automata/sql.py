"""`tether.sql`: SQLite SELECT statements, optionally bound to a database's tables and columns.

    >>> q = tether.sql(ddl="CREATE TABLE singer (id INTEGER, name TEXT, age INTEGER);")
    >>> q.matches("SELECT name FROM singer WHERE age > 30"), q.matches("SELECT nme FROM singer")
    (True, False)

The grammar (`tether/grammar/sql/sqlite.lark`, on the context-free engine) is one for every
schema and compiles once per process; a schema adds the name checker of
`tether.grammar.sql.scope`, run while generating by `tether.automata.scoped.ScopedSQL`.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from typing import Any

from ..errors import SpecError
from ..grammar.sql.grammar import FUNCTIONS, Catalog, sqlite_ir
from ..grammar.sql.schema import Schema, functions_of, open_read_only, run_script
from ..grammar.sql.scope import Refused, Scope, ScopeCatalog
from ..limits import Limits
from ..vocab import Vocabulary
from .cfg import CFGConstraint
from .constraint import Constraint
from .earley import CFGAutomaton
from .grammar import Grammar
from .stepping import PerVocabulary

__all__ = ["SQL", "sql"]


class SQL(Grammar):
    """A SQLite SELECT grammar, bound to a schema or not (`schema` is None then).

    `execute(text)` runs a statement read-only against the database it was made from and
    returns the rows; `why_not(text)` says why a text is not in the language.
    """

    def __init__(self, base: Grammar, schema: Schema | None, db: Any = None, ddl: str | None = None):
        self.__dict__.update(base.__dict__)  # the IR and the automaton, shared by every schema
        self._base = base
        self.schema = schema
        self._db = db
        self._ddl = ddl
        self._compiled = PerVocabulary()
        self.scope = ScopeCatalog({}, open=True) if schema is None else ScopeCatalog(
            {t.name.lower(): frozenset(c.lower() for c in t.columns) for t in schema.tables})

    def __repr__(self) -> str:
        if self.schema is None:
            return "tether.sql(dialect='sqlite')"
        names = ", ".join(t.name for t in self.schema.tables[:6])
        more = f", ... ({len(self.schema.tables)} tables)" if len(self.schema.tables) > 6 else ""
        return f"tether.sql(dialect='sqlite', tables=[{names}{more}])"

    def matches(self, text: str | bytes) -> bool:
        return self.why_not(text) is None

    def why_not(self, text: str | bytes) -> str | None:
        """None for a statement of the language; otherwise what is wrong with it, in words."""
        if not self._base.matches(text):
            return "not a SQLite SELECT statement this grammar reads"
        scope = Scope(self.scope)
        try:
            scope.feed(text.encode() if isinstance(text, str) else text)
            scope.finish()
        except Refused as e:
            return str(e)
        return None

    def _bind(self, vocab: Vocabulary) -> Constraint:
        # The parser states a constraint builds are never evicted (they grow with every text it
        # reads), so each SQL object gets an automaton of its own over the shared tables: it
        # goes when the object does.
        automaton = CFGAutomaton(self._base._automaton.tables, self.limits)
        inner = CFGConstraint(automaton, vocab, self.limits, source=self.ir.source[:200])
        from .scoped import ScopedSQL

        return ScopedSQL(inner, vocab, self.scope)

    def execute(self, text: str, db: Any = None) -> list[tuple]:
        """The rows of `text`, run so that nothing can be written: on `db` (a path or connection)
        or the database this grammar was made from (for a DDL: an in-memory database it built).

            >>> q.execute("SELECT count(*) FROM singer")
            [(0,)]
        """
        db = self._db if db is None else db
        if db is None:
            if self._ddl is None:
                raise ValueError("execute() needs a database: this grammar has none (pass db=)")
            conn = sqlite3.connect(":memory:")
            run_script(conn, self._ddl)
            conn.execute("PRAGMA query_only = ON")
            try:
                return conn.execute(text).fetchall()
            finally:
                conn.close()
        if isinstance(db, sqlite3.Connection):
            previous = db.execute("PRAGMA query_only").fetchone()[0]
            db.execute("PRAGMA query_only = ON")
            try:
                return db.execute(text).fetchall()
            finally:
                db.execute(f"PRAGMA query_only = {int(previous)}")
        conn = open_read_only(db)
        try:
            return conn.execute(text).fetchall()
        finally:
            conn.close()


_BASES: dict[tuple, Grammar] = {}
_BASES_LOCK = threading.Lock()


def _base_grammar(functions: frozenset[str], limits: Limits | None) -> Grammar:
    catalog = Catalog(frozenset(f for f in FUNCTIONS if f in functions), frozenset({"regexp"} & functions))  # MATCH works on FTS tables only
    key = (catalog, limits)
    with _BASES_LOCK:
        grammar = _BASES.get(key)
        if grammar is None:
            grammar = _BASES[key] = Grammar(sqlite_ir(catalog), limits=limits)
        return grammar


def sql(dialect: str = "sqlite", *, db: Any = None, ddl: str | None = None, limits: Limits | None = None) -> SQL:
    """A constraint that the output is one SQLite SELECT statement (a `;` may end it).

        >>> q = tether.sql(db="concert_singer.sqlite")
        >>> sql = tether.generate(lm, "How many singers are there? SQL:", q).text; q.execute(sql)

    db: a `sqlite3.Connection` or the path of a database file (opened read-only); ddl: the
    text of CREATE statements. With either, table names are the schema's tables and views (or
    the statement's CTEs) and column names are those of the tables in scope (see
    `tether.grammar.sql.scope` for the rules, where they are exact and where they fall back to
    any column of the schema); without, any name goes. Functions are those of FUNCTIONS that the
    SQLite library lists, called with the right number of arguments. The grammar reads SELECT
    statements only: nothing it generates modifies data.

    Raises `SQLSchemaError` for a DDL statement SQLite refuses, a path that is no database, an
    empty schema; `SpecError` for a dialect other than "sqlite".
    """
    if dialect != "sqlite":
        raise SpecError(f"unknown SQL dialect {dialect!r}: tether has 'sqlite'")
    if db is not None and ddl is not None:
        raise ValueError("pass db= or ddl=, not both")
    if isinstance(db, (str, os.PathLike)):
        conn = open_read_only(db)
        try:
            schema, functions = Schema.from_connection(conn), functions_of(conn)
        finally:
            conn.close()
    elif isinstance(db, sqlite3.Connection):
        schema, functions = Schema.from_connection(db), functions_of(db)
    elif db is not None:
        raise TypeError(f"db must be a sqlite3.Connection or a path, not {type(db).__name__}")
    else:
        conn = sqlite3.connect(":memory:")
        try:
            functions = functions_of(conn)
            schema = None
            if ddl is not None:
                if not isinstance(ddl, str):
                    raise TypeError(f"ddl must be the text of CREATE statements, not {type(ddl).__name__}")
                run_script(conn, ddl)
                schema = Schema.from_connection(conn)
        finally:
            conn.close()
    return SQL(_base_grammar(functions, limits), schema, db, ddl)

