"""`tether.sql`: the SQLite SELECT grammar and its schema binding, checked against SQLite itself.

- the grammar against Spider's 8,659 training gold queries: at least 98% accepted, and every
  query it accepts SQLite prepares (`EXPLAIN`) on an empty database of the query's schema, unless
  SQLite's complaint is a name the schema lacks (the grammar alone does not know names);
- schema-bound: on its own database, `matches` agrees with SQLite on every gold query, both
  ways; against other databases too (a sample), so that a query naming a table or column the
  other schema lacks is rejected, and one whose names it has is accepted;
- a property test: one table or column name of an accepted query renamed to a name not in the
  schema makes the query rejected;
- the constraint on a real vocabulary agrees with `matches` on tokenized gold queries;
- the keyword tables against what the SQLite library accepts as names; bad input; `execute`.
"""

from __future__ import annotations

import functools
import random
import re
import sqlite3

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import tether
from fuzz import _spider as spider
from tether.grammar.sql.grammar import FALLBACK_KEYWORDS, GRAMMAR_KEYWORDS, RESERVED, TABLE_KEYWORDS, _base

from conftest import data_path, real_vocab

NAME_ERRORS = ("no such table", "no such column", "ambiguous column name")


@pytest.fixture(scope="module", autouse=True)
def _spider_data():
    data_path("sql", "spider", "train_gold.sql")  # fails loudly when the data set is missing


@functools.cache
def bound(db_id: str) -> tether.SQL:
    return tether.sql(db=spider.empty_database(db_id))


@functools.cache
def _empty(db_id: str) -> sqlite3.Connection:
    return spider.empty_database(db_id)


def sqlite_error(db_id: str, query: str) -> str | None:
    try:
        _empty(db_id).execute("EXPLAIN " + query)
    except sqlite3.Error as e:
        return str(e)
    return None


def test_grammar_accepts_spider_gold_and_sqlite_prepares_what_it_accepts():
    grammar = tether.sql()
    gold = spider.gold()
    refused = [(q, db) for q, db in gold if not grammar.matches(q)]
    share = 1 - len(refused) / len(gold)
    assert share >= 0.98, f"{share:.2%} accepted; refused: {refused[:20]}"
    disagreements = []
    for q, db in gold:
        if grammar.matches(q):
            error = sqlite_error(db, q)
            if error is not None and not error.startswith(NAME_ERRORS):
                disagreements.append((q, db, error))
    assert not disagreements, disagreements[:10]


def test_schema_bound_matches_agrees_with_sqlite_on_every_gold_query():
    disagreements = []
    accepted = 0
    for q, db in spider.gold():
        ours = bound(db).why_not(q)
        theirs = sqlite_error(db, q)
        accepted += ours is None
        if (ours is None) != (theirs is None):
            disagreements.append((q, db, ours, theirs))
    assert accepted / len(spider.gold()) >= 0.98
    assert not disagreements, disagreements[:10]


def test_against_other_schemas_names_decide():
    rng = random.Random(7)
    dbs = sorted({db for _, db in spider.gold()})
    sample = rng.sample(spider.gold(), 400)
    rejected = accepted = 0
    disagreements = []
    for q, db in sample:
        other = rng.choice([d for d in dbs if d != db])
        ours = bound(other).why_not(q)
        theirs = sqlite_error(other, q)
        if (ours is None) != (theirs is None):
            disagreements.append((q, other, ours, theirs))
        rejected += ours is not None
        accepted += ours is None
    assert not disagreements, disagreements[:10]
    assert rejected > 300  # most queries name tables another database lacks


