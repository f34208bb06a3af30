"""Names checked against a database schema while a SELECT statement is being written.

    >>> s = Scope(catalog); s.feed(b"SELECT T1.name FROM singer AS T1 WHERE T1.age > 3")
    >>> s.finish()                       # raises Refused if a name is not in scope

The grammar (`sqlite.lark`) decides what is a statement; this module decides which names it may
use, reading the bytes as SQLite's tokenizer does (words, quoted names, strings, numbers,
comments) and following the statement's structure: query blocks (each SELECT of a compound,
each subquery), their FROM clauses, parentheses, WITH clauses. A byte string is *refused* as
soon as no continuation of it could be a statement SQLite prepares without a name error.

Exact, per query block:
  * tables: a FROM (or `IN table`) names a table or view of the schema or a CTE in scope;
  * columns: `col` is a column of exactly one table of the block's FROM (not ambiguous, unless
    joined with USING/NATURAL), or an alias of the block's result columns (WHERE, GROUP BY,
    HAVING, ORDER BY; not an aggregate one in WHERE or GROUP BY); `q.col` needs `q` to be a
    table or alias of the FROM clause and `col` one of its columns. Names used in the select
    list before the FROM clause is written are kept pending and checked when it ends; an alias
    is bound to its table when it is written (`SELECT T1.name FROM singer AS T1`: `T1` must be a
    table with a column `name`);
  * correlated subqueries: a name the block cannot resolve is looked up in the enclosing blocks,
    with the same rules;
  * derived tables and CTEs have the columns their select lists name (aliases, plain column
    references, `*` expanded); a result column that is another expression has no usable name;
  * also refused because SQLite refuses to prepare them: an aggregate in WHERE, ON, GROUP BY or
    LIMIT or inside another aggregate, a window function outside the select list and ORDER BY,
    `max(x)` (one argument: an aggregate) in those places, a column in LIMIT/VALUES, a scalar or
    IN subquery with more than one result column (or `*`), compound SELECTs whose parts differ
    in their number of columns, `GROUP BY`/`ORDER BY` positions out of range, ORDER BY of a
    compound by anything but a result column's name or position, an undefined window name,
    duplicate aliases in one FROM clause or duplicate CTE names.

Where this is stricter or looser than SQLite (said so that nobody is surprised):
  * stricter: a column in the select list must exist in some table or CTE of the schema (a
    derived table written later could define any name); aggregates of aggregates are refused even
    under OVER; a table may appear twice in one FROM clause only under different aliases;
  * looser (the fallback of "any column"): a derived table or CTE whose select list has an
    unnamed column or a `*` over an unknown source gives a table whose columns are not known,
    and any column name resolves against it; a correlated name is checked against the enclosing
    blocks' FROM clauses as they stand.
"""

from __future__ import annotations

from dataclasses import dataclass

from .grammar import AGGREGATES, FUNCTIONS, GRAMMAR_KEYWORDS, KEYWORDS, RESERVED, WINDOWS

__all__ = ["Scope", "ScopeCatalog", "Refused"]


class Refused(Exception):
    """The text names something the schema does not have (or uses it where SQLite refuses)."""


@dataclass(frozen=True)
class ScopeCatalog:
    """The schema as the checker reads it: lower-cased table names and their column sets.

    `open`: no schema: any table name goes, with columns not known (so any column resolves);
    the rules that do not depend on names (aggregates, windows, counts of columns) still hold."""

    tables: dict[str, frozenset[str]]
    open: bool = False


# Lexer modes.
NONE, WORD, NUM, SQ, SQ_END, DQ, DQ_END, BT, BT_END, BR, LINE, BLOCK, BLOCK_STAR, DASH, SLASH = range(15)
_WORD = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$") | frozenset(range(128, 256))
_DIGITS = frozenset(b"0123456789")
_NUM = frozenset(b"0123456789abcdefABCDEFxX._")
_BLANK = frozenset(b" \t\r\n\f")
_QUOTE_MODE = {ord('"'): DQ, ord("`"): BT, ord("["): BR}
_CLOSING = {DQ: ord('"'), BT: ord("`"), BR: ord("]")}

_JOIN_WORDS = frozenset(("natural", "left", "right", "full", "inner", "cross", "outer"))
_CLAUSE_WORDS = frozenset(("where", "group", "having", "order", "limit", "window", "union", "intersect",
                           "except"))
_OPERAND_KEYWORDS = frozenset(("null", "true", "false", "current_date", "current_time", "current_timestamp",
                               "end"))
_WINDOW_WORDS = frozenset(("partition", "by", "range", "rows", "groups", "unbounded", "current", "preceding",
                           "following", "exclude", "no", "others", "ties", "row", "asc", "desc", "nulls", "first",
                           "last"))
_FUNCTION_NAMES = frozenset(FUNCTIONS) | {"count"}
# The keywords that can begin an operand; where one is expected, any other word is a name.
_OPERAND_START = frozenset(("not", "exists", "case", "cast", "null", "true", "false", "current_date", "current_time",
                            "current_timestamp", "distinct", "all"))
_STATEMENT_START = frozenset(("select", "values", "with"))
_CALLABLE = _OPERAND_START | _FUNCTION_NAMES | {"x"}  # x: a blob literal x'..'
# What may follow a result column that has its alias, and a table of FROM that has its alias.
_AFTER_COLUMN = frozenset(("from", "where", "group", "window", "order", "limit", "union", "intersect", "except"))
_AFTER_TABLE = _AFTER_COLUMN | frozenset(("join", "natural", "left", "right", "full", "inner", "cross", "on",
                                          "using", "having", "offset"))
_NO_AGGREGATE = frozenset(("where", "on", "group", "limit", "values"))
_NO_COLUMNS = frozenset(("limit", "values"))


class _Frame:
    """A frame of the checker's stack: its fields in `__dict__` (set in `__init__`, always in the
    same order), so that copying and hashing one are a dict copy and a tuple."""

    def copy(self):
        f = object.__new__(type(self))
        f.__dict__ = self.__dict__.copy()
        return f

    def key(self) -> tuple:
        return (type(self).__name__, *self.__dict__.values())


