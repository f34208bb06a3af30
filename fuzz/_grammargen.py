"""Random small Lark grammars as trees that render to Lark syntax, derive members, and shrink.

    >>> g = random_grammar(random.Random(0))
    >>> print(g.render()); [g.derive(random.Random(i)) for i in range(3)]

A grammar is a few rules (alternatives, sequences, `?`/`*`/`+`/`[...]`/`~n`, groups, left and
right recursion, ambiguity such as `e: e e | "a"`, empty alternatives, nullable cycles such as
`a: b | "x"` / `b: a |`), string literals (some overlapping named terminals: keyword "if"
against NAME /[a-z]+/), regex terminals, and sometimes `%ignore` of a whitespace terminal.

`derive` returns a derivation's spelling as *pieces* (terminal strings and ignored whitespace),
a member of the language; `mutate` edits characters or whole pieces, which mostly makes
non-members (Lark decides which). `shrinks` yields simpler grammars, to minimise a failing case.

What the generator stays away from, and why: Lark's `dynamic_complete` lexer only tries the
prefixes of a terminal's *leftmost-greedy* `re` match (so `/a|ab/` never spells "ab"), and
matches an `%ignore` terminal greedily only (so a terminal that may start with an ignored
character, or a comment `/#[^\\n]*/` that may end early, is read differently from "every way
of splitting the text counts"). Every terminal here has its greedy match equal to its longest
one (tests/test_cfg_lark.py checks this against the terminals Lark builds), no terminal but the
ignored one spells whitespace when there is an `%ignore`, and no terminal matches the empty
string (Lark's dynamic Earley refuses zero-width terminals).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Iterator, Union

__all__ = ["Lit", "Term", "InlineRe", "Ref", "Group", "Op", "TermDef", "Grammar", "TERMINALS",
           "INLINE_REGEXES", "IGNORES", "random_grammar", "mutate", "random_text", "MAX_TEXT"]

MAX_TEXT = 30  # longer strings are not tested: Earley on ambiguous grammars is cubic, and Lark is slow
INF = float("inf")


# ---------------------------------------------------------------- the tree

@dataclass(frozen=True)
class Lit:
    """A string literal `"text"` (`"text"i` when `ci`)."""
    text: str
    ci: bool = False


@dataclass(frozen=True)
class Term:
    """A reference to a named terminal."""
    name: str


@dataclass(frozen=True)
class InlineRe:
    """An anonymous regex terminal `/pattern/` in a rule, with some of its members."""
    pattern: str
    samples: tuple[str, ...]


@dataclass(frozen=True)
class Ref:
    """A reference to a rule."""
    name: str


@dataclass(frozen=True)
class Group:
    """`( alt | alt ... )`: each alternative a sequence of items (possibly empty)."""
    alts: tuple[tuple["Item", ...], ...]


@dataclass(frozen=True)
class Op:
    """`child` with a repetition: one of ? * + [] ~n ~n..m (`lo`..`hi`, hi None: unbounded)."""
    child: "Item"
    op: str

    @property
    def bounds(self) -> tuple[int, int | None]:
        if self.op in ("?", "[]"):
            return 0, 1
        if self.op == "*":
            return 0, None
        if self.op == "+":
            return 1, None
        lo, _, hi = self.op[1:].partition("..")
        return int(lo), int(hi or lo)


Item = Union[Lit, Term, InlineRe, Ref, Group, Op]
Alt = tuple[Item, ...]


@dataclass(frozen=True)
class TermDef:
    """A named terminal: `name: body` in Lark syntax, some members, the terminals it uses."""
    name: str
    body: str
    samples: tuple[str, ...]
    needs: tuple[str, ...] = ()


# Named terminals. Each one's Lark regex has its leftmost-greedy match equal to its longest match
# (tests/test_cfg_lark.py checks), none matches "" and none spells whitespace.
TERMINALS: dict[str, TermDef] = {t.name: t for t in [
    TermDef("NAME", "/[a-z]+/", ("if", "x", "ab", "ifx", "else", "i", "a")),
    TermDef("INT", "/[0-9]+/", ("0", "7", "42", "007")),
    TermDef("ID", "/[a-z_][a-z0-9_]*/", ("x", "_a1", "if", "a_b", "b")),
    TermDef("HEX", "/0x[0-9a-f]+/", ("0x0", "0xff")),
    TermDef("DIGIT", '"0".."9"', ("0", "5", "9")),
    TermDef("LETTER", '"a".."c"', ("a", "b", "c")),
    TermDef("DEC", 'DIGIT+ "." DIGIT*', ("1.", "3.14", "0.0"), ("DIGIT",)),
    TermDef("WORD", "LETTER+", ("a", "abc", "cab"), ("LETTER",)),
    TermDef("STR", r'/"[^"\\]*"/', ('""', '"ab"', '"x"', '"if"')),
    TermDef("OP", '"+" | "-" | "*" | "**"', ("+", "-", "*", "**")),
    TermDef("AB", '("a" "b")+', ("ab", "abab")),
    TermDef("KW", '"if"i', ("if", "IF", "iF")),
    TermDef("X", '"x"', ("x",)),
    TermDef("XS", "/x+/", ("x", "xx", "xxx")),
    TermDef("AORB", "/[ab]/", ("a", "b")),
    TermDef("SIGNED", '/[+-]?[0-9]+/', ("1", "-2", "+30")),
]}

INLINE_REGEXES = [
    InlineRe("[0-9]+", ("1", "23")),
    InlineRe("[a-c]", ("a", "b", "c")),
    InlineRe("b+", ("b", "bb")),
    InlineRe("x?y", ("y", "xy")),
    InlineRe("(ab)+c?", ("ab", "abc", "abab")),
]

# Literals: single characters, keywords that NAME/ID also spell, overlapping prefixes ("a", "ab", "aa").
LITERALS = ["a", "b", "x", "y", "if", "else", "ab", "aa", "(", ")", "+", "*", "-", ",", ";", "0", "1", "=", "=>",
            "\"", "\\", "é", "if "]
SPACE_LITERALS = {"if ", " "}  # whitespace literals: never in a grammar with %ignore

# %ignore terminals, with members (whitespace only: see the module docstring).
IGNORES = [
    TermDef("WS", r"/[ \t]+/", (" ", "\t", "  ", " \t")),
    TermDef("WS", '" "', (" ",)),
    TermDef("WS", '(" " | "\\t")+', (" ", "\t ", "  ")),
    TermDef("_SP", "/ /", (" ",)),
]

RULE_NAMES = ["a", "b", "c", "d"]


def _lark_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t") + '"'


def render_item(item: Item) -> str:
    if isinstance(item, Lit):
        return _lark_string(item.text) + ("i" if item.ci else "")
    if isinstance(item, (Term, Ref)):
        return item.name
    if isinstance(item, InlineRe):
        return f"/{item.pattern}/"
    if isinstance(item, Group):
        return "(" + " | ".join(render_alt(a) for a in item.alts) + ")"
    if isinstance(item, Op):
        inner = render_item(item.child)
        if item.op == "[]":
            return f"[{inner}]"
        if isinstance(item.child, Op):  # `x??` is not Lark; `(x?)?` is
            inner = f"({inner})"
        return inner + item.op
    raise TypeError(item)


def render_alt(alt: Alt) -> str:
    return " ".join(render_item(i) for i in alt)


def _items(alt: Alt) -> Iterator[Item]:
    """Every item of an alternative, nested ones included."""
    for item in alt:
        yield item
        if isinstance(item, Group):
            for a in item.alts:
                yield from _items(a)
        elif isinstance(item, Op):
            yield from _items((item.child,))


# ---------------------------------------------------------------- grammars

@dataclass(frozen=True)
class Grammar:
    """Rules (name -> alternatives, the start rule first), named terminals, an optional %ignore."""

    rules: tuple[tuple[str, tuple[Alt, ...]], ...]
    ignore: TermDef | None = None
    start: str = "start"
    decorations: tuple[tuple[str, str], ...] = ()  # rule name -> prefix such as "?" or a ".2" priority

    @property
    def rule_map(self) -> dict[str, tuple[Alt, ...]]:
        return dict(self.rules)

    def terminals(self) -> list[TermDef]:
        """The named terminals used, with the ones they need, in a stable order."""
        names: list[str] = []

        def add(name: str) -> None:
            if name not in names:
                for dep in TERMINALS[name].needs:
                    add(dep)
                names.append(name)

        for _, alts in self.rules:
            for alt in alts:
                for item in _items(alt):
                    if isinstance(item, Term):
                        add(item.name)
        return [TERMINALS[n] for n in names]

    def render(self) -> str:
        deco = dict(self.decorations)
        lines = []
        for name, alts in self.rules:
            prefix, _, suffix = deco.get(name, "").partition("|")
            bodies = [render_alt(a) for a in alts]
            lines.append(f"{prefix}{name}{suffix}: " + "\n    | ".join(bodies))
        for t in self.terminals():
            lines.append(f"{t.name}: {t.body}")
        if self.ignore is not None:
            lines.append(f"{self.ignore.name}: {self.ignore.body}")
            lines.append(f"%ignore {self.ignore.name}")
        return "\n".join(lines) + "\n"

    # -- facts about the grammar

    def heights(self) -> dict[str, float]:
        """The least derivation height of each rule (inf: the rule derives no string)."""
        rules = self.rule_map
        h = {name: INF for name in rules}
        changed = True
        while changed:
            changed = False
            for name, alts in rules.items():
                best = 1 + min((self._alt_height(a, h) for a in alts), default=INF)
                if best < h[name]:
                    h[name], changed = best, True
        return h

    def _alt_height(self, alt: Alt, h: dict[str, float]) -> float:
        return max((self._item_height(i, h) for i in alt), default=0)

    def _item_height(self, item: Item, h: dict[str, float]) -> float:
        if isinstance(item, Ref):
            return h.get(item.name, INF)
        if isinstance(item, Group):
            return min((self._alt_height(a, h) for a in item.alts), default=INF)
        if isinstance(item, Op):
            return 0 if item.bounds[0] == 0 else self._item_height(item.child, h)
        return 0

    def productive(self) -> bool:
        """Every rule derives some string (tether may refuse a grammar with a rule that does not)."""
        return all(v < INF for v in self.heights().values())

    def recursive(self, reachable_only: bool = False) -> bool:
        """Some rule (reachable from the start, if `reachable_only`) refers to itself, directly or not."""
        rules = self.rule_map
        edges = {n: {i.name for a in alts for i in _items(a) if isinstance(i, Ref)} for n, alts in rules.items()}
        reach: dict[str, set[str]] = {}
        for n in rules:
            seen, stack = set(), list(edges[n])
            while stack:
                m = stack.pop()
                if m not in seen and m in edges:
                    seen.add(m)
                    stack.extend(edges[m])
            reach[n] = seen
        live = reach[self.start] | {self.start} if reachable_only else set(rules)
        return any(n in reach[n] for n in live)

    def alphabet(self) -> list[str]:
        """Characters worth inserting in mutations: those the grammar's terminals spell, and a few others."""
        chars = set("ax0 ")
        for _, alts in self.rules:
            for alt in alts:
                for item in _items(alt):
                    if isinstance(item, Lit):
                        chars |= set(item.text) | set(item.text.upper() if item.ci else "")
                    elif isinstance(item, InlineRe):
                        chars |= set("".join(item.samples))
        for t in self.terminals():
            chars |= set("".join(t.samples))
        if self.ignore:
            chars |= set("".join(self.ignore.samples))
        return sorted(chars)

    def pieces(self) -> list[str]:
        """Strings of single terminals (for inserting whole terminals in mutations)."""
        out: set[str] = set()
        for _, alts in self.rules:
            for alt in alts:
                for item in _items(alt):
                    if isinstance(item, Lit):
                        out.add(item.text)
                    elif isinstance(item, InlineRe):
                        out |= set(item.samples)
        for t in self.terminals():
            out |= set(t.samples)
        return sorted(out)

    # -- derivations

    def derive(self, rng: random.Random, max_depth: int | None = None, max_len: int = MAX_TEXT) -> list[str] | None:
        """A random derivation's pieces (terminal spellings, and whitespace the %ignore allows), or
        None when the start rule derives nothing or no short enough derivation turned up."""
        h = self.heights()
        if h[self.start] == INF:
            return None
        for attempt in range(6):
            depth = max_depth if max_depth is not None else rng.randint(2, 7)
            depth = max(1, depth - attempt)
            pieces: list[str] = []
            self._derive_rule(self.start, 0, depth, h, rng, pieces, budget=[4 * max_len])
            if self.ignore is not None:
                pieces = self._spread_ignore(pieces, rng)
            if sum(map(len, pieces)) <= max_len:
                return pieces
        return None

    def _spread_ignore(self, pieces: list[str], rng: random.Random) -> list[str]:
        out: list[str] = []
        for i in range(len(pieces) + 1):
            if rng.random() < 0.3:
                out.append(rng.choice(self.ignore.samples) * rng.choice((1, 1, 2)))
            if i < len(pieces):
                out.append(pieces[i])
        return out

    def _derive_rule(self, name, depth, max_depth, h, rng, out, budget) -> None:
        alts = [a for a in self.rule_map[name] if self._alt_height(a, h) < INF]
        budget[0] -= 1
        if depth >= max_depth or budget[0] <= 0:
            least = min(self._alt_height(a, h) for a in alts)
            alts = [a for a in alts if self._alt_height(a, h) == least]
        self._derive_alt(rng.choice(alts), depth + 1, max_depth, h, rng, out, budget)

    def _derive_alt(self, alt, depth, max_depth, h, rng, out, budget) -> None:
        for item in alt:
            self._derive_item(item, depth, max_depth, h, rng, out, budget)

    def _derive_item(self, item, depth, max_depth, h, rng, out, budget) -> None:
        deep = depth >= max_depth or budget[0] <= 0
        if isinstance(item, Lit):
            text = item.text
            if item.ci:
                text = "".join(ch.swapcase() if rng.random() < 0.5 else ch for ch in text)
            out.append(text)
        elif isinstance(item, Term):
            out.append(rng.choice(TERMINALS[item.name].samples))
        elif isinstance(item, InlineRe):
            out.append(rng.choice(item.samples))
        elif isinstance(item, Ref):
            self._derive_rule(item.name, depth, max_depth, h, rng, out, budget)
        elif isinstance(item, Group):
            alts = [a for a in item.alts if self._alt_height(a, h) < INF]
            if deep:
                least = min(self._alt_height(a, h) for a in alts)
                alts = [a for a in alts if self._alt_height(a, h) == least]
            self._derive_alt(rng.choice(alts), depth, max_depth, h, rng, out, budget)
        elif isinstance(item, Op):
            lo, hi = item.bounds
            top = lo if deep else (lo + 2 if hi is None else hi)
            if self._item_height(item.child, h) == INF:
                top = 0  # only when lo == 0: else the item's height is inf and it was not chosen
            for _ in range(rng.randint(lo, max(lo, top))):
                self._derive_item(item.child, depth, max_depth, h, rng, out, budget)
        else:
            raise TypeError(item)

    # -- shrinking

    def shrinks(self) -> Iterator["Grammar"]:
        """Simpler grammars: without the ignore, without a rule, an alternative, an item, an operator."""
        if self.ignore is not None:
            yield replace(self, ignore=None)
        if self.decorations:
            yield replace(self, decorations=())
        rules = list(self.rules)
        for i, (name, alts) in enumerate(rules):
            if name == self.start:
                continue
            used = any(isinstance(it, Ref) and it.name == name
                       for n2, a2 in rules if n2 != name for a in a2 for it in _items(a))
            if not used:
                yield replace(self, rules=tuple(rules[:i] + rules[i + 1:]))
        for i, (name, alts) in enumerate(rules):
            for j in range(len(alts)):
                if len(alts) > 1:
                    yield self._with_rule(i, alts[:j] + alts[j + 1:])
            for j, alt in enumerate(alts):
                for smaller in _alt_shrinks(alt):
                    yield self._with_rule(i, alts[:j] + (smaller,) + alts[j + 1:])

    def _with_rule(self, index: int, alts: tuple[Alt, ...]) -> "Grammar":
        rules = list(self.rules)
        rules[index] = (rules[index][0], alts)
        return replace(self, rules=tuple(rules))


