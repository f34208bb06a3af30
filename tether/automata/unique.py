"""JSON Schema `uniqueItems`, enforced while generating: a Constraint that wraps a JSON one.

    >>> inner = tether.json_schema({"type": "array", "items": {"type": "integer"}}).compile(vocab)
    >>> c = UniqueItems(inner, vocab, frozenset({()}))   # the top-level array has unique items
    >>> c.allows(c.advance_many(c.initial(), vocab.encode_greedy("[1,2,1")), comma_id)
    False

The language is the inner constraint's (JSON texts) minus the texts in which an array at one of
`paths` has two equal items. A path is a tuple of object keys (str) and array positions: `None`
for any index, an int for that index only; `()` is the top-level value, `("tags",)` the array at
key "tags" of the top-level object, `(None, "ids")` the array at key "ids" of every element of
the top-level array. Equality is JSON's: `1 == 1.0`, `true != 1`, objects regardless of key order,
strings after decoding escapes.

How: a state is (inner state, scanner state). The scanner reads the output bytes incrementally
(tokens may split characters, escapes and numbers) and keeps a persistent stack of the open
containers whose paths still matter, each unique array with the canonical keys of its finished
items and the raw bytes of the item in progress (decoded with `json.loads` when it is done).

What is refused, so that no duplicate can be written and generation does not paint itself
into a corner:
  1. a token after which an item of a unique array is complete and equal to an earlier one:
     its value closed (a string, a container, a number or literal followed by a delimiter), or
     the item ended by `,` / `]` (refusing only these would be sound, but `["a","a"` would then
     be a dead end);
  2. a token after which some item in progress, closed the simplest way (its open string
     quoted, its open containers closed), equals an earlier item, and every way the inner
     constraint lets the text go on (searched byte by byte, a few dozen steps and a dozen
     choices a step at most) makes it a duplicate. So `[0,` then `0` (nothing can follow 0 in
     an integer), `["2024-01-01","2024-01-0` then `1` (a date must end there), `[5,10,1` then
     `0` under `maximum: 10`, `[{"ok":true},{"ok":` then `t` (with no other property), are
     refused where the duplicate becomes unavoidable, not where it ends.

Tokens that could do either are found per state without walking the vocabulary: the tokens
whose bytes can end a value in the current lexical mode (precomputed once per vocabulary), and
the few that spell the rest of an earlier item, found from the earlier items that the item in
progress can still become (the rest of a string, the shortest way or as an escape; the digits
of a number). Every other token keeps the inner verdict, so a mask inside a unique array is the
inner mask plus a check of tens of tokens (a few hundred in a fraction); masks are cached per
state, and steps per (state, token).

Known gaps (they only cost completeness: nothing outside the language is ever allowed):
  * a finite item domain exhausted by unique items (booleans, enums, small integer ranges with
    `minItems` or a model that keeps going) is a dead end: the compiler must handle those;
  * so is a prefix all of whose continuations are earlier items when no simple closing of it
    is one, or when the search is cut short: `[{"a":2,"b":true},{"a":2,"b":false},{"a":2,"b":`
    (the prefix `{"a":2` does not close into an earlier item), `[9,9` under `maximum: 9` for a
    number (9.0, 9.00, ... are all 9: generation can go on writing zeros);
  * tokens of whitespace alone are not checked: where the inner constraint's whitespace limit
    (`MAX_WHITESPACE`) leaves only the closing of a duplicate (`[[],[` and 20 blanks), it is
    a dead end;
  * an earlier string's rest spelled through escapes of ordinary characters split over tokens
    (`\\u00` then `61`), or a forced continuation that adds content (a const property), is not
    looked through.
"""

from __future__ import annotations

import bisect
import json
import re
import threading
from collections import OrderedDict
from decimal import Decimal
from typing import Any, Hashable, Iterable

import numpy as np

from ..errors import InvalidState, TokenRejected, VocabularyMismatch
from ..limits import DEFAULT_LIMITS
from ..vocab import Vocabulary
from .bitmask import bitmask_words
from .constraint import Constraint
from .stepping import as_token_id, copy_into

__all__ = ["UniqueItems", "item_key"]

# Lexical modes of the scanner.
OUT, STR, ESC, BARE = 0, 1, 2, 3
# Frame kinds: a container whose path matters (array / object), or one whose doesn't.
ARR, OBJ, SKIP = 0, 1, 2

