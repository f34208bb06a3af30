"""Random walks through a constraint's language: the engine behind `tether sample` and the
hypothesis strategies of `tether.integrations.strategies`.

    >>> sample(tether.regex(r"[0-9]{3}-[a-z]+"), 3, seed=0)
    ['560-izxsmxpgzbkb', '938-wcm', '057-r']

A walk compiles the spec for the byte vocabulary (256 one-byte tokens and an EOS id) and goes
byte by byte. At each state it lists its options, simplest first: stop (when the state
accepts), then the allowed bytes, grouped by the state they lead to. A `Chooser` picks an
index; hypothesis' shrinker lowers indices, so the order decides what shrunk examples look
like ('0' before '1' before 'a' before 'A' before ' ' before punctuation, control and
non-ASCII bytes last). Groups matter for diversity: `"a" | "b" | "c" "d"` offers {a, b} (both
lead to the same final state) and {c}; a singleton next to a wide class (`/[^x]/ | "x" "y"`)
still gets a fair share, since every group weighs at least half the mean group size.

Size: a walk never writes more than `max_size` bytes when the language has a member that
short. It keeps `len(text) + shortest completion <= max_size` at every step (the shortest
completion is a BFS over constraint states, memoised), and when a choice would break that, or
at random with a probability rising with the length (so sizes spread), it follows the shortest
completion to the end. When even the shortest member is longer, the walk returns a shortest
member: the length bound is ``max(max_size, shortest member)`` in every case.

Depth (`max_depth`): on the context-free engine a state's depth is the number of rule
invocations still open in its shallowest parse (its Earley items' chain of callers back to the
start rule; `NestingDepth`). Rules that take part in no recursion are fused into terminals
before parsing, so only recursive rules count: a JSON array inside an array opens two
(`value` and `array`). Past `max_depth`, a walk takes no byte that opens deeper while another
is allowed; a lexeme already begun may still open one more level. A grammar on the DFA path
has no recursion, so its nesting is bounded by the grammar itself and `max_depth` does not apply.

A real vocabulary walks token by token (uniform over the allowed tokens, EOS first); its
shortest completions use the vocabulary's single-byte tokens, spelled back into the longest
allowed tokens.
"""

from __future__ import annotations

import copy
import functools
import math
import random
from typing import Any, Callable, Hashable, Protocol, Sequence

import numpy as np

from ..errors import ConstraintTooLarge, EmptyLanguage, TetherError, TokenRejected
from ..vocab import Vocabulary
from .constraint import Constraint

__all__ = ["Chooser", "RandomChooser", "NestingDepth", "Walker", "byte_vocabulary", "walker", "sample",
           "DEFAULT_MAX_SIZE", "DEFAULT_MAX_STATES"]

DEFAULT_MAX_SIZE = 100
# Constraint states one shortest-completion search may visit before giving up.
DEFAULT_MAX_STATES = 20_000
# States a completion search visits exactly before it narrows to a beam of the simplest states
# per level (see Walker._distance).
_EXACT_STATES = 2_000
_BEAM = 16
# The share of `Limits.automaton_bytes` a context-free automaton may hold before a walker starts
# the next walk on a fresh one (its states only grow, with every text walked).
_AUTOMATON_SHARE = 1 / 8
# Memo entries (groups, distances, depths) a walker keeps before starting afresh.
_MEMO_LIMIT = 200_000

State = Hashable
_REFUSED = object()  # a masked-in token that `advance` refused
_FINISH = object()  # the choice to follow the shortest completion
# Index slots per unit of an option's weight (see _pick): the one early-finish slot is then
# a small share of any choice.
_REPLICATE = 4


class Chooser(Protocol):
    """Picks one of n options; index 0 is the simplest. `RandomChooser`, or a hypothesis draw."""

    def choose(self, n: int) -> int:
        """An index in [0, n)."""


class RandomChooser:
    """Uniform choices from a `random.Random` (a seed, or a generator to share).

        >>> RandomChooser(0).choose(10)
        6
    """

    def __init__(self, seed: int | random.Random | None = None):
        self.rng = seed if isinstance(seed, random.Random) else random.Random(seed)

    def choose(self, n: int) -> int:
        return self.rng.randrange(n)