def _alt_shrinks(alt: Alt) -> Iterator[Alt]:
    for i in range(len(alt)):
        yield alt[:i] + alt[i + 1:]
    for i, item in enumerate(alt):
        for smaller in _item_shrinks(item):
            yield alt[:i] + smaller + alt[i + 1:]


def _item_shrinks(item: Item) -> Iterator[tuple[Item, ...]]:
    """Replacements of one item (a tuple: a group may be spliced into its sequence)."""
    if isinstance(item, Op):
        yield (item.child,)
        for smaller in _item_shrinks(item.child):
            if len(smaller) == 1:
                yield (Op(smaller[0], item.op),)
    elif isinstance(item, Group):
        for a in item.alts:
            yield a
        for j, a in enumerate(item.alts):
            for smaller in _alt_shrinks(a):
                yield (Group(item.alts[:j] + (smaller,) + item.alts[j + 1:]),)
    elif isinstance(item, (Term, InlineRe)) or (isinstance(item, Lit) and (item.ci or item.text != "a")):
        yield (Lit("a"),)


# ---------------------------------------------------------------- random grammars

OPS = ["", "", "", "", "", "", "", "?", "*", "+", "[]", "?", "*", "+", "~2", "~0..2", "~1..3"]
GROUP_OPS = ["", "", "?", "*", "+", "[]"]  # no `~` on groups: Lark expands `(..|..)~1..3` combinatorially


