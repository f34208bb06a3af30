"""SQL names checked against a schema while generating: a Constraint that wraps the grammar's.

    >>> inner = CFGConstraint(CFGAutomaton(tables), vocab)   # the SQL grammar: any SELECT statement
    >>> c = ScopedSQL(inner, vocab, catalog)                 # ... naming only the schema's tables
    >>> c.allows(c.advance_many(c.initial(), vocab.encode_greedy("SELECT nme FROM")), eos)
    False

The language is the inner constraint's (SQL text) minus the texts that `tether.grammar.sql.scope`
refuses. A state is (inner state, `Scope`). A token is allowed when the inner constraint allows it,
the scope checker does not refuse its bytes, and a word it leaves unfinished where only a known
set of names may stand (a table after FROM, a column of the tables in scope) is the start of one
of them, so that no allowed token leads to a name that cannot be finished.

Masks do not run the checker on every token. Per state, the vocabulary splits into classes that
act alike (tables built once per vocabulary): blanks, words (with or without leading blanks, by
their letters: the tokens that continue or start a word are looked up from the names allowed
there, by their prefixes), a quote opened and not closed, and the rest, checked one by one. In a
string, quoted name or comment, only the tokens that contain its closing character are checked.
"""

from __future__ import annotations

import bisect
import re
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from ..errors import InvalidState, TokenRejected, VocabularyMismatch
from ..grammar.sql.scope import (BLOCK, BLOCK_STAR, BR, BT, BT_END, DASH, DQ, DQ_END, LINE, NONE, NUM, SLASH,
                                 SQ, SQ_END, WORD, Refused, Scope, ScopeCatalog)
from ..vocab import Vocabulary
from .bitmask import bitmask_words, pack_mask, unpack_bitmask
from .constraint import Constraint
from .stepping import as_token_id, copy_into

__all__ = ["ScopedSQL"]

_PURE = re.compile(rb"[A-Za-z0-9_$\x80-\xff]+")
_BLANKS = re.compile(rb"[ \t\r\n\f]+")
_BLANK_WORD = re.compile(rb"[ \t\r\n\f]+([A-Za-z0-9_$\x80-\xff]+)")
_OPENS = {q: re.compile(rb"[ \t\r\n\f]*" + re.escape(q) + rb"[^" + re.escape(c) + rb"]*")
          for q, c in ((b"'", b"'"), (b'"', b'"'), (b"`", b"`"), (b"[", b"]"))}
_DIGITS = frozenset(b"0123456789")
# A head is checked as its canonical form: the checker reads every operator alike (the grammar
# tells them apart) and any run of blanks as one. Quotes and comments open a lexeme whose bytes
# after them count differently: such tokens are checked whole.
_OPERATORS = re.compile(rb"[=<>!+%&|~^]+")
_BLANK_RUN = re.compile(rb"[ \t\r\n\f]+")
_OPAQUE = re.compile(rb"['\"`\[]|--|/\*")
_QUOTES = re.compile(rb"['\"`\[]")
_COMMENTS = re.compile(rb"--[^\n]*\n|/\*.*?\*/", re.S)
_OPEN_COMMENT = re.compile(rb"--[^\n]*\Z|/\*.*\Z", re.S)


def _canonical(data: bytes) -> bytes:
    """A token the checker reads the same as `data` (which has no quote): a closed comment is a
    blank, an open one its opening, blank runs one space, operator runs one "="."""
    data = _COMMENTS.sub(b" ", data)
    m = _OPEN_COMMENT.search(data)
    tail = b""
    if m:
        tail = b"--" if data[m.start():m.start() + 2] == b"--" else b"/*"
        data = data[:m.start()]
    return _OPERATORS.sub(b"=", _BLANK_RUN.sub(b" ", data)) + tail


_SPLIT = re.compile(rb"([^A-Za-z0-9_$\x80-\xff]+)([A-Za-z0-9_$\x80-\xff]*)")
_LEAD = re.compile(rb"[ \t\r\n\f]*([A-Za-z0-9_$\x80-\xff]+)")