_WS = frozenset(b" \t\n\r")
_BARE = frozenset(b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.+-")
_STR_SPECIAL = re.compile(rb'["\\]')
_BARE_RUN = re.compile(rb"[0-9A-Za-z.+\-]*")
_LITERALS = (b"true", b"false", b"null")

# From outside a string, a token is "quiet" (can end no value) if it is whitespace, then at
# most a string opened and not closed; a number token is a scalar start (see _Tables).
_OUT_QUIET = re.compile(rb'[ \t\n\r]*(?:"(?:[^"\\]|\\.)*\\?)?', re.S)
_OUT_NUMBER = re.compile(rb"[ \t\n\r]*[0-9\-][0-9.eE+\-]*")
_NUMBER_TOKEN = re.compile(rb"[0-9.eE+\-]+")
# Inside a string: a token that closes the string and then may end an item (`,` or `]` after
# a quote) must always be checked; one that closes it otherwise is checked when the string
# can be an earlier item's (see _targets).
_STR_ENDS_ITEM = re.compile(rb'"[^,\]]*[,\]]', re.S)
# ... and "simple" when it spells no escape before the quote, then only whitespace and closing
# brackets, then at most a ',' and a quiet rest: what it does to the item then depends only on
# the string's value, so it needs checking only when that value is an earlier item's (targets).
_SIMPLE_CLOSE = re.compile(rb'[^"\\]*"[ \t\n\r}\]]*(?:,(.*))?', re.S)


# Outside unique arrays, only a token that opens an array and then ends an item in it can do
# anything to uniqueness.
_OPENS_AND_ENDS = re.compile(rb"\[.*[,\]]", re.S)
_CLOSES_OPENS_AND_ENDS = re.compile(rb'".*\[.*[,\]]', re.S)  # from inside a string


def _simple_close(data: bytes) -> bool:
    m = _SIMPLE_CLOSE.fullmatch(data)
    return m is not None and (m.group(1) is None or _OUT_QUIET.fullmatch(m.group(1)) is not None)


_SENTINEL = "\x00\ufdd0tether-unique-items\ufdd1"
_SENTINEL_JSON = json.dumps(_SENTINEL).encode()
_INVALID = object()
_TRUE, _FALSE, _NULL = ("t",), ("f",), ("z",)
_CACHE_ENTRIES = 1 << 16  # bound of each small dict cache (canonical items, targets, steps)


# ----------------------------------------------------------------------------------------------
# JSON value equality
# ----------------------------------------------------------------------------------------------


def _canon(v: Any) -> Hashable:
    """A hashable key equal for JSON-equal values: numbers as Decimal, bools and null tagged (so
    `true != 1`), arrays as ('a', items), objects as ('o', frozenset of (key, value))."""
    t = type(v)
    if t is str or t is Decimal or t is tuple:
        return v
    if t is bool:
        return _TRUE if v else _FALSE
    if v is None:
        return _NULL
    if t is list:
        return ("a", tuple(map(_canon, v)))
    if t is dict:
        return ("o", frozenset((k, _canon(x)) for k, x in v.items()))
    if t is int or t is float:
        return Decimal(repr(v)) if t is float else Decimal(v)
    raise TypeError(f"not a JSON value: {type(v).__name__}")


def _number(text: str) -> Any:
    try:
        return Decimal(text)
    except ArithmeticError:  # an exponent past what Decimal holds (1e99999999999999999999)
        return ("#", text.lower())


_DECODER = json.JSONDecoder(parse_float=_number, parse_int=_number)
_PLAIN_NUMBER = re.compile(rb"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+\-]?[0-9]+)?")


def _simplest_tail(mode: int, buf: bytes, sstart: int) -> bytes:
    """The bytes that close the scalar in progress the simplest way: a quote for a string, the
    rest of a literal (true/false/null), nothing for a number or outside scalars."""
    if mode == STR:
        return b'"'
    if mode == BARE:
        word = buf[sstart:] if sstart >= 0 else b""
        for lit in _LITERALS:
            if lit.startswith(word):
                return lit[len(word):]
    return b""


def item_key(text: str | bytes) -> Hashable:
    """The equality key of a JSON text (`item_key("1") == item_key("1.0")`).

    Raises ValueError for a text that is not JSON."""
    if type(text) is bytes:
        t = text.strip(b" \t\n\r")
        if len(t) >= 2 and t[0] == 34 and t[-1] == 34 and 92 not in t and 34 not in t[1:-1]:
            return t[1:-1].decode("utf-8")  # a string without escapes: the common item
        if _PLAIN_NUMBER.fullmatch(t):
            return _number(t.decode())
        text = text.decode("utf-8")
    return _canon(_DECODER.decode(text))


_RENDERED: dict = {}


def _render(s: str) -> bytes:
    """A string's shortest JSON spelling, without the quotes."""
    got = _RENDERED.get(s)
    if got is None:
        got = json.dumps(s, ensure_ascii=False)[1:-1].encode("utf-8", "surrogatepass")
        if len(_RENDERED) > _CACHE_ENTRIES:
            _RENDERED.clear()
        _RENDERED[s] = got
    return got


_RENDERINGS: dict = {}


def _renderings(n: Decimal) -> list[bytes]:
    """The usual spellings of a number: '0' and '-0' for zero, digits for an integer."""
    got = _RENDERINGS.get(n)
    if got is None:
        got = _renderings_of(n)
        if len(_RENDERINGS) > _CACHE_ENTRIES:
            _RENDERINGS.clear()
        _RENDERINGS[n] = got
    return got


def _renderings_of(n: Decimal) -> list[bytes]:
    if n == 0:
        return [b"0", b"-0"]
    sign, digits, exp = n.as_tuple()
    d = "".join(map(str, digits)).lstrip("0") or "0"
    while len(d) > 1 and d[-1] == "0":
        d, exp = d[:-1], exp + 1
    if len(d) + abs(exp) > 400:
        return []
    if exp >= 0:
        text = d + "0" * exp
    elif -exp < len(d):
        text = d[:exp] + "." + d[exp:]
    else:
        text = "0." + "0" * (-exp - len(d)) + d
    return [(("-" if sign else "") + text).encode()]


def _match(p: Any, v: Any, out: list) -> bool:
    """Whether value key `v` equals pattern key `p` except at the sentinel; what stands there
    in `v` is appended to `out`."""
    if p == _SENTINEL:
        out.append(v)
        return True
    if type(p) is not type(v):
        return False
    if type(p) is tuple:
        if len(p) != len(v) or p[0] != v[0]:
            return False
        if p[0] == "a":
            return len(p[1]) == len(v[1]) and all(_match(a, b, out) for a, b in zip(p[1], v[1]))
        if p[0] == "o":
            dp, dv = dict(p[1]), dict(v[1])
            return dp.keys() == dv.keys() and all(_match(x, dv[k], out) for k, x in dp.items())
    return p == v


# ----------------------------------------------------------------------------------------------
# Per-vocabulary tables
# ----------------------------------------------------------------------------------------------


class _Tables:
    """What the wrapper needs of a vocabulary, computed once per vocabulary fingerprint."""

    def __init__(self, vocab: Vocabulary):
        size = vocab.size
        words = bitmask_words(size)
        ev = [np.zeros(size, dtype=bool) for _ in range(4)]
        number = np.zeros(size, dtype=bool)
        out_number = np.zeros(size, dtype=bool)
        simple = np.zeros(size, dtype=bool)
        opener = [np.zeros(size, dtype=bool) for _ in range(4)]
        blank = np.zeros(size, dtype=bool)
        first = np.full(size, 256, dtype=np.int16)
        self.by_bytes: dict[bytes, Any] = {}
        self.byte_token = [-1] * 256
        for t, data in enumerate(vocab):
            if not data:
                continue
            first[t] = data[0]
            self.by_bytes.setdefault(data, []).append(t)
            if len(data) == 1 and self.byte_token[data[0]] < 0:
                self.byte_token[data[0]] = t
            if _OUT_NUMBER.fullmatch(data):
                out_number[t] = True
            elif not _OUT_QUIET.fullmatch(data):
                ev[OUT][t] = True
            if _NUMBER_TOKEN.fullmatch(data):
                number[t] = True
            if any(b not in _BARE for b in data):
                ev[BARE][t] = True
            if _STR_ENDS_ITEM.search(data):
                if _simple_close(data):
                    simple[t] = True
                else:
                    ev[STR][t] = True
            if _STR_ENDS_ITEM.search(data, 1):
                ev[ESC][t] = True
            if _OPENS_AND_ENDS.search(data):
                opener[OUT][t] = opener[BARE][t] = True
                if _CLOSES_OPENS_AND_ENDS.search(data):
                    opener[STR][t] = True
                if _CLOSES_OPENS_AND_ENDS.search(data, 1):
                    opener[ESC][t] = True
            if not data.strip(b" \t\n\r"):
                blank[t] = True
        # tuples, not lists: 100k lists would be 100k more objects for every full GC to visit
        self.by_bytes = {data: tuple(ids) for data, ids in self.by_bytes.items()}
        self.size, self.words = size, words
        self.ev = ev
        self.ev_words = [_pack(e, words) for e in ev]
        self.simple = simple
        self.simple_words = _pack(simple, words)
        self.opener = opener
        self.opener_words = [_pack(o, words) for o in opener]
        self.blank = blank
        self.blank_words = _pack(blank, words)
        self.first = first
        frac = number & np.array([bool(d) and any(c in b".eE" for c in d) for d in vocab], dtype=bool)
        self.number = number
        self.number_ids = np.flatnonzero(number).astype(np.int64)
        self.frac_ids = np.flatnonzero(frac).astype(np.int64)
        order = sorted((data, t) for t, data in enumerate(vocab) if data)
        self.sorted_bytes = [data for data, _ in order]
        self.sorted_ids = np.array([t for _, t in order], dtype=np.int64)

    def subtree(self, prefix: bytes) -> np.ndarray:
        """Ids of the tokens that start with `prefix` (a range of the tokens in byte order)."""
        keys = self.sorted_bytes
        lo = bisect.bisect_left(keys, prefix)
        upper = prefix.rstrip(b"\xff")
        hi = bisect.bisect_left(keys, upper[:-1] + bytes((upper[-1] + 1,))) if upper else len(keys)
        return self.sorted_ids[lo:hi]


def _pack(mask: np.ndarray, words: int) -> np.ndarray:
    padded = np.zeros(words * 32, dtype=bool)
    padded[: mask.shape[0]] = mask
    return np.packbits(padded.reshape(-1, 32), axis=1, bitorder="little").view("<u4").reshape(-1).copy()


_TABLES: OrderedDict[str, _Tables] = OrderedDict()
_TABLES_LOCK = threading.Lock()


def _tables_for(vocab: Vocabulary) -> _Tables:
    with _TABLES_LOCK:
        tables = _TABLES.get(vocab.fingerprint)
        if tables is not None:
            _TABLES.move_to_end(vocab.fingerprint)
            return tables
    tables = _Tables(vocab)
    with _TABLES_LOCK:
        _TABLES[vocab.fingerprint] = tables
        while len(_TABLES) > 4:
            _TABLES.popitem(last=False)
    return tables


def _bits_of(words: np.ndarray) -> np.ndarray:
    """Ids of the set bits of packed uint32 words (only the nonzero words are unpacked)."""
    nz = np.flatnonzero(words != 0)
    if not nz.shape[0]:
        return nz
    bits = np.unpackbits(np.ascontiguousarray(words[nz]).view(np.uint8), bitorder="little").reshape(-1, 32)
    r, col = np.nonzero(bits)
    return nz[r] * 32 + col


def _check_paths(paths: Iterable) -> frozenset:
    out = []
    for p in paths:
        if not isinstance(p, tuple):
            raise TypeError(f"a uniqueItems path must be a tuple of keys and indices, got {p!r}")
        for c in p:
            if not (c is None or type(c) is str or type(c) is int):
                raise TypeError(f"path {p!r}: each step must be a str key, an int index or None, got {c!r}")
        out.append(p)
    return frozenset(out)


class _Bounded(dict):
    """A dict that forgets everything when it grows past `limit` (cheap, and enough for
    caches whose entries recur within a short window)."""

    __slots__ = ("limit",)

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit

    def put(self, key, value):
        if len(self) >= self.limit:
            self.clear()
        self[key] = value


# ----------------------------------------------------------------------------------------------
# The constraint
# ----------------------------------------------------------------------------------------------

# Scanner state: (mode, stack, buf, sstart, kbuf)
#   mode   OUT / STR / ESC / BARE
#   stack  tuple of frames, innermost last:
#            (ARR, depth, live, uniq, seen, istart, idx, outer)
#            (OBJ, depth, live, key, phase)        phase 0: a key comes next, 1: after its ':'
#            (SKIP, closer)                        a container no path goes through
#          depth = length of the container's path; live = the paths that go strictly below it;
#          uniq = its own path is unique; seen = keys of its finished items; istart = where its
#          item in progress starts in buf; idx = its element index (-1 when no path names one);
#          outer = it started the capture
#   buf    the bytes since the outermost open unique array's item in progress started (None
#          when no unique array is open)
#   sstart where the scalar in progress starts in buf (-1 if none or not capturing)
#   kbuf   raw bytes of an object key in progress (None if not in a key)
_START = (OUT, (), None, -1, None)
_REJECT = None


class UniqueItems(Constraint):
    """`inner`'s language minus the texts with equal items in an array at one of `paths`.

    inner: a constraint whose texts are JSON (a compiled `tether.json_schema`), compiled for
        `vocab`. paths: tuples of keys (str), `None` (any array index) or int (one index),
        `()` for the top-level value; a path that names no array constrains nothing.
    States are (inner state, scanner state) tuples: hashable, immutable, free to fork.
    See the module docstring for how duplicates are kept out and what is not guaranteed.
    """

    def __init__(self, inner: Constraint, vocab: Vocabulary, paths: Iterable[tuple]):
        if inner.vocab is not vocab and inner.vocab.fingerprint != vocab.fingerprint:
            raise VocabularyMismatch("UniqueItems: the inner constraint was compiled for another vocabulary")
        self.inner = inner
        self.vocab = vocab
        self.paths = _check_paths(paths)
        self.limits = getattr(inner, "limits", DEFAULT_LIMITS)
        self._setup()

    def __repr__(self) -> str:
        return f"UniqueItems({self.inner!r}, paths={sorted(self.paths, key=repr)})"

    def __getstate__(self) -> dict:
        return {"inner": self.inner, "vocab": self.vocab, "paths": self.paths, "limits": self.limits}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._setup()

    def _setup(self) -> None:
        self._t = _tables_for(self.vocab)
        self._eos = frozenset(self.vocab.eos_ids)
        self._tokens = list(self.vocab)
        self._words = bitmask_words(self.vocab.size)
        self._children: dict = {}
        self._root = self._child(tuple(sorted(self.paths, key=repr)), 0, None, root=True)
        self._steps = _Bounded(max(4096, self.limits.mask_cache_bytes // 8 // 256))
        self._canons = _Bounded(_CACHE_ENTRIES)
        self._targets_cache = _Bounded(_CACHE_ENTRIES // 4)
        self._captures = _Bounded(_CACHE_ENTRIES // 4)
        self._escape_cache = _Bounded(_CACHE_ENTRIES // 4)
        self._first = _Bounded(_CACHE_ENTRIES // 4)
        self._searches = _Bounded(_CACHE_ENTRIES // 4)
        row_bytes = self._words * 4 + 200
        self._mask_limit = max(64, self.limits.mask_cache_bytes // 4 // row_bytes)
        self._masks: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.mask_computations = 0

    # -- the contract

    def initial(self) -> tuple:
        return (self.inner.initial(), _START)

    def _split(self, state: Any) -> tuple:
        if type(state) is not tuple or len(state) != 2 or type(state[1]) is not tuple or len(state[1]) != 5:
            raise InvalidState(f"{state!r} is not a state of {self!r}: states come from its initial() and advance()")
        return state

    def cache_bytes(self) -> int:
        return self.inner.cache_bytes() + sum(w.nbytes for w in list(self._masks.values()))

    def is_accepting(self, state: Any) -> bool:
        return self.inner.is_accepting(self._split(state)[0])

    def is_finished(self, state: Any) -> bool:
        return self.inner.is_finished(self._split(state)[0])

    def parse(self, text: str) -> Any:
        return self.inner.parse(text)

    def allows(self, state: Any, token_id: int) -> bool:
        token_id = token_id if type(token_id) is int else as_token_id(token_id)
        nxt = self._steps.get((state, token_id))
        if nxt is not None:
            return nxt is not _REJECTED
        s, sc = self._split(state)
        if token_id in self._eos:
            return self.inner.allows(s, token_id)
        if not self.inner.allows(s, token_id):
            return False
        if not self._candidate(sc, token_id):
            return True
        words = self._masks.get(state)  # the verdict of a mask already computed
        if words is not None:
            return bool(words[token_id >> 5] >> (token_id & 31) & 1)
        return self._compute_step(state, token_id) is not _REJECTED

    def advance(self, state: Any, token_id: int) -> tuple:
        token_id = token_id if type(token_id) is int else as_token_id(token_id)
        nxt = self._steps.get((state, token_id))
        if nxt is None:
            s, sc = self._split(state)
            if token_id in self._eos:
                self.inner.advance(s, token_id)  # raises unless accepting
                return state
            nxt = self._step(state, token_id)
        if nxt is _REJECTED:
            raise TokenRejected(state, token_id, self.vocab[token_id])
        return nxt

    def fill_bitmask(self, state: Any, row: Any) -> None:
        s, sc = self._split(state)
        words = self._masks.get(state)
        if words is None:
            if sc[2] is None:  # no unique array open: the inner mask, unless a token opens one
                words = np.zeros(self._words, dtype=np.int32)  # and holds a duplicate already
                self.inner.fill_bitmask(s, words)
                u = words.view(np.uint32)
                hits = u & self._t.opener_words[sc[0]]
                if hits.any():
                    for t in _bits_of(hits).tolist():
                        if self._compute_step(state, t) is _REJECTED:
                            u[t >> 5] &= ~np.uint32(1 << (t & 31))
            else:
                words = self._mask_words(state)
        if type(row) is np.ndarray and row.dtype == np.int32 and row.shape == words.shape:
            row[...] = words
            return
        copy_into(row, words)

    # -- steps

    def _step(self, state: tuple, token_id: int) -> Any:
        """The state after a non-EOS token, or _REJECTED; memoised (for the tokens taken: the
        verdicts of the others are in the cached masks)."""
        key = (state, token_id)
        nxt = self._steps.get(key)
        if nxt is None:
            nxt = self._compute_step(state, token_id)
            self._steps.put(key, nxt)
        return nxt

    def _compute_step(self, state: tuple, token_id: int) -> Any:
        s, sc = state
        try:
            s2 = self.inner.advance(s, token_id)
        except TokenRejected:
            nxt = _REJECTED
        else:
            sc2 = self._feed(sc, self._tokens[token_id])
            if sc2 is _REJECT:
                nxt = _REJECTED
            elif self._candidate(sc, token_id) and sc2[2] is not None \
                    and (self._pending(sc2) or self._in_escape(sc2)) and self._only_duplicates(sc2, s2):
                nxt = _REJECTED
            else:
                nxt = (s2, sc2)
        return nxt

    def _candidate(self, sc: tuple, t: int) -> bool:
        """Whether token t may complete or force an earlier item from scanner state sc (every
        other token keeps the inner verdict)."""
        tables = self._t
        if sc[2] is None:
            return bool(tables.opener[sc[0]][t])
        if tables.ev[sc[0]][t]:
            return True
        targets = self._targets(sc)
        if sc[0] == STR and not targets.exact and tables.simple[t]:
            return True
        if targets.blanks and tables.blank[t]:
            return True
        return t in targets

    # -- masks

    def _mask_words(self, state: tuple) -> np.ndarray:
        s, sc = state
        words = np.zeros(self._words, dtype=np.int32)
        self.inner.fill_bitmask(s, words)
        u = words.view(np.uint32)
        tables = self._t
        targets = self._targets(sc)
        lexical = tables.ev_words[sc[0]]
        if sc[0] == STR and not targets.exact:
            lexical = lexical | tables.simple_words
        if targets.blanks:
            lexical = lexical | tables.blank_words
        ids = _bits_of(u & lexical).tolist()
        target_ids = targets.ids
        if target_ids.shape[0]:
            allowed = (u[target_ids >> 5] >> (target_ids & 31).astype(np.uint32)) & 1
            ids = set(ids)
            ids.update(target_ids[allowed.astype(bool)].tolist())
        steps = self._steps
        for t in ids:  # not memoised: the mask keeps the verdicts, and the states would only
            nxt = steps.get((state, t))  # burden the garbage collector
            if nxt is None:
                nxt = self._compute_step(state, t)
            if nxt is _REJECTED:
                u[t >> 5] &= ~np.uint32(1 << (t & 31))
        with self._lock:
            self.mask_computations += 1
            self._masks[state] = words
            while len(self._masks) > self._mask_limit:
                self._masks.popitem(last=False)
        return words

    # -- the scanner

    def _child(self, live: tuple, depth: int, comp: Any, root: bool = False) -> tuple:
        """(uniq, live, track) of a container at step `comp` below a container whose path has
        length `depth` and whose live paths are `live`: comp is a key (str), an index (int),
        or None for an element of an array that no path names by index."""
        key = (live, depth, comp, root)
        got = self._children.get(key)
        if got is not None:
            return got
        if root:
            here, d = live, 0
        elif type(comp) is str:
            here = tuple(p for p in live if type(p[depth]) is str and p[depth] == comp)
            d = depth + 1
        elif comp is None or type(comp) is int:  # an array element
            here = tuple(p for p in live if p[depth] is None or (type(p[depth]) is int and p[depth] == comp))
            d = depth + 1
        else:
            here, d = (), depth + 1
        uniq = any(len(p) == d for p in here)
        below = tuple(p for p in here if len(p) > d)
        track = any(type(p[d]) is int for p in below)
        got = (uniq, below, track)
        self._children[key] = got
        return got

    def _canon_of(self, text: bytes) -> Any:
        got = self._canons.get(text)
        if got is None:
            try:
                got = item_key(text)
            except (ValueError, RecursionError):
                got = _INVALID
            self._canons.put(text, got)
        return got

    def _feed(self, sc: tuple, data: bytes) -> Any:
        """The scanner state after `data`, or _REJECT if an item of a unique array completes
        equal to an earlier one (at the `,` or `]` after it)."""
        mode, stack, buf, sstart, kbuf = sc
        cap = buf is not None
        # the common cases first: more of a string, of a number or literal, or of blanks
        if mode == STR:
            if kbuf is None and _STR_SPECIAL.search(data) is None:
                return (STR, stack, buf + data if cap else None, sstart, None)
        elif mode == BARE:
            if _BARE_RUN.fullmatch(data):
                return (BARE, stack, buf + data if cap else None, sstart, kbuf)
        elif mode == OUT and not data.strip(b" \t\n\r"):
            return (OUT, stack, buf + data if cap else None, sstart, kbuf)
        full = buf + data if cap else data
        base = 0
        i = len(buf) if cap else 0
        n = len(full)
        stack = list(stack)
        while i < n:
            if mode == STR:
                m = _STR_SPECIAL.search(full, i)
                j = m.start() if m else n
                if kbuf is not None:
                    kbuf += full[i:j]
                if j == n:
                    break
                if full[j] == 92:
                    if kbuf is not None:
                        kbuf += b"\\"
                    mode, i = ESC, j + 1
                    continue
                mode, i = OUT, j + 1
                if kbuf is not None:
                    top = stack[-1]
                    try:
                        key = json.loads(b'"' + kbuf + b'"')
                    except ValueError:
                        key = None
                    stack[-1] = (OBJ, top[1], top[2], key, 0)
                    kbuf = None
                continue
            if mode == ESC:
                if kbuf is not None:
                    kbuf += full[i:i + 1]
                mode, i = STR, i + 1
                continue
            b = full[i]
            if mode == BARE:
                if b in _BARE:
                    i = _BARE_RUN.match(full, i).end()
                    continue
                mode = OUT
            if b in _WS:
                i += 1
                continue
            top = stack[-1] if stack else None
            if b == 34:  # '"'
                mode = STR
                if cap:
                    sstart = i
                if top is not None and top[0] == OBJ and top[4] == 0:
                    kbuf = b""
            elif b == 44:  # ','
                if top is None:
                    pass
                elif top[0] == ARR:
                    seen, istart = top[4], top[5]
                    if top[3]:
                        k = self._canon_of(full[istart:i])
                        if k in seen:
                            return _REJECT
                        if k is not _INVALID:
                            seen = seen | {k}
                        istart = i + 1
                        if top[7]:
                            base = i + 1
                    stack[-1] = (ARR, top[1], top[2], top[3], seen, istart, top[6] + 1 if top[6] >= 0 else -1, top[7])
                elif top[0] == OBJ:
                    stack[-1] = (OBJ, top[1], top[2], None, 0)
                sstart = -1
            elif b == 58:  # ':'
                if top is not None and top[0] == OBJ:
                    stack[-1] = (OBJ, top[1], top[2], top[3], 1)
            elif b == 91 or b == 123:  # '[' '{'
                self._push(stack, b)
                f = stack[-1]
                if f[0] == ARR and f[3]:
                    if not cap:
                        cap, base = True, i + 1
                        stack[-1] = f[:5] + (i + 1, f[6], True)
                    else:
                        stack[-1] = f[:5] + (i + 1, f[6], False)
                sstart = -1
            elif b == 93 or b == 125:  # ']' '}'
                if top is not None:
                    stack.pop()
                    if top[0] == ARR and top[3]:
                        item = full[top[5]:i]
                        if item.strip() and self._canon_of(item) in top[4]:
                            return _REJECT
                        if top[7]:
                            cap = False
                sstart = -1
            else:  # a number or a literal starts
                mode = BARE
                if cap:
                    sstart = i
                i = _BARE_RUN.match(full, i).end()
                continue
            i += 1
        if not cap:
            return (mode, tuple(stack), None, -1, kbuf)
        if base:
            for k, f in enumerate(stack):
                if f[0] == ARR and f[3]:
                    stack[k] = f[:5] + (f[5] - base,) + f[6:]
            if sstart >= 0:
                sstart -= base
        return (mode, tuple(stack), full[base:], sstart, kbuf)

    def _push(self, stack: list, b: int) -> None:
        """Push the container that byte b ('[' or '{') opens, with its path's verdict."""
        top = stack[-1] if stack else None
        closer = b"]" if b == 91 else b"}"
        if top is None:
            uniq, live, track = self._root
            depth = 0
        elif top[0] == SKIP:
            stack.append((SKIP, closer))
            return
        else:
            if top[0] == ARR:
                comp = top[6] if top[6] >= 0 else None
            else:
                comp = top[3] if top[4] == 1 else _INVALID
            uniq, live, track = self._child(top[2], top[1], comp) if top[2] else (False, (), False)
            depth = top[1] + 1
        if b == 91 and (uniq or live):
            stack.append((ARR, depth, live, uniq, frozenset(), -1, 0 if track else -1, False))
        elif b == 123 and live:
            stack.append((OBJ, depth, live, None, 0))
        else:
            stack.append((SKIP, closer))

    # -- looking ahead

    def _closures(self, sc: tuple, placeholder: bytes | None = None):
        """For each unique array with an item in progress: (frame, the item text closed in the
        simplest way). With `placeholder`, the scalar in progress (or the value about to start)
        is replaced by it."""
        mode, stack, buf, sstart, kbuf = sc
        if buf is None or kbuf is not None or (mode == ESC and placeholder is None):
            return
        if placeholder is None:
            end = len(buf)
            tail = _simplest_tail(mode, buf, sstart)
        else:
            end = sstart if mode != OUT and sstart >= 0 else len(buf)
            if mode != OUT and sstart < 0:
                return
            tail = placeholder
        closers = b""
        for f in reversed(stack):
            kind = f[0]
            if kind == ARR:
                if f[3]:
                    yield f, buf[f[5]:end] + tail + closers
                closers += b"]"
            elif kind == OBJ:
                closers += b"}"
            else:
                closers += f[1]

    @staticmethod
    def _in_escape(sc: tuple) -> bool:
        """Whether the scanner is inside an escape of a string in a unique array's item (where
        the simplest closure is not JSON, so _pending cannot tell)."""
        mode, buf, sstart = sc[0], sc[2], sc[3]
        if buf is None or sc[4] is not None:
            return False
        if mode == ESC:
            return True
        return mode == STR and 92 in buf[sstart + 1:] and _split_escape(buf[sstart + 1:], False)[1] is not None

    def _pending(self, sc: tuple) -> bool:
        """Whether some item in progress, closed in the simplest way, equals an earlier one
        (what `_closures` yields, inlined: this runs for every candidate token)."""
        mode, stack, buf, sstart, kbuf = sc
        if buf is None or kbuf is not None or mode == ESC:
            return False
        tail = _simplest_tail(mode, buf, sstart)
        closers = b""
        canon = self._canon_of
        for f in reversed(stack):
            kind = f[0]
            if kind == ARR:
                if f[3] and f[4]:
                    text = buf[f[5]:] + tail + closers
                    if text.strip() and canon(text) in f[4]:
                        return True
                closers += b"]"
            elif kind == OBJ:
                closers += b"}"
            else:
                closers += f[1]
        return False

    def _item_done(self, sc: tuple) -> bool | None:
        """Whether the innermost open container is a unique array whose item in progress is a
        complete value: True if it equals an earlier item, False if not, None if not complete."""
        mode, stack, buf, sstart, kbuf = sc
        if mode != OUT or buf is None or not stack:
            return None
        top = stack[-1]
        if top[0] != ARR or not top[3]:
            return None
        item = buf[top[5]:]
        if not item.strip():
            return None
        return self._canon_of(item) in top[4]

    def _first_bytes(self, s: Any) -> frozenset:
        """The first bytes of the tokens the inner constraint allows in state s (256: EOS)."""
        got = self._first.get(s)
        if got is None:
            words = np.zeros(self._words, dtype=np.int32)
            self.inner.fill_bitmask(s, words)
            ids = _bits_of(words.view(np.uint32))
            got = frozenset(np.unique(self._t.first[ids]).tolist())
            self._first.put(s, got)
        return got

    def _only_duplicates(self, sc: tuple, s: Any, budget: int = 64, width: int = 12) -> bool:
        """Whether every way the inner constraint lets the text go on from state s makes an
        item a duplicate: a search byte by byte (whitespace outside strings aside) that follows
        each way while some item in progress, closed the simplest way, is an earlier item; of at
        most `budget` steps and `width` choices a step, past which it can go on."""
        left = [budget]
        key = None
        if sc[0] == OUT:  # whitespace between values changes nothing but the inner state
            key = (s, sc[:2] + (sc[2].rstrip(b" \t\n\r"),) + sc[3:])
            got = self._searches.get(key)
            if got is not None:
                return got

        def dead(sc: tuple, s: Any) -> bool:
            while True:
                left[0] -= 1
                if left[0] < 0:
                    return False
                if self._item_done(sc):
                    return True
                if not (self._pending(sc) or self._in_escape(sc)):
                    return False  # no item in progress can only become an earlier one
                fb = self._first_bytes(s)
                mode = sc[0]
                if 256 in fb:
                    return False
                if mode == BARE and not (fb & _BARE):
                    sc = self._feed(sc, b" ")  # the number or literal cannot go on: it is complete
                    if sc is _REJECT:
                        return True
                    continue
                if mode == OUT or mode == BARE:
                    fb = fb - _WS
                if not fb or len(fb) > width:
                    return False
                if len(fb) == 1:  # forced: follow it without recursing
                    (b,) = fb
                    nxt = self._byte_step(sc, s, b)
                    if nxt is None:
                        return False
                    if nxt is _REJECT:
                        return True
                    sc, s = nxt
                    continue
                for b in sorted(fb):  # every way must end in a duplicate; stop at the first that can't
                    nxt = self._byte_step(sc, s, b)
                    if nxt is None:
                        return False
                    if nxt is not _REJECT and not dead(*nxt):
                        return False
                return True

        got = dead(sc, s)
        if key is not None:
            self._searches.put(key, got)
        return got

    def _byte_step(self, sc: tuple, s: Any, b: int) -> Any:
        """(scanner, inner) states after byte b, _REJECT if it completes a duplicate, None if the
        vocabulary has no token for that byte alone."""
        t = self._t.byte_token[b]
        if t < 0:
            return None
        try:
            s2 = self.inner.advance(s, t)
        except TokenRejected:
            return None
        sc2 = self._feed(sc, bytes((b,)))
        return _REJECT if sc2 is _REJECT else (sc2, s2)

    def _number_rest(self, q: bytes, r: bytes, out: list, value_start: bool) -> None:
        """Add to `out` the digit tokens t (the fraction and exponent tokens aside) with which the
        number so far, q (no exponent yet), spells the number whose canonical spelling is r."""
        by_bytes = self._t.by_bytes
        if b"." not in q:
            if r.startswith(q) and len(r) > len(q):
                a = r[len(q):]
                out.extend(by_bytes.get(a, ()))
                if value_start:
                    out.extend(by_bytes.get(b" " + a, ()))
                if b"." in a:
                    for z in _ZEROS:
                        out.extend(by_bytes.get(a + z, ()))
            return
        full = r if b"." in r else r + b"."
        if full.startswith(q):  # digits to come, then any zeros
            a = full[len(q):]
            if a:
                out.extend(by_bytes.get(a, ()))
            for z in _ZEROS:
                out.extend(by_bytes.get(a + z, ()))
        elif q.startswith(full) and not q[len(full):].strip(b"0"):  # only zeros may follow
            for z in _ZEROS:
                out.extend(by_bytes.get(z, ()))

    def _string_targets(self, raw: bytes, escaping: bool, strings: list, extra: list, parts: list) -> None:
        """The tokens that take a string whose raw content so far is `raw` to (or towards, through
        an escape) one of `strings`: the rest spelled the shortest way, possibly closed, and the
        beginnings of escapes that spell the next character."""
        t = self._t
        by_bytes = t.by_bytes
        done_raw, pending = _split_escape(raw, escaping)
        try:
            done = json.loads(b'"' + done_raw + b'"') if 92 in done_raw else done_raw.decode("utf-8")
        except ValueError:  # a character cut short: no escape can start here
            done = None
        if pending is None and done is not None:
            key = _render(done) if 92 in done_raw else done_raw
        elif pending is None:
            key = done_raw
        else:
            key = None
        for v in strings:
            if key is not None:
                r = _render(v)
                if r.startswith(key):
                    rest = r[len(key):]
                    if rest:
                        extra.extend(by_bytes.get(rest, ()))
                    parts.append(t.subtree(rest + b'"'))
            if done is None or len(v) <= len(done) or not v.startswith(done):
                continue
            ch = v[len(done)]
            if pending is None:  # an escape may start: `\`, `\u`, `\u0`, ...
                extra.extend(self._escape_starts(ch))
                if ch in _SHORT_ESCAPES or ch < " ":
                    rest = _render(v[len(done) + 1:])
                    for e in _escapes(ch):
                        for spelled in _cases(e):
                            extra.extend(by_bytes.get(b"\\" + spelled + rest, ()))
                            parts.append(t.subtree(b"\\" + spelled + rest + b'"'))
                continue
            rest = _render(v[len(done) + 1:])
            for e in _escapes(ch):  # an escape half written: the ways to go on spelling ch
                if e[:len(pending)].lower() != pending.lower():
                    continue
                for spelled in _cases(e[len(pending):]):
                    for k in range(1, len(spelled)):
                        extra.extend(by_bytes.get(spelled[:k], ()))
                    if spelled + rest:
                        extra.extend(by_bytes.get(spelled + rest, ()))
                    parts.append(t.subtree(spelled + rest + b'"'))

    def _escape_starts(self, ch: str) -> list[int]:
        """Ids of the tokens that spell a beginning of an escape of `ch` (from the backslash)."""
        got = self._escape_cache.get(ch)
        if got is None:
            got = set()
            for e in _escapes(ch):
                for spelled in _cases(e):
                    full = b"\\" + spelled
                    for k in range(1, len(full) + 1):
                        got.update(self._t.by_bytes.get(full[:k], ()))
            got = sorted(got)
            self._escape_cache.put(ch, got)
        return got

    def _targets(self, sc: tuple) -> "_Targets":
        """The tokens that, beyond the lexical candidates, may make an item in progress equal an
        earlier item: those spelling the rest of the string or number that stands, in an
        earlier item that the item so far could still become, where the item's scalar in
        progress (or the value about to start) stands."""
        got = self._targets_cache.get(sc)
        if got is not None:
            return got
        mode, stack, buf, sstart, kbuf = sc
        exact = mode == STR  # whether every earlier value is known: then simple closing tokens
        clean = True  # need checking only when they spell one of those
        captured: list = []
        for f, text in self._closures(sc, _SENTINEL_JSON):
            if not f[4]:
                continue
            pattern = self._canon_of(text)
            if pattern is _INVALID:
                exact = False
                continue
            got = self._captures.get((pattern, f[4]))
            if got is None:
                got = _captures(pattern, f[4])
                self._captures.put((pattern, f[4]), got)
            captured.extend(got[0])
            clean = clean and got[1]
        if mode != STR or kbuf is not None or buf is None or not clean:
            exact = False
        parts: list[np.ndarray] = []
        extra: list[int] = []
        t = self._t
        strings = [v for v in captured if type(v) is str]
        numbers = [v for v in captured if type(v) is Decimal]
        if mode in (STR, ESC) and buf is not None and kbuf is None:
            self._string_targets(buf[sstart + 1:], mode == ESC, strings, extra, parts)
            if mode == ESC or 92 in buf[sstart + 1:] and _split_escape(buf[sstart + 1:], False)[1] is not None:
                exact = False
        elif mode == OUT:
            for v in strings:
                r = _render(v)
                for lead in (b'"', b' "'):
                    extra.extend(t.by_bytes.get(lead + r, ()))
        if numbers and mode in (OUT, BARE):
            q = buf[sstart:] if mode == BARE and sstart >= 0 else b""
            if b"e" in q or b"E" in q:  # in an exponent: every digit may matter (rare)
                parts.append(t.number_ids)
            else:
                parts.append(t.frac_ids)  # a fraction or an exponent starts or goes on
                for v in numbers:
                    for r in _renderings(v):
                        self._number_rest(q, r, extra, mode == OUT)
        if extra:
            parts.append(np.array(extra, dtype=np.int64))
        if not parts:
            ids = _NO_IDS
        elif len(parts) == 1:
            ids = np.unique(parts[0])
        else:
            ids = np.unique(np.concatenate(parts))
        # Between values an item that is already an earlier one (closed the simplest way) may be
        # left one way on by the inner constraint's limit on whitespace: check blanks there too.
        blanks = mode == OUT and self._pending(sc)
        got = _Targets(ids, exact, blanks)
        self._targets_cache.put(sc, got)
        return got


_NO_IDS = np.zeros(0, dtype=np.int64)
_SHORT_ESCAPES = {'"': b'"', "\\": b"\\", "/": b"/", "\b": b"b", "\f": b"f", "\n": b"n", "\r": b"r", "\t": b"t"}


def _split_escape(raw: bytes, escaping: bool) -> tuple[bytes, bytes | None]:
    """The raw content of a string in progress as (complete part, the bytes after the backslash
    of an escape not finished yet, or None)."""
    if escaping:
        return raw[:-1], b""
    i, n = 0, len(raw)
    while i < n:
        if raw[i] != 92:
            i += 1
        elif i + 1 < n and raw[i + 1] == 117:  # \u and four hex digits
            if i + 6 > n:
                return raw[:i], raw[i + 1:]
            i += 6
        else:
            i += 2
    return raw, None


def _escapes(ch: str) -> list[bytes]:
    """The spellings of a character as an escape, without the backslash."""
    out = [_SHORT_ESCAPES[ch]] if ch in _SHORT_ESCAPES else []
    code = ord(ch)
    if code < 0x10000:
        out.append(b"u%04x" % code)
    else:
        code -= 0x10000
        out.append(b"u%04x\\u%04x" % (0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF)))
    return out


def _cases(hexes: bytes) -> list[bytes]:
    """The spellings of hex digits in either case (all of them up to 4 letters, else two)."""
    letters = [i for i, c in enumerate(hexes) if c in b"abcdef"]
    if len(letters) > 4:
        return [hexes, hexes.upper().replace(b"\\U", b"\\u")]
    out = []
    for mask in range(1 << len(letters)):
        b = bytearray(hexes)
        for k, i in enumerate(letters):
            if mask >> k & 1:
                b[i] -= 32
        out.append(bytes(b))
    return out
_ZEROS = tuple(b"0" * k for k in range(1, 6))


def _captures(pattern: Any, seen: frozenset) -> tuple:
    """(what stands at the sentinel in each earlier item that matches `pattern`, whether every
    match was clean)."""
    out: list = []
    clean = True
    if pattern == _SENTINEL:
        return list(seen), True
    for v in seen:
        got: list = []
        if _match(pattern, v, got):
            if len(got) == 1:
                out.append(got[0])
            else:  # the text itself holds the sentinel: know nothing
                clean = False
    return out, clean


class _Targets:
    """Per scanner state: `ids` (sorted) of the target tokens; `exact` when the simple
    string-closing tokens need no check beyond them; `blanks` when whitespace tokens need one."""

    __slots__ = ("ids", "exact", "blanks", "_set")

    def __init__(self, ids: np.ndarray, exact: bool, blanks: bool):
        self.ids, self.exact, self.blanks, self._set = ids, exact, blanks, None

    def __contains__(self, t: int) -> bool:
        if self._set is None:
            self._set = frozenset(self.ids.tolist())
        return t in self._set


class _Rejected:
    __slots__ = ()

    def __repr__(self) -> str:
        return "REJECTED"


_REJECTED = _Rejected()