def _words_outside_quotes(query: str):
    """(start, end) of bare words outside strings and quoted names, with the previous word."""
    out, prev = [], None
    for m in re.finditer(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`|\[[^\]]*\]|([A-Za-z_][A-Za-z0-9_]*)|\S", query):
        if m.group(1):
            out.append((m.start(1), m.end(1), prev))
            prev = m.group(1).lower()
        else:
            prev = m.group(0)
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 8658), st.integers(0, 10**6), st.text("abcdefghijklmnopqrstuvwxyz", min_size=3, max_size=8))
def test_renaming_a_table_or_column_to_an_unknown_name_is_rejected(index, which, fresh):
    query, db = spider.gold()[index]
    q = bound(db)
    assume(q.matches(query))
    names = {t.name.lower() for t in q.schema.tables} | {c.lower() for t in q.schema.tables for c in t.columns}
    sites = [(a, b) for a, b, prev in _words_outside_quotes(query)
             if query[a:b].lower() in names and prev != "as"]
    assume(sites)
    fresh = "zq" + fresh
    assume(fresh not in names)
    a, b = sites[which % len(sites)]
    renamed = query[:a] + fresh + query[b:]
    assume(sqlite_error(db, renamed) is not None)  # e.g. a renamed output alias nobody uses
    assert not q.matches(renamed), renamed


def _walked(c, vocab, text: str):
    """The state after `text`'s greedy tokens, or None if the constraint refuses one."""
    state = c.initial()
    for t in vocab.encode_greedy(text.encode()):
        if not c.allows(state, t):
            return None
        state = c.advance(state, t)
    return state


def test_constraint_agrees_with_matches_on_tokenized_gold():
    vocab = real_vocab("llama-bpe")
    rng = random.Random(3)
    eos = sorted(vocab.eos_ids)
    for query, db in rng.sample(spider.gold(), 25):
        q = bound(db)
        c = q.compile(vocab)
        state = _walked(c, vocab, query)
        ok = state is not None and c.is_accepting(state)
        assert ok == q.matches(query), (query, db, q.why_not(query))
        if ok:
            assert c.mask(state)[eos].all()


def test_renamed_columns_are_refused_by_the_constraint_too():
    vocab = real_vocab("llama-bpe")
    q = bound("concert_singer")
    c = q.compile(vocab)
    for text, good in [("SELECT name FROM singer", True), ("SELECT nme FROM singer", False),
                       ("SELECT T1.song_name FROM singer AS T1", True), ("SELECT T1.song_name FROM stadium AS T1", False),
                       ("SELECT count(*) FROM concert JOIN stadium USING (stadium_id)", True),
                       ("SELECT * FROM singers", False)]:
        state = _walked(c, vocab, text)
        assert (state is not None and c.is_accepting(state)) == good, text


def test_keyword_tables_match_the_grammar_and_the_sqlite_library():
    terminals = {t.text for t in _base().terminals.values()}
    spelled = {m.group(1).lower() for t in terminals if (m := re.fullmatch(r'"([A-Za-z_]+)"i', t or ""))}
    assert spelled == GRAMMAR_KEYWORDS
    conn = sqlite3.connect(":memory:")
    for k in sorted(FALLBACK_KEYWORDS):  # each works as a table, column, qualifier and alias
        conn.execute(f'CREATE TABLE "{k}" ("{k}" INT)')
        conn.execute(f"EXPLAIN SELECT {k}.{k}, {k} FROM {k} AS {k} WHERE {k} = 1 ORDER BY {k}")
    for k in sorted(TABLE_KEYWORDS):
        conn.execute(f'CREATE TABLE "{k}" (a INT)')
        conn.execute(f"EXPLAIN SELECT x.a FROM {k} AS x")
    # A reserved word is a name only quoted (the grammar never reads one bare as a name).
    grammar = tether.sql()
    for k in sorted(RESERVED):
        assert grammar.matches(f'SELECT "{k}" FROM t'), k
        assert not grammar.matches(f"SELECT a AS {k} FROM t"), k


DDL = """
CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER);
CREATE TABLE concert (concert_id INTEGER, singer_id INTEGER, year INTEGER, theme TEXT);
CREATE VIEW old_singers AS SELECT name, age FROM singer WHERE age > 40;
INSERT INTO singer VALUES (1, 'Joe', 'France', 52), (2, 'Ann', 'Peru', 29);
INSERT INTO concert VALUES (10, 1, 2014, 'Free'), (11, 1, 2015, 'Wide'), (12, 2, 2015, 'Free');
"""


@pytest.mark.parametrize("text, ok", [
    ("SELECT name FROM singer", True),
    ("select NAME from SINGER where AGE > 30 order by 1 desc", True),
    ("SELECT T1.name, count(*) FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id "
     "GROUP BY T1.singer_id HAVING count(*) > 1", True),
    ("SELECT singer_id FROM singer JOIN concert USING (singer_id)", True),
    ("SELECT singer_id FROM singer JOIN concert ON singer.singer_id = concert.singer_id", False),  # ambiguous
    ("SELECT name FROM old_singers", True),  # views are tables
    ("SELECT year FROM singer", False),  # a column of another table
    ("SELECT x.name FROM singer", False),  # an alias never bound
    ("SELECT name FROM singer WHERE count(*) > 1", False),  # aggregate in WHERE
    ("SELECT name, age FROM singer ORDER BY 3", False),  # position out of range
    ("SELECT name FROM singer UNION SELECT name, age FROM singer", False),  # column counts differ
    ("SELECT name FROM singer WHERE singer_id IN (SELECT singer_id, year FROM concert)", False),
    ("SELECT name FROM singer AS s WHERE EXISTS (SELECT 1 FROM concert AS c WHERE c.singer_id = s.singer_id)", True),
    ("WITH recent AS (SELECT singer_id FROM concert WHERE year > 2014) SELECT name FROM singer "
     "WHERE singer_id IN (SELECT singer_id FROM recent)", True),
    ("WITH recent AS (SELECT singer_id FROM concert) SELECT theme FROM recent", False),
    # Stricter than SQLite, as documented: a select-list name must be some table's column,
    # even where a derived table written later names it.
    ("SELECT n FROM (SELECT name AS n FROM singer)", False),
    ("SELECT x.n FROM (SELECT name AS n FROM singer) AS x", False),
    ("SELECT name FROM (SELECT name AS n FROM singer) WHERE n > 'A'", False),
    ("SELECT * FROM (SELECT name AS n FROM singer) WHERE n > 'A'", True),
    ("SELECT name FROM (SELECT name AS n FROM singer)", False),
    ("SELECT name, rank() OVER (PARTITION BY country ORDER BY age DESC) FROM singer", True),
    ("SELECT name FROM singer WHERE rank() OVER () > 1", False),
    ("SELECT \"name\", [age], `country` FROM singer -- names in every quoting\n", True),
    ("SELECT 'it''s' || name FROM singer /* strings with quotes */;", True),
    ("DELETE FROM singer", False),
    ("SELECT name FROM singer; DROP TABLE singer", False),
])
def test_schema_rules_agree_with_sqlite(text, ok):
    q = tether.sql(ddl=DDL)
    assert q.matches(text) == ok, q.why_not(text)
    if text.startswith(("SELECT n FROM", "SELECT x.n FROM")):
        return  # the documented difference: SQLite accepts these
    conn = sqlite3.connect(":memory:")
    conn.executescript(DDL)
    try:  # one statement (the sqlite3 module refuses two), and a query
        conn.execute("EXPLAIN " + text)
        sqlite_ok = text.lstrip().upper().startswith(("SELECT", "WITH"))
    except (sqlite3.Error, sqlite3.Warning):
        sqlite_ok = False
    assert sqlite_ok == ok


def test_execute_is_read_only_and_returns_rows(tmp_path):
    path = tmp_path / "music.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(DDL)
    conn.commit()
    conn.close()
    q = tether.sql(db=path)
    assert q.execute("SELECT name FROM singer ORDER BY name") == [("Ann",), ("Joe",)]
    with pytest.raises(sqlite3.OperationalError):
        q.execute("DELETE FROM singer")
    live = sqlite3.connect(path)
    qc = tether.sql(db=live)
    assert qc.execute("SELECT count(*) FROM concert") == [(3,)]
    with pytest.raises(sqlite3.OperationalError):
        qc.execute("UPDATE singer SET age = 0")
    assert live.execute("PRAGMA query_only").fetchone()[0] == 0  # the connection is left as it was
    assert tether.sql(ddl=DDL).execute("SELECT max(age) FROM singer") == [(52,)]


def test_bad_input_gets_typed_errors():
    with pytest.raises(tether.SQLSchemaError, match="line 2"):
        tether.sql(ddl="CREATE TABLE a (x INT);\nCREATE TABLE b (y INT,,);")
    with pytest.raises(tether.SQLSchemaError, match="no database file"):
        tether.sql(db="/nonexistent/music.sqlite")
    with pytest.raises(tether.SQLSchemaError, match="no table"):
        tether.sql(ddl="-- nothing here\n")
    with pytest.raises(tether.SpecError, match="dialect"):
        tether.sql(dialect="mysql")
    with pytest.raises(TypeError):
        tether.sql(db=42)
    with pytest.raises(ValueError):
        tether.sql(db=":memory:", ddl=DDL)


def test_the_grammar_is_shared_between_schemas():
    a, b = tether.sql(ddl="CREATE TABLE a (x INT);"), tether.sql(ddl="CREATE TABLE b (y INT);")
    assert a._base is b._base is tether.sql()._base  # compiled once; each binds its own parser states
    assert a.engine == "cfg"
    assert a.matches("SELECT x FROM a") and not b.matches("SELECT x FROM a")
