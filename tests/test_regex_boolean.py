"""Intersection and complement of regex trees: the lazy byte DFA against set logic over `re.fullmatch`.

Languages are compared on every string of up to 4 characters over a tiny alphabet with a
two-byte and a four-byte character, so UTF-8 lead and continuation bytes are exercised;
complements are also checked never to accept ill-formed UTF-8.
"""

from __future__ import annotations

import codecs
import itertools
import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tether
from tether.automata.dfa import LazyDFA
from tether.errors import UnsupportedPattern
from tether.grammar.ir import Choice, GrammarIR, Rule, RuleRef, Sequence, Terminal, TerminalRef
from tether.grammar.regex import (Alternation, Assert, Chars, Complement, Concat, Intersect, Repeat, parse_regex,
                                  render)
from tether.vocab import Vocabulary

ALPHABET = "abé😀"
MAX_LEN = 4
STRINGS = ["".join(p) for n in range(MAX_LEN + 1) for p in itertools.product(ALPHABET, repeat=n)]
UNIVERSE = frozenset(STRINGS)
ANY = "(?s:.*)"

# Byte strings that are not UTF-8: a byte that never occurs, a lead without its continuation,
# a surrogate, overlong forms, past U+10FFFF, a stray continuation byte.
ILL_FORMED = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\x80", b"\xf4\x90\x80\x80",
              b"\xf5\x80\x80\x80", b"\x80", b"a\x80", b"\xc3\xa9\xa9", b"\xf0\x9f\x98", b"\xe2\x82", b"ab\xfe"]


# ---------------------------------------------------------------- languages as sets of short strings


def _fullmatches(pattern: str) -> frozenset[str]:
    reference = re.compile(pattern)
    return frozenset(s for s in STRINGS if reference.fullmatch(s))


def _cat(x: frozenset[str], y: frozenset[str]) -> frozenset[str]:
    short = [[b for b in y if len(b) <= room] for room in range(MAX_LEN + 1)]  # what fits after a prefix
    return frozenset(a + b for a in x for b in short[MAX_LEN - len(a)])


def _rep(x: frozenset[str], lo: int, hi: int | None) -> frozenset[str]:
    out, power = set(), frozenset([""])
    for k in range(lo + MAX_LEN + 2 if hi is None else hi + 1):  # past lo + MAX_LEN + 1 rounds nothing new is short
        if k >= lo:
            out |= power
        power = _cat(power, x)
    return frozenset(out)


def _build(expr) -> tuple[object, frozenset[str]]:
    """(regex tree, its strings among STRINGS) for an expression drawn by `_exprs`."""
    op = expr[0]
    if op == "re":
        return parse_regex(expr[1]), _fullmatches(expr[1])
    if op == "rep":
        node, lang = _build(expr[1])
        return Repeat(node, expr[2], expr[3]), _rep(lang, expr[2], expr[3])
    built = [_build(e) for e in expr[1:]]
    nodes, langs = tuple(n for n, _ in built), [lang for _, lang in built]
    if op == "not":
        return Complement(nodes[0]), UNIVERSE - langs[0]
    if op == "and":
        return Intersect(nodes), frozenset.intersection(*langs)
    if op == "alt":
        return Alternation(nodes), frozenset.union(*langs)
    lang = frozenset([""])
    for part in langs:
        lang = _cat(lang, part)
    return Concat(nodes), lang


def _accepted(dfa: LazyDFA) -> frozenset[str]:
    """The strings of STRINGS the automaton accepts, each prefix stepped once (a walk of their trie)."""
    out, todo = set(), [("", dfa.initial)]
    while todo:
        text, state = todo.pop()
        if dfa.accepting(state):
            out.add(text)
        if len(text) < MAX_LEN:
            for ch in ALPHABET:
                nxt = dfa.step(state, ch.encode())
                if nxt >= 0:
                    todo.append((text + ch, nxt))
    return frozenset(out)


def _agrees(node, lang: frozenset[str]) -> None:
    dfa = LazyDFA.from_tree(node)
    got = _accepted(dfa) if not dfa.is_empty else frozenset()
    assert got == lang, (render(node, limit=400), sorted(got - lang)[:5], sorted(lang - got)[:5])
    if lang:  # (no short member does not make the language empty)
        assert not dfa.is_empty
    for text in sorted(lang)[:3] + sorted(UNIVERSE - lang)[:3]:  # and `matches` agrees with the walk
        assert dfa.matches(text.encode()) == (text in lang)


_ATOMS = st.sampled_from(["a", "b", "é", "😀", ".", "[ab]", "[^a]", "[aé]", "(?:)", "a*", "[bé]+", "b?", "😀?"])


