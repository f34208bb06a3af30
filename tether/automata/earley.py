"""The context-free engine's automaton: an Earley parser over lexemes, a lexer over byte DFAs,
and the byte-level states built from both, all hash-consed and built lazily.

Three kinds of objects, each an int id into tables that only grow:

* a **parser node** is an Earley column at a lexeme boundary: items (symbol automaton state,
  origin node). Its identity is its kernel, the items that scanning the last lexeme produced,
  so two parses that reach the same items from the same origins share a node (the way a GLR
  stack merges). Scanning terminal t at node p gives node `scan(p, t)`, memoised.
* a **lexer state** is the set of (terminal, DFA state, lexeme still empty) triples alive in
  the lexeme being read, and the terminals a new lexeme may start with. Ignored terminals live
  inside the lexer: when one ends, the lexemes that may follow start in the same state, so the
  parser never sees them. A lexer state does not depend on the parse, so everything computed per
  lexer state (its transitions; per vocabulary, its token masks) is shared by every parse
  position that reads the same terminals.
* a **configuration** (the constraint's state) is a set of (parser node, lexer state) pairs:
  the text read so far may end inside different lexemes of different parses, since every way
  of splitting the text into terminals counts. Its byte transitions form a lazily built
  table (cell by cell), read by the same numba walk kernel as a regex DFA.

A pair whose lexer state accepts terminal t also stands for (scan(p, t), fresh lexer state):
configurations are closed under ending a lexeme. Every pair can reach acceptance (Earley's
correct-prefix property on a grammar whose rules all derive strings, with live DFA states), so
masks need no search. The tables grow with every text read and are bounded by
`Limits.automaton_bytes`; nothing is evicted, so a constraint serving unboundedly many different
texts eventually raises `ConstraintTooLarge` (a known limit of this first version).

    >>> auto = CFGAutomaton(lower(ir))
    >>> c = auto.step(auto.initial, b"[1,")
"""

from __future__ import annotations

import threading

import numpy as np

from ..errors import ConstraintTooLarge
from ..limits import DEFAULT_LIMITS, Deadline, Limits
from .dfa import DEAD, UNEXPANDED
from .rules import RuleTables

__all__ = ["CFGAutomaton", "ROOT"]

ROOT = -1  # the origin of the start rule's item
_ITEM_BYTES = 120  # an Earley item in a node's sets and lists, with its share of dict overhead
_NODE_BYTES = 600
_PAIR_BYTES = 100