# What, in each lexical mode, only the tokens containing it can change (the rest go on inside).
_CLOSER = {SQ: b"'", DQ: b'"', BT: b"`", BR: b"]", LINE: b"\n", BLOCK: b"*", BLOCK_STAR: b"/"}
# First bytes that continue the lexeme in progress instead of ending it.
_CONTINUES = {WORD: b"'", NUM: b".+-", SQ_END: b"'", DQ_END: b'"', BT_END: b"`", DASH: b"-", SLASH: b"*"}

# Token classes.
OTHER, BLANK, WORDS, DIGIT_WORDS, OPEN_SQ, OPEN_DQ, OPEN_BT, OPEN_BR = range(8)
_OPEN_CLASS = {b"'": OPEN_SQ, b'"': OPEN_DQ, b"`": OPEN_BT, b"[": OPEN_BR}


class _Tables:
    """Per vocabulary: each token's class, its word in lower case, and the tokens by word."""

    def __init__(self, vocab: Vocabulary):
        n = vocab.size
        self.cls = np.full(n, -1, dtype=np.int8)  # -1: special / no bytes
        self.first = np.zeros(n, dtype=np.uint8)
        self.by_word: dict[str, list[int]] = {}  # words, with or without blanks before
        self.lacks = {q: np.zeros(n, dtype=bool) for q in _CLOSER.values()}
        for t, data in enumerate(vocab):
            if not data:
                continue
            self.first[t] = data[0]
            for q, arr in self.lacks.items():
                arr[t] = q not in data
            word = None
            if _PURE.fullmatch(data):
                word, cls = data, DIGIT_WORDS if data[0] in _DIGITS else WORDS
            elif _BLANKS.fullmatch(data):
                cls = BLANK
            else:
                m = _BLANK_WORD.fullmatch(data)
                if m:
                    word = m.group(1)
                    cls = DIGIT_WORDS if word[0] in _DIGITS else WORDS
                else:
                    cls = OTHER
                    for q, rx in _OPENS.items():
                        if rx.fullmatch(data):
                            cls = _OPEN_CLASS[q]
                            break
            self.cls[t] = cls
            if word is not None and cls == WORDS:
                self.by_word.setdefault(word.decode("utf-8", "replace").lower(), []).append(t)
        self.pure = np.array([bool(d) and _PURE.fullmatch(d) is not None for d in vocab], dtype=bool)
        # The word a token spells before a byte that ends it (after blanks): `name` of " name,".
        self.lead: list[str | None] = [None] * n
        for t, data in enumerate(vocab):
            if data and self.cls[t] == OTHER:
                m = _LEAD.match(data)
                if m and m.end() < len(data) and data[m.start(1)] not in _DIGITS:
                    self.lead[t] = m.group(1).decode("utf-8", "replace").lower()
        # Tokens that are some other bytes, then at most one word left unfinished: "(", "(f", " ('".
        self.split: list[tuple[bytes, str] | None] = [None] * n
        for t, data in enumerate(vocab):
            if data and self.cls[t] == OTHER:
                m = _SPLIT.fullmatch(data)
                if m and not _OPAQUE.search(m.group(1)):
                    head = _OPERATORS.sub(b"=", _BLANK_RUN.sub(b" ", m.group(1)))
                    self.split[t] = (head, m.group(2).decode("utf-8", "replace").lower())
        # What the checker reads of a token without quotes: comments as blanks, operators alike.
        self.canon: list[bytes | None] = [None] * n
        for t, data in enumerate(vocab):
            if data and self.cls[t] == OTHER and not _QUOTES.search(data):
                self.canon[t] = _canonical(data)
        word_bytes = bytes(b for b in range(256) if _PURE.fullmatch(bytes((b,))))
        self.continues = {}
        for mode in (NONE, WORD, NUM, SQ_END, DQ_END, BT_END, DASH, SLASH):
            first = _CONTINUES.get(mode, b"") + (word_bytes if mode in (WORD, NUM) else b"")
            self.continues[mode] = np.isin(self.first, np.frombuffer(first, dtype=np.uint8)) if first else \
                np.zeros(n, dtype=bool)
        self.masks = {c: self.cls == c for c in range(8)}


_TABLES: dict[str, _Tables] = {}
_TABLES_LOCK = threading.Lock()


