"""Regular expressions over bytes as hash-consed terms, with Brzozowski derivatives.

A regex tree (`tether.grammar.regex`) becomes a term: an int id into a `Terms`
store whose smart constructors keep terms canonical (ε and ∅ absorbed,
alternatives flattened, sorted and deduplicated), so that the derivative of a
term by a byte is again a term, and equal derivatives are equal ids. A lazy DFA
(`tether.automata.dfa`) is then just "state = term": its states are built on
demand, one derivative per byte class, never all up front. Counted repetitions
are never unrolled (`x{m,n}` derives to `x'·x{m-1,n-1}`), so a pattern's size,
not its automaton's, is what compiling costs.

    >>> terms = Terms()
    >>> t = terms.from_tree(parse_regex("ab|ac"))
    >>> terms.derive(t, ord("a"), OTHER) == terms.from_tree(parse_regex("b|c"))
    True

Characters are Unicode code point sets; derivatives read them as UTF-8, one byte
at a time (`CHARS` by its lead byte gives a `TAIL` of continuation bytes), so
the automaton is over bytes and never accepts ill-formed UTF-8 (no surrogates,
no overlong forms).

Intersection and complement are terms too (Brzozowski's derivatives are closed under
them: d(A∩B) = dA∩dB, d(¬A) = ¬dA). `K_NOT` is the complement over all byte strings,
so a tree's `Complement(A)` becomes `U ∩ ¬A` with U the term of `(?s:.*)`: U's
derivatives only go on with valid UTF-8, and so does the intersection. Intersections
are flattened, sorted and deduplicated like alternatives; a term with either operator
may be empty without being ∅, so the DFA decides which of its states are live by a
search (as it does for assertions). Anchors inside them are refused: their
context-dependent nullability does not commute with complement.

Zero-width assertions (`^ $ \\A \\Z`) are exact: nullability is evaluated in a
context (what precedes the position: the start, a newline or another byte;
what follows: the end, a newline or another byte), and `$`'s "before a final
newline" becomes a branch that must end right after that newline.

Every function here is iterative: nesting depth in a pattern never meets
Python's recursion limit.
"""

from __future__ import annotations

import threading
from bisect import bisect_right

from ..errors import UnsupportedPattern
from ..grammar.regex import (Alternation, Assert, Chars, Complement, Concat, Intersect, Multiples, Repeat, RegexNode,
                             render)
from ..grammar.regex import complement as _invert  # of interval sets
from ..limits import Deadline

__all__ = ["Terms", "EMPTY", "EPS", "START", "NEWLINE", "OTHER", "NEEDS_SEARCH"]

# Term kinds.
K_EMPTY, K_EPS, K_CHARS, K_TAIL, K_CAT, K_ALT, K_REP, K_ASSERT, K_LIT, K_INTER, K_NOT, K_MOD = range(12)
EMPTY, EPS = 0, 1

# What precedes a position (`prev`) and what follows it (`next`). A context is prev * 3 + next.
START, NEWLINE, OTHER = 0, 1, 2
END = 0  # as a `next`: nothing follows
ALL_CONTEXTS = 0x1FF


def _contexts(predicate) -> int:
    return sum(1 << (p * 3 + n) for p in range(3) for n in range(3) if predicate(p, n))


# Nullability of each assertion, as two masks over the 9 contexts: "at least conditional"
# and "true". Only `$` without MULTILINE is conditional: before a newline it holds only if
# that newline ends the text.
_ASSERT_NULLABLE = {
    "start": (_contexts(lambda p, n: p == START),) * 2,
    "line_start": (_contexts(lambda p, n: p in (START, NEWLINE)),) * 2,
    "end": (_contexts(lambda p, n: n == END),) * 2,
    "line_end": (_contexts(lambda p, n: n in (END, NEWLINE)),) * 2,
    "end_or_final_newline": (_contexts(lambda p, n: n in (END, NEWLINE)), _contexts(lambda p, n: n == END)),
}
_LOOKBEHIND = {"start", "line_start"}
_END_CONTEXTS = _contexts(lambda p, n: n == END)