# ---------------------------------------------------------------------------------- bytes


def _rank_order() -> list[int]:
    """Bytes, simplest first: the order shrunk examples are written in."""
    first = list(b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ ")
    punct = [b for b in range(33, 127) if b not in first]
    control = [10, 9, 13] + [b for b in range(32) if b not in (9, 10, 13)] + [127]
    return first + punct + control + list(range(128, 256))


_ORDER = _rank_order()
_RANK = np.empty(256, dtype=np.int64)
_RANK[_ORDER] = np.arange(256)


@functools.cache
def byte_vocabulary() -> Vocabulary:
    """The vocabulary walks compile for: token b is byte b (0-255), 256 is EOS. Built once.

        >>> byte_vocabulary().size
        257
    """
    return Vocabulary.from_tokens([bytes([b]) for b in range(256)] + [None], eos_ids=[256])


@functools.lru_cache(maxsize=8)
def _vocab_tables(vocab: Vocabulary) -> tuple[np.ndarray, bool, np.ndarray | None, dict[bytes, int], int]:
    """(token id of each single byte or -1, whether every token is one byte, spellable ids in
    rank order (None for a byte vocabulary), bytes -> first id, longest token)."""
    byte_ids = np.full(256, -1, dtype=np.int64)
    spelled: dict[bytes, int] = {}
    longest = 0
    for i, t in enumerate(vocab):
        if not t:
            continue
        spelled.setdefault(t, i)
        longest = max(longest, len(t))
        if len(t) == 1 and byte_ids[t[0]] < 0:
            byte_ids[t[0]] = i
    if longest <= 1:
        return byte_ids, True, None, spelled, longest
    # Shorter tokens first, then by their bytes' ranks: index 0 is the simplest token.
    ranked = sorted(spelled.items(), key=lambda kv: (len(kv[0]), [int(_RANK[b]) for b in kv[0]]))
    order = np.array([i for _, i in ranked], dtype=np.int64)
    all_ids = np.array([i for i, t in enumerate(vocab) if t], dtype=np.int64)
    # Tokens that spell the same bytes as another keep their own place after it.
    rest = np.setdiff1d(all_ids, order, assume_unique=False)
    return byte_ids, False, np.concatenate([order, rest]), spelled, longest


def _byte_classes(constraint: Constraint) -> np.ndarray | None:
    """Bytes the constraint's automaton never tells apart (one next state per class), or None
    when that is unknown (wrappers such as the SQL name checker look at the bytes themselves)."""
    from .cfg import CFGConstraint
    from .index import DFAConstraint

    if type(constraint) is DFAConstraint:
        return constraint.dfa.byte_class
    if type(constraint) is CFGConstraint:
        return constraint.automaton.byte_class
    return None


def _wrapped(constraint: Constraint) -> tuple[Constraint, np.ndarray | None] | None:
    """(the innermost constraint, its byte classes) of a wrapper (its states are tuples with the
    inner state first, its constraint in `.inner`), or None for a plain constraint."""
    inner = getattr(constraint, "inner", None)
    if not isinstance(inner, Constraint):
        return None
    while isinstance(getattr(inner, "inner", None), Constraint):
        inner = inner.inner
    return inner, _byte_classes(inner)


# ---------------------------------------------------------------------------------- depth


class NestingDepth:
    """How many rule invocations are open in a context-free constraint's state.

    An Earley item (symbol automaton state, origin node) is open while its rule can still read
    on; the items waiting at its origin for that rule are its callers, and so on back to the
    start rule (origin ROOT). A parser node's depth is the shallowest chain of its open items;
    a configuration's, the deepest of its (parser node, lexer state) pairs, so a lexeme that has
    just opened a rule counts at once.

        >>> d = NestingDepth.of(tether.lark(nested_lists).compile(byte_vocabulary()))
        >>> d.depth(after("[[1")) - d.depth(after("[1"))   # one more list: `value` and `list` open
        2

    Reads the Earley automaton's node tables (`CFGAutomaton._scans`, `_waiting`: the open items
    of a node, as the items they become): no public accessor exposes a node's items yet.
    """

    def __init__(self, constraint: Constraint):
        self.constraint = constraint
        self.automaton = constraint.automaton
        self._nodes: dict[int, int] = {}

    @staticmethod
    def of(constraint: Constraint) -> "NestingDepth | None":
        """The depth reader of a context-free constraint (inside a ScopedSQL/UniqueItems wrapper
        too), or None for a regular one."""
        from .cfg import CFGConstraint

        while not isinstance(constraint, CFGConstraint):
            constraint = getattr(constraint, "inner", None)
            if constraint is None:
                return None
        return NestingDepth(constraint)

    def depth(self, state: State) -> int:
        """Open rule invocations at `state` (a state of the constraint this reader was made for, or
        of a wrapper around it: wrappers keep the inner state first in a tuple)."""
        config = self.constraint._id(_inner(state))
        return max(self._node(node) for node, _ in self.automaton.pairs(config))

    def _node(self, node: int) -> int:
        got = self._nodes.get(node)
        if got is None:
            a = self.automaton
            # Each open item appears as what it becomes after its next symbol: same rule, same origin.
            items = {it for group in a._scans[node].values() for it in group}
            items.update(it for group in a._waiting[node].values() for it in group)
            got = self._nodes[node] = min((self._item(it) for it in items), default=0)
        return got

    def _item(self, item: tuple[int, int]) -> int:
        """The shortest chain of callers from `item` to the start rule (a BFS: left recursion
        makes an item its own caller)."""
        from .earley import ROOT

        a = self.automaton
        rule_of = a.tables.rule_of
        level, frontier, seen = 0, [item], {item}
        while frontier:
            nxt = []
            for state, origin in frontier:
                if origin == ROOT:
                    return level
                for caller in a._waiting[origin].get(rule_of[state], ()):
                    if caller not in seen:
                        seen.add(caller)
                        nxt.append(caller)
            frontier, level = nxt, level + 1
        return level  # not reached: every item the parser built has a chain back to the start


# ---------------------------------------------------------------------------------- walks


class _Group:
    """The allowed bytes of one state that lead to the same next state (rank order)."""

    __slots__ = ("next", "members")

    def __init__(self, nxt: State, members: bytes):
        self.next = nxt
        self.members = members


def _weights(sizes: Sequence[int]) -> list[int]:
    """Each option's share of the index space: its size, but at least half the mean size, so a
    branch of one byte next to a class of 200 still comes up about once in 3 x (options) draws."""
    floor = math.ceil(sum(sizes) / (2 * len(sizes)))
    return [max(s, floor) for s in sizes]


def _finish_slots(length: int, max_size: int, total: int) -> int:
    """Index slots (after the options) that mean "finish now": a share (length / max_size)**2 / 2 of the draws, so a
    walk that the language never stops on its own still ends at spread-out lengths."""
    if max_size <= 0 or length <= 0:
        return 0
    p = min(0.5, (length / max_size) ** 2 / 2)
    return round(total * p / (1 - p))


class Walker:
    """Random walks over one compiled constraint, with the memo tables they share.

        >>> w = Walker(tether.regex(r"(ab|c)+").compile(byte_vocabulary()), max_size=8)
        >>> w.walk(RandomChooser(1)), w.shortest()
        ('abc', 'c')

    max_size: the most bytes a walk writes (see the module docstring for the one exception).
    max_depth: open rule invocations past which a walk opens no more (context-free only).
    max_states: the states one shortest-completion search may visit; past it a walk that
    needs one raises `ConstraintTooLarge`.
    rebuild: makes a fresh twin of the constraint; a context-free automaton keeps every state it
    builds, so past an eighth of `Limits.automaton_bytes` the next walk starts on a twin.
    Raises `EmptyLanguage` when the vocabulary can spell no member.
    """

    def __init__(self, constraint: Constraint, *, max_size: int = DEFAULT_MAX_SIZE, max_depth: int | None = None,
                 max_states: int = DEFAULT_MAX_STATES, rebuild: Callable[[], Constraint] | None = None):
        if not isinstance(constraint, Constraint):
            raise TypeError(f"Walker needs a compiled tether Constraint, got {type(constraint).__name__}")
        for name, value in (("max_size", max_size), ("max_states", max_states)):
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "max_size" else 1):
                raise ValueError(f"{name} must be an integer >= {0 if name == 'max_size' else 1}, got {value!r}")
        if max_depth is not None and (isinstance(max_depth, bool) or not isinstance(max_depth, int) or max_depth < 0):
            raise ValueError(f"max_depth must be None or an integer >= 0, got {max_depth!r}")
        self.rebuild = rebuild
        self.max_size = max_size
        self.max_depth = max_depth
        self.max_states = max_states
        self._bind(constraint)

    def _bind(self, constraint: Constraint) -> None:
        """Walk `constraint` from now on, with empty memo tables."""
        self.constraint = constraint
        vocab = constraint.vocab
        self._byte_ids, self._bytewise, self._token_order, self._spelled, self._longest = _vocab_tables(vocab)
        self._tokens = list(vocab)
        self._classes = _byte_classes(constraint)
        self._wrapped = _wrapped(constraint)
        self._depth = NestingDepth.of(constraint) if self.max_depth is not None else None
        self._groups: dict[State, tuple[bool, tuple[_Group, ...]]] = {}
        self._dist: dict[State, tuple[int, int, State]] = {}  # state -> (distance, byte, next state)
        self._depths: dict[State, int] = {}
        self._searched: dict[State, tuple[_Group, ...]] = {}
        self.mask_disagreements = 0
        self._initial = constraint.initial()
        if self._distance(self._initial) is None:
            raise ConstraintTooLarge("searching for the shortest member", self.max_states, self.max_states,
                                     unit="states", hint="raise max_states=")

    # -- the public walks

    def walk(self, chooser: Chooser) -> str:
        """One member of the language, its choices made by `chooser`."""
        if self.rebuild is not None and _automaton_bytes(self.constraint) > _AUTOMATON_SHARE * self.constraint.limits.automaton_bytes:
            self._bind(self.rebuild())  # a context-free automaton keeps every state it built: start a fresh one
        elif len(self._dist) + len(self._groups) > _MEMO_LIMIT:
            self._reset()
        data = self._walk_bytes(chooser) if self._bytewise else self._walk_tokens(chooser)
        return self._decode(data)

    def shortest(self) -> str:
        """A shortest member, written with the simplest bytes."""
        return self._decode(self._completion(self._initial)[0])

    # -- states

    def _reset(self) -> None:
        self._groups.clear()
        self._dist.clear()
        self._depths.clear()
        self._searched.clear()
        self._distance(self._initial)

    def _state_groups(self, s: State) -> tuple[bool, tuple[_Group, ...]]:
        """(accepting, the byte groups of `s` in rank order), memoised."""
        got = self._groups.get(s)
        if got is not None:
            return got
        c = self.constraint
        mask = c.mask(s)
        ids = self._byte_ids
        by_next: dict[State, bytearray] = {}
        by_class: dict[int, State] = {}
        classes = self._classes
        for b in _ORDER:
            t = int(ids[b])
            if t < 0 or not mask[t]:
                continue
            k = b if classes is None else int(classes[b])
            nxt = by_class.get(k)
            if nxt is None:
                nxt = by_class[k] = self._advance(s, t)
            if nxt is not _REFUSED:
                by_next.setdefault(nxt, bytearray()).append(b)
        got = (bool(c.is_accepting(s)), tuple(_Group(n, bytes(m)) for n, m in by_next.items()))
        self._groups[s] = got
        return got

    def _advance(self, s: State, t: int) -> State:
        """`advance`, or _REFUSED for a token the mask allowed but `advance` refuses: a constraint
        that breaks the mask/allows contract (counted in `mask_disagreements`) still walks soundly."""
        try:
            return self.constraint.advance(s, t)
        except TokenRejected:
            self.mask_disagreements += 1
            return _REFUSED

    def _search_groups(self, s: State) -> tuple[_Group, ...]:
        """The groups a completion search follows: one per next state of the innermost constraint.

        A wrapper (the SQL name checker, uniqueItems) keeps its own state beside its inner
        constraint's, so `SELECT`, `select` and `Select` are 2**6 states that the grammar does
        not tell apart; the search takes the simplest byte's, and advances the wrapper on it
        alone. Its completions are then the shortest among those: always valid, and for a
        constraint without a wrapper the shortest of all."""
        got = self._searched.get(s)
        if got is not None:
            return got
        if self._wrapped is None:
            got = self._state_groups(s)[1]
        else:
            inner, classes = self._wrapped
            c, ids = self.constraint, self._byte_ids
            mask, state = c.mask(s), _inner(s)
            classes_seen: set[int] = set()
            inner_seen: set = set()
            out = []
            for b in _ORDER:
                t = int(ids[b])
                if t < 0 or not mask[t]:
                    continue
                k = b if classes is None else int(classes[b])
                if k in classes_seen:
                    continue
                classes_seen.add(k)
                nxt = inner.advance(state, t)
                if nxt not in inner_seen:
                    inner_seen.add(nxt)
                    outer = self._advance(s, t)
                    if outer is not _REFUSED:
                        out.append(_Group(outer, bytes([b])))
            got = tuple(out)
        self._searched[s] = got
        return got

    def _distance(self, s: State) -> int | None:
        """Bytes in the shortest completion found from `s` (0 when it accepts), or None past max_states.

        A BFS in rank order, so the completion found first is the simplest of the shortest; every
        state on it learns its own distance, and a state whose distance is known is not expanded
        (its best continuation is already known). Past `_EXACT_STATES` visited states the search
        goes on as a beam (the simplest `_BEAM` states of each level): a completion, maybe not
        the shortest, for grammars whose states branch too widely for an exact search (SQL)."""
        got = self._dist.get(s)
        if got is not None:
            return got[0]
        c = self.constraint
        parent: dict[State, tuple[State, int] | None] = {s: None}
        frontier, level = [s], 0
        best: tuple[int, State] | None = None
        while frontier and (best is None or level < best[0]):
            if len(parent) > _EXACT_STATES:
                frontier = frontier[:_BEAM]
            nxt_frontier = []
            for x in frontier:
                known = self._dist.get(x)
                if known is None and c.is_accepting(x):
                    known = self._dist[x] = (0, -1, x)
                if known is not None:
                    if best is None or level + known[0] < best[0]:
                        best = (level + known[0], x)
                    continue
                for g in self._search_groups(x):
                    if g.next not in parent:
                        parent[g.next] = (x, g.members[0])
                        nxt_frontier.append(g.next)
                if len(parent) > self.max_states:
                    return None
            frontier, level = nxt_frontier, level + 1
        if best is None:
            if s == self._initial:
                raise EmptyLanguage("the vocabulary cannot spell any member of this constraint's language")
            return None  # cannot happen for a constraint without dead ends
        total, x = best
        d = self._dist[x][0]
        while parent[x] is not None:
            prev, b = parent[x]
            d += 1
            self._dist[prev] = (d, b, x)
            x = prev
        return total

    def _completion(self, s: State) -> tuple[bytes, State]:
        """(the shortest completion's bytes from `s`, the accepting state it ends in)."""
        if self._distance(s) is None:
            raise ConstraintTooLarge("searching for a shortest completion", self.max_states, self.max_states,
                                     unit="states", hint="raise max_states=")
        out = bytearray()
        while True:
            d, b, nxt = self._dist[s]
            if d == 0:
                return bytes(out), s
            out.append(b)
            s = nxt

    def _depth_of(self, s: State) -> int:
        got = self._depths.get(s)
        if got is None:
            got = self._depths[s] = self._depth.depth(s)
        return got

    def _too_deep(self, s: State) -> bool:
        return self._depth_of(s) > self.max_depth

    def _shallow(self, groups: tuple[_Group, ...]) -> tuple[_Group, ...]:
        """The groups that open no rule past max_depth; if every one does (a lexeme already begun
        may have to open one more level), those that open the fewest."""
        depths = [self._depth_of(g.next) for g in groups]
        limit = max(self.max_depth, min(depths))
        return tuple(g for g, d in zip(groups, depths) if d <= limit)

    def _fits(self, length: int, s: State) -> bool:
        d = self._distance(s)
        return d is not None and length + d <= self.max_size

    # -- byte by byte

    def _walk_bytes(self, chooser: Chooser) -> bytes:
        s, out = self._initial, bytearray()
        while True:
            accepting, groups = self._state_groups(s)
            if not groups:
                if accepting:
                    return bytes(out)
                raise EmptyLanguage("a walk reached a state that allows nothing (a dead end in the constraint)")
            if not self._fits(len(out), s):  # only at the start, when every member is longer than max_size
                return bytes(out) + self._completion(s)[0]
            if self._depth is not None:
                groups = self._shallow(groups)
            sizes = ([1] if accepting else []) + [len(g.members) for g in groups]
            i = _pick(chooser, len(out), self.max_size, weights := _weights(sizes), accepting, sum(sizes))
            if i is _FINISH:
                return bytes(out) + self._completion(s)[0]
            if accepting:
                if i < weights[0]:
                    return bytes(out)
                i -= weights[0]
                weights = weights[1:]
            for g, w in zip(groups, weights):
                if i < w:
                    break
                i -= w
            if not self._fits(len(out) + 1, g.next):
                return bytes(out) + self._completion(s)[0]
            out.append(g.members[i % len(g.members)])
            s = g.next

    # -- token by token

    def _walk_tokens(self, chooser: Chooser) -> bytes:
        c = self.constraint
        s, out = self._initial, bytearray()
        order = self._token_order
        while True:
            mask = c.mask(s)
            accepting = bool(c.is_accepting(s))
            ids = order[mask[order]]
            if not ids.shape[0]:
                if accepting:
                    return bytes(out)
                raise EmptyLanguage("a walk reached a state that allows nothing (a dead end in the constraint)")
            if not self._fits(len(out), s):
                return bytes(out) + self._spell(s)
            n = int(ids.shape[0]) + accepting
            i = _pick(chooser, len(out), self.max_size, [1] * n, accepting, n)
            if i is _FINISH:
                return bytes(out) + self._spell(s)
            if accepting:
                if i == 0:
                    return bytes(out)
                i -= 1
            t = int(ids[i])
            nxt = c.advance(s, t)
            data = self._tokens[t]
            if not self._fits(len(out) + len(data), nxt) or (self._depth is not None and self._too_deep(nxt)):
                return bytes(out) + self._spell(s)  # the token would break a bound: end here instead
            out += data
            s = nxt

    def _spell(self, s: State) -> bytes:
        """The shortest completion from `s`, taken in the longest allowed tokens that spell it."""
        c = self.constraint
        rest, _ = self._completion(s)
        done = 0
        while done < len(rest):
            for k in range(min(self._longest, len(rest) - done), 0, -1):
                t = self._spelled.get(rest[done:done + k])
                if t is not None and c.allows(s, t):
                    s = c.advance(s, t)
                    done += k
                    break
            else:  # cannot happen: the completion's own single-byte tokens are allowed
                raise TetherError(f"no allowed token spells the completion {rest[done:]!r}")
        return rest

    @staticmethod
    def _decode(data: bytes) -> str:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise TetherError(f"a walk wrote bytes that are not UTF-8 ({e.reason}): {data[:80]!r}") from None