def _leaf(rng: random.Random, ignore: bool, rules: list[str]) -> Item:
    roll = rng.random()
    if roll < 0.42:
        lits = [x for x in LITERALS if not (ignore and x in SPACE_LITERALS)]
        if not ignore and rng.random() < 0.05:
            lits.append(" ")
        text = rng.choice(lits)
        return Lit(text, ci=text.isalpha() and text.isascii() and rng.random() < 0.1)
    if roll < 0.72:
        return Term(rng.choice(list(TERMINALS)))
    if roll < 0.80:
        return rng.choice(INLINE_REGEXES)
    return Ref(rng.choice(rules))


def _item(rng: random.Random, ignore: bool, rules: list[str], depth: int) -> Item:
    if depth < 1 and rng.random() < 0.12:
        alts = tuple(_alt(rng, ignore, rules, depth + 1) for _ in range(rng.randint(2, 3)))
        item: Item = Group(alts)
    else:
        item = _leaf(rng, ignore, rules)
    op = rng.choice(GROUP_OPS if isinstance(item, Group) else OPS)
    if op:
        item = Op(item, op)
    return item


def _alt(rng: random.Random, ignore: bool, rules: list[str], depth: int = 0) -> Alt:
    if rng.random() < 0.1:
        return ()
    return tuple(_item(rng, ignore, rules, depth) for _ in range(rng.randint(1, 3)))