HAS_ASSERT, HAS_LOOKBEHIND, HAS_BOOL = 1, 2, 4  # HAS_BOOL: an intersection or a complement inside
# Terms that may have an empty language without being ∅: the DFA searches for their liveness,
# and the structural shortcuts (`clamp`, `covers`) leave them alone.
NEEDS_SEARCH = HAS_ASSERT | HAS_BOOL
_ALL_BYTES = (1 << 256) - 1
_DIGITS = ((1 << 0x3A) - 1) ^ ((1 << 0x30) - 1)
_DIGIT_CUTS = _DIGITS | (1 << 0x3A)  # each digit a class of its own
_NEWLINE_CUTS = (1 << 10) | (1 << 11)  # a newline is its own byte class where assertions look at it
BASE_CUTS = 1 | (1 << 256)
_WIDE = 1 << 30  # "longer than anything a token spells"
_CLAMP_WORK = 4000  # term nodes one clamp may visit before it gives up (keeping the term as it is)
_CLAMP_NESTING = 200

# UTF-8: for a lead byte, (continuation bytes, lowest and highest code point of that length).
_UTF8 = {1: (0x80, 0x7FF), 2: (0x800, 0xFFFF), 3: (0x10000, 0x10FFFF)}


def _lead_length(b: int) -> int:
    """Continuation bytes after lead byte b (0 for ASCII, -1 for a byte that cannot lead)."""
    if b < 0x80:
        return 0
    if 0xC2 <= b <= 0xDF:
        return 1
    if 0xE0 <= b <= 0xEF:
        return 2
    if 0xF0 <= b <= 0xF4:
        return 3
    return -1


def _clip(intervals: tuple, lo: int, hi: int, shift: int) -> tuple:
    """The part of sorted disjoint `intervals` inside [lo, hi], moved down by `shift`."""
    if not intervals:
        return ()
    i = bisect_right(intervals, (lo, 1 << 62)) - 1
    i = max(i, 0)
    out = []
    for a, b in intervals[i:]:
        if a > hi:
            break
        if b < lo:
            continue
        out.append((max(a, lo) - shift, min(b, hi) - shift))
    return tuple(out)


def _contains(intervals: tuple, x: int) -> bool:
    i = bisect_right(intervals, (x, 1 << 62)) - 1
    return i >= 0 and intervals[i][0] <= x <= intervals[i][1]