def _patterns():
    def extend(inner):
        return st.one_of(
            st.tuples(inner, inner).map("".join),
            st.tuples(inner, inner).map(lambda t: f"(?:{t[0]}|{t[1]})"),
            st.tuples(inner, st.sampled_from(["*", "+", "?", "{2}", "{0,2}"])).map(lambda t: f"(?:{t[0]}){t[1]}"),
        )

    return st.recursive(_ATOMS, extend, max_leaves=4)


_COUNTS = st.sampled_from([(0, 1), (0, None), (1, None), (2, 2), (1, 3)])


def _exprs():
    def extend(inner):
        return st.one_of(
            st.tuples(st.just("and"), inner, inner),
            st.tuples(st.just("and"), inner, inner, inner),
            st.tuples(st.just("not"), inner),
            st.tuples(st.just("cat"), inner, inner),
            st.tuples(st.just("alt"), inner, inner),
            st.tuples(st.just("rep"), inner, _COUNTS).map(lambda t: t[:2] + t[2]),
        )

    return st.recursive(_patterns().map(lambda p: ("re", p)), extend, max_leaves=5)


# ---------------------------------------------------------------- differential tests


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(p1=_patterns(), p2=_patterns(), p3=_patterns())
def test_fixed_combinations_agree_with_set_logic_over_re(p1, p2, p3):
    (a, la), (b, lb), (c, lc) = (_build(("re", p)) for p in (p1, p2, p3))
    cases = [
        (Intersect((a, b)), la & lb),
        (Complement(a), UNIVERSE - la),
        (Complement(Intersect((a, b))), UNIVERSE - (la & lb)),
        (Intersect((a, Complement(b))), la - lb),
        (Intersect((Complement(a), Complement(b))), UNIVERSE - (la | lb)),
        (Complement(Complement(a)), la),
        (Concat((Intersect((a, b)), c)), _cat(la & lb, lc)),
        (Concat((c, Complement(a))), _cat(lc, UNIVERSE - la)),
        (Repeat(Intersect((a, Complement(b))), 0, None), _rep(la - lb, 0, None)),
        (Repeat(Complement(a), 2, 2), _rep(UNIVERSE - la, 2, 2)),
        (Alternation((Intersect((a, c)), Complement(b))), (la & lc) | (UNIVERSE - lb)),
        (Intersect((a, b, c)), la & lb & lc),
        (Intersect((Intersect((a, b)), Complement(Concat((b, c))))), (la & lb) - _cat(lb, lc)),
    ]
    for node, lang in cases:
        _agrees(node, lang)
    assert LazyDFA.from_tree(Intersect((a, Complement(a)))).is_empty
    everything = LazyDFA.from_tree(Alternation((a, Complement(a))))
    assert all(everything.matches(s.encode()) for s in STRINGS + ["\n", "z\x00", "\U0010ffff\ud7ff\ue000"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expr=_exprs())
def test_nested_expressions_agree_with_set_logic_over_re(expr):
    node, lang = _build(expr)
    _agrees(node, lang)


# ---------------------------------------------------------------- UTF-8, emptiness, the universe


def _valid(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


@pytest.mark.parametrize("node", [
    Complement(parse_regex("a")), Complement(Chars(())), Complement(parse_regex("[^é]")),
    Complement(Intersect((parse_regex("a*"), parse_regex("(?:aa)*")))), Intersect(()),
    Intersect((Complement(parse_regex("b")), Complement(parse_regex("(?s:..)")))),
    Concat((Complement(parse_regex("x")), parse_regex("y"))), Repeat(Complement(parse_regex(".")), 0, None),
], ids=lambda n: render(n, limit=60))
def test_complement_never_accepts_ill_formed_utf8(node):
    dfa = LazyDFA.from_tree(node)
    for data in ILL_FORMED:
        assert not dfa.matches(data), data
        assert not dfa.matches(b"y" + data) and not dfa.matches(data + b"y"), data
    # Every one- and two-byte string, and random longer ones drawn near UTF-8.
    rng = random.Random(0)
    near = list(range(0x00, 0x7F, 7)) + list(range(0x80, 0x100))
    samples = [bytes([x]) for x in range(256)] + [bytes([x, y]) for x in range(256) for y in range(0x70, 0x100)]
    samples += [bytes(rng.choice(near) for _ in range(rng.randint(3, 6))) for _ in range(4000)]
    for data in samples:
        if dfa.matches(data):
            assert _valid(data), data


def test_complement_accepts_exactly_the_valid_strings_outside_its_operand():
    dfa = LazyDFA.from_tree(Complement(parse_regex("a")))
    for x in range(256):
        for y in range(256):
            for data in (bytes([x]), bytes([x, y])):
                assert dfa.matches(data) == (_valid(data) and data != b"a"), data
    for text in ["", "aa", "\U0010ffff", "\ud7ff\ue000", "\x00\n", "😀é"]:
        assert dfa.matches(text.encode())


def test_universe_and_emptiness():
    universe = parse_regex(ANY)
    assert LazyDFA.from_tree(Complement(universe)).is_empty
    assert LazyDFA.from_tree(Complement(Alternation((parse_regex("(?s:.+)"), Concat(()))))).is_empty
    assert LazyDFA.from_tree(Intersect((parse_regex("a+"), parse_regex("b+")))).is_empty
    assert LazyDFA.from_tree(Intersect((parse_regex("a+b"), parse_regex("a*c")))).is_empty
    assert LazyDFA.from_tree(Intersect((parse_regex("[ab]{3}"), Complement(parse_regex("[ab]*"))))).is_empty
    # Empty only far away from the start: the search must find it, not the smart constructors.
    far = Intersect((parse_regex("(?:a|b)*a(?:a|b){6}"), Complement(parse_regex("(?:a|b)*a(?:a|b){6}"))))
    assert LazyDFA.from_tree(far).is_empty
    for node in (Intersect(()), Complement(Chars(())), Intersect((universe, universe))):
        dfa = LazyDFA.from_tree(node)
        assert all(dfa.matches(s.encode()) for s in STRINGS + ["\n", "\x00", "\U0010ffff"])
    with pytest.raises(tether.EmptyLanguage):
        tether.Grammar(_grammar({"start": Rule("start", TerminalRef("T"))},
                                {"T": Terminal("T", Intersect((parse_regex("a"), parse_regex("b"))))}))



def test_a_liveness_search_derives_only_until_it_meets_a_live_state():
    # After "ab " the words pattern needs one more word; the first class tried ("!") closes one,
    # so the search derives that class alone: no row of the other ~20 classes is built.
    words = Intersect((parse_regex(r"(?:\S+\s+){0,49}\S+"), parse_regex(r"(?s:.{1,500})")))
    dfa = LazyDFA.from_tree(words)
    after = dfa.step(dfa.initial, b"ab ")
    derived = len(dfa.terms._derivatives)
    assert dfa.is_live(after) and not dfa.accepting(after)
    assert after not in dfa._raw and len(dfa.terms._derivatives) - derived <= 8
    assert dfa.matches(b"ab c") and not dfa.matches(b"ab ") and not dfa.matches(b"x" * 501)

def test_nodes_compare_by_identity_and_render():
    a = parse_regex("a")
    assert Intersect((a,)) != Intersect((a,)) and len({Complement(a), Complement(a)}) == 2
    assert render(Complement(Intersect((a, Chars(((98, 98),)))))) == \
        "Complement(node=Intersect(parts=(Chars(intervals=((97, 97),)), Chars(intervals=((98, 98),)))))"
    assert render(Intersect((a,))) == "Intersect(parts=(Chars(intervals=((97, 97),)),))"
    assert repr(Intersect(())) == "Intersect(parts=())"


def test_deep_nesting_stays_iterative():
    a, not_aaa = parse_regex("a?"), Complement(parse_regex("aaa"))
    node = parse_regex("a*")
    for _ in range(5_000):  # each level is a?·(the level below) minus "aaa": a* minus "aaa" at every depth
        node = Intersect((Concat((a, node)), not_aaa))
    assert len(repr(node)) < 3_000 and len(render(node)) > 100_000
    dfa = LazyDFA.from_tree(node)
    assert [n for n in range(7) if dfa.matches(b"a" * n)] == [0, 1, 2, 4, 5, 6]
    assert not dfa.matches(b"b")

    node = parse_regex("b")
    for level in range(5_002):
        node = Complement(node) if level % 2 else Concat((Intersect((node, parse_regex(ANY))),))
    dfa = LazyDFA.from_tree(node)  # 2,501 complements: the complement of "b"
    assert not dfa.matches(b"b") and dfa.matches(b"") and dfa.matches(b"bb")


def test_anchors_inside_are_refused_and_outside_are_exact():
    anchored = [Concat((Chars(((97, 97),)), Assert("end"))), parse_regex(r"(?m)a\n^b"), Assert("start"),
                Alternation((parse_regex("x"), Concat((Assert("line_end"), parse_regex("\n")))))]
    for inner in anchored:
        for node in (Intersect((inner, parse_regex(ANY))), Complement(inner),
                     Concat((parse_regex("c"), Complement(Intersect((parse_regex("a"), inner)))))):
            with pytest.raises(UnsupportedPattern, match="an anchor inside an intersection/complement"):
                LazyDFA.from_tree(node)
    # Around them, anchors keep their meaning: "$" holds before a final newline, "\Z" only at the end.
    dfa = LazyDFA.from_tree(Concat((Complement(parse_regex("a")), Assert("end_or_final_newline"), parse_regex("\n"))))
    assert dfa.matches(b"b\n") and dfa.matches(b"\n") and dfa.matches(b"b\n\n") and not dfa.matches(b"a\n")
    assert LazyDFA.from_tree(Concat((Complement(parse_regex("a")), Assert("end"), parse_regex("\n")))).is_empty
    twice = Intersect((parse_regex("a+"), parse_regex("a{2}")))
    assert LazyDFA.from_tree(Concat((Assert("start"), twice, Assert("end")))).matches(b"aa")


# ---------------------------------------------------------------- grammars and token masks


def _grammar(rules, terminals, start="start") -> GrammarIR:
    return GrammarIR(rules, terminals, start, source="built in a test")


def _word_without_x():
    """Lowercase words without an x (letters minus one, spelled as an intersection)."""
    return Intersect((parse_regex("[a-z]+"), Complement(parse_regex("(?s:.*x.*)"))))


def test_grammar_terminal_with_an_intersection_on_both_engines():
    word = Terminal("WORD", _word_without_x())
    flat = tether.Grammar(_grammar({"start": Rule("start", Sequence((TerminalRef("WORD"), TerminalRef("WORD"))))},
                                   {"WORD": word}))
    assert flat.engine == "dfa"
    assert flat.matches("ab") and flat.matches("abcd") and not flat.matches("a") and not flat.matches("axb")

    # s: "(" s ")" | WORD
    s = Choice((Sequence((TerminalRef("LP"), RuleRef("start"), TerminalRef("RP"))), TerminalRef("WORD")))
    nested = tether.Grammar(_grammar({"start": Rule("start", s)}, {
        "WORD": word, "LP": Terminal("LP", parse_regex(r"\(")), "RP": Terminal("RP", parse_regex(r"\)"))}))
    assert nested.engine == "cfg"
    for text, member in [("abc", True), ("(abc)", True), ("((ab))", True), ("(ax)", False), ("((ab)", False),
                         ("()", False), ("x", False), ("(é)", False), ("((q))", True)]:
        assert nested.matches(text) == member, text

    vocab = _vocab()
    for grammar, text in [(flat, "helo"), (nested, "((word))")]:
        c = grammar.compile(vocab)
        state = c.initial()
        for ch in text:
            state = c.advance(state, _id(ch.encode()))
        assert c.is_accepting(state)
    c = nested.compile(vocab)
    state = c.advance_many(c.initial(), [_id(b"("), _id(b"a")])
    assert not c.allows(state, _id(b"x")) and not c.allows(state, _id(b"ax"))
    assert c.allows(state, _id(b"ab")) and c.allows(state, _id(b")"))


_TOKENS = [bytes([b]) for b in range(256)] + [t.encode() for t in [
    "ab", "ax", "ba", "bad", "ad", "d\"", "\"", "\"\"", "é", "😀", "é\"", "a\"b", "xyz", "word", "((", "))",
    "\nb", "da", "bé"]] + [b"\xc3", b"\xf0\x9f", b"\xf0\x9f\x98", b"\x98\x80", b"\xa9", b"\xed\xa0\x80"]


_TOKEN_LIST = list(dict.fromkeys(_TOKENS))


def _vocab() -> Vocabulary:
    return Vocabulary.from_tokens(_TOKEN_LIST + [None], eos_ids=[len(_TOKEN_LIST)])


def _id(token: bytes) -> int:
    return _TOKEN_LIST.index(token)


def _live_quoted_without_bad(data: bytes) -> bool:
    """Whether `data` begins a member of '"' + (text without '"' and without "bad") + '"'."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        text = decoder.decode(data, final=False)
    except UnicodeDecodeError:
        return False
    pending = decoder.getstate()[0] != b""
    if "bad" in text or (text and text[0] != '"'):
        return False
    body = text[1:]
    if '"' in body:  # the closing quote: nothing may follow it
        return body.index('"') == len(body) - 1 and not pending
    return True


def test_masks_of_a_complement_are_exact_and_stay_in_utf8():
    tree = Intersect((parse_regex(r'"[^"]*"'), Complement(parse_regex(r'(?s:.*bad.*)'))))
    vocab = _vocab()
    spec = tether.Grammar(_grammar({"start": Rule("start", TerminalRef("Q"))}, {"Q": Terminal("Q", tree)}))
    c = spec.compile(vocab)
    for prefix in [b'"', b'"b', b'"ba', b'"xb', b'"\xc3\xa9', b'"\xf0\x9f', b'"abc', b'"ab"', b'"\n']:
        state = c.initial()
        for byte in prefix:
            state = c.advance(state, _id(bytes([byte])))
        mask = c.mask(state)
        for t, token in enumerate(_TOKEN_LIST):
            assert bool(mask[t]) == _live_quoted_without_bad(prefix + token), (prefix, token)
        assert c.is_accepting(state) == (prefix == b'"ab"')
