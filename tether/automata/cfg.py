"""A context-free grammar bound to a vocabulary: masks as a cached row per lexer state plus the
few tokens that cross a lexeme boundary, checked against the parse.

A token allowed from configuration pair (parser node p, lexer state l) either stays inside
the lexeme being read (it only moves l: whatever the parse, the same tokens do this, so that
part of the mask is computed once per lexer state, with the trie nodes where a lexeme may
end on the way), or ends the lexeme inside the token and goes on from a new parser node.
What follows a lexeme of terminal t ending at those *boundary* nodes depends on the parse
only through the fresh lexer state of scan(p, t), so it too is cached, per (l, t, fresh
lexer), down to the next boundaries. Only tokens crossing two boundaries or more are walked
per parse position, by a numba kernel that follows the lexer and the parser's scan table;
where it meets an entry not built yet it stops, Python builds it, and the walk resumes.

    >>> c = tether.lark(grammar).compile(vocab)
    >>> s = c.advance(c.initial(), token_id); c.fill_bitmask(s, row)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numba
import numpy as np

from ..limits import DEFAULT_LIMITS, Deadline, Limits
from ..vocab import TokenTrie, Vocabulary
from .bitmask import unpack_bitmask
from .dfa import DEAD
from .earley import CFGAutomaton
from .index import _NO_STATES, _trie_kernel, _walk_kernel
from .slices import slices
from .stepping import AutomatonConstraint

__all__ = ["CFGConstraint"]

_NEED_SCAN, _NEED_START, _NEED_LEXER, _NEED_RERUN, _NEED_ROOM, _NEED_SEEN = 1, 2, 3, 4, 5, 6
# Slots of the fork kernel's saved position (`ctl`), so that it can stop and resume; _SEEN counts
# the (trie node, parser node, lexer state) triples in its `seen` set.
_PHASE, _K, _NJ, _ACTIVE, _I, _END, _BASE, _P, _REDO, _SEEN = range(10)


@numba.njit(cache=True, nogil=True)
def _lexer_mask_kernel(table, acc_start, byte_class, trie_byte, trie_depth, trie_skip, tok_start, tok_ids,
                       stack, out, b_nodes, b_lex, nb, i):  # pragma: no cover - compiled
    """The trie walk of `_trie_kernel` over the lexer table, also noting each inner trie node
    where a lexeme may end (b_nodes/b_lex, nb so far). Returns (node to resume at or n, nb)."""
    n = trie_byte.shape[0]
    rows = table.shape[0]
    while i < n:
        d = trie_depth[i]
        s = table[stack[d - 1], byte_class[trie_byte[i]]]
        if s < 0:
            if s == -2:
                return i, nb
            i = trie_skip[i]
            continue
        if s >= rows:
            return i, nb
        stack[d] = s
        for j in range(tok_start[i], tok_start[i + 1]):
            t = tok_ids[j]
            out[t >> 5] |= np.uint32(1) << np.uint32(t & 31)
        if acc_start[s + 1] > acc_start[s] and trie_skip[i] > i + 1:
            b_nodes[nb] = i
            b_lex[nb] = s
            nb += 1
        i += 1
    return n, nb


@numba.njit(cache=True, nogil=True)
def _after_kernel(table, acc_start, acc_terms, byte_class, trie_depth, trie_skip, trie_byte, tok_start, tok_ids,
                  b_nodes, b_lex, term, fresh, stack, out, b2_nodes, b2_lex):  # pragma: no cover - compiled
    """What follows lexemes of `term` ending at the boundary nodes, whatever the parse: the tokens
    whose rest stays inside the next lexeme (read from lexer state `fresh`), and the nodes where
    that lexeme may end in turn. Returns (row to build and call again for, or -1 when done, or -3
    when b2_nodes is full: call again with larger arrays; nodes found)."""
    rows = table.shape[0]
    nb = 0
    for k in range(b_nodes.shape[0]):
        s0 = b_lex[k]
        ends = False
        for a in range(acc_start[s0], acc_start[s0 + 1]):
            ends |= acc_terms[a] == term
        if not ends:
            continue
        m = b_nodes[k]
        base = trie_depth[m]
        stack[0] = fresh
        i = m + 1
        end = trie_skip[m]
        while i < end:
            d = trie_depth[i] - base
            s = table[stack[d - 1], byte_class[trie_byte[i]]]
            if s == -2 or s >= rows:
                return stack[d - 1], nb
            if s < 0:
                i = trie_skip[i]
                continue
            stack[d] = s
            for j in range(tok_start[i], tok_start[i + 1]):
                t = tok_ids[j]
                out[t >> 5] |= np.uint32(1) << np.uint32(t & 31)
            if acc_start[s + 1] > acc_start[s] and trie_skip[i] > i + 1:
                if nb == b2_nodes.shape[0]:  # nested boundaries can list a node more than once
                    return -3, nb
                b2_nodes[nb] = i
                b2_lex[nb] = s
                nb += 1
            i += 1
    return -1, nb


@numba.njit(cache=True, nogil=True)
def _seen_add(seen, ctl, a, b, c):  # pragma: no cover - compiled
    """Put (a, b, c) in the open-addressing set `seen` (int64 rows, -1 = free; its size a power of
    two, its count in ctl[_SEEN]): 1 if it is new, 0 if it was there, -1 if the set must grow first."""
    mask = seen.shape[0] - 1
    h = ((a * 1000003 + b) * 1000003 + c) * 0x9E3779B1
    h = (h ^ (h >> 29)) & mask
    while True:
        if seen[h, 0] == -1:
            if 2 * (ctl[_SEEN] + 1) > seen.shape[0]:
                return -1
            seen[h, 0] = a
            seen[h, 1] = b
            seen[h, 2] = c
            ctl[_SEEN] += 1
            return 1
        if seen[h, 0] == a and seen[h, 1] == b and seen[h, 2] == c:
            return 0
        h = (h + 1) & mask


@numba.njit(cache=True, nogil=True)
def _seen_grown(seen, ctl):  # pragma: no cover - compiled
    """The set `seen` with twice the room, the same members."""
    bigger = np.full((2 * seen.shape[0], 3), -1, dtype=np.int64)
    ctl[_SEEN] = 0
    for r in range(seen.shape[0]):
        if seen[r, 0] != -1:
            _seen_add(bigger, ctl, seen[r, 0], seen[r, 1], seen[r, 2])
    return bigger


@numba.njit(cache=True, nogil=True)
def _push_forks(i, s, p, acc_start, acc_terms, scan_next, lex_start, jobs, ctl, seen, need):
    """Queue a walk below trie node i for every terminal whose lexeme may end there (lexer state s,
    parser node p). Returns 0, or what must be built first (`need` holds which): then nothing of
    this node is lost, since queued jobs are remembered in `seen` and the node is redone."""
    for a in range(acc_start[s], acc_start[s + 1]):
        term = acc_terms[a]
        if p >= scan_next.shape[0] or term >= scan_next.shape[1]:
            return _NEED_RERUN
        p2 = scan_next[p, term]
        if p2 == -1:  # not expected here (cannot happen: the lexer of p reads only what p expects)
            continue
        if p2 == -2:
            need[0] = p
            need[1] = term
            return _NEED_SCAN
        if p2 >= lex_start.shape[0]:
            return _NEED_RERUN
        lex = lex_start[p2]
        if lex == -2:
            need[0] = p2
            return _NEED_START
        nj = ctl[_NJ]
        if nj >= jobs.shape[0]:
            return _NEED_ROOM
        added = _seen_add(seen, ctl, i, p2, lex)
        if added == 0:
            continue
        if added < 0:
            return _NEED_SEEN
        jobs[nj, 0] = i
        jobs[nj, 1] = p2
        jobs[nj, 2] = lex
        ctl[_NJ] = nj + 1
    return 0


@numba.njit(cache=True, nogil=True)
def _fork_kernel(lex_table, acc_start, acc_terms, byte_class, scan_next, lex_start,
                 trie_byte, trie_depth, trie_skip, tok_start, tok_ids,
                 parser_node, b_nodes, b_lex, out, jobs, stack, ctl, seen, need):  # pragma: no cover - compiled
    """Set the bits of the tokens that end a lexeme inside themselves and go on from the parse.

    (b_nodes[k], b_lex[k]): trie nodes where the lexeme read from `parser_node` may end, and the
    lexer state there. Each becomes a job (trie node, parser node after the lexeme, its fresh
    lexer state) whose subtree is walked through the lexer; nested boundaries queue more jobs.
    A walk state (trie node, parser node, lexer state) already seen is not walked again (ignored
    whitespace splits a hundred ways into the same states).

    Resumable: returns 0 when done, or a _NEED_* code when a table entry must be built first
    (`need` says which); call again with the same `ctl`, `jobs`, `stack` and `seen` to go on.
    """
    rows = lex_table.shape[0]
    if ctl[_PHASE] == 0:
        for k in range(ctl[_K], b_nodes.shape[0]):
            if _seen_add(seen, ctl, b_nodes[k], parser_node, b_lex[k]) < 0:
                ctl[_K] = k
                return _NEED_SEEN
        ctl[_K] = 0
        ctl[_PHASE] = 1
    if ctl[_PHASE] == 1:
        for k in range(ctl[_K], b_nodes.shape[0]):
            code = _push_forks(b_nodes[k], b_lex[k], parser_node, acc_start, acc_terms, scan_next, lex_start,
                               jobs, ctl, seen, need)
            if code:
                ctl[_K] = k
                return code
        ctl[_PHASE] = 2
    while True:
        if not ctl[_ACTIVE]:
            nj = ctl[_NJ]
            if nj == 0:
                return 0
            nj -= 1
            ctl[_NJ] = nj
            m = jobs[nj, 0]
            ctl[_P] = jobs[nj, 1]
            stack[0] = jobs[nj, 2]
            ctl[_BASE] = trie_depth[m]
            ctl[_I] = m + 1
            ctl[_END] = trie_skip[m]
            ctl[_ACTIVE] = 1
        i = ctl[_I]
        end = ctl[_END]
        base = ctl[_BASE]
        p = ctl[_P]
        while i < end:
            d = trie_depth[i] - base
            s = lex_table[stack[d - 1], byte_class[trie_byte[i]]]
            if s == -2:
                ctl[_I] = i
                need[0] = stack[d - 1]
                return _NEED_LEXER
            if s < 0:
                i = trie_skip[i]
                continue
            if s >= rows:
                ctl[_I] = i
                return _NEED_RERUN
            stack[d] = s
            if acc_start[s + 1] > acc_start[s] and trie_skip[i] > i + 1:
                added = _seen_add(seen, ctl, i, p, s)
                if added < 0:
                    ctl[_I] = i
                    return _NEED_SEEN
                if added == 0 and not ctl[_REDO]:
                    i = trie_skip[i]  # this walk state's subtree is walked (or queued) elsewhere
                    continue
                code = _push_forks(i, s, p, acc_start, acc_terms, scan_next, lex_start, jobs, ctl, seen, need)
                if code:
                    ctl[_I] = i
                    ctl[_REDO] = 1  # on resume, node i is ours even though it is in `seen` now
                    return code
                ctl[_REDO] = 0
            for j in range(tok_start[i], tok_start[i + 1]):
                t = tok_ids[j]
                out[t >> 5] |= np.uint32(1) << np.uint32(t & 31)
            i += 1
        ctl[_ACTIVE] = 0


@dataclass(frozen=True)
class _LexerMask:
    """What one lexer state allows whatever the parse: the tokens that stay in the lexeme, and the
    trie nodes (with the lexer state there) where the lexeme may end inside a token."""

    words: np.ndarray  # uint32
    b_nodes: np.ndarray  # int64
    b_lex: np.ndarray  # int64
    terms: tuple[int, ...]  # the accept sets (see CFGAutomaton.scan) of the lexemes ending there
    trie: TokenTrie  # the trie walked (the vocabulary's, or what a slice leaves of it), b_nodes index it


class CFGConstraint(AutomatonConstraint):
    """A context-free constraint over one vocabulary (see the module docstring for how masks work,
    `AutomatonConstraint` for states and caches): its states are configurations."""

    @property
    def automaton(self) -> CFGAutomaton:
        return self._machine

    def __init__(self, automaton: CFGAutomaton, vocab: Vocabulary, limits: Limits = DEFAULT_LIMITS, *,
                 source: str = "", parse: Callable[[str], Any] | None = None):
        super().__init__(automaton, vocab, limits, source=source, parse=parse)

    def _setup(self) -> None:
        super()._setup()
        self._lexer_masks: dict[int, _LexerMask] = {}
        self._follow_masks: dict[tuple[int, int, int], _LexerMask] = {}
        self._lexer_bytes = 0
        self._cache_limit = max(1, self.limits.mask_cache_bytes * 3 // 8 // (self._words * 4))
        self._jobs = np.empty((4096, 3), dtype=np.int64)

    def __repr__(self) -> str:
        a = self.automaton
        return (f"CFGConstraint({self.source[:60]!r}, parser nodes={a.n_nodes}, lexer states={a.n_lexer_states}, "
                f"vocab={self.vocab.size})")

    def _walk(self, config: int, data: bytes) -> int:
        a = self.automaton
        arr = np.frombuffer(data, dtype=np.uint8)
        pos = 0
        while True:
            config, pos = _walk_kernel(a.table, a.byte_class, np.int32(config), arr, np.int64(pos))
            if config < 0 or pos == len(arr):
                return int(config)
            config = a.expand_cell(int(config), int(a.byte_class[arr[pos]]))
            if config < 0:
                return DEAD
            pos += 1

    # -- masks

    def _lexer_mask(self, lex: int, deadline: Deadline) -> _LexerMask:
        got = self._lexer_masks.get(lex)
        if got is not None:
            return got
        a = self.automaton
        words = np.zeros(self._words, dtype=np.uint32)
        trie = self._slice_rest(lex, words)
        b_nodes = np.empty(trie.n_nodes, dtype=np.int64)
        b_lex = np.empty(trie.n_nodes, dtype=np.int64)
        stack = np.empty(trie.max_depth + 1, dtype=np.int32)
        stack[0] = lex
        i, nb = 1, 0
        while True:
            i, nb = _lexer_mask_kernel(a.lex_table, a.lex_acc_start, a.byte_class, trie.byte, trie.depth, trie.skip,
                                       trie.tok_start, trie.tok_ids, stack, words, b_nodes, b_lex, np.int64(nb),
                                       np.int64(i))
            if i >= trie.n_nodes:
                break
            a.expand_lexer(int(stack[trie.depth[i] - 1]), deadline)
        b_lex = b_lex[:nb].copy()
        terms = sorted({a.lex_accepted[s] for s in np.unique(b_lex).tolist()})
        got = _LexerMask(words, b_nodes[:nb].copy(), b_lex, tuple(terms), trie)
        self._keep(self._lexer_masks, lex, got)
        return got

    def _keep(self, cache: dict, key: Any, mask: _LexerMask) -> None:
        """Cache a lexer-level mask; past a quarter of `mask_cache_bytes`, start both caches afresh
        (they only save work: anything dropped is recomputed when next needed)."""
        size = mask.words.nbytes + mask.b_nodes.nbytes + mask.b_lex.nbytes
        with self._lock:
            self._lexer_bytes += size
            if self._lexer_bytes > self.limits.mask_cache_bytes // 4:
                self._lexer_masks.clear()
                self._follow_masks.clear()
                self._lexer_bytes = size
            cache[key] = mask

    def _slice_rest(self, lex: int, words: np.ndarray) -> TokenTrie:
        """The trie a lexer state's mask must walk: where one lexeme in progress takes a whole
        vocabulary slice (inside a JSON string) and cannot end within it, the slice's bits are set
        at once and only the other tokens are walked (see `tether.automata.slices`)."""
        pairs = self.automaton.lexer_pairs(lex)
        if len(pairs) == 1 and not pairs[0][2]:
            term, q, _ = pairs[0]
            dfa = self.automaton.lexer_dfas[term]
            # A lexeme that ends at its first match (a lazy terminal) cannot go on once it accepts,
            # whatever its regex would read next: the lexer table says so, the slice would not.
            ended = self.automaton.tables.shortest[term] and dfa.accepting(q)
            if dfa.is_wide(q) and not ended:
                for piece in slices(self.vocab):
                    if dfa.covers(q, piece.intervals, piece.max_chars) and not dfa.may_accept_within(q, piece.intervals):
                        words |= piece.words
                        return piece.rest
        return self.vocab.trie

    def _follow_mask(self, lm: _LexerMask, lex: int, term: int, fresh: int, deadline: Deadline) -> _LexerMask:
        """The second level of a lexer state's mask, shared by every parse: where a lexeme of `term`
        ends at one of lm's boundary nodes and the next lexeme starts in lexer state `fresh`."""
        key = (lex, term, fresh)
        got = self._follow_masks.get(key)
        if got is not None:
            return got
        a = self.automaton
        trie = lm.trie
        stack = np.empty(trie.max_depth + 1, dtype=np.int32)
        b2_nodes = np.empty(trie.n_nodes, dtype=np.int64)
        b2_lex = np.empty(trie.n_nodes, dtype=np.int64)
        while True:
            words = np.zeros(self._words, dtype=np.uint32)
            row, nb = _after_kernel(a.lex_table, a.lex_acc_start, a.lex_acc_terms, a.byte_class, trie.depth,
                                    trie.skip, trie.byte, trie.tok_start, trie.tok_ids, lm.b_nodes, lm.b_lex,
                                    term, fresh, stack, words, b2_nodes, b2_lex)
            if row == -1:
                break
            if row == -3:
                b2_nodes = np.empty(2 * b2_nodes.shape[0], dtype=np.int64)
                b2_lex = np.empty(2 * b2_lex.shape[0], dtype=np.int64)
                deadline.check_now()
                continue
            a.expand_lexer(int(row), deadline)
        b_lex = b2_lex[:nb].copy()
        terms = sorted({a.lex_accepted[s] for s in np.unique(b_lex).tolist()})
        got = _LexerMask(words, b2_nodes[:nb].copy(), b_lex, tuple(terms), trie)
        self._keep(self._follow_masks, key, got)
        return got

    def _fork(self, node: int, lm: _LexerMask, out: np.ndarray, deadline: Deadline) -> None:
        a = self.automaton
        trie = lm.trie
        for term in lm.terms:  # the first level of boundaries, built before the walk
            nxt = a.scan(node, term, deadline)
            a.expand_lexer(a.start_lexer(nxt), deadline)
        stack = np.empty(trie.max_depth + 1, dtype=np.int64)
        ctl = np.zeros(10, dtype=np.int64)
        need = np.zeros(2, dtype=np.int64)
        seen = np.full((1024, 3), -1, dtype=np.int64)
        jobs = self._jobs
        while True:
            code = _fork_kernel(
                a.lex_table, a.lex_acc_start, a.lex_acc_terms, a.byte_class, a.scan_next, a.lex_start,
                trie.byte, trie.depth, trie.skip, trie.tok_start, trie.tok_ids,
                node, lm.b_nodes, lm.b_lex, out, jobs, stack, ctl, seen, need)
            if code == 0:
                self._jobs = jobs
                return
            deadline.check()
            if code == _NEED_SCAN:
                a.scan(int(need[0]), int(need[1]), deadline)
            elif code == _NEED_START:
                a.start_lexer(int(need[0]))
            elif code == _NEED_LEXER:
                a.expand_lexer(int(need[0]), deadline)
            elif code == _NEED_ROOM:
                jobs = np.concatenate([jobs, np.empty_like(jobs)])
            elif code == _NEED_SEEN:
                seen = _seen_grown(seen, ctl)

    def _words_for(self, state: int) -> np.ndarray:
        config = self._id(state)
        a = self.automaton
        deadline = self.limits.deadline("building parser and lexer states for a mask")
        words = np.zeros(self._words, dtype=np.uint32)
        for node, lex in a.pairs(config):
            lm = self._lexer_mask(lex, deadline)
            words |= lm.words
            for term in lm.terms:  # each lexeme that may end inside a token, and what follows it
                after = a.scan(node, term, deadline)
                follow = self._follow_mask(lm, lex, term, a.start_lexer(after), deadline)
                words |= follow.words
                if follow.b_nodes.shape[0]:
                    self._fork(after, follow, words, deadline)
        words = self._with_eos(words, a.accepting(config))
        with self._lock:
            self.mask_computations += 1
            self._cache[state] = words
            while len(self._cache) > self._cache_limit:  # first in, first out
                del self._cache[next(iter(self._cache))]
        return words

    def reference_mask(self, state: int) -> np.ndarray:
        """The mask computed the slow, obvious way: every token walked through the configuration
        automaton (the same kernel as a regex mask). For tests of the fast path."""
        a = self.automaton
        config = self._id(state)
        trie = self.vocab.trie
        out = np.zeros(self._words, dtype=np.uint32)
        stack = np.empty(trie.max_depth + 1, dtype=np.int32)
        stack[0] = config
        i = 1
        while True:
            i = _trie_kernel(a.table, a.byte_class, trie.byte, trie.depth, trie.skip, trie.tok_start,
                             trie.tok_ids, stack, out, _NO_STATES, np.int64(i))
            if i >= trie.n_nodes:
                break
            a.expand_cell(int(stack[trie.depth[i] - 1]), int(a.byte_class[trie.byte[i]]))
        return unpack_bitmask(self._with_eos(out, a.accepting(config)), self.vocab.size)