def _pick(chooser: Chooser, length: int, max_size: int, weights: list[int], accepting: bool, outcomes: int) -> Any:
    """An index into the options' slots (option k has weights[k] of them, stop first when
    accepting), or _FINISH: follow the shortest completion now.

    The index space is [stop][finish][options x _REPLICATE][finish x rising share]: one finish
    slot sits next to stop, so that lowering any choice can end a walk early (what shrinks an
    example to its shortest completion), and it is one slot among many, so that random draws
    rarely take it; the slots that make sizes spread come last, so that an index means the same
    option whatever the length (the shrinker can delete choices without shifting the meaning
    of those after them). `outcomes` counts stop and every byte (or token): when it is 1, the
    only one is taken without a draw (fewer choices make shorter hypothesis examples)."""
    total = sum(weights)
    if outcomes == 1:
        return 0
    head = _REPLICATE * weights[0] if accepting else 0
    body = _REPLICATE * total
    i = _draw(chooser, body + 1 + _finish_slots(length, max_size, body))
    if i == head or i > body:
        return _FINISH
    if i > head:
        i -= 1
    return i // _REPLICATE


def _inner(state: State) -> State:
    """The innermost constraint's state: wrappers keep it first in a tuple."""
    while type(state) is tuple:
        state = state[0]
    return state


