"""Random walks through a compiled `tether.sql` constraint, steered so that most of them end.

    >>> text, status = walk(q.compile(vocab), vocab, random.Random(0))   # status: done/dead/long

A walk draws its tokens from the constraint's own mask, so every text it reaches is one a model
could be made to write. Uniform draws over a 128k vocabulary write one endless identifier or
comment, so a step picks a kind of token first, among printable ASCII tokens without comment or
quoted-name characters: a complete word that the name checker allows here (a keyword, a table, a
column; a short one where any name goes), punctuation, a number or string, any such token. After
`explore` steps the walk steers toward an end: EOS when allowed, then a closing `)` or quote,
FROM, the qualifiers the statement still has to bind (`T1` of `T1.name` before its FROM clause),
AS when one is pending, complete words. A state that allows no token at all is a dead end.
"""

from __future__ import annotations

import functools
import random
import re

import numpy as np

__all__ = ["walk"]

_WORD = re.compile(rb" ?([A-Za-z_][A-Za-z0-9_]*)")
_PUNCT = (b",", b"(", b")", b"*", b"=", b".", b" =", b" (", b" *", b">", b"<", b" >", b" <", b"+", b" ,")
_CLOSE = (b")", b" )", b"'")
_LITERAL = re.compile(rb" ?(?:[0-9]+|'[A-Za-z ]+')")
_WORD_ENDS = b" ,()."
_RARE = ("like", "glob", "match", "regexp", "escape", "values", "with", "materialized", "recursive", "collate",
         "cast", "exists", "case", "between", "not", "is", "isnull", "notnull", "window", "over", "filter")


class _Classes:
    def __init__(self, vocab):
        toks = self.toks = list(vocab)
        self.ok = np.array([bool(t) and re.fullmatch(rb"[ -~]+", t) is not None and not re.search(rb'[-/*"`\[]', t)
                            and b"  " not in t for t in toks])
        self.words: list[str] = []
        index: dict[str, int] = {}
        self.word = np.full(len(toks), -1, dtype=np.int64)
        for i, t in enumerate(toks):
            m = _WORD.fullmatch(t or b"")
            if m and self.ok[i]:
                w = m.group(1).decode().lower()
                self.word[i] = index.setdefault(w, len(index))
        self.words = list(index)
        self.index = index
        self.length = np.array([len(w) for w in self.words] + [0])
        self.punct = np.isin(np.arange(len(toks)), [i for i, t in enumerate(toks) if t in _PUNCT] or [-1])
        self.punct |= np.array([t == b"*" or t == b" *" for t in toks])
        self.close = np.array([t in _CLOSE for t in toks])
        self.literal = np.array([bool(t) and _LITERAL.fullmatch(t) is not None for t in toks])
        self.toks_first = np.array([t[0] if t else 0 for t in toks])
        self.closes_string = np.array([bool(t) and t.endswith(b"'") and t.count(b"'") == 1 for t in toks]) & self.ok
        self.ends_word = np.array([bool(t) and t[:1] in _WORD_ENDS for t in toks]) & self.ok

    def named(self, ids: np.ndarray, names) -> np.ndarray:
        """The ids among `ids` that spell a complete word of `names` (None: any word)."""
        w = self.word[ids]
        ids = ids[w >= 0]
        if names is None:
            return ids[self.length[self.word[ids]] <= 6]  # a short one, not an endless name
        wanted = np.array([self.index[n] for n in names if n in self.index] or [-2])
        return ids[np.isin(self.word[ids], wanted)]

    def spelling(self, ids: np.ndarray, words) -> np.ndarray:
        wanted = np.array([self.index[n] for n in words if n in self.index] or [-2])
        return ids[np.isin(self.word[ids], wanted)]


@functools.lru_cache(maxsize=4)
def _classes(vocab) -> _Classes:
    return _Classes(vocab)


def walk(c, vocab, rng: random.Random, *, max_tokens: int = 160, explore: int | None = None):
    """(text bytes, "done" | "dead" | "long")."""
    k = _classes(vocab)
    explore = rng.randint(4, 30) if explore is None else explore
    eos = np.array(sorted(vocab.eos_ids), dtype=np.int64)
    s = c.initial()
    text = b""
    for step in range(max_tokens):
        mask = c.mask(s)
        if not mask.any():
            return text, "dead"
        if step >= explore and mask[eos].any():
            return text, "done"
        mask[eos] = False
        ids = np.flatnonzero(mask)
        if not ids.shape[0]:
            return text, "done"
        scope = s[1] if isinstance(s, tuple) and hasattr(s[1], "word_names") else None
        names = scope.word_names() if scope is not None else None
        if scope is not None and scope.mode == 1:  # inside a word: end it, or finish the name
            complete = ids[k.ends_word[ids]]
            if not complete.shape[0] and names is not None:
                p = scope.buf.decode("utf-8", "replace").lower()
                rests = {n[len(p):] for n in names if n.startswith(p) and len(n) > len(p)}
                complete = k.spelling(ids[k.ok[ids]], rests)
        else:
            complete = k.named(ids[k.ok[ids]], names)
            if step == 0 and rng.random() < 0.9:
                complete = k.spelling(complete, ("select",))
            elif rng.random() < 0.9:  # pattern operators make long, dull walks
                complete = complete[~np.isin(complete, k.spelling(complete, _RARE))]
        if scope is not None and scope.mode == 4:  # just after a string's quote: not an escaped quote
            ids = ids[k.toks_first[ids] != 39] if (k.toks_first[ids] != 39).any() else ids
            complete = complete[k.toks_first[complete] != 39]
        word = scope.held[0] if scope is not None and scope.held is not None else (
            scope.buf.decode("utf-8", "replace").lower() if scope is not None and scope.mode == 1 else None)
        if word is not None and word not in scope.catalog.tables:
            # A qualifier no table is named by would need an alias that a walk seldom writes.
            dots = k.toks_first[ids] == 46
            if (~dots).any():
                ids, complete = ids[~dots], complete[k.toks_first[complete] != 46]
        choice = None
        if scope is not None and scope.mode == 3 and rng.random() < 0.7:  # in a string: close it
            closing = ids[k.closes_string[ids]]
            if closing.shape[0]:
                choice = int(rng.choice(closing))
        if choice is None and step >= explore and rng.random() < 0.85:
            needed = scope.pending_qualifiers() if scope is not None and scope.mode != 1 else []
            blocks = [f for f in scope.frames if hasattr(f, "from_seen")] if scope is not None else []
            wants_from = bool(blocks) and not blocks[-1].from_seen
            for pool in (ids[k.close[ids]], k.spelling(complete, ("from",)) if wants_from else complete[:0],
                         k.spelling(ids[k.ok[ids]], needed),
                         k.spelling(complete, ("as",)) if needed else complete[:0],
                         complete[~np.isin(complete, k.spelling(complete, ("select", "case", "not", "exists", "cast",
                                                                           "with", "values")))],
                         complete):
                if pool.shape[0]:
                    choice = int(rng.choice(pool))
                    break
        if choice is None:
            r = rng.random()
            pools = [complete, ids[k.punct[ids]], ids[k.literal[ids]], ids[k.ok[ids]], ids]
            first = 0 if r < 0.55 else 1 if r < 0.8 else 2 if r < 0.9 else 3
            pool = next(p for p in pools[first:] + pools if p.shape[0])
            choice = int(rng.choice(pool))
        text += k.toks[choice]
        s = c.advance(s, choice)
    return text, "long"
