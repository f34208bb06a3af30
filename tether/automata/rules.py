"""The grammar IR lowered to flat tables: terminal automata, and one symbol automaton per rule.

Lowering does three things, all decided from the IR alone:

1. Rules that take part in no recursion are *fused* into terminals: their body becomes
   one regex tree (terminal references are their trees, rule references the fused tree
   of that rule, and ignored terminals may stand after every terminal). The language is
   unchanged and the parser then sees fewer, longer lexemes.
2. If the start rule itself fuses, the grammar is regular: `regular_tree` is its regex
   and the grammar runs on the byte DFA path.
3. Otherwise every remaining rule body becomes a deterministic automaton over symbols
   (terminals and rules): `RuleTables`, read by the Earley parser (`tether.automata.earley`).

    >>> tables = lower(ir, limits)
    >>> tables.regular_tree is None   # a recursive grammar
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConstraintTooLarge, GrammarError, Location
from ..grammar.ir import Choice, Expr, GrammarIR, Repetition, Rule, RuleRef, Sequence, TerminalRef, walk_expr
from ..grammar.regex import EMPTY, Alternation, Concat, Repeat, RegexNode
from ..limits import DEFAULT_LIMITS, Deadline, Limits
from .derivatives import Terms
from .dfa import LazyDFA

__all__ = ["RuleTables", "lower"]

# A fused rule's tree may not exceed this many nodes counted with repetition (a DAG of shared
# subtrees can stand for an exponential tree; the automaton of such a rule is better left to the parser).
_FUSE_NODES = 50_000
# Nodes of symbol NFAs, all rules together: counted repetitions are unrolled here.
_NFA_STATES = 2_000_000


@dataclass
class RuleTables:
    """Flat tables of a lowered grammar. Symbol automaton states are numbered across all rules.

    terminals: names; `dfas[t]` is terminal t's byte automaton. Ids past the real terminals
    are the ignored terminals (`ignore_dfas`), which the parser never sees.
    rule_names[r]; `init[r]`: the start state of rule r; `rule_of[s]`, `final[s]`;
    `t_edges[s]`: ((terminal, next state), ...); `r_edges[s]`: ((rule, next state), ...);
    `nullable[r]`; `start`: the start rule's index.
    """

    terminals: list[str]
    dfas: list[LazyDFA]
    ignore_dfas: list[LazyDFA]
    shortest: list[bool]  # per lexer terminal (real, then ignored): ends at its first match
    rule_names: list[str]
    init: list[int]
    rule_of: list[int]
    final: list[bool]
    t_edges: list[tuple[tuple[int, int], ...]]
    r_edges: list[tuple[tuple[int, int], ...]]
    nullable: list[bool]
    start: int
    regular_tree: RegexNode | None = None


def lower(ir: GrammarIR, limits: Limits = DEFAULT_LIMITS) -> RuleTables:
    deadline = limits.deadline("compiling the grammar")
    reach = _reachable(ir)
    recursive = _recursive_rules(ir, reach)
    linear = _linear_recursions(ir, recursive)
    if linear:  # `a: a x | y` is `y x*`: regular after all (Lark writes every `+` and `*` so)
        rules = dict(ir.rules)
        rules.update(linear)
        ir = GrammarIR(rules, ir.terminals, ir.start, ir.ignore, ir.source, ir.name)
        recursive = _recursive_rules(ir, reach)
    ignore_tree = _ignore_tree(ir)
    fused = _fuse(ir, reach, recursive, ignore_tree, deadline)
    if ir.start in fused:
        tree = fused[ir.start]
        if ignore_tree is not None:
            tree = Concat((Repeat(ignore_tree, 0, None), tree))
        return RuleTables([], [], [], [], [], [], [], [], [], [], [], 0, regular_tree=tree)
    return _Builder(ir, reach, fused, limits, deadline).build()


def _refs(expr: Expr) -> set[str]:
    return {n.name for n in walk_expr(expr) if isinstance(n, RuleRef)}


def _reachable(ir: GrammarIR) -> list[str]:
    """Rules reachable from the start, in discovery order (the start first)."""
    order, seen = [ir.start], {ir.start}
    i = 0
    while i < len(order):
        for ref in sorted(_refs(ir.rules[order[i]].body)):
            if ref not in seen:
                seen.add(ref)
                order.append(ref)
        i += 1
    return order


def _recursive_rules(ir: GrammarIR, reach: list[str]) -> set[str]:
    """Rules on a cycle of references (Tarjan's strongly connected components, iteratively)."""
    graph = {name: sorted(_refs(ir.rules[name].body)) for name in reach}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    recursive: set[str] = set()
    counter = 0
    for root in reach:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on_stack.add(v)
            if i < len(graph[v]):
                work.append((v, i + 1))
                w = graph[v][i]
                if w not in index:
                    work.append((w, 0))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                if len(component) > 1 or v in graph[v]:
                    recursive.update(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    return recursive


def _linear_recursions(ir: GrammarIR, recursive: set[str]) -> dict[str, Rule]:
    """Rules that use themselves directly only at the left end of alternatives (or only at the
    right end), rewritten without it: `a: a x | a z | y` is `a: y (x | z)*` and `a: x a | y` is
    `a: x* y`. The language is the same, even where x, y or z lead back to `a` through other
    rules (every derivation unfolds the same way); a rule left without recursion may then fuse."""
    out: dict[str, Rule] = {}
    for name in recursive:
        rule = ir.rules[name]
        options = rule.body.options if isinstance(rule.body, Choice) else (rule.body,)
        base, left, right = [], [], []
        for option in options:
            items = option.items if isinstance(option, Sequence) else (option,)
            uses = [n for n in walk_expr(option) if isinstance(n, RuleRef) and n.name == name]
            if not uses:
                base.append(option)
            elif len(uses) == 1 and isinstance(items[0], RuleRef) and items[0].name == name:
                left.append(Sequence(tuple(items[1:])))
            elif len(uses) == 1 and isinstance(items[-1], RuleRef) and items[-1].name == name:
                right.append(Sequence(tuple(items[:-1])))
            else:
                break
        else:
            if not base or (left and right):
                continue  # no way out, or recursion at both ends (a: a x | y a | z): context-free
            loop = Repetition(Choice(tuple(left or right)), 0, None, rule.where)
            exit_ = Choice(tuple(base), rule.where)
            body = Sequence((exit_, loop) if left else (loop, exit_), rule.where)
            out[name] = Rule(name, body, rule.where)
    return out


def _ignore_tree(ir: GrammarIR) -> RegexNode | None:
    if not ir.ignore:
        return None
    trees = [ir.terminals[name].regex for name in ir.ignore]
    return trees[0] if len(trees) == 1 else Alternation(tuple(trees))


def _fuse(ir: GrammarIR, reach: list[str], recursive: set[str], ignore_tree: RegexNode | None,
          deadline: Deadline) -> dict[str, RegexNode]:
    """The regex tree of every rule outside recursion (bottom-up), unless it grows too large."""
    after = Repeat(ignore_tree, 0, None) if ignore_tree is not None else None
    terminal_trees: dict[str, RegexNode] = {}
    for name, term in ir.terminals.items():
        terminal_trees[name] = term.regex if after is None else Concat((term.regex, after))
    fused: dict[str, RegexNode] = {}
    sizes: dict[str, int] = {}
    # Rules that cannot fuse: recursive, too large, using such a rule, or using a terminal that
    # ends at its first match (a regex cannot say "this part ends as early as it can").
    blocked = set(recursive)
    shortest = {name for name, term in ir.terminals.items() if term.shortest}
    if shortest:
        for name in reach:
            if any(isinstance(n, TerminalRef) and n.name in shortest for n in walk_expr(ir.rules[name].body)):
                blocked.add(name)
    # Non-recursive rules form a DAG: visit it in post-order, iteratively.
    visited: set[str] = set()
    for root in reach:
        work = [(root, False)]
        while work:
            name, ready = work.pop()
            if not ready:
                if name in visited or name in blocked:
                    continue
                visited.add(name)
                work.append((name, True))
                work.extend((ref, False) for ref in _refs(ir.rules[name].body) if ref not in visited)
                continue
            if _refs(ir.rules[name].body) & blocked:
                blocked.add(name)
                continue
            tree, size = _to_tree(ir.rules[name].body, terminal_trees, fused, sizes, deadline)
            if size <= _FUSE_NODES:
                fused[name] = tree
                sizes[name] = size
            else:
                blocked.add(name)
    return fused


def _to_tree(expr: Expr, terminals: dict[str, RegexNode], fused: dict[str, RegexNode], sizes: dict[str, int],
             deadline: Deadline) -> tuple[RegexNode, int]:
    done: dict[int, tuple[RegexNode, int]] = {}
    todo: list[tuple[Expr, bool]] = [(expr, False)]
    while todo:
        node, ready = todo.pop()
        deadline.check()
        if isinstance(node, TerminalRef):
            done[id(node)] = (terminals[node.name], 1)
        elif isinstance(node, RuleRef):
            done[id(node)] = (fused[node.name], sizes[node.name])
        elif not ready:
            todo.append((node, True))
            kids = node.items if isinstance(node, Sequence) else node.options if isinstance(node, Choice) else (node.item,)
            todo.extend((k, False) for k in kids)
        elif isinstance(node, Sequence):
            parts = [done[id(k)] for k in node.items]
            done[id(node)] = (Concat(tuple(p for p, _ in parts)) if parts else EMPTY, 1 + sum(s for _, s in parts))
        elif isinstance(node, Choice):
            parts = [done[id(k)] for k in node.options]
            done[id(node)] = (Alternation(tuple(p for p, _ in parts)), 1 + sum(s for _, s in parts))
        else:
            tree, size = done[id(node.item)]
            done[id(node)] = (Repeat(tree, node.min, node.max), 1 + size)
    return done[id(expr)]


class _Builder:
    """Rule bodies -> Thompson NFAs over symbols -> one DFA per rule (subset construction)."""

    def __init__(self, ir: GrammarIR, reach: list[str], fused: dict[str, RegexNode], limits: Limits,
                 deadline: Deadline):
        self.ir = ir
        self.limits = limits
        self.deadline = deadline
        self.rules = [n for n in reach if n not in fused]
        self.rule_index = {n: i for i, n in enumerate(self.rules)}
        self.terminal_index: dict[str, int] = {}
        self.trees: list[RegexNode] = []
        self.texts: list[str] = []
        self.shortest: list[bool] = []
        self.fused = fused
        self.nfa_states = 0
        self._terms = Terms()
        self._term_memo: dict[int, int] = {}

    def terminal(self, key: str, tree: RegexNode, text: str, shortest: bool = False) -> int:
        t = self.terminal_index.get(key)
        if t is None:
            t = self.terminal_index[key] = len(self.trees)
            self.trees.append(tree)
            self.texts.append(text)
            self.shortest.append(shortest)
        return t

    def symbol(self, node: Expr) -> tuple[str, int]:
        if isinstance(node, TerminalRef):
            term = self.ir.terminals[node.name]
            return "t", self.terminal(node.name, term.regex, node.name, term.shortest)
        if node.name in self.fused:
            return "t", self.terminal("rule:" + node.name, self.fused[node.name], node.name)
        return "r", self.rule_index[node.name]

    def build(self) -> RuleTables:
        nfas = [self.nfa(self.ir.rules[name].body, name) for name in self.rules]
        dfas = [self._dfa(self.trees[t], self.texts[t]) for t in range(len(self.trees))]
        # A terminal that matches the empty string stands for "it, or nothing": lexemes are never empty.
        nullable_terminal = [d.accepting(d.initial) for d in dfas]
        ignore_dfas = [self._dfa(self.ir.terminals[n].regex, n) for n in self.ir.ignore]
        shortest = self.shortest + [self.ir.terminals[n].shortest for n in self.ir.ignore]
        tables = RuleTables(self.texts, dfas, ignore_dfas, shortest, self.rules, [], [], [], [], [], [], 0)
        for r, (states, start, accept) in enumerate(nfas):
            self._determinize(r, states, start, accept, nullable_terminal, tables)
        tables.nullable = _nullable_rules(tables)
        return tables

    def _dfa(self, tree: RegexNode, name: str) -> LazyDFA:
        # One term store for all terminals: the subtrees they share (a JSON string, a key) are
        # converted once and their derivatives computed once.
        dfa = LazyDFA(self._terms, self._terms.from_tree(tree, self.deadline, self._term_memo), self.limits)
        if dfa.is_empty:
            term = self.ir.terminals.get(name)
            where = term.where if term is not None else self.ir.rules[name].where
            raise GrammarError(f"terminal {name!r} matches no string", source=self.ir.source or None,
                               location=where or Location(rule=name))
        return dfa

    def nfa(self, body: Expr, rule: str) -> tuple[list[list[tuple]], int, int]:
        """A Thompson NFA: states[s] = [(symbol or None for epsilon, target)]; (states, start, accept)."""
        states: list[list[tuple]] = []

        def new() -> int:
            self.nfa_states += 1
            if self.nfa_states > _NFA_STATES:
                raise ConstraintTooLarge("unrolling the grammar's repetitions", self.nfa_states, _NFA_STATES,
                                         unit="automaton states",
                                         hint=f"rule {rule!r}: use smaller counted repetitions {{m,n}}")
            states.append([])
            return len(states) - 1

        def build(node: Expr, a: int, b: int) -> None:  # recursion is over the IR's nesting, iteratively below
            todo.append((node, a, b))

        todo: list[tuple[Expr, int, int]] = []
        start, accept = new(), new()
        build(body, start, accept)
        while todo:
            node, a, b = todo.pop()
            self.deadline.check()
            if isinstance(node, (TerminalRef, RuleRef)):
                states[a].append((self.symbol(node), b))
            elif isinstance(node, Sequence):
                if not node.items:
                    states[a].append((None, b))
                    continue
                points = [a] + [new() for _ in node.items[1:]] + [b]
                for k, item in enumerate(node.items):
                    build(item, points[k], points[k + 1])
            elif isinstance(node, Choice):
                for option in node.options:
                    build(option, a, b)
            else:
                self._repetition(node, a, b, new, build, states)
        return states, start, accept

    @staticmethod
    def _repetition(node: Repetition, a: int, b: int, new, build, states) -> None:
        here = a
        for _ in range(node.min):
            nxt = new()
            build(node.item, here, nxt)
            here = nxt
        if node.max is None:
            loop = new()
            states[here].append((None, loop))
            inner = new()
            build(node.item, loop, inner)
            states[inner].append((None, loop))
            states[loop].append((None, b))
            return
        for _ in range(node.max - node.min):
            nxt = new()
            states[here].append((None, b))
            build(node.item, here, nxt)
            here = nxt
        states[here].append((None, b))

    def _determinize(self, r: int, states, start: int, accept: int, nullable_terminal: list[bool],
                     tables: RuleTables) -> None:
        # A nullable terminal's edge also has an epsilon twin.
        for s in range(len(states)):
            extra = [(None, tgt) for sym, tgt in states[s] if sym is not None and sym[0] == "t" and nullable_terminal[sym[1]]]
            states[s].extend(extra)

        def closure(seed) -> frozenset:
            seen = set(seed)
            stack = list(seed)
            while stack:
                for sym, tgt in states[stack.pop()]:
                    if sym is None and tgt not in seen:
                        seen.add(tgt)
                        stack.append(tgt)
            return frozenset(seen)

        base = len(tables.rule_of)
        first = closure([start])
        ids = {first: base}
        order = [first]
        i = 0
        while i < len(order):
            self.deadline.check()
            current = order[i]
            moves: dict[tuple, set[int]] = {}
            for s in current:
                for sym, tgt in states[s]:
                    if sym is not None:
                        moves.setdefault(sym, set()).add(tgt)
            t_edges, r_edges = [], []
            for sym in sorted(moves):
                target = closure(moves[sym])
                if target not in ids:
                    ids[target] = base + len(order)
                    order.append(target)
                (t_edges if sym[0] == "t" else r_edges).append((sym[1], ids[target]))
            tables.rule_of.append(r)
            tables.final.append(accept in current)
            tables.t_edges.append(tuple(t_edges))
            tables.r_edges.append(tuple(r_edges))
            i += 1
        tables.init.append(base)


def _nullable_rules(tables: RuleTables) -> list[bool]:
    """Rules that derive the empty string: a final state reachable over nullable rules alone."""
    n = len(tables.rule_names)
    nullable = [False] * n
    changed = True
    while changed:
        changed = False
        for r in range(n):
            if nullable[r]:
                continue
            seen, stack = {tables.init[r]}, [tables.init[r]]
            while stack:
                s = stack.pop()
                if tables.final[s]:
                    nullable[r] = changed = True
                    break
                for rule, nxt in tables.r_edges[s]:
                    if nullable[rule] and nxt not in seen:
                        seen.add(nxt)
                        stack.append(nxt)
    return nullable