def _templates(rng: random.Random, ignore: bool, name: str, other: str) -> list[tuple[str, tuple[Alt, ...]]]:
    """Rules of a known shape, named `name` (and `other` for the two-rule shapes)."""
    x = _leaf(rng, ignore, [name]) if rng.random() < 0.5 else Lit(rng.choice(["a", "x", "if"]))
    if isinstance(x, Ref):
        x = Term("NAME")
    sep = Lit(rng.choice(["+", ",", ";", "a"]))
    shapes = [
        [(name, ((Ref(name), sep, x), (x,)))],                               # left recursion: list with separators
        [(name, ((Ref(name), x), ()))],                                      # left recursion, nullable
        [(name, ((x, Ref(name)), (x,)))],                                    # right recursion
        [(name, ((Ref(name), Ref(name)), (x,)))],                            # ambiguous: e: e e | x
        [(name, ((Ref(name), sep, Ref(name)), (Ref(name), Lit("*"), Ref(name)), (x,)))],  # ambiguous operators
        [(name, ((Ref(other),), (Lit("x"),))), (other, ((Ref(name),), ()))],  # nullable cycle a: b | "x"  b: a |
        [(name, ((Lit("("), Ref(other), Lit(")")), (x,))), (other, ((Ref(name),), (Ref(name), Ref(other))))],  # nesting
        [(name, ((Lit("if"), Term("NAME")), (Term("NAME"), Term("NAME")), (Term("NAME"),)))],  # keyword vs name
        [(name, ((Ref(name), Ref(name), Ref(name)), (x,), ()))],             # very ambiguous and nullable
        [(name, ((Op(Ref(name), "*"), x),))],                                # recursion under a star
    ]
    return rng.choice(shapes)