class _Block(_Frame):
    """One SELECT (a core of a compound), with what its names are checked against."""

    def __init__(self, ctx: str, cores: int = 0, first_n: int = -1, first_names: tuple = ()):
        self.ctx = ctx  # top, expr, in, exists, derived, cte
        self.clause = "select"
        self.expect = None
        self.operand = False
        self.tables: tuple = ()  # (alias, columns or None when unknown)
        self.current = None  # (default alias, columns) of the table just read in FROM
        self.merged: frozenset = frozenset()
        self.pending: tuple = ()  # (qualifier, column, inside an aggregate) waiting for the FROM clause
        self.outputs: tuple = ()  # (alias, has aggregate)
        self.names: tuple = ()  # per result column: its name, None, or ("*", qualifier)
        self.n = 0
        self.n_known = True
        self.stars: tuple = ()
        self.from_seen = False
        self.from_closed = False
        self.term_int = None
        self.term_start = False
        self.cores, self.first_n, self.first_names = cores, first_n, first_names
        self.windows: frozenset = frozenset()
        self.pending_windows: frozenset = frozenset()
        self.col_events = 0
        self.col_name = None
        self.col_name_end = -1
        self.col_alias = None
        self.col_agg = False
        self.values_n = -1
        self.values_row = 0
        self.frame = False
        self.natural = False
        self.select_agg = False  # an aggregate in the select list
        self.grouped = False  # a GROUP BY clause



class _Paren(_Frame):
    def __init__(self, kind: str, name: str | None = None, agg: bool = False):
        self.kind = kind  # group, func, cast, in, exists, from, using, over, cte_cols, cte_body, values
        self.name = name
        self.agg = agg
        self.distinct = False
        self.fresh = True
        self.commas = 0
        self.as_seen = False



class _With(_Frame):
    def __init__(self, ctx: str):
        self.ctes: tuple = ()  # (name, columns or None)
        self.recursive = False
        self.state = "name"  # name, after_name, as, body, after_body, main
        self.name = None
        self.declared: tuple | None = None
        self.ctx = ctx