def _automaton_bytes(constraint: Constraint) -> int:
    """Memory held by the context-free automaton under `constraint` (0 for a regular one)."""
    depth = NestingDepth.of(constraint)
    return 0 if depth is None else depth.automaton.nbytes()


def _fresh(spec: Any, vocab: Vocabulary) -> Callable[[], Constraint] | None:
    """A maker of fresh constraints for a context-free `Grammar` spec (its automaton rebuilt from
    the same tables, as `Grammar.matches` does for its own), or None for any other spec."""
    from .earley import CFGAutomaton
    from .grammar import Grammar

    if not isinstance(spec, Grammar) or getattr(spec, "_automaton", None) is None:
        return None

    def make() -> Constraint:
        twin = copy.copy(spec)
        twin._automaton = CFGAutomaton(spec._automaton.tables, spec.limits)
        return twin._bind(vocab)

    return make


def _draw(chooser: Chooser, n: int) -> int:
    """The chooser's pick among n options; a single option is taken without asking (fewer
    choices make shorter hypothesis examples)."""
    if n == 1:
        return 0
    i = chooser.choose(n)
    if type(i) is not int and not isinstance(i, (int, np.integer)) or not 0 <= i < n:
        raise ValueError(f"a chooser must return an index in [0, {n}), got {i!r}")
    return int(i)