def random_grammar(rng: random.Random) -> Grammar:
    """A random grammar of 1..5 rules (some of a known shape), maybe with an %ignore and a start
    rule of another name."""
    ignore = rng.choice(IGNORES) if rng.random() < 0.3 else None
    start = "start" if rng.random() < 0.85 else rng.choice(["expr", "root", "value"])
    names = RULE_NAMES[: rng.randint(0, 3)]
    rules: dict[str, tuple[Alt, ...]] = {}
    if rng.random() < 0.55:
        t_name = "e" if "e" not in names else "f"
        for name, alts in _templates(rng, ignore is not None, t_name, "g"):
            rules[name] = alts
        names = names + [n for n in rules if n not in names]
    every = [start] + names
    start_alts = [_alt(rng, ignore is not None, every) for _ in range(rng.randint(1, 3))]
    if "e" in rules or "f" in rules:
        t = "e" if "e" in rules else "f"
        start_alts[0] = (Ref(t),) + start_alts[0][: rng.randint(0, 1)]
    out = {start: tuple(start_alts)}
    for n in names:
        out[n] = rules.get(n) or tuple(_alt(rng, ignore is not None, every) for _ in range(rng.randint(1, 3)))
    grammar = Grammar(tuple(out.items()), ignore, start)
    if rng.random() < 0.9 and not grammar.productive():  # mostly productive: a way out for each rule
        h = grammar.heights()
        fixed = tuple((n, alts + ((Lit(rng.choice(["a", "x"])),),) if h[n] == INF else alts) for n, alts in grammar.rules)
        grammar = replace(grammar, rules=fixed)
    if rng.random() < 0.15:
        decos = []
        for n, _ in grammar.rules:
            roll = rng.random()
            if n != grammar.start and roll < 0.3:
                decos.append((n, "?"))
            elif roll < 0.5:
                decos.append((n, "|.2"))
        grammar = replace(grammar, decorations=tuple(decos))
    return grammar


