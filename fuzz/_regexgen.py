"""Random regexes as small trees that render to Python `re` syntax, sample likely members, and shrink.

    >>> tree = random_pattern(random.Random(0))
    >>> tree.render(), [tree.sample(random.Random(i)) for i in range(3)]

A tree's `sample` is a *candidate* member (Python's `re` has the last word: case folding, `\\w`
and the anchors make exact sampling a second regex engine); `mutate` makes likely non-members.
`shrinks` yields simpler trees, which is how a failing case is minimised.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Iterator

__all__ = ["Node", "Atom", "Concat", "Alt", "Repeat", "Group", "Pattern", "random_pattern", "mutate",
           "random_text", "mutate_pattern_text"]


class Node:
    """A piece of a pattern: `render()` is its `re` syntax, `sample(rng)` a string it likely matches."""

    def render(self) -> str:
        raise NotImplementedError

    def sample(self, rng: random.Random) -> str:
        raise NotImplementedError

    def shrinks(self) -> Iterator["Node"]:
        """Simpler versions of this node (its parts first, as they shrink the most)."""
        return iter(())


@dataclass(frozen=True)
class Atom(Node):
    """One token of syntax (a literal, an escape, a class, an anchor, a comment) and some strings it may match.

    `repeatable` is False for what `re` refuses to quantify directly (anchors, comments, empty groups),
    so `Repeat` wraps those in a group.
    """

    text: str
    members: tuple[str, ...]
    repeatable: bool = True

    def render(self) -> str:
        return self.text

    def sample(self, rng: random.Random) -> str:
        return rng.choice(self.members)

    def shrinks(self) -> Iterator[Node]:
        if self.text != "a":
            yield Atom("a", ("a",))


@dataclass(frozen=True)
class Concat(Node):
    parts: tuple[Node, ...]

    def render(self) -> str:
        return "".join(p.render() for p in self.parts)

    def sample(self, rng: random.Random) -> str:
        return "".join(p.sample(rng) for p in self.parts)

    def shrinks(self) -> Iterator[Node]:
        yield from self.parts
        for i in range(len(self.parts)):
            rest = self.parts[:i] + self.parts[i + 1:]
            yield rest[0] if len(rest) == 1 else Concat(rest)
        for i, part in enumerate(self.parts):
            for smaller in part.shrinks():
                yield Concat(self.parts[:i] + (smaller,) + self.parts[i + 1:])


@dataclass(frozen=True)
class Alt(Node):
    options: tuple[Node, ...]

    def render(self) -> str:
        # Always grouped, so an alternation never swallows its neighbours.
        return "(?:" + "|".join(o.render() for o in self.options) + ")"

    def sample(self, rng: random.Random) -> str:
        return rng.choice(self.options).sample(rng)

    def shrinks(self) -> Iterator[Node]:
        yield from self.options
        for i in range(len(self.options)):
            rest = self.options[:i] + self.options[i + 1:]
            yield rest[0] if len(rest) == 1 else Alt(rest)
        for i, option in enumerate(self.options):
            for smaller in option.shrinks():
                yield Alt(self.options[:i] + (smaller,) + self.options[i + 1:])


@dataclass(frozen=True)
class Repeat(Node):
    """`child` repeated lo..hi times (hi None: unbounded), written as `form` (`*`, `{2,5}`, `{,3}`, ...)."""

    child: Node
    lo: int
    hi: int | None
    form: str
    lazy: bool = False

    def render(self) -> str:
        inner = self.child.render()
        if not (isinstance(self.child, Atom) and self.child.repeatable):
            inner = f"(?:{inner})"
        return inner + self.form + ("?" if self.lazy else "")

    def sample(self, rng: random.Random) -> str:
        # Few repetitions keep strings short: re's backtracking is exponential on some of these trees.
        top = self.lo + 3 if self.hi is None else min(self.hi, self.lo + 3)
        return "".join(self.child.sample(rng) for _ in range(rng.randint(self.lo, max(self.lo, top))))

    def shrinks(self) -> Iterator[Node]:
        yield self.child
        if self.lazy:
            yield replace(self, lazy=False)
        for smaller in self.child.shrinks():
            yield replace(self, child=smaller)


@dataclass(frozen=True)
class Group(Node):
    """`(...)`, `(?:...)`, `(?P<name>...)` or a scoped-flag group such as `(?i:...)` (`opener` is its start)."""

    child: Node
    opener: str

    def render(self) -> str:
        return f"{self.opener}{self.child.render()})"

    def sample(self, rng: random.Random) -> str:
        text = self.child.sample(rng)
        if "i" in self.opener.partition("-")[0]:
            text = _recase(text, rng)
        return text

    def shrinks(self) -> Iterator[Node]:
        yield self.child
        for smaller in self.child.shrinks():
            yield replace(self, child=smaller)


@dataclass(frozen=True)
class Pattern(Node):
    """A whole pattern: global inline flags such as `(?i)` (only allowed at the start), then the body."""

    body: Node
    prefix: str = ""

    def render(self) -> str:
        return self.prefix + self.body.render()

    def sample(self, rng: random.Random) -> str:
        text = self.body.sample(rng)
        return _recase(text, rng) if "i" in self.prefix else text

    def shrinks(self) -> Iterator[Node]:
        if self.prefix:
            yield Pattern(self.body)
        for smaller in self.body.shrinks():
            yield Pattern(smaller, self.prefix)


# ---------------------------------------------------------------- the pieces

def _lits(*pairs: str | tuple[str, str]) -> list[Atom]:
    return [Atom(p, (p,)) if isinstance(p, str) else Atom(p[0], (p[1],)) for p in pairs]


LITERALS = _lits("a", "b", "c", "A", "K", "k", "s", "é", "ß", "😀", "0", "9", "-", "]", "}", ",", "ǅ", "İ",
                 (" ", " "), (r"\.", "."), (r"\*", "*"), (r"\\", "\\"), (r"\{", "{"), (r"\#", "#"), (r"\n", "\n"),
                 (r"\t", "\t"), (r"\u00e9", "é"), (r"\x41", "A"), (r"\U0001F600", "😀"), (r"\101", "A"),
                 (r"\N{LATIN SMALL LETTER E WITH ACUTE}", "é"), (r"\0", "\0"), ("#", "#"))

CLASSES = [
    Atom(".", ("a", "😀", "é", "\n", " ")),
    Atom(r"\d", ("0", "7", "٣", "९", "a")), Atom(r"\D", ("a", "é", " ", "٣")),
    Atom(r"\w", ("a", "Z", "_", "é", "ß", "٣", "ǅ", "-")), Atom(r"\W", ("-", " ", "😀", "a")),
    Atom(r"\s", (" ", "\n", "\t", "\u00a0", "\u2028", "a")), Atom(r"\S", ("a", "😀", " ")),
    Atom("[ab]", ("a", "b", "A")), Atom("[^a]", ("b", "é", "😀", "\n", "a")), Atom("[a-c]", ("a", "b", "c", "C")),
    Atom("[0-9é]", ("0", "é", "É")), Atom(r"[\d\s]", ("1", " ", "٣")), Atom(r"[^\w]", ("-", " ", "a")),
    Atom("[b-é]", ("b", "z", "é", "ê", "a", "B")), Atom("[\u0400-\u04ff]", ("Ж", "ж", "я", "Я")),
    Atom("[α-ω]", ("α", "ω", "Ω", "Σ", "ς")), Atom("[😀-🙏]", ("😀", "🙏", "😃")),
    Atom(r"[^\x00-\x7f]", ("é", "😀", "a")), Atom("[]a]", ("]", "a")), Atom("[^]a]", ("b", "]")),
    Atom("[a-]", ("a", "-")), Atom("[-a]", ("-", "a")), Atom(r"[\u0660-\u0669]", ("٣", "3")),
    Atom(r"[^\n]", ("a", "\n")), Atom(r"[\S\s]", ("a", "\n")), Atom("[İı]", ("İ", "ı", "i", "I")),
    Atom("[ſk]", ("ſ", "s", "S", "k", "K", "K")), Atom(r"[\w-]", ("a", "-")), Atom(r"[\W\d]", ("1", " ")),
]

# Zero-width and empty syntax. Inner anchors are unsupported today (the fuzzer counts them as skips).
EMPTY = [Atom("(?:)", ("",), False), Atom("(?#a comment)", ("",), False), Atom("(?#)", ("",), False),
         Atom("(?#(x)", ("",), False)]
ANCHORS = [Atom("^", ("",), False), Atom("$", ("", "\n"), False), Atom(r"\A", ("",), False),
           Atom(r"\Z", ("",), False)]
# Braces that are not quantifiers in Python's re (non-ASCII digits, spaces, no digits, unclosed)
# are literal text; "{,}" after something repeatable is {0,}.
BRACES = [Atom(t, (t,), False) for t in ("{٣}", "{1,٣}", "{٣,}", "{,٣}", "{}", "{x}", "{1,2", "{ 1}", "{,}")]
# Outside the regular subset: rare, as they only exercise the error path.
NON_REGULAR = [Atom(r"\b", ("",), False), Atom(r"(?=a)", ("",), False), Atom(r"a*+", ("aa",), False),
               Atom(r"(?>ab)", ("ab",), False)]

REPEATS = [  # (form, lo, hi)
    ("*", 0, None), ("+", 1, None), ("?", 0, 1), ("{2}", 2, 2), ("{0,3}", 0, 3), ("{1,}", 1, None),
    ("{,2}", 0, 2), ("{2,3}", 2, 3), ("{3,7}", 3, 7), ("{0}", 0, 0), ("{,}", 0, None), ("{12}", 12, 12),
    ("{1,12}", 1, 12), ("{٣}", -1, -1),
]
GROUP_OPENERS = ["(", "(?:", "(?P<g>", "(?i:", "(?-i:", "(?s:", "(?a:", "(?x:", "(?is:", "(?u:"]
GLOBAL_FLAGS = ["(?i)", "(?s)", "(?a)", "(?x)", "(?is)", "(?ia)", "(?m)"]


def _atom(rng: random.Random) -> Atom:
    roll = rng.random()
    if roll < 0.42:
        return rng.choice(LITERALS)
    if roll < 0.80:
        return rng.choice(CLASSES)
    if roll < 0.87:
        return rng.choice(EMPTY)
    if roll < 0.94:
        return rng.choice(BRACES)
    if roll < 0.985:
        return rng.choice(ANCHORS)
    return rng.choice(NON_REGULAR)


def _node(rng: random.Random, depth: int, repeats: int) -> Node:
    roll = rng.random()
    if depth >= 4 or roll < 0.32:
        return _atom(rng)
    if roll < 0.55:
        return Concat(tuple(_node(rng, depth + 1, repeats) for _ in range(rng.randint(2, 3))))
    if roll < 0.70:
        return Alt(tuple(_node(rng, depth + 1, repeats) for _ in range(rng.randint(2, 3))))
    if roll < 0.88 and repeats < 2:  # at most two nested quantifiers: re backtracks exponentially past that
        form, lo, hi = rng.choice(REPEATS)
        child = _node(rng, depth + 1, repeats + 1)
        if lo < 0:  # a brace re reads as literal text, right after something repeatable
            return Concat((child, Atom(form, (form,), False)))
        return Repeat(child, lo, hi, form, lazy=rng.random() < 0.15)
    return Group(_node(rng, depth + 1, repeats), rng.choice(GROUP_OPENERS))


def random_pattern(rng: random.Random) -> Pattern:
    """A random pattern tree: mostly regular, sometimes with global flags, anchors or odd braces."""
    prefix = rng.choice(GLOBAL_FLAGS) if rng.random() < 0.15 else ""
    return Pattern(_node(rng, 0, 0), prefix)


# ---------------------------------------------------------------- strings

# Characters where Unicode case folding, \d, \w, \s and UTF-8 lengths are awkward.
ALPHABET = list("abcABCks09 .-_{}\n\t#") + ["é", "É", "ß", "ẞ", "😀", "ǅ", "Ǆ", "ǆ", "٣", "९", "\u00a0", "\u2028",
                                            "K", "ſ", "İ", "ı", "Ж", "ж", "ς", "σ", "Σ", "\x00", "\x7f", "\x80"]


def _recase(text: str, rng: random.Random) -> str:
    """Flip the case of some characters, as a case-insensitive pattern allows."""
    special = {"k": "K", "K": "k", "s": "ſ", "ß": "ẞ", "σ": "ς"}
    out = []
    for ch in text:
        if rng.random() < 0.4:
            ch = special.get(ch, ch) if rng.random() < 0.3 else ch.swapcase()
        out.append(ch)
    return "".join(out)


def random_text(rng: random.Random, max_len: int = 8) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, max_len)))


def mutate(text: str, rng: random.Random) -> str:
    """A small edit of `text`: most edits of a member make a non-member (re decides which)."""
    pos = rng.randint(0, len(text))
    roll = rng.random()
    if roll < 0.25 and text:
        return text[:pos] + text[pos + 1:]
    if roll < 0.5:
        return text[:pos] + rng.choice(ALPHABET) + text[pos:]
    if roll < 0.65 and text:
        i = rng.randrange(len(text))
        return text[:i] + rng.choice(ALPHABET) + text[i + 1:]
    if roll < 0.75:
        return text + "\n"  # `$` and `\Z` differ exactly here
    if roll < 0.85 and text:
        i = rng.randrange(len(text))
        return text[:i] + text[i] * 2 + text[i + 1:]
    if roll < 0.93:
        return text.swapcase()
    return text[: rng.randint(0, len(text))]


def mutate_pattern_text(pattern: str, rng: random.Random) -> str:
    """A random edit of a rendered pattern: reaches syntax errors and odd corners the trees do not."""
    pos = rng.randint(0, len(pattern))
    if pattern and rng.random() < 0.4:
        return pattern[:pos] + pattern[pos + 1:]
    return pattern[:pos] + rng.choice("()[]{}|*+?\\^$-,.09٣a#:") + pattern[pos:]