def _tables_for(vocab: Vocabulary) -> _Tables:
    with _TABLES_LOCK:
        t = _TABLES.get(vocab.fingerprint)
        if t is None:
            t = _TABLES[vocab.fingerprint] = _Tables(vocab)
        return t


class ScopedSQL(Constraint):
    """`inner`'s SQL texts minus those whose names `catalog` does not have in scope.

    inner: a compiled `tether.sql()` grammar for `vocab`. States are (inner state, Scope)
    tuples: hashable, immutable once made, free to fork."""

    def __init__(self, inner: Constraint, vocab: Vocabulary, catalog: ScopeCatalog):
        if inner.vocab is not vocab and inner.vocab.fingerprint != vocab.fingerprint:
            raise VocabularyMismatch("ScopedSQL: the inner constraint was compiled for another vocabulary")
        self.inner = inner
        self.vocab = vocab
        self.catalog = catalog
        self.limits = inner.limits
        self._setup()

    def __repr__(self) -> str:
        return f"ScopedSQL({self.inner!r}, tables={len(self.catalog.tables)})"

    def __getstate__(self) -> dict:
        return {"inner": self.inner, "vocab": self.vocab, "catalog": self.catalog, "limits": self.limits}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._setup()

    def _setup(self) -> None:
        self._t = _tables_for(self.vocab)
        self._tokens = list(self.vocab)
        self._eos = np.array(sorted(self.vocab.eos_ids), dtype=np.int64)
        self._words = bitmask_words(self.vocab.size)
        row_bytes = self._words * 4 + 300
        self._mask_limit = max(64, self.limits.mask_cache_bytes // 4 // row_bytes)
        self._masks: OrderedDict = OrderedDict()
        self._prefixes: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.mask_computations = 0

    # -- the contract

    def initial(self) -> tuple:
        return (self.inner.initial(), Scope(self.catalog))

    def _split(self, state: Any) -> tuple:
        if type(state) is not tuple or len(state) != 2 or type(state[1]) is not Scope:
            raise InvalidState(f"{state!r} is not a state of {self!r}: states come from its initial() and advance()")
        return state

    def cache_bytes(self) -> int:
        return self.inner.cache_bytes() + sum(w.nbytes for w in list(self._masks.values()))

    def is_accepting(self, state: Any) -> bool:
        s, sc = self._split(state)
        return self.inner.is_accepting(s) and _finishes(sc)

    def is_finished(self, state: Any) -> bool:
        s, sc = self._split(state)
        return self.inner.is_finished(s) and _finishes(sc)

    def parse(self, text: str) -> Any:
        return self.inner.parse(text)

    def allows(self, state: Any, token_id: int) -> bool:
        token_id = token_id if type(token_id) is int else as_token_id(token_id)
        words = self._mask_words(self._split(state))
        if not 0 <= token_id < self.vocab.size:
            return False
        return bool(words[token_id >> 5] >> (token_id & 31) & 1)

    def advance(self, state: Any, token_id: int) -> tuple:
        token_id = token_id if type(token_id) is int else as_token_id(token_id)
        s, sc = self._split(state)
        if not self.allows(state, token_id):
            raise TokenRejected(state, token_id, self.vocab[token_id] if 0 <= token_id < self.vocab.size else None)
        if token_id in self.vocab.eos_ids:
            return state
        s2 = self.inner.advance(s, token_id)
        sc2 = sc.copy()
        sc2.feed(self._tokens[token_id])
        return (s2, sc2)

    def fill_bitmask(self, state: Any, row: Any) -> None:
        words = self._mask_words(self._split(state))
        if type(row) is np.ndarray and row.dtype == np.int32 and row.shape == words.shape:
            row[...] = words
            return
        copy_into(row, words)

    # -- masks

    def _mask_words(self, state: tuple) -> np.ndarray:
        with self._lock:
            words = self._masks.get(state)
            if words is not None:
                self._masks.move_to_end(state)
                return words
        words = pack_mask(self._compute(state))
        with self._lock:
            self._masks[state] = words
            while len(self._masks) > self._mask_limit:
                self._masks.popitem(last=False)
        return words

    def _compute(self, state: tuple) -> np.ndarray:
        self.mask_computations += 1
        s, sc = state
        row = np.zeros(self._words, dtype=np.int32)
        self.inner.fill_bitmask(s, row)
        inner = unpack_bitmask(row, self.vocab.size)
        out = inner.copy()
        t = self._t
        eos = self._eos
        if eos.shape[0]:
            out[eos] = inner[eos] & _finishes(sc)
            inner = inner.copy()
            inner[eos] = False
        mode = sc.mode
        closer = _CLOSER.get(mode)
        if closer is not None:  # inside a string, quoted name or comment
            self._check_each(sc, out, np.flatnonzero(inner & ~t.lacks[closer]))
            return out
        # Tokens that go on with the lexeme in progress.
        going_on = inner & t.continues[mode]
        rest = inner & ~t.continues[mode]
        if mode == WORD:
            p = sc.buf.decode("utf-8", "replace").lower()
            refused = _refused(sc, p)
            names = self._words_from(sc, p, refused, out, going_on & t.pure & t.masks[WORDS],
                                     going_on & t.pure & t.masks[DIGIT_WORDS])
            self._check_each(sc, out, np.flatnonzero(going_on & ~t.pure), p, names)
        elif mode == NUM:
            self._check_each(sc, out, np.flatnonzero(going_on & ~t.pure))
        else:
            self._check_each(sc, out, np.flatnonzero(going_on))
        # The rest end the lexeme in progress first: from `base`, they act as from between lexemes.
        base = sc
        if mode != NONE:
            base = sc.copy()
            try:
                base.feed(b" ")
            except Refused:
                out[rest] = False
                return out
        # Blanks keep the inner verdict: from `base` they do nothing.
        names = None
        words = rest & t.masks[WORDS]
        probe = _fed(base, b"a")
        if probe is None:
            out[words] = False
        elif words.any():
            names = self._words_from(probe, "", _refused(base, ""), out, words, None)
        digits = rest & t.masks[DIGIT_WORDS]
        if digits.any() and _fed(base, b"0") is None:
            out[digits] = False
        for q, cls in _OPEN_CLASS.items():
            opens = rest & t.masks[cls]
            if opens.any() and _fed(base, q) is None:
                out[opens] = False
        self._check_each(sc, out, np.flatnonzero(rest & t.masks[OTHER]), "", names)
        return out

    def _words_from(self, sc: Scope, p: str, refused: frozenset, out: np.ndarray, words: np.ndarray,
                    digit_words: np.ndarray | None) -> None:
        """Keep the word tokens of `words` after which the word `p + token` can still become a
        name allowed at `sc` (`sc` already inside the word, or just started it with one letter),
        and that do not spell a keyword that would be refused where it ends (`refused`)."""
        names = sc.word_names()
        if names is None:
            by_word = self._t.by_word
            for kw in refused:
                ids = by_word.get(kw[len(p):]) if len(kw) > len(p) else None
                if ids:
                    sel = np.array(ids, dtype=np.int64)
                    out[sel[words[sel]]] = False
            return None
        names = names - refused
        keep = self._prefix_ids(names, p)
        allowed = np.zeros_like(words)
        if keep.shape[0]:
            allowed[keep] = True
        out[words & ~allowed] = False
        if digit_words is not None:  # digits inside a word (T1, col2)
            ids = np.flatnonzero(digit_words)
            if ids.shape[0]:
                bad = [i for i in ids.tolist() if not _viable(names, p + self._tokens[i].decode("utf-8", "replace").lower())]
                out[bad] = False
        return names

    def _prefix_ids(self, names: frozenset, p: str) -> np.ndarray:
        key = (names, p)
        with self._lock:
            got = self._prefixes.get(key)
        if got is not None:
            return got
        by_word = self._t.by_word
        ids: list[int] = []
        for name in names:
            if len(name) > len(p) and name.startswith(p):
                rest = name[len(p):]
                for k in range(1, len(rest) + 1):
                    found = by_word.get(rest[:k])
                    if found:
                        ids.extend(found)
        got = np.unique(np.array(ids, dtype=np.int64))
        with self._lock:
            self._prefixes[key] = got
            while len(self._prefixes) > 4096:
                self._prefixes.popitem(last=False)
        return got

    def _check_each(self, sc: Scope, out: np.ndarray, ids: np.ndarray, p: str = "",
                    names: frozenset | None = None) -> None:
        """Run the checker over each token of `ids` (refusing those it refuses). A token whose
        first word ends inside it (`name,`) is refused unseen when `p` + that word is not in
        `names` (the words allowed where it starts). In a string or comment, only the bytes from
        the closing character on matter, so tokens that agree there are checked once."""
        tokens, lead, split, canon = self._tokens, self._t.lead, self._t.split, self._t.canon
        closer = _CLOSER.get(sc.mode) if sc.mode in (SQ, LINE, BLOCK, BLOCK_STAR) else None
        verdicts: dict[bytes, bool] = {}
        after: dict[bytes, tuple] = {}  # other bytes -> (state after them, words allowed next)
        for t in ids.tolist():
            data = tokens[t]
            if names is not None:
                w = lead[t]
                if w is not None and p + w not in names:
                    out[t] = False
                    continue
            if closer is not None:
                data = data[data.index(closer):]
            elif split[t] is not None:  # decided from what the bytes before its word leave
                head, word = split[t]
                got = after.get(head)
                if got is None:
                    got = after[head] = _after(sc, head)
                if not _word_ok(got, word):
                    out[t] = False
                continue
            elif canon[t] is not None:
                data = canon[t]
            ok = verdicts.get(data)
            if ok is None:
                ok = verdicts[data] = _token_ok(sc, data)
            if not ok:
                out[t] = False


def _fed(sc: Scope, data: bytes) -> Scope | None:
    s = sc.copy()
    try:
        s.feed(data)
    except Refused:
        return None
    return s


def _token_ok(sc: Scope, data: bytes) -> bool:
    s = _fed(sc, data)
    if s is None:
        return False
    if s.mode == WORD:  # a word left unfinished: it must be able to end well
        p = s.buf.decode("utf-8", "replace").lower()
        names = s.word_names()
        if names is not None and not _viable(names, p):
            return False
        if p in _CHECKED and p in _refused(s, p):
            return names is not None and any(n != p and n.startswith(p) for n in names)
    return True


def _after(sc: Scope, head: bytes) -> tuple:
    """(state after `head` or None if refused, state after a word starts there or None, the
    words allowed there)."""
    s = _fed(sc, head)
    if s is None:
        return (None, None, None)
    w = _fed(s, b"a")
    return (s, w, w.word_names() if w is not None else None)


def _word_ok(got: tuple, word: str) -> bool:
    """What `_token_ok` says of head + word, from `_after(sc, head)`."""
    s, w, names = got
    if s is None:
        return False
    if not word:
        return True
    if word[0] in "0123456789":
        return _fed(s, b"0") is not None
    if w is None:
        return False
    if names is not None and not _viable(names, word):
        return False
    if word in _CHECKED and _fed(s, word.encode() + b" ") is None:
        return names is not None and any(n != word and n.startswith(word) for n in names)
    return True


# Keywords that the checker may refuse where they end (they close a FROM clause or a select).
_CHECKED = frozenset(("from", "where", "group", "having", "order", "limit", "window", "union", "intersect", "except",
                      "join", "on", "using", "natural", "left", "right", "full", "inner", "cross", "over", "offset"))


def _refused(sc: Scope, p: str) -> frozenset:
    """The keywords of _CHECKED starting with `p` that would be refused if written out from `sc`
    (inside the word `p`, or between lexemes for p == "")."""
    out = []
    for kw in _CHECKED:
        if kw.startswith(p) and _fed(sc, kw[len(p):].encode() + b" ") is None:
            out.append(kw)
    return frozenset(out)


_SORTED: OrderedDict = OrderedDict()


def _viable(names: frozenset, p: str) -> bool:
    """Whether some name starts with `p` (a binary search in the sorted names)."""
    ordered = _SORTED.get(names)
    if ordered is None:
        ordered = _SORTED[names] = sorted(names)
        if len(_SORTED) > 256:
            _SORTED.popitem(last=False)
    i = bisect.bisect_left(ordered, p)
    return i < len(ordered) and ordered[i].startswith(p)


def _finishes(sc: Scope) -> bool:
    s = sc.copy()
    try:
        s.finish()
    except Refused:
        return False
    return True