# ---------------------------------------------------------------- strings

def random_text(rng: random.Random, grammar: Grammar, max_pieces: int = 5) -> str:
    """Random terminal strings (and characters) strung together: near the language, mostly outside it."""
    pieces, alphabet = grammar.pieces(), grammar.alphabet()
    out = []
    for _ in range(rng.randint(0, max_pieces)):
        out.append(rng.choice(pieces) if pieces and rng.random() < 0.8 else rng.choice(alphabet))
    return "".join(out)


def mutate(pieces: list[str], rng: random.Random, grammar: Grammar) -> str:
    """A small edit of a derivation: a character inserted, deleted, replaced or swapped, or a whole
    terminal string deleted, duplicated, inserted or swapped with another."""
    text = "".join(pieces)
    alphabet, terminals = grammar.alphabet(), grammar.pieces() or ["a"]
    roll = rng.random()
    pos = rng.randint(0, len(text))
    if roll < 0.15:
        return text[:pos] + rng.choice(alphabet) + text[pos:]
    if roll < 0.3 and text:
        i = rng.randrange(len(text))
        return text[:i] + text[i + 1:]
    if roll < 0.4 and text:
        i = rng.randrange(len(text))
        return text[:i] + rng.choice(alphabet) + text[i + 1:]
    if roll < 0.5 and len(text) > 1:
        i = rng.randrange(len(text) - 1)
        return text[:i] + text[i + 1] + text[i] + text[i + 2:]
    if roll < 0.62 and pieces:
        i = rng.randrange(len(pieces))
        return "".join(pieces[:i] + pieces[i + 1:])
    if roll < 0.74 and pieces:
        i = rng.randrange(len(pieces))
        return "".join(pieces[: i + 1] + pieces[i:])
    if roll < 0.88:
        i = rng.randint(0, len(pieces))
        return "".join(pieces[:i] + [rng.choice(terminals)] + pieces[i:])
    if len(pieces) > 1:
        i, j = sorted(rng.sample(range(len(pieces)), 2))
        swapped = list(pieces)
        swapped[i], swapped[j] = swapped[j], swapped[i]
        return "".join(swapped)
    return text + rng.choice(alphabet)