class Terms:
    """A hash-consed store of byte-level regex terms; ids are ints, 0 is ∅ and 1 is ε.

    Per term it keeps what derivatives and automata need in O(1): its kind and
    fields, nullability in each context, the bytes that can start it, and where
    its byte classes begin (`cuts`: bit b set iff a class starts at byte b).
    """

    def __init__(self) -> None:
        # Automata that share this store take this lock to grow it (see LazyDFA).
        self.lock = threading.RLock()
        self.kind: list[int] = []
        self.a: list = []
        self.b: list = []
        self.c: list = []
        self.null_cond: list[int] = []  # contexts where the term may match empty (maybe conditionally)
        self.null_true: list[int] = []  # contexts where it matches empty unconditionally
        self.first: list[int] = []  # bitmask of bytes whose derivative may be non-empty
        self.cuts: list[int] = []
        self.flags: list[int] = []
        self.min_bytes: list[int] = []  # length of the shortest member, in bytes (capped)
        self._intern: dict[tuple, int] = {}
        self._derivatives: dict[int, int] = {}
        self._alt_index: dict[int, dict[int, tuple[int, ...]]] = {}
        self._leads: dict[int, dict[int, int]] = {}
        self._clamped: dict[tuple[int, int], int] = {}
        self._covers: dict[tuple, bool] = {}
        self._universe = -1  # the term of (?s:.*), made by the first complement
        self._new((K_EMPTY, None, None, None), 0, 0, 0, 0, 0, _WIDE)
        self._new((K_EPS, None, None, None), ALL_CONTEXTS, ALL_CONTEXTS, 0, 0, 0, 0)
        self._end = self.assertion("end")

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.lock = threading.RLock()

    def __len__(self) -> int:
        return len(self.kind)

    def _new(self, key: tuple, null_cond: int, null_true: int, first: int, cuts: int, flags: int,
             min_bytes: int) -> int:
        t = len(self.kind)
        self._intern[key] = t
        kind, a, b, c = key
        self.kind.append(kind)
        self.a.append(a)
        self.b.append(b)
        self.c.append(c)
        self.null_cond.append(null_cond)
        self.null_true.append(null_true)
        self.first.append(first)
        self.cuts.append(cuts)
        self.flags.append(flags)
        self.min_bytes.append(min(min_bytes, _WIDE))
        return t

    def approx_bytes(self) -> int:
        """A rough figure of the memory the store holds (for `Limits.automaton_bytes`)."""
        return 200 * len(self.kind) + 120 * len(self._derivatives)

    # ------------------------------------------------------------------ smart constructors

    def chars(self, intervals: tuple) -> int:
        if not intervals:
            return EMPTY
        key = (K_CHARS, intervals, None, None)
        t = self._intern.get(key)
        if t is None:
            first, cuts = _chars_classes(intervals)
            lowest = intervals[0][0]
            width = 1 if lowest < 0x80 else 2 if lowest < 0x800 else 3 if lowest < 0x10000 else 4
            t = self._new(key, 0, 0, first, cuts, 0, width)
            self._leads[t] = {}  # lead byte -> its tail, filled as derivatives need them
        return t

    def tail(self, k: int, rel: tuple) -> int:
        """k continuation bytes spelling one of the offsets `rel` (within [0, 64**k))."""
        if not rel:
            return EMPTY
        key = (K_TAIL, k, rel, None)
        t = self._intern.get(key)
        if t is None:
            first = cuts = 0
            previous = None
            size = 64 ** (k - 1)
            for j in range(64):
                sub = _clip(rel, j * size, (j + 1) * size - 1, j * size)
                if sub:
                    first |= 1 << (0x80 + j)
                if sub != previous:
                    cuts |= 1 << (0x80 + j)
                    previous = sub
            cuts |= (1 << 0xC0) | (1 << 0x80)
            t = self._new(key, 0, 0, first, cuts, 0, k)
        return t

    def lit(self, data: bytes, offset: int = 0) -> int:
        """The bytes data[offset:], one term for a whole run of literal characters (its
        derivative only moves the offset, so a 100,000-character literal is cheap)."""
        if offset == len(data):
            return EPS
        key = (K_LIT, data, offset, None)
        t = self._intern.get(key)
        if t is None:
            b = data[offset]
            t = self._new(key, 0, 0, 1 << b, (1 << b) | (1 << (b + 1)), 0, len(data) - offset)
        return t

    def multiples(self, modulus: int, remainder: int = 0) -> int:
        """Digit strings w with (remainder·10^|w| + value(w)) divisible by modulus: the
        derivative by a digit d is the same with remainder (10·remainder + d) % modulus."""
        key = (K_MOD, modulus, remainder, None)
        t = self._intern.get(key)
        if t is None:
            null = ALL_CONTEXTS if remainder == 0 else 0
            # The fewest digits that close it, exactly: liveness searches follow them to the end.
            shortest = 0
            while (-remainder * 10 ** shortest) % modulus >= 10 ** shortest:
                shortest += 1
            t = self._new(key, null, null, _DIGITS, _DIGIT_CUTS, 0, shortest)
        return t

    def assertion(self, kind: str) -> int:
        key = (K_ASSERT, kind, None, None)
        t = self._intern.get(key)
        if t is None:
            cond, true = _ASSERT_NULLABLE[kind]
            flags = HAS_ASSERT | (HAS_LOOKBEHIND if kind in _LOOKBEHIND else 0)
            t = self._new(key, cond, true, 0, _NEWLINE_CUTS, flags, 0)
        return t

    def cat(self, x: int, y: int) -> int:
        if x == EMPTY or y == EMPTY:
            return EMPTY
        if x == EPS:
            return y
        if y == EPS:
            return x
        if x == self._end and not self.flags[y] & HAS_LOOKBEHIND:
            # Nothing follows the end: what comes after must match empty there, or nothing matches.
            return x if self.null_true[y] & _END_CONTEXTS == _END_CONTEXTS else EMPTY
        key = (K_CAT, x, y, None)
        t = self._intern.get(key)
        if t is None:
            nc = self.null_cond[x]
            first = self.first[x] | (self.first[y] if nc else 0)
            cuts = self.cuts[x] | (self.cuts[y] if nc else 0)
            t = self._new(key, nc & self.null_cond[y], self.null_true[x] & self.null_true[y], first, cuts,
                          self.flags[x] | self.flags[y], self.min_bytes[x] + self.min_bytes[y])
        return t

    def alt(self, options) -> int:
        flat: set[int] = set()
        kind = self.kind
        for o in options:
            if kind[o] == K_ALT:
                flat.update(self.a[o])
            elif o != EMPTY:
                flat.add(o)
        if not flat:
            return EMPTY
        if len(flat) == 1:
            return next(iter(flat))
        opts = tuple(sorted(flat))
        key = (K_ALT, opts, None, None)
        t = self._intern.get(key)
        if t is None:
            nc = nt = first = cuts = flags = 0
            width = _WIDE
            for o in opts:
                nc |= self.null_cond[o]
                nt |= self.null_true[o]
                first |= self.first[o]
                cuts |= self.cuts[o]
                flags |= self.flags[o]
                width = min(width, self.min_bytes[o])
            t = self._new(key, nc, nt, first, cuts, flags, width)
        return t

    def rep(self, x: int, lo: int, hi: int) -> int:
        """x{lo,hi}; hi == -1 is unbounded."""
        if hi == 0 or x == EPS:
            return EPS
        if x == EMPTY:
            return EPS if lo == 0 else EMPTY
        if lo == 1 and hi == 1:
            return x
        kind = self.kind[x]
        if kind == K_ASSERT:  # zero-width: repeating it changes nothing
            return EPS if lo == 0 else x
        if kind == K_REP and self.b[x] <= 1:
            # (y{a,b}){c,d} with a <= 1 repeats y any count in [a*c, b*d]: the sums of c..d counts
            # from [a, b] leave no gaps. Nested counted repetitions then never multiply states.
            inner_lo, inner_hi = self.b[x], self.c[x]
            top = -1 if inner_hi == -1 or hi == -1 else inner_hi * hi
            return self.rep(self.a[x], inner_lo * lo, top)
        key = (K_REP, x, lo, hi)
        t = self._intern.get(key)
        if t is None:
            nc, nt = (ALL_CONTEXTS, ALL_CONTEXTS) if lo == 0 else (self.null_cond[x], self.null_true[x])
            t = self._new(key, nc, nt, self.first[x], self.cuts[x], self.flags[x], lo * self.min_bytes[x])
        return t

    def inter(self, parts) -> int:
        """The intersection of `parts`, canonical: nested ones flattened, sorted, deduplicated.

        Parts are assertion-free (`from_tree` refuses anchors here), so their nullability is
        the same in every context: 0 or ALL_CONTEXTS. No parts is every byte string (¬∅).
        """
        flat: set[int] = set()
        kind, a = self.kind, self.a
        for p in parts:
            if kind[p] == K_INTER:
                flat.update(a[p])
            elif p == EMPTY:
                return EMPTY
            elif not (kind[p] == K_NOT and a[p] == EMPTY):  # all byte strings: the identity
                flat.add(p)
        if not flat:
            return self.not_(EMPTY)
        if len(flat) == 1:
            return next(iter(flat))
        if any(kind[p] == K_NOT and a[p] in flat for p in flat):  # x ∩ ¬x
            return EMPTY
        nullable = all(self.null_true[p] for p in flat)
        first = _ALL_BYTES
        for p in flat:
            first &= self.first[p]
        if not first:  # no byte starts a member of every part (ε among them): at most ε is left
            return EPS if nullable else EMPTY
        opts = tuple(sorted(flat))
        key = (K_INTER, opts, None, None)
        t = self._intern.get(key)
        if t is None:
            nc = nt = ALL_CONTEXTS
            cuts = flags = width = 0
            for p in opts:
                nc &= self.null_cond[p]
                nt &= self.null_true[p]
                cuts |= self.cuts[p]  # the common refinement of the parts' classes
                flags |= self.flags[p]
                width = max(width, self.min_bytes[p])  # a member is a member of each part
            # Bytes outside `first` all derive to ∅: keep only the cuts that start a class inside it
            # or just past it, so a run of them is one class (a tail state has a few, not dozens).
            # `first` changes only at cuts of some part, so this is still the parts' partition merged.
            cuts &= first | (first << 1)
            t = self._new(key, nc, nt, first, cuts, flags | HAS_BOOL, width)
        return t

    def not_(self, x: int) -> int:
        """Every byte string that x does not match (any bytes: `complement` keeps it to UTF-8)."""
        if self.kind[x] == K_NOT:
            return self.a[x]
        key = (K_NOT, x, None, None)
        t = self._intern.get(key)
        if t is None:
            # x is assertion-free, so "not nullable" is the same in every context.
            nc, nt = ALL_CONTEXTS & ~self.null_true[x], ALL_CONTEXTS & ~self.null_cond[x]
            t = self._new(key, nc, nt, _ALL_BYTES, self.cuts[x], self.flags[x] | HAS_BOOL, 1 if nt == 0 else 0)
        return t

    def universe(self) -> int:
        """The term of `(?s:.*)`: every valid UTF-8 string."""
        if self._universe < 0:
            self._universe = self.rep(self.chars(_invert(())), 0, -1)
        return self._universe

    def complement(self, x: int) -> int:
        """The valid UTF-8 strings x does not match: U ∩ ¬x, so that reading a lead byte can
        only go on with continuation bytes (U's derivative) whatever ¬x allows."""
        u = self.universe()
        if self.kind[x] == K_INTER and len(self.a[x]) == 2 and u in self.a[x]:
            other = self.a[x][0] if self.a[x][1] == u else self.a[x][1]
            if self.kind[other] == K_NOT:  # ¬(U ∩ ¬y) within U is y: tree terms never leave U
                return self.a[other]
        return self.inter((u, self.not_(x)))

    # ------------------------------------------------------------------ from a regex tree

    def from_tree(self, tree: RegexNode, deadline: Deadline | None = None, memo: dict[int, int] | None = None) -> int:
        """The term of a regex tree, built bottom-up with an explicit stack (any depth).

        `memo` (node id -> term) carries over between calls on trees that share subtrees, which
        must then stay alive as long as the memo does."""
        done: dict[int, int] = {} if memo is None else memo
        stack: list[tuple[RegexNode, bool]] = [(tree, False)]
        while stack:
            node, ready = stack.pop()
            key = id(node)
            if key in done:
                continue
            if deadline is not None:
                deadline.check()
            if isinstance(node, Chars):
                done[key] = self.chars(node.intervals)
                continue
            if isinstance(node, Assert):
                done[key] = self.assertion(node.kind)
                continue
            if isinstance(node, Multiples):
                done[key] = self.multiples(node.modulus)
                continue
            children = _children(node)
            if not ready:
                stack.append((node, True))
                stack.extend((child, False) for child in children if id(child) not in done)
                continue
            if isinstance(node, Concat):
                t = EPS
                run: list[str] = []  # single characters, read backwards: they become one literal
                for part in reversed(node.parts):
                    cp = _single(part)
                    if cp is not None:
                        run.append(chr(cp))
                        continue
                    if run:
                        t = self.cat(self.lit("".join(reversed(run)).encode()), t)
                        run = []
                    t = self.cat(done[id(part)], t)
                if run:
                    t = self.cat(self.lit("".join(reversed(run)).encode()), t)
            elif isinstance(node, Alternation):
                t = self.alt(done[id(o)] for o in node.options)
            elif isinstance(node, (Intersect, Complement)):
                operands = [done[id(child)] for child in children]
                if any(self.flags[o] & HAS_ASSERT for o in operands):
                    raise UnsupportedPattern(render(node, limit=200), None,
                                             "an anchor inside an intersection/complement")
                if isinstance(node, Complement):
                    t = self.complement(operands[0])
                else:  # no parts: every string, which within UTF-8 is U
                    t = self.inter(operands) if operands else self.universe()
            else:
                t = self.rep(done[id(node.node)], node.min, -1 if node.max is None else node.max)
            done[key] = t
        return done[id(tree)]

    # ------------------------------------------------------------------ nullability and derivatives

    def nullable(self, t: int, prev: int, nxt: int) -> int:
        """0: never matches empty here; 1: only if a final newline follows; 2: matches empty."""
        bit = 1 << (prev * 3 + nxt)
        if self.null_true[t] & bit:
            return 2
        return 1 if self.null_cond[t] & bit else 0

    def accepts_here(self, t: int, prev: int) -> bool:
        """Whether the text may end here (the term matches empty at the end)."""
        return bool(self.null_true[t] >> (prev * 3 + END) & 1)

    def derive(self, t: int, byte: int, prev: int, deadline: Deadline | None = None) -> int:
        """The term after reading `byte` where `prev` precedes it (START, NEWLINE or OTHER)."""
        memo = self._derivatives
        key = self._key(t, byte, prev)
        got = memo.get(key)
        if got is not None:
            return got
        nxt = NEWLINE if byte == 10 else OTHER
        kind, a, b, c, flags, first = self.kind, self.a, self.b, self.c, self.flags, self.first
        stack = [t]
        while stack:
            u = stack[-1]
            ku = self._key(u, byte, prev)
            if ku in memo:
                stack.pop()
                continue
            if not first[u] >> byte & 1:  # no member starts with byte: nothing to derive
                memo[ku] = EMPTY
                stack.pop()
                continue
            if deadline is not None:
                deadline.check()
            k = kind[u]
            if k == K_CAT:
                head, rest = a[u], b[u]
                v = self.nullable(head, prev, nxt)
                need = (head, rest) if v else (head,)
            elif k == K_ALT:
                need = self._alt_options(u, byte)
            elif k == K_REP:
                need = (a[u],)
                if b[u] >= 1 and flags[a[u]] & HAS_ASSERT and self.nullable(a[u], prev, nxt):
                    need = (a[u], self._rep_less(u))
            elif k == K_INTER:
                need = a[u]
                if any(not self.first[p] >> byte & 1 for p in need):  # a part dies on this byte
                    memo[ku] = EMPTY
                    stack.pop()
                    continue
            elif k == K_NOT:
                need = (a[u],)
            else:
                memo[ku] = self._leaf_derivative(u, byte)
                stack.pop()
                continue
            missing = [n for n in need if self._key(n, byte, prev) not in memo]
            if missing:
                stack.extend(missing)
                continue
            stack.pop()
            d = [memo[self._key(n, byte, prev)] for n in need]
            if k == K_CAT:
                r = self.cat(d[0], b[u])
                if v == 2:
                    r = self.alt((r, d[1]))
                elif v == 1:  # `$` before a newline: that newline must end the text
                    r = self.alt((r, self.cat(self._end, d[1])))
            elif k == K_ALT:
                r = self.alt(d)
            elif k == K_INTER:
                r = self.inter(d)
            elif k == K_NOT:
                r = self.not_(d[0])
            else:
                r = self.cat(d[0], self._rep_less(u))
                if len(d) > 1:
                    v = self.nullable(a[u], prev, nxt)
                    r = self.alt((r, d[1] if v == 2 else self.cat(self._end, d[1])))
            memo[ku] = r
        return memo[key]

    def _key(self, t: int, byte: int, prev: int) -> int:
        # prev matters only to lookbehind assertions; sharing the entry otherwise.
        p = prev if self.flags[t] & HAS_LOOKBEHIND else 3
        return (t << 10) | (byte << 2) | p

    def _rep_less(self, u: int) -> int:
        hi = self.c[u]
        return self.rep(self.a[u], max(self.b[u] - 1, 0), -1 if hi == -1 else hi - 1)

    def _alt_options(self, u: int, byte: int) -> tuple[int, ...]:
        """The options of an alternation that may start with `byte` (indexed once for big ones)."""
        options = self.a[u]
        if len(options) <= 16:
            return tuple(o for o in options if self.first[o] >> byte & 1)
        index = self._alt_index.get(u)
        if index is None:
            buckets: dict[int, list[int]] = {}
            for o in options:
                f = self.first[o]
                while f:
                    low = f & -f
                    buckets.setdefault(low.bit_length() - 1, []).append(o)
                    f ^= low
            index = self._alt_index[u] = {k: tuple(v) for k, v in buckets.items()}
        return index.get(byte, ())

    def _leaf_derivative(self, u: int, byte: int) -> int:
        k = self.kind[u]
        if k == K_CHARS:
            n = _lead_length(byte)
            if n == 0:
                return EPS if _contains(self.a[u], byte) else EMPTY
            if n < 0:
                return EMPTY
            leads = self._leads[u]
            got = leads.get(byte)
            if got is None:
                got = leads[byte] = self.tail(n, _lead_offsets(self.a[u], byte, n))
            return got
        if k == K_LIT:
            data, offset = self.a[u], self.b[u]
            return self.lit(data, offset + 1) if data[offset] == byte else EMPTY
        if k == K_TAIL:
            if not 0x80 <= byte <= 0xBF:
                return EMPTY
            n, rel = self.a[u], self.b[u]
            size = 64 ** (n - 1)
            j = byte - 0x80
            sub = _clip(rel, j * size, (j + 1) * size - 1, j * size)
            if n == 1:
                return EPS if sub else EMPTY
            return self.tail(n - 1, sub)
        if k == K_MOD:  # `first` let only digits through
            return self.multiples(self.a[u], (10 * self.b[u] + byte - 0x30) % self.a[u])
        return EMPTY  # ∅, ε and assertions read nothing

    def clamp(self, t: int, depth: int) -> int:
        """A term with the same live prefixes and members up to `depth` bytes as t.

        What a token mask sees of a state is only its language's first `depth` bytes
        (the longest token), so states that clamp to the same term share a mask: every
        position inside `[^"]{0,4096}` but the last `depth` clamps to `[^"]*`. Counts
        past the window are the same as unbounded ones: a body that needs at least one
        byte cannot run more than depth + 1 times inside it, and what follows a part
        longer than the window is never reached. Terms with assertions are returned as
        they are, and so are terms with intersections or complements (a part of them may
        be empty without being ∅, which the cuts above would not see), and a term too big
        to clamp cheaply.
        """
        if self.flags[t] & NEEDS_SEARCH:
            return t
        key = (t, depth)
        got = self._clamped.get(key)
        if got is None:
            try:
                got = self._clamp(t, depth, [0], 0)
            except _GiveUp:
                got = t
            self._clamped[key] = got
        return got

    def _clamp(self, t: int, budget: int, work: list[int], nesting: int) -> int:
        # Memoised per (term, budget) across calls: shared subterms (the rest of a document
        # after each optional member) are clamped once, not once per path that reaches them.
        got = self._clamped.get((t, budget))
        if got is not None:
            return got
        work[0] += 1
        if work[0] > _CLAMP_WORK or nesting > _CLAMP_NESTING:
            raise _GiveUp
        got = self._clamp_new(t, budget, work, nesting)
        self._clamped[t, budget] = got
        return got

    def _clamp_new(self, t: int, budget: int, work: list[int], nesting: int) -> int:
        k = self.kind[t]
        if k == K_CAT:
            heads = []
            u = t
            while self.kind[u] == K_CAT:
                head = self.a[u]
                heads.append(self._clamp(head, budget, work, nesting + 1))
                budget -= self.min_bytes[head]
                u = self.b[u]
                if budget < 0:  # the window ends inside this head: the rest is never read
                    u = EPS
                    break
            r = self._clamp(u, budget, work, nesting + 1) if budget >= 0 else EPS
            for head in reversed(heads):
                r = self.cat(head, r)
            return r
        if k == K_ALT:
            return self.alt([self._clamp(o, budget, work, nesting + 1) for o in self.a[t]])
        if k == K_REP:
            body = self._clamp(self.a[t], budget, work, nesting + 1)
            lo, hi = self.b[t], self.c[t]
            lo = 0 if self.min_bytes[body] == 0 else min(lo, budget + 1)
            hi = -1 if hi == -1 or hi > budget + 1 else hi
            return self.rep(body, lo, hi)
        return t

    def covers(self, t: int, intervals: tuple, length: int) -> bool:
        """Whether every string of at most `length` characters of `intervals` leads from t to a
        live term. Sufficient, structural and cheap: t starts with a repetition, still good for
        `length` more rounds, of a body that takes any one character of the class. False for
        terms with intersections or complements, where what follows may be empty but not ∅."""
        if self.flags[t] & HAS_BOOL:
            return False
        key = (t, intervals, length)
        got = self._covers.get(key)
        if got is not None:
            return got
        got = False
        stack = [t]
        while stack and not got:
            u = stack.pop()
            k = self.kind[u]
            if k == K_CAT:
                stack.append(self.a[u])
            elif k == K_ALT:
                stack.extend(self.a[u])
            elif k == K_REP and (self.c[u] == -1 or self.c[u] >= length):
                body = self.a[u]
                options = self.a[body] if self.kind[body] == K_ALT else (body,)
                got = any(self.kind[o] == K_CHARS and _includes(self.a[o], intervals) for o in options)
        self._covers[key] = got
        return got

    def children(self, t: int) -> tuple[int, ...]:
        k = self.kind[t]
        if k == K_CAT:
            return (self.a[t], self.b[t])
        if k == K_ALT:
            return self.a[t]
        if k == K_REP or k == K_NOT:
            return (self.a[t],)
        if k == K_INTER:
            return self.a[t]
        return ()

    def classes(self, t: int) -> list[tuple[int, int]]:
        """The byte classes of a term: inclusive ranges on which its derivative is the same."""
        cuts = self.cuts[t] | BASE_CUTS
        bounds = []
        while cuts:
            low = cuts & -cuts
            bounds.append(low.bit_length() - 1)
            cuts ^= low
        return [(lo, hi - 1) for lo, hi in zip(bounds, bounds[1:])]