# ---------------------------------------------------------------------------------- entry points


def walker(spec: Any, *, vocab: Vocabulary | None = None, max_size: int = DEFAULT_MAX_SIZE,
           max_depth: int | None = None, max_states: int = DEFAULT_MAX_STATES) -> Walker:
    """A `Walker` for a spec (anything with `.compile(vocab)`: `tether.regex`, `lark`, `gbnf`,
    `json_schema`, `sql`) or a compiled `Constraint`.

        >>> walker(tether.lark('start: "a" | "b" "c"')).walk(RandomChooser(0))
        'bc'

    vocab: walk token by token over this vocabulary instead of byte by byte.
    """
    rebuild = None
    if isinstance(spec, Constraint):
        if vocab is not None and spec.vocab.fingerprint != vocab.fingerprint:
            from ..errors import VocabularyMismatch

            raise VocabularyMismatch("the constraint was compiled for another vocabulary than vocab=")
        constraint = spec
    elif callable(getattr(spec, "compile", None)):
        vocab = vocab if vocab is not None else byte_vocabulary()
        constraint = spec.compile(vocab)
        rebuild = _fresh(spec, vocab)
    elif isinstance(spec, str):
        raise TypeError("a walk needs a spec, not a string: pass tether.regex(text), tether.lark(text), "
                        "tether.gbnf(text) or tether.json_schema(text)")
    else:
        raise TypeError(f"expected a tether spec (e.g. tether.regex(...)) or Constraint, got {type(spec).__name__}")
    return Walker(constraint, max_size=max_size, max_depth=max_depth, max_states=max_states, rebuild=rebuild)


def sample(spec: Any, n: int, *, seed: int | None = None, max_size: int = DEFAULT_MAX_SIZE,
           max_depth: int | None = None, vocab: Vocabulary | None = None) -> list[str]:
    """n random members of a spec's language (walks, so repeats are possible).

        >>> sample(tether.json_schema({"type": "array", "items": {"type": "integer"}}), 2, seed=3)
        ['[29815979909]', '[]']
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an integer >= 0, got {n!r}")
    w = walker(spec, vocab=vocab, max_size=max_size, max_depth=max_depth)
    chooser = RandomChooser(seed)
    return [w.walk(chooser) for _ in range(n)]