class CFGAutomaton:
    """Parser nodes, lexer states and configurations of one grammar; thread-safe (one lock)."""

    def __init__(self, tables: RuleTables, limits: Limits = DEFAULT_LIMITS):
        self.tables = tables
        self.limits = limits
        self._lock = threading.RLock()
        self.n_terminals = len(tables.dfas)
        self.lexer_dfas = tables.dfas + tables.ignore_dfas
        self.ignore_ids = tuple(range(self.n_terminals, len(self.lexer_dfas)))
        self.byte_class, self.class_bytes = _joint_classes(self.lexer_dfas)
        # _class_map[t][c]: terminal t's own byte class for joint class c
        self._class_map = [d.byte_class[self.class_bytes] for d in self.lexer_dfas]
        n_classes = len(self.class_bytes)
        self._bytes = 0
        # -- parser nodes
        self._node_ids: dict[frozenset, int] = {}
        self._scans: list[dict[int, frozenset]] = []  # node -> {terminal: kernel of the scanned node}
        self._waiting: list[dict[int, tuple]] = []  # node -> {rule: ((next state, origin), ...)}
        self.node_accepting: list[bool] = []
        self.expected: list[tuple[int, ...]] = []  # node -> terminals it can scan
        # Kernel-facing arrays: scan_next[p, a], the node after a lexeme ending as accept set a
        # (UNEXPANDED until asked; only sets of terminals p expects are asked for), and
        # lex_start[p], the fresh lexer state of node p.
        self.scan_next = np.full((64, 8), UNEXPANDED, dtype=np.int32)
        self._accept_ids: dict[tuple[int, ...], int] = {}
        self.accepted_terms: list[tuple[int, ...]] = []  # accept set id -> the terminals
        self.lex_start = np.full(64, UNEXPANDED, dtype=np.int32)
        # -- lexer states
        self._lex_ids: dict[tuple, int] = {}
        self._lex_restart: list[int] = []
        self._restart_ids: dict[tuple[int, ...], int] = {}
        self._lex_pairs: list[tuple[tuple[int, int], ...]] = []
        self.lex_boundary: list[bool] = []  # a new lexeme may start here (nothing is half read)
        self.lex_accepts: list[tuple[int, ...]] = []
        self.lex_accepted: list[int] = []  # the accept set id of each lexer state (-1: none)
        self._restarts: list[tuple[tuple[int, int, bool], ...]] = []  # by restart id: empty lexemes
        self.lex_table = np.full((64, n_classes), UNEXPANDED, dtype=np.int32)
        self.lex_acc_start = np.zeros(65, dtype=np.int64)  # CSR of accepted terminals, for kernels
        self._lex_acc_flat: list[int] = []
        self.lex_acc_terms = np.zeros(64, dtype=np.int32)
        # -- configurations
        self._config_ids: dict[frozenset, int] = {}
        self._configs: list[frozenset[tuple[int, int]]] = []
        self.config_accepting: list[bool] = []
        self.table = np.full((64, n_classes), UNEXPANDED, dtype=np.int32)
        root = self._node(frozenset({(tables.init[tables.start], ROOT)}))
        self.initial = self._config(self._close([(root, self.start_lexer(root))]))

    # ------------------------------------------------------------------ memory

    def _account(self, nbytes: int) -> None:
        self._bytes += nbytes
        if self._bytes > self.limits.automaton_bytes:
            raise ConstraintTooLarge("building parser states", self.nbytes(), self.limits.automaton_bytes,
                                     unit="bytes", limit_name="automaton_bytes")

    def nbytes(self) -> int:
        return (self._bytes + self.scan_next.nbytes + self.lex_start.nbytes + self.lex_table.nbytes
                + self.table.nbytes + sum(d.nbytes(terms=False) for d in self.lexer_dfas)
                + sum(t.approx_bytes() for t in {id(d.terms): d.terms for d in self.lexer_dfas}.values()))

    # ------------------------------------------------------------------ parser nodes

    @property
    def n_nodes(self) -> int:
        return len(self._scans)

    def _node(self, kernel: frozenset, deadline: Deadline | None = None) -> int:
        got = self._node_ids.get(kernel)
        if got is not None:
            return got
        check = (deadline or self.limits.deadline("building parser states")).check
        t = self.tables
        n = len(self._scans)
        items = set(kernel)
        agenda = list(kernel)
        scans: dict[int, list] = {}
        waiting: dict[int, list] = {}
        accepting = False
        while agenda:
            check()
            state, origin = agenda.pop()
            if t.final[state]:
                rule = t.rule_of[state]
                if origin == ROOT:
                    accepting = True
                elif origin != n:  # completions inside this node are the nullable skips below
                    for item in self._waiting[origin].get(rule, ()):
                        if item not in items:
                            items.add(item)
                            agenda.append(item)
            for term, nxt in t.t_edges[state]:
                scans.setdefault(term, []).append((nxt, origin))
            for rule, nxt in t.r_edges[state]:
                waiting.setdefault(rule, []).append((nxt, origin))
                predicted = (t.init[rule], n)
                if predicted not in items:
                    items.add(predicted)
                    agenda.append(predicted)
                if t.nullable[rule] and (nxt, origin) not in items:
                    items.add((nxt, origin))
                    agenda.append((nxt, origin))
        self._account(_NODE_BYTES + _ITEM_BYTES * (len(items) + sum(map(len, scans.values()))))
        self._node_ids[kernel] = n
        self._scans.append({term: frozenset(v) for term, v in scans.items()})
        self._waiting.append({rule: tuple(v) for rule, v in waiting.items()})
        self.node_accepting.append(accepting)
        self.expected.append(tuple(sorted(scans)))
        if n >= self.scan_next.shape[0]:
            self.scan_next = _grown(self.scan_next, UNEXPANDED)
            self.lex_start = _grown(self.lex_start, UNEXPANDED)
        return n

    def scan(self, node: int, accepted: int, deadline: Deadline | None = None) -> int:
        """The node after a lexeme that ends as every terminal of accept set `accepted` at once
        (see `accepted_terms`): one Earley column, the union of their scans."""
        nxt = int(self.scan_next[node, accepted])
        if nxt != UNEXPANDED:
            return nxt
        with self._lock:
            scans = self._scans[node]
            terms = self.accepted_terms[accepted]
            kernel = scans[terms[0]] if len(terms) == 1 else frozenset().union(*(scans[t] for t in terms))
            nxt = self._node(kernel, deadline)
            self.scan_next[node, accepted] = nxt
        return nxt

    def start_lexer(self, node: int) -> int:
        """The fresh lexer state of `node`: empty lexemes of its expected terminals and the ignored ones."""
        got = int(self.lex_start[node])
        if got != UNEXPANDED:
            return got
        with self._lock:
            terms = self.expected[node] + self.ignore_ids
            restart = self._restart_ids.get(terms)
            if restart is None:
                restart = self._restart_ids[terms] = len(self._restarts)
                self._restarts.append(tuple((term, self.lexer_dfas[term].initial, True) for term in terms))
            got = self._lexer(self._restarts[restart], restart, start=True)
            self.lex_start[node] = got
        return got

    # ------------------------------------------------------------------ lexer states

    @property
    def n_lexer_states(self) -> int:
        return len(self._lex_pairs)

    def _lexer(self, pairs: tuple[tuple[int, int, bool], ...], restart: int, start: bool = False) -> int:
        """The lexer state of `pairs`; `start`: a fresh one, where the text may end (even with nothing
        to read next: a node that expects no terminal has the empty fresh lexer)."""
        n_real = self.n_terminals
        if all(term < n_real for term, _, _ in pairs):
            restart = -1  # no ignored lexeme is alive, so none can restart: one state for every context
        boundary = start or any(empty for _, _, empty in pairs)
        key = (pairs, restart, boundary)
        got = self._lex_ids.get(key)
        if got is not None:
            return got
        s = len(self._lex_pairs)
        self._lex_ids[key] = s
        self._lex_pairs.append(pairs)
        self._lex_restart.append(restart)
        self.lex_boundary.append(boundary)
        accepts = tuple(term for term, q, empty in pairs
                        if term < n_real and not empty and self.lexer_dfas[term].accepting(q))
        self.lex_accepts.append(accepts)
        # Kernels see one entry per accepting state: its accept set, scanned as one lexeme.
        accepted = ()
        if accepts:
            a = self._accept_ids.get(accepts)
            if a is None:
                a = self._accept_ids[accepts] = len(self.accepted_terms)
                self.accepted_terms.append(accepts)
                if a >= self.scan_next.shape[1]:
                    wider = np.full((self.scan_next.shape[0], 2 * self.scan_next.shape[1]), UNEXPANDED, dtype=np.int32)
                    wider[:, : self.scan_next.shape[1]] = self.scan_next
                    self.scan_next = wider
            accepted = (a,)
        self.lex_accepted.append(accepted[0] if accepted else -1)
        if s >= self.lex_table.shape[0]:
            self.lex_table = _grown(self.lex_table, UNEXPANDED)
            grown = np.zeros(2 * self.lex_acc_start.shape[0] - 1, dtype=np.int64)
            grown[: self.lex_acc_start.shape[0]] = self.lex_acc_start
            self.lex_acc_start = grown
        self._lex_acc_flat.extend(accepted)
        if len(self._lex_acc_flat) > self.lex_acc_terms.shape[0]:
            self.lex_acc_terms = np.zeros(2 * len(self._lex_acc_flat), dtype=np.int32)
            self.lex_acc_terms[: len(self._lex_acc_flat)] = self._lex_acc_flat
        else:
            self.lex_acc_terms[len(self._lex_acc_flat) - len(accepted): len(self._lex_acc_flat)] = accepted
        self.lex_acc_start[s + 1] = len(self._lex_acc_flat)
        self.lex_acc_start[s + 2:] = len(self._lex_acc_flat)
        self._account(_NODE_BYTES + 16 * len(pairs))
        return s

    def lexer_pairs(self, s: int) -> tuple[tuple[int, int, bool], ...]:
        """(terminal, DFA state, lexeme still empty) of each lexeme lexer state s is reading."""
        return self._lex_pairs[s]

    def expand_lexer(self, s: int, deadline: Deadline | None = None) -> None:
        """Build row s of the lexer table: each byte class steps every terminal DFA of the lexeme."""
        if self.lex_table[s, 0] != UNEXPANDED:
            return
        with self._lock:
            if self.lex_table[s, 0] != UNEXPANDED:
                return
            deadline = deadline or self.limits.deadline("building lexer states")
            pairs = self._lex_pairs[s]
            restart = self._lex_restart[s]
            shortest = self.tables.shortest
            n_real = self.n_terminals
            # One DFA row read per pair (in the joint byte classes), then one lexer state per
            # distinct column: most classes of a row lead to the same few outcomes.
            live = [(term, q) for term, q, empty in pairs
                    if not (shortest[term] and not empty and self.lexer_dfas[term].accepting(q))]
            n_classes = len(self.class_bytes)
            if not live:
                self.lex_table[s] = DEAD
                return
            steps = [self.lexer_dfas[term].row(q)[self._class_map[term]].tolist() for term, q in live]
            index: dict[tuple, int] = {}
            inverse = np.fromiter((index.setdefault(column, len(index)) for column in zip(*steps)),
                                  dtype=np.intp, count=n_classes)
            targets = np.empty(len(index), dtype=np.int32)
            for k, column in enumerate(index):
                deadline.check()
                nxt = {(term, q2, False) for (term, _), q2 in zip(live, column) if q2 >= 0}
                if any(term >= n_real and self.lexer_dfas[term].accepting(q2) for term, q2, _ in nxt):
                    nxt.update(self._restarts[restart])  # what may follow an ignored lexeme starts here
                targets[k] = self._lexer(tuple(sorted(nxt)), restart) if nxt else DEAD
            self.lex_table[s] = targets[inverse]

    def lexer_step(self, s: int, c: int) -> int:
        if self.lex_table[s, 0] == UNEXPANDED:
            self.expand_lexer(s)
        return int(self.lex_table[s, c])

    def lexer_is_stuck(self, s: int) -> bool:
        """Whether no byte can extend the lexeme (every transition is dead)."""
        if self.lex_table[s, 0] == UNEXPANDED:
            self.expand_lexer(s)
        return bool((self.lex_table[s] < 0).all())

    # ------------------------------------------------------------------ configurations

    @property
    def n_states(self) -> int:
        return len(self._configs)

    def pairs(self, config: int) -> frozenset[tuple[int, int]]:
        """The (parser node, lexer state) pairs of a configuration."""
        return self._configs[config]

    def _close(self, pairs) -> frozenset:
        """Add the pair where the lexemes that may end here end: one parser node for all of them,
        whose kernel is the union of their scans (an Earley column: without the union, a text
        where each character may be one of two terminals would double its nodes at every step)."""
        out = set(pairs)
        enders = [(node, lex) for node, lex in pairs if self.lex_accepts[lex]]
        if not enders:
            return frozenset(out)
        if len(enders) == 1:
            nxt = self.scan(enders[0][0], self.lex_accepted[enders[0][1]])
        else:
            with self._lock:
                nxt = self._node(frozenset().union(*(self._scans[node][term] for node, lex in enders
                                                     for term in self.lex_accepts[lex])))
        out.add((nxt, self.start_lexer(nxt)))
        return frozenset(out)

    def _config(self, pairs: frozenset) -> int:
        got = self._config_ids.get(pairs)
        if got is not None:
            return got
        s = len(self._configs)
        self._config_ids[pairs] = s
        self._configs.append(pairs)
        self.config_accepting.append(any(self.lex_boundary[lex] and self.node_accepting[node] for node, lex in pairs))
        if s >= self.table.shape[0]:
            self.table = _grown(self.table, UNEXPANDED)
        self._account(_NODE_BYTES + _PAIR_BYTES * len(pairs))
        return s

    def expand_cell(self, config: int, c: int, deadline: Deadline | None = None) -> int:
        """The configuration after a byte of class c (DEAD if none), stored in the table."""
        got = int(self.table[config, c])
        if got != UNEXPANDED:
            return got
        with self._lock:
            moved = []
            for node, lex in self._configs[config]:
                nxt = self.lexer_step(lex, c)
                if nxt >= 0:
                    moved.append((node, nxt))
            got = self._config(self._close(moved)) if moved else DEAD
            self.table[config, c] = got
        return got

    def accepting(self, config: int) -> bool:
        return self.config_accepting[config]

    def is_finished(self, config: int) -> bool:
        """Accepting, and no byte may follow."""
        return self.config_accepting[config] and all(self.lexer_is_stuck(lex) for _, lex in self._configs[config])

    def step(self, config: int, data: bytes) -> int:
        """The configuration after `data`, or DEAD."""
        for b in data:
            if config < 0:
                return DEAD
            config = self.expand_cell(config, int(self.byte_class[b]))
        return config

    def matches(self, data: bytes) -> bool:
        s = self.step(self.initial, data)
        return s >= 0 and self.config_accepting[s]


def _grown(table: np.ndarray, fill: int) -> np.ndarray:
    grown = np.full((2 * table.shape[0],) + table.shape[1:], fill, dtype=table.dtype)
    grown[: table.shape[0]] = table
    return grown


def _joint_classes(dfas) -> tuple[np.ndarray, np.ndarray]:
    """Byte classes no terminal tells apart: the common refinement of every terminal's classes."""
    keys: dict[tuple, int] = {}
    byte_class = np.empty(256, dtype=np.int32)
    reps: list[int] = []
    columns = [d.byte_class for d in dfas]
    for b in range(256):
        key = tuple(int(col[b]) for col in columns)
        c = keys.get(key)
        if c is None:
            c = keys[key] = len(reps)
            reps.append(b)
        byte_class[b] = c
    return byte_class, np.array(reps, dtype=np.int64)