class Scope:
    """The checker's state over the bytes read so far; `copy()` forks it, `key()` hashes it."""

    __slots__ = ("catalog", "mode", "buf", "held", "qual", "frames", "last_func", "ended", "stash", "last",
                 "owned")

    def __init__(self, catalog: ScopeCatalog):
        self.catalog = catalog
        self.mode = NONE
        self.buf = b""
        self.held = None  # a name whose role the next lexeme decides: (text, quoted, events before it)
        self.qual = None  # the qualifier just read before "."
        self.frames: list = []
        self.last_func = None  # (aggregate, distinct) of the call just closed, for OVER
        self.ended = False  # after ";"
        self.stash = (None, None)  # (columns or None, number of columns or None) of the statement just ended
        self.last = None  # the previous lexeme when it was a keyword
        self.owned: set[int] = set()  # ids of the frames this state may change (see _top)

    # -- forking and identity

    def copy(self) -> "Scope":
        s = Scope.__new__(Scope)
        s.catalog, s.mode, s.buf, s.held, s.qual = self.catalog, self.mode, self.buf, self.held, self.qual
        s.frames = self.frames  # shared until this state reads something (see _own)
        s.last_func, s.ended, s.stash, s.last = self.last_func, self.ended, self.stash, self.last
        s.owned = set()
        return s

    def __eq__(self, other: object) -> bool:
        return type(other) is Scope and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())

    def key(self) -> tuple:
        return (self.mode, self.buf, self.held, self.qual, self.last_func, self.ended, self.last,
                tuple(f.key() for f in self.frames))

    def _top(self, i: int = -1):
        """frames[i], to change: copied first if this state still shares it with the state it
        was forked from (`copy` shares every frame; `_own` takes the two that nearly every
        lexeme changes, the top and the current block)."""
        f = self.frames[i]
        if id(f) not in self.owned:
            f = f.copy()
            self.frames[i] = f
            self.owned.add(id(f))
        return f

    def _push(self, frame) -> None:
        self.frames.append(frame)
        self.owned.add(id(frame))

    def _own(self) -> None:
        """Before reading: a list of frames of this state's own, its top and block copied."""
        self.frames = list(self.frames)
        self.owned = set()
        if self.frames:
            self._top()
            i = self._block_index()
            if i >= 0:
                self._top(i)

    # -- bytes

    def feed(self, data: bytes) -> None:
        """Read more bytes; raises Refused."""
        self._own()
        for ch in data:
            self._byte(ch)

    def finish(self) -> None:
        """The text ends here; raises Refused if it cannot end as a statement with valid names."""
        self._own()
        mode = self.mode
        if mode in (SQ, DQ, BT, BR, BLOCK, BLOCK_STAR):
            raise Refused("an unterminated string, name or comment")
        if mode in (WORD, NUM, SQ_END, DQ_END, BT_END, DASH, SLASH):
            self._byte(ord(" ") if mode not in (DASH, SLASH) else 0)  # ends the lexeme
        self._resolve_held(None)
        while self.frames:
            top = self.frames[-1]
            if isinstance(top, _Block):
                self._end_statement()
            elif isinstance(top, _With):
                self.frames.pop()
            else:
                raise Refused("unclosed parenthesis")

    def _byte(self, ch: int) -> None:
        mode = self.mode
        if mode == WORD:
            if ch in _WORD:
                self.buf += bytes((ch,))
                return
            if ch == 39 and self.buf in (b"x", b"X"):  # x'..': a blob
                self.mode, self.buf = SQ, b""
                return
            self.mode = NONE
            self._word(self.buf.decode("utf-8", "replace").lower(), None)
        elif mode == NUM:
            if ch in _NUM or ch in b"+-" and self.buf[-1:] in (b"e", b"E") and not self.buf.startswith((b"0x", b"0X")):
                self.buf += bytes((ch,))
                return
            self.mode = NONE
            self._number(self.buf)
        elif mode == SQ:
            if ch == 39:
                self.mode = SQ_END
            return
        elif mode == SQ_END:
            if ch == 39:
                self.mode = SQ
                return
            self.mode = NONE
            self._literal()
        elif mode in (DQ, BT, BR):
            if ch == _CLOSING[mode]:
                self.mode = mode + 1 if mode != BR else NONE
                if mode == BR:
                    self._word(self.buf.decode("utf-8", "replace").lower(), "[")
                    self.buf = b""
                return
            self.buf += bytes((ch,))
            return
        elif mode in (DQ_END, BT_END):
            q = _CLOSING[mode - 1]
            if ch == q:
                self.buf += bytes((ch,))
                self.mode = mode - 1
                return
            self.mode = NONE
            self._word(self.buf.decode("utf-8", "replace").lower(), chr(q))
            self.buf = b""
        elif mode == LINE:
            if ch == 10:
                self.mode = NONE
            return
        elif mode == BLOCK:
            if ch == 42:
                self.mode = BLOCK_STAR
            return
        elif mode == BLOCK_STAR:
            self.mode = NONE if ch == 47 else BLOCK_STAR if ch == 42 else BLOCK
            return
        elif mode == DASH:
            if ch == 45:
                self.mode = LINE
                return
            self.mode = NONE
            self._operator()
        elif mode == SLASH:
            if ch == 42:
                self.mode = BLOCK
                return
            self.mode = NONE
            self._operator()
        # between lexemes
        if ch == 0 or ch in _BLANK:
            return
        # A name read before decides its role at the first character of the next lexeme (a
        # comment does not count), so that every way to go on past it gets the same verdict.
        if ch in _WORD:
            if ch in _DIGITS:
                self._resolve_held(None)
                self.mode, self.buf = NUM, bytes((ch,))
            else:
                self._resolve_held("word")
                self.mode, self.buf = WORD, bytes((ch,))
        elif ch == 39:
            self._resolve_held(None)
            self.mode = SQ
        elif ch in _QUOTE_MODE:
            self._resolve_held("word")
            self.mode, self.buf = _QUOTE_MODE[ch], b""
        elif ch == 45:
            self.mode = DASH
        elif ch == 47:
            self.mode = SLASH
        elif ch == 46:
            if self.held is not None:
                self._punct(".")
            else:
                self.mode, self.buf = NUM, b"."
        elif ch in b"(),*;":
            self._punct(chr(ch))
        else:
            self._operator()

    # -- what a name here may be

    def word_names(self) -> frozenset[str] | None:
        """The names (lower case) a word written at this point may be, keywords included, when
        they are a known finite set; None where any word could do (an alias, a qualifier of a
        table still to come). `feed` refuses the others once they end."""
        if self.ended:
            return frozenset()
        frames = self.frames
        if not frames:
            return frozenset(("select", "values", "with"))
        top = frames[-1]
        if isinstance(top, _With) or isinstance(top, _Paren) and top.kind in ("cte_cols", "cast"):
            return None
        bi = self._block_index()
        if bi < 0:
            return None
        b = frames[bi]
        if self.qual is not None:
            cols = self._columns_of(bi, self.qual[0])
            if cols is None:  # not bound yet: a column of some table
                if self.catalog.open:
                    return None
                sources = list(self.catalog.tables.values()) + [c for w in self._withs() for _, c in w.ctes]
                return None if any(c is None for c in sources) else frozenset().union(*sources)
            return cols
        expect = b.expect
        if expect in ("table", "in_table"):
            if self.catalog.open:
                return None
            names = set(self.catalog.tables)
            for w in self._withs():
                names.update(n for n, _ in w.ctes)
                if w.recursive and w.state == "body" and w.name:
                    names.add(w.name)
            return frozenset(names)
        if b.clause == "select" and expect is None and b.operand and (
                b.col_alias is not None or isinstance(b.col_name, tuple) and b.col_name_end == b.col_events):
            return _AFTER_COLUMN  # after `expr AS name` or `*` only a clause can follow
        if expect is not None or b.clause == "select" and not b.from_closed:
            return None
        if isinstance(top, _Paren) and top.kind == "using":  # columns of both sides of the join
            right = b.tables[-1][1] if b.tables else None
            left = [c for _, c in b.tables[:-1]]
            if right is None or any(c is None for c in left):
                return None
            return frozenset(c for c in right if any(c in l for l in left))
        if isinstance(top, _Paren) and top.kind in ("over", "window"):
            return None
        if b.operand:
            return _AFTER_TABLE if b.clause == "from" and isinstance(top, _Block) else GRAMMAR_KEYWORDS
        if b.clause == "order" and b.cores:  # a compound's ORDER BY: result names only
            return GRAMMAR_KEYWORDS | {n for n in b.first_names + b.names if isinstance(n, str)}
        callable_here = self._callable_here(b)
        if self._statement_context() is not None:
            callable_here = callable_here | _STATEMENT_START
        if b.clause in _NO_COLUMNS:
            return callable_here
        names = set(callable_here)
        i = bi
        while i >= 0:
            blk = frames[i]
            if not blk.from_closed:
                return None  # an enclosing block still to get its FROM: any of its names may come
            seen: dict[str, int] = {}
            for alias, cols in blk.tables:
                if cols is None:
                    return None
                for c in cols:
                    seen[c] = seen.get(c, 0) + 1
                if alias is not None:
                    names.add(alias)
            # An ambiguous column is no name here (unless joined by USING / NATURAL).
            names.update(c for c, k in seen.items() if k == 1 or c in blk.merged)
            names.update(a for a, _ in blk.outputs)
            i = self._block_index(i)
        return frozenset(names)

    def _callable_here(self, b: _Block) -> frozenset[str]:
        """Keywords and the functions a call here may name (no aggregate in WHERE, ...)."""
        out = _CALLABLE
        top = self.frames[-1]
        select_start = isinstance(top, _Block) and b.clause == "select" and b.col_events == 0 and not b.names
        aggregate_start = isinstance(top, _Paren) and top.kind == "func" and top.agg and top.fresh
        if not (select_start or aggregate_start):
            out = out - {"distinct", "all"}
        if self.last == "not":  # x NOT LIKE y, x NOT IN (...), NOT EXISTS, IS NOT NULL
            out = out | {"like", "glob", "match", "regexp", "in", "between", "null", "exists"}
        if b.clause in _NO_AGGREGATE or b.expect == "filter_where" or self._in_aggregate():
            out = out - (AGGREGATES - {"max", "min"}) - WINDOWS
        elif b.clause not in ("select", "order"):
            out = out - WINDOWS
        return out

    def pending_qualifiers(self) -> list[str]:
        """Qualifiers written (`T1.name`) whose FROM clause has not bound them yet."""
        out = []
        for f in self.frames:
            if isinstance(f, _Block):
                bound = {a for a, _ in f.tables}
                out.extend(q for q, _, _ in f.pending if q is not None and q not in bound and q not in out)
        return out

    def _columns_of(self, bi: int, qual: str) -> frozenset[str] | None:
        """The columns of the table `qual` names in scope; None if not bound (or not known)."""
        i = bi
        while i >= 0:
            for alias, cols in self.frames[i].tables:
                if alias == qual:
                    return cols
            i = self._block_index(i)
        return None

    # -- lexemes

    def _block_index(self, below: int | None = None) -> int:
        frames = self.frames
        i = (len(frames) if below is None else below) - 1
        while i >= 0 and not isinstance(frames[i], _Block):
            i -= 1
        return i

    def _block(self) -> _Block:
        i = self._block_index()
        if i < 0:
            raise Refused("outside any SELECT")
        return self._top(i)

    def _event(self, b: _Block) -> None:
        if b.clause == "select" and b.expect is None:
            b.col_events += 1

    def _word(self, text: str, quoted: str | None) -> None:
        if self.ended:
            raise Refused("text after the statement")
        if self.qual is not None:  # q.name
            q, self.qual = self.qual, None
            b = self._block()
            self._reference(q[0], text, q[2])
            b.operand = True
            return
        self._resolve_held("word")
        top = self.frames[-1] if self.frames else None
        b = self._block() if self._block_index() >= 0 else None
        table = b is not None and b.expect in ("table", "in_table") and not isinstance(top, _Paren)
        if quoted is None and not table and (
                text in RESERVED or b is not None and b.operand and text in KEYWORDS
                and b.expect not in ("table_alias", "out_alias")
                or text in KEYWORDS and self._keyword_position(text, b, top)):
            self._keyword(text)
            self.last = text
            return
        self.last = None
        self.held = (text, quoted, b.col_events if b is not None else 0)
        if b is not None:
            self._event(b)
        self._check_held()

    def _check_held(self) -> None:
        """Refuse a name that no role could take: not a name in scope, nor a qualifier of a table
        that can be in scope, nor a function."""
        text, quoted, events = self.held
        probe = self.copy()
        probe._own()
        probe.held = None
        try:
            probe._name(text, quoted, events)
            return
        except Refused as e:
            refusal = e
        b = self._block() if self._block_index() >= 0 else None
        if b is not None and b.expect in ("table", "in_table"):
            raise refusal  # a table's name, nothing else
        if quoted is None and text in _FUNCTION_NAMES:
            probe = self.copy()
            probe._own()
            probe.held = None
            try:
                probe._call(text, quoted)
                return
            except Refused:
                pass
        probe = self.copy()
        probe._own()
        try:
            probe._qualifier(text)
            return
        except Refused:
            pass
        raise refusal

    def _keyword_position(self, text: str, b: _Block | None, top) -> bool:
        """Where a keyword SQLite could also take as a name is the keyword here."""
        if text == "with":
            return self._statement_context() is not None
        if isinstance(top, _With):
            return text in ("recursive", "materialized")
        if b is None:
            return True
        if isinstance(top, _Paren) and top.kind in ("over", "window") and text in _WINDOW_WORDS:
            return True
        if text == "by":
            return b.expect == "by"
        if text in ("like", "glob", "match", "regexp"):
            return self.last == "not"
        return b.expect == "nulls" and text in ("first", "last")

    def _top_paren_kind(self) -> str | None:
        top = self.frames[-1] if self.frames else None
        return top.kind if isinstance(top, _Paren) else None

    def _number(self, text: bytes) -> None:
        self.last = None
        self._resolve_held(None)
        b = self._block()
        self._event(b)
        self._fresh_paren()
        if b.term_start and text.isdigit():
            b.term_int = int(text)
        elif b.clause == "order" and b.cores and b.expect is None:
            raise Refused("ORDER BY of a compound SELECT: only result columns")
        b.term_start = False
        self._operand(b)

    def _literal(self) -> None:
        self.last = None
        self._resolve_held(None)
        b = self._block()
        if b.expect == "out_alias" or (b.clause == "select" and b.expect is None and b.operand
                                       and isinstance(self.frames[-1], _Block)):
            b.col_alias = "'"  # a string alias: named, but not by a name the checker follows
            b.expect = None
            b.operand = True
            return
        self._event(b)
        self._fresh_paren()
        if b.clause == "order" and b.cores and b.expect is None:
            raise Refused("ORDER BY of a compound SELECT: only result columns")
        b.term_start = False
        b.term_int = None
        self._operand(b)

    def _operand(self, b: _Block) -> None:
        b.operand = True

    def _operator(self) -> None:
        self.last = None
        self._resolve_held(None)
        if not self.frames:
            raise Refused("an operator outside any SELECT")
        b = self._block()
        self._event(b)
        self._fresh_paren()
        if b.clause == "order" and b.cores:
            raise Refused("ORDER BY of a compound SELECT: only result columns")
        b.operand = False
        b.term_int = None
        b.term_start = False

    def _fresh_paren(self) -> None:
        top = self.frames[-1]
        if isinstance(top, _Paren) and top.fresh:
            top = self._top()
            top.fresh = False

    # -- names

    def _resolve_held(self, nxt: str | None) -> bool:
        """Decide the role of the held name now that the next lexeme starts; True for a call."""
        held = self.held
        if held is None:
            return False
        self.held = None
        text, quoted, events = held
        if nxt == ".":
            self._qualifier(text)
            self.qual = held
            return False
        if nxt == "(" and not self._names_a_table():
            self._call(text, quoted)
            return True
        self._name(text, quoted, events)
        return False

    def _qualifier(self, name: str) -> None:
        """Refuse `name.` where no table of that name can be in scope."""
        bi = self._block_index()
        if bi < 0:
            raise Refused(f"{name!r}. outside any SELECT")
        b = self.frames[bi]
        if b.clause in _NO_COLUMNS:
            raise Refused(f"no column can be used in {b.clause.upper()}")
        i = bi
        while i >= 0:
            blk = self.frames[i]
            if not blk.from_closed or any(a == name for a, _ in blk.tables):
                return
            i = self._block_index(i)
        raise Refused(f"no table or alias {name!r} in scope")

    def _names_a_table(self) -> bool:
        """Whether a name before "(" is not a function: a CTE's name before its column list."""
        return isinstance(self.frames[-1], _With) if self.frames else False

    def _name(self, text: str, quoted: str | None, events: int) -> None:
        """A name that is neither a qualifier nor a function: its role by position."""
        frames = self.frames
        top = frames[-1] if frames else None
        if isinstance(top, _With) or (isinstance(top, _Paren) and top.kind == "cte_cols"):
            self._cte_word(text, quoted)
            return
        b = self._block()
        if isinstance(top, _Paren):
            if top.kind == "cast" and top.as_seen:
                return  # a type name
            if top.kind == "using":
                self._using(b, text)
                return
            if top.fresh:
                top = self._top()
                top.fresh = False
        expect = b.expect
        if expect == "table":
            self._table_read(b, text)
            return
        if expect == "in_table":
            cols = self._table(text)
            if cols is not None and len(cols) != 1:
                raise Refused(f"IN {text}: the table must have one column")
            b.expect = None
            b.operand = True
            return
        if expect == "after_table":  # an alias without AS
            self._commit_table(b, text)
            return
        if expect == "table_alias":
            self._commit_table(b, text)
            return
        if expect in ("window_name", "window_def", "over"):
            if expect != "window_def":  # OVER w
                if text not in b.windows:
                    b.pending_windows = b.pending_windows | {text}
                b.operand = True
            else:
                if text in b.windows:
                    raise Refused(f"window {text!r} defined twice")
                b.windows = b.windows | {text}
            b.expect = None
            return
        if expect == "out_alias" or (b.clause == "select" and b.operand and isinstance(top, _Block)):
            b.col_alias = text
            b.expect = None
            b.operand = True
            return
        if expect == "collation":
            b.expect = None
            return
        if expect == "window_base_or_spec":  # OVER (w ...) / WINDOW v AS (w ...)
            if isinstance(top, _Paren) and top.kind == "window":
                if text not in b.windows:
                    raise Refused(f"no window named {text!r} before this one")
            elif text not in b.windows:
                b.pending_windows = b.pending_windows | {text}
            b.expect = None
            return
        if quoted is None and text in ("true", "false") and not self._resolvable(text):
            b.operand = True
            return  # the boolean literal
        if quoted == '"' and not self._resolvable(text):
            b.operand = True
            return  # SQLite reads a double-quoted name that names no column as a string
        b.term_start, b.term_int = False, None
        self._reference(None, text, events)
        b.operand = True

    def _resolvable(self, col: str) -> bool:
        probe = self.copy()
        probe._own()
        try:
            probe._reference(None, col, -1)
        except Refused:
            return False
        return True

    def _reference(self, qual: str | None, col: str, events: int) -> None:
        bi = self._block_index()
        b = self.frames[bi]
        if b.clause in _NO_COLUMNS:
            raise Refused(f"no column can be used in {b.clause.upper()}")
        if b.clause == "order" and b.cores:
            if col not in b.first_names and col not in b.names:
                raise Refused(f"ORDER BY of a compound SELECT: {col!r} is no result column")
            b.term_start = False
            return
        if b.clause in ("group", "order") and not b.from_seen:  # SQLite resolves them in the block only
            raise Refused(f"{b.clause.upper()} BY a column in a query without FROM")
        if b.clause == "select" and events == 0 and b.expect is None:
            b.col_name, b.col_name_end = col, b.col_events
        self._lookup(bi, qual, col, self._in_aggregate())

    def _lookup(self, bi: int, qual: str | None, col: str, in_aggregate: bool) -> None:
        b = self._top(bi)
        if not b.from_closed:
            self._feasible(bi, qual, col)
            b.pending = b.pending + ((qual, col, in_aggregate),)
            return
        if not self._resolves(bi, qual, col, in_aggregate):
            raise Refused(f"no column {col!r}" + (f" in {qual!r}" if qual else "") + " in scope")

    def _resolves(self, bi: int, qual: str | None, col: str, in_aggregate: bool = False) -> bool:
        b = self.frames[bi]
        if qual is not None:
            for alias, cols in b.tables:
                if alias == qual:
                    return cols is None or col in cols
        else:
            hits = sum(1 for _, cols in b.tables if cols is not None and col in cols)
            unknown = any(cols is None for _, cols in b.tables)
            if hits == 1 or hits > 1 and col in b.merged or hits == 0 and unknown:
                return True
            if hits > 1:
                raise Refused(f"ambiguous column name {col!r}")
            for alias, agg in b.outputs:
                if alias == col and b.clause in ("where", "group", "having", "order"):
                    if agg and b.clause in ("where", "group"):
                        raise Refused(f"misuse of aliased aggregate {col!r}")
                    return True
        pi = self._block_index(bi)
        if pi < 0:
            return False
        if in_aggregate:  # SQLite would move the aggregate to the enclosing query, where it may not be
            raise Refused(f"an aggregate over {col!r}, a column of an enclosing query")
        parent = self.frames[pi]
        if not parent.from_closed:
            self._feasible(pi, qual, col)
            parent = self._top(pi)
            parent.pending = parent.pending + ((qual, col, False),)
            return True
        return self._resolves(pi, qual, col)

    def _feasible(self, bi: int, qual: str | None, col: str) -> None:
        """Refuse a name that no FROM clause still to be written could provide."""
        b = self.frames[bi]
        sources = list(self.catalog.tables.values()) + [c for w in self._withs() for _, c in w.ctes]
        if self.catalog.open or any(c is None for c in sources):
            return
        if qual is None:
            if any(col in c for c in sources) or self._outer_has(bi, None, col):
                return
            raise Refused(f"no table has a column {col!r}")
        need = {col} | {c for q, c, _ in b.pending if q == qual}
        if any(need <= c for c in sources) or self._outer_has(bi, qual, col):
            return
        raise Refused(f"no table has the columns {sorted(need)} that {qual!r} is used with")

    def _outer_has(self, bi: int, qual: str | None, col: str) -> bool:
        pi = self._block_index(bi)
        while pi >= 0:
            for alias, cols in self.frames[pi].tables:
                if (qual is None or alias == qual) and (cols is None or col in cols):
                    return True
            pi = self._block_index(pi)
        return False

    def _withs(self):
        return [f for f in self.frames if isinstance(f, _With)]

    def _table(self, name: str) -> frozenset | None:
        """The columns of a table, view or CTE in scope (None: not known); refuses others."""
        for w in reversed(self._withs()):
            for n, cols in w.ctes:
                if n == name:
                    return cols
            if w.recursive and w.state == "body" and w.name == name:
                return frozenset(w.declared) if w.declared is not None else None
        cols = self.catalog.tables.get(name)
        if cols is None:
            if self.catalog.open:
                return None
            raise Refused(f"no table {name!r}")
        return cols

    # -- FROM

    def _table_read(self, b: _Block, name: str) -> None:
        b.current = (name, self._table(name))
        b.expect = "after_table"
        b.operand = True

    def _commit_table(self, b: _Block, alias: str | None) -> None:
        name, cols = b.current
        alias = name if alias is None else alias
        b.current = None
        b.expect = None
        if alias is not None:
            if any(a == alias for a, _ in b.tables):
                raise Refused(f"{alias!r} appears twice in one FROM clause")
            if cols is not None:
                need = {c for q, c, _ in b.pending if q == alias}
                if not need <= cols:
                    raise Refused(f"{alias!r} has no column {sorted(need - cols)[0]!r}")
        if b.natural:  # NATURAL JOIN: the common columns are one each
            b.natural = False
            left = [c for _, c in b.tables]
            if cols is not None and all(c is not None for c in left):
                b.merged = b.merged | (cols & frozenset().union(*left))
        b.tables = b.tables + ((alias, cols),)
        b.operand = True

    def _using(self, b: _Block, col: str) -> None:
        right = b.tables[-1][1] if b.tables else None
        left = b.tables[:-1]
        if right is not None and col not in right:
            raise Refused(f"USING {col!r}: not a column of the joined table")
        if left and not any(c is None or col in c for _, c in left):
            raise Refused(f"USING {col!r}: not a column of the tables before the join")
        b.merged = b.merged | {col}

    def _close_from(self, bi: int) -> None:
        b = self._top(bi)
        if b.from_closed:
            return
        if b.current is not None:
            self._commit_table(b, None)
        b.from_closed = True
        if b.stars:
            names = []
            for name in b.names:
                if not isinstance(name, tuple):
                    names.append(name)
                    continue
                qual = name[1]
                if not b.tables:
                    raise Refused("* with no table")
                if qual is not None and not any(a == qual for a, _ in b.tables):
                    raise Refused(f"no table {qual!r} for {qual}.*")
                sources = [c for a, c in b.tables if qual is None or a == qual]
                if any(c is None for c in sources):
                    b.n_known = False
                    names.append(None)
                else:
                    expanded = [c for cols in sources for c in sorted(cols)]
                    b.n += len(expanded) - 1
                    names.extend(expanded)
            b.names = tuple(names)
        pending, b.pending = b.pending, ()
        for qual, col, in_aggregate in pending:
            if not self._resolves(bi, qual, col, in_aggregate):
                raise Refused(f"no column {col!r}" + (f" in {qual!r}" if qual else "") + " in scope")

    # -- structure

    def _punct(self, ch: str) -> None:
        self.last = None
        if self._resolve_held(ch):
            return  # name( : the call's parenthesis is open
        if ch == ".":
            if self.qual is None:
                raise Refused("a '.' after no name")
            return
        if ch == ";":
            self.finish_statement()
            return
        if ch == ")":
            self._close_paren()
            return
        top = self.frames[-1] if self.frames else None
        in_with = isinstance(top, _With) or isinstance(top, _Paren) and top.kind == "cte_cols"
        b = None if in_with and ch in "(," else self._block()
        if ch == "(":
            if b is not None:
                self._event(b)
            self._open_paren(b)
        elif ch == ",":
            self._comma(b)
        elif ch == "*":
            self._event(b)
            self._fresh_paren()
            if self.qual is not None:  # q.*
                q, self.qual = self.qual, None
                if b.clause != "select":
                    raise Refused("q.* outside the select list")
                self._star(b, q[0])
            elif not b.operand and b.clause == "select" and isinstance(self.frames[-1], _Block):
                self._star(b, None)
            elif not b.operand and self._top_paren_kind() == "func":
                b.operand = True  # count(*)
            else:
                if b.clause == "order" and b.cores:
                    raise Refused("ORDER BY of a compound SELECT: only result columns")
                b.operand = False

    def finish_statement(self) -> None:
        self.finish()
        self.ended = True

    def _star(self, b: _Block, qual: str | None) -> None:
        if b.ctx in ("expr", "in"):
            raise Refused("* in a subquery that must return one column")
        b.stars = b.stars + (("*", qual),)
        b.names = b.names  # the star's names are known when the FROM clause is
        b.col_name = ("*", qual)
        b.col_name_end = b.col_events
        b.operand = True

    def _open_paren(self, b: _Block) -> None:
        top = self.frames[-1]
        if isinstance(top, _With):
            w = self._top()
            if w.state == "after_name":
                self._push(_Paren("cte_cols"))
                w.declared = ()
                return
            if w.state == "as":
                w.state = "body"
                self._push(_Paren("cte_body"))
                return
            raise Refused("unexpected '(' in WITH")
        self._fresh_paren()
        if b.clause == "order" and b.cores and b.expect is None:
            raise Refused("ORDER BY of a compound SELECT: only result columns")
        b.term_start = False
        b.term_int = None
        expect = b.expect
        if expect == "table":
            kind = "from"
        elif expect == "using":
            kind = "using"
            b.expect = None
        elif expect == "in_table":
            kind = "in"
            b.expect = None
        elif expect == "exists":
            kind = "exists"
            b.expect = None
        elif expect == "cast":
            kind = "cast"
            b.expect = None
        elif expect == "over":
            kind = "over"
            b.expect = "window_base_or_spec"
        elif expect == "filter":
            kind = "filter"
            b.expect = None
        elif expect == "window_as":
            kind = "window"
            b.expect = "window_base_or_spec"
        elif b.clause == "values" and isinstance(top, _Block):
            kind = "values"
        else:
            kind = "group"
        b.operand = False
        self._push(_Paren(kind))
        
    def _call(self, name: str, quoted: str | None) -> None:
        """`name(`: a function call."""
        b = self._block()
        self._fresh_paren()
        if b.clause == "order" and b.cores:
            raise Refused("ORDER BY of a compound SELECT: only result columns")
        surely_aggregate = name in AGGREGATES and name not in ("max", "min")
        if surely_aggregate:
            self._aggregate_here(b, name)
        if name in WINDOWS and (b.clause not in ("select", "order") or self._in_aggregate()):
            raise Refused(f"window function {name}() in {b.clause.upper()}")
        paren = _Paren("func", name, agg=name in AGGREGATES)
        b.operand = False
        self._push(paren)
        
    def _aggregate_here(self, b: _Block, name: str) -> None:
        if b.clause in _NO_AGGREGATE or b.expect == "filter_where":
            raise Refused(f"aggregate {name}() in {b.clause.upper()}")
        if self._in_aggregate():
            raise Refused(f"aggregate {name}() inside another aggregate")
        if b.clause == "order" and not (b.grouped or b.select_agg):
            raise Refused(f"aggregate {name}() in ORDER BY of a query that aggregates nothing")
        if b.clause == "select":
            b.select_agg = True
        b.col_agg = True

    def _in_aggregate(self) -> bool:
        for f in reversed(self.frames):
            if isinstance(f, _Block):
                return False
            if isinstance(f, _Paren) and f.kind == "func" and f.agg:
                return True
        return False

    def _comma(self, b: _Block) -> None:
        top = self.frames[-1]
        if isinstance(top, _With):
            w = self._top()
            if w.state != "after_body":
                raise Refused("unexpected ',' in WITH")
            w.state = "name"
            return
        if isinstance(top, _Paren):
            top = self._top()
            top.commas += 1
            if b is None:  # between a CTE's declared columns
                return
            b.operand = False
            if top.kind == "func" and top.name in ("max", "min"):
                top.agg = False  # max(a, b): the scalar function
            if top.kind == "values":
                b.values_row += 1
            return
        # a comma of the block itself
        if b.clause == "select" and b.expect is None:
            if b.ctx in ("expr", "in"):
                raise Refused("a second column in a subquery that must return one")
            self._end_column(b)
        elif b.clause in ("from", "on") or b.expect in ("after_table",):
            if b.current is not None:
                self._commit_table(b, None)
            b.clause = "from"
            b.expect = "table"
        elif b.clause in ("group", "order"):
            self._end_term(b)
            b.term_start = True
        elif b.clause == "window":
            b.expect = "window_def"
        elif b.clause == "values":
            pass
        b.operand = False

    def _end_column(self, b: _Block) -> None:
        name = b.col_alias
        if name is None and b.col_name is not None and b.col_name_end == b.col_events:
            name = b.col_name
        b.names = b.names + (name,)
        if isinstance(name, str) and name != "'":
            b.outputs = b.outputs + ((name, b.col_agg),)
        b.n += 1
        b.col_events, b.col_name, b.col_name_end, b.col_alias, b.col_agg = 0, None, -1, None, False

    def _end_term(self, b: _Block) -> None:
        if b.term_int is not None:
            n = b.first_n if b.cores else b.n
            if b.n_known and not 1 <= b.term_int <= n:
                raise Refused(f"{b.clause.upper()} BY term {b.term_int} out of range 1..{n}")
        b.term_int = None

    def _close_paren(self) -> None:
        top = self.frames[-1]
        if isinstance(top, _Block):
            self._end_statement()
            top = self.frames[-1] if self.frames else None
            if not isinstance(top, _Paren):
                raise Refused("')' closes nothing")
            paren = self.frames.pop()
            self._after_subquery(paren)
            return
        if not isinstance(top, _Paren):
            raise Refused("')' closes nothing")
        paren = self.frames.pop()
        b = self._block() if self._block_index() >= 0 else None
        kind = paren.kind
        if kind == "cte_cols":
            w = self._top()
            w.state = "as"
            return
        if b is None:
            raise Refused("')' outside any SELECT")
        b = self._top(self._block_index())
        if kind == "func":
            if paren.agg and paren.commas == 0 and paren.name in ("max", "min"):
                self._aggregate_here(b, paren.name)
            self.last_func = (paren.agg, paren.distinct)
            b.operand = True
            return
        self.last_func = None
        if kind == "values":
            n = b.values_row + 1
            if b.values_n >= 0 and n != b.values_n:
                raise Refused("VALUES rows with different numbers of terms")
            b.values_n = n
            b.values_row = 0
            b.operand = True
            return
        if kind == "from":  # a parenthesised join: no alias after it
            if b.current is not None:
                self._commit_table(b, None)
            b.expect = None
            b.operand = True
            return
        if kind in ("over", "window"):
            b.frame = False
            b.expect = None
        if kind == "filter":
            b.expect = None
        b.operand = True

    def _after_subquery(self, paren: _Paren) -> None:
        """The statement inside `paren` has ended (its block popped): what it was for."""
        sub, n = self.stash
        kind = paren.kind
        if kind == "cte_body":
            w = self._top()
            cols = frozenset(w.declared) if w.declared is not None else sub
            if w.declared is not None and n is not None and n != len(w.declared):
                raise Refused(f"CTE {w.name!r} declares {len(w.declared)} columns for {n} values")
            w.ctes = w.ctes + ((w.name, cols),)
            w.state = "after_body"
            return
        b = self._top(self._block_index())
        if kind == "from":
            b.current = (None, sub)
            b.expect = "after_table"
            b.operand = True
            return
        if kind in ("group", "in") and n is not None and n != 1:
            raise Refused("a subquery that must return one column returns more")
        b.operand = True

    def _end_statement(self) -> None:
        """End the statement whose core is on top: its last core, then the WITH under it."""
        bi = len(self.frames) - 1
        b = self._top(bi)
        self._end_core(bi)
        b = self.frames[bi]
        names = b.first_names if b.cores else b.names
        cols = None
        if all(isinstance(n, str) and n != "'" for n in names):
            cols = frozenset(names)
        n = (b.first_n if b.cores else b.n) if b.n_known else None
        self.frames.pop()
        if self.frames and isinstance(self.frames[-1], _With) and self.frames[-1].state == "main":
            self.frames.pop()
        self.last_func = None
        self.stash = (cols, n)

    def _end_core(self, bi: int) -> None:
        b = self._top(bi)
        if b.clause == "select":
            self._end_column(b)
        if b.clause in ("group", "order"):
            self._end_term(b)
        self._close_from(bi)
        b = self.frames[bi]
        if b.pending_windows - b.windows:
            raise Refused(f"no window named {sorted(b.pending_windows - b.windows)[0]!r}")
        if b.clause == "values":
            b.n = b.values_n
        if b.cores and b.n_known and b.first_n >= 0 and b.n != b.first_n:
            raise Refused("the SELECTs of a compound have different numbers of columns")
        w = self.frames[bi - 1] if bi > 0 else None
        if isinstance(w, _With) and w.state == "body" and w.recursive and b.cores == 0 and w.declared is None:
            w = self._top(bi - 1)
            names = b.names
            if all(isinstance(x, str) and x != "'" for x in names) and not b.stars:
                w.declared = tuple(names)

    # -- keywords

    def _keyword(self, word: str) -> None:
        self._resolve_held(None)
        frames = self.frames
        top = frames[-1] if frames else None
        if word == "with":
            ctx = self._statement_context()
            self._push(_With(ctx))
            return
        if isinstance(top, _With):
            w = self._top()
            if word == "recursive":
                w.recursive = True
            elif word == "as":
                if w.state != "after_name" and w.state != "as":
                    raise Refused("AS out of place in WITH")
                w.state = "as"
            elif word in ("not", "materialized"):
                pass
            elif word in ("select", "values") and w.state == "after_body":
                w.state = "main"
                self._new_block(w.ctx, word)
            else:
                raise Refused(f"{word.upper()} out of place in WITH")
            return
        if isinstance(top, _Block) and top.clause == "compound":
            if word == "all":
                return
            if word not in ("select", "values"):
                raise Refused(f"{word.upper()} after a compound operator")
            top.clause = "select" if word == "select" else "values"
            return
        if word in ("select", "values"):
            ctx = self._statement_context()
            if ctx is None:
                raise Refused(f"{word.upper()} out of place")
            self._new_block(ctx, word)
            return
        b = self._block()
        b = self._top(self._block_index())
        paren = top if isinstance(top, _Paren) else None
        if paren is not None:
            if paren.fresh:
                paren = self._top()
                paren.fresh = False
            if paren.kind == "cast" and word == "as":
                paren.as_seen = True
                return
            if paren.kind == "func" and word == "distinct":
                paren.distinct = True
                return
            if paren.kind == "over" or paren.kind == "window":
                self._window_keyword(b, word)
                return
            if paren.kind == "filter" and word == "where":
                b.expect = "filter_where"
                return
        if b.clause == "select" and isinstance(top, _Block):
            if word in ("distinct", "all") and b.col_events == 0 and not b.names:
                return
        if b.clause == "order" and b.cores and word not in ("asc", "desc", "nulls", "first", "last", "collate",
                                                          "limit", "offset"):
            if word not in _CLAUSE_WORDS:
                raise Refused(f"ORDER BY of a compound SELECT: only result columns, not {word.upper()}")
        at_block = isinstance(top, _Block)
        if at_block and word in _CLAUSE_WORDS | {"from", "on", "using"} | _JOIN_WORDS | {"join"}:
            self._clause(b, word)
            return
        self._event(b)
        if at_block and b.expect == "after_table" and word == "as":
            b.expect = "table_alias"
            return
        if b.clause == "select" and word == "as" and b.expect is None:
            b.expect = "out_alias"
            return
        if word == "by":
            b.term_start = b.clause in ("group", "order")
            b.expect = None
            return
        if b.clause == "window" and word == "as":
            b.expect = "window_as"
            return
        if word in ("asc", "desc", "nulls"):
            self._end_term(b)
            b.expect = "nulls" if word == "nulls" else None
            return
        if word in ("first", "last") and b.expect == "nulls":
            b.expect = None
            return
        if word == "collate":
            self._end_term(b)
            b.expect = "collation"
            return
        if word in ("in",):
            b.expect = "in_table"
            b.operand = False
            return
        if word == "exists":
            b.expect = "exists"
            b.operand = False
            return
        if word == "cast":
            b.expect = "cast"
            b.operand = False
            return
        if word == "over":
            agg, distinct = self.last_func or (False, False)
            if b.clause not in ("select", "order"):
                raise Refused(f"a window function in {b.clause.upper()}")
            if distinct:
                raise Refused("DISTINCT is not supported for window functions")
            b.expect = "over"
            return
        if word == "filter":
            b.expect = "filter"
            return
        if word == "offset":
            b.operand = False
            return
        if word in _OPERAND_KEYWORDS:
            b.term_start = False
            b.term_int = None
            b.operand = True
            return
        b.term_start = False
        b.term_int = None
        b.operand = False
        if b.expect in ("in_table", "exists", "cast", "over", "filter"):
            b.expect = None

    def _window_keyword(self, b: _Block, word: str) -> None:
        if word in ("range", "rows", "groups"):
            b.frame = True
        elif word in ("partition", "order"):
            b.expect = "by"
            b.operand = False
            return
        elif word == "by":
            b.term_start = False
        elif word in ("asc", "desc", "nulls", "first", "last"):
            b.expect = "nulls" if word == "nulls" else None
        elif word == "collate":
            b.expect = "collation"
        elif word in _OPERAND_KEYWORDS:
            b.operand = True
            return
        b.operand = word in ("preceding", "following", "row", "others", "ties")
        if b.expect == "window_base_or_spec":
            b.expect = None

    def _statement_context(self) -> str | None:
        """Where a statement starting now stands: top level or the kind of its parenthesis."""
        top = self.frames[-1] if self.frames else None
        if top is None:
            return "top"
        if isinstance(top, _With):
            return top.ctx if top.state == "after_body" else None
        if isinstance(top, _Paren) and top.fresh:
            return {"group": "expr", "in": "in", "exists": "exists", "from": "derived",
                    "cte_body": "cte"}.get(top.kind)
        return None

    def _new_block(self, ctx: str, word: str) -> None:
        top = self.frames[-1] if self.frames else None
        if isinstance(top, _Paren):
            top = self._top()
            top.fresh = False
        b = _Block(ctx)
        if word == "values":
            b.clause = "values"
        self._push(b)
        
    def _clause(self, b: _Block, word: str) -> None:
        """A clause keyword at the block's own level."""
        bi = self._block_index()
        if word in ("union", "intersect", "except"):
            self._end_core(bi)
            b = self.frames[bi]
            first_n = b.first_n if b.cores else (b.n if b.n_known else -1)
            first_names = b.first_names if b.cores else b.names
            nb = _Block(b.ctx, b.cores + 1, first_n, first_names)
            nb.clause = "compound"
            self.frames[bi] = nb
            self.owned.add(id(nb))
            return
        if b.clause == "compound":
            raise Refused(f"{word.upper()} after a compound operator")
        if word == "from":
            if b.clause == "select":
                self._end_column(b)
            b.clause = "from"
            b.from_seen = True
            b.expect = "table"
            b.operand = False
            return
        if word in _JOIN_WORDS or word == "join":
            if b.current is not None:
                self._commit_table(b, None)
            b.clause = "from"
            if word == "natural":
                b.natural = True
            b.expect = "table" if word == "join" else None
            b.operand = False
            return
        if word == "on":
            if b.current is not None:
                self._commit_table(b, None)
            b.clause = "on"
            b.expect = None
            b.operand = False
            return
        if word == "using":
            if b.current is not None:
                self._commit_table(b, None)
            b.expect = "using"
            b.operand = False
            return
        # where, group, having, order, limit, window: the select list and FROM are complete
        if b.clause == "select":
            self._end_column(b)
        if b.clause in ("group", "order"):
            self._end_term(b)
        if word != "window" or True:
            self._close_from(bi)
        b = self.frames[bi]
        b.clause = word
        b.grouped = b.grouped or word == "group"
        b.expect = "window_def" if word == "window" else "by" if word in ("group", "order") else None
        b.term_start = False
        b.operand = False

    def _cte_word(self, text: str, quoted: str | None) -> None:
        top = self.frames[-1]
        if isinstance(top, _Paren):  # a declared column
            w = self._top(-2)
            w.declared = (w.declared or ()) + (text,)
            return
        w = self._top()
        if w.state != "name":
            raise Refused(f"unexpected name {text!r} in WITH")
        if any(n == text for n, _ in w.ctes):
            raise Refused(f"duplicate WITH table name {text!r}")
        w.name, w.declared, w.state = text, None, "after_name"