class _GiveUp(Exception):
    pass


def _includes(big: tuple, small: tuple) -> bool:
    """Whether the code point set `small` lies inside `big` (both sorted disjoint intervals)."""
    for lo, hi in small:
        i = bisect_right(big, (lo, 1 << 62)) - 1
        if i < 0 or big[i][1] < hi:
            return False
    return True


def _single(node: RegexNode) -> int | None:
    """The code point of a one-character `Chars`, else None."""
    if isinstance(node, Chars) and len(node.intervals) == 1:
        lo, hi = node.intervals[0]
        if lo == hi:
            return lo
    return None


def _children(node: RegexNode) -> tuple:
    if isinstance(node, (Concat, Intersect)):
        return node.parts
    if isinstance(node, Alternation):
        return node.options
    if isinstance(node, (Repeat, Complement)):
        return (node.node,)
    raise TypeError(f"unknown regex node {type(node).__name__}")


def _lead_offsets(intervals: tuple, lead: int, n: int) -> tuple:
    """Code points of `intervals` whose UTF-8 form starts with `lead`, as offsets in its block."""
    lowest, highest = _UTF8[n]
    base = (lead & (0x3F >> n)) << (6 * n)
    lo = max(base, lowest)
    hi = min(base + (1 << (6 * n)) - 1, highest)
    return _clip(intervals, lo, hi, base) if lo <= hi else ()


def _chars_classes(intervals: tuple) -> tuple[int, int]:
    """(first bytes, class cuts) of a code point set read as UTF-8."""
    first = 0
    # Bytes past ASCII are one class (all dead) unless the set has characters there.
    cuts = (1 << 0x80) | (1 << 0xC0) | (1 << 0xC2) | (1 << 0xF5) if intervals[-1][1] >= 0x80 else 1 << 0x80
    for lo, hi in intervals:
        if lo >= 0x80:
            break
        h = min(hi, 0x7F)
        first |= ((1 << (h + 1)) - 1) ^ ((1 << lo) - 1)
        cuts |= (1 << lo) | (1 << (h + 1))
    previous = None
    if intervals and intervals[-1][1] >= 0x80:
        for lead in range(0xC2, 0xF5):
            rel = _lead_offsets(intervals, lead, _lead_length(lead))
            if rel:
                first |= 1 << lead
            if rel != previous:
                cuts |= 1 << lead
                previous = rel
    return first, cuts
