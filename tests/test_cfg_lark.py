"""tether.lark against Lark itself: random grammars (fuzz/_grammargen.py) and fixed ones.

The reference is `lark.Lark(text, parser="earley", lexer="dynamic_complete", start=...)`:
a string is a member iff `.parse` succeeds. Random grammars Lark refuses are not test cases
(they are skipped with `assume`); their derivations are members (Lark must agree, which checks
the generator), their mutations mostly non-members, and Lark decides each one.
"""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, assume, given, note, settings
from hypothesis import strategies as st

import tether
from fuzz import _grammargen as gen
from fuzz.grammar import lark_accepts, lark_parser, lark_unproductive

from conftest import real_vocab

# No shrinking: a random generator's draws shrink poorly and slowly; the messages carry the
# grammar and the string (and `python -m fuzz grammar` shrinks what it finds).
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
                database=None, phases=[Phase.explicit, Phase.generate])


def _built(grammar: gen.Grammar) -> str:
    """The grammar's text, when Lark builds it (else the example is no test case)."""
    text = grammar.render()
    try:
        lark_parser(text, grammar.start)
    except Exception:  # noqa: BLE001 (Lark raises several kinds on a bad grammar)
        assume(False)
    note(f"grammar (start={grammar.start!r}):\n{text}")
    return text


def _tether(text: str, start: str) -> tether.Grammar:
    try:
        return tether.lark(text, start=start)
    except tether.GrammarError:
        # Documented: a grammar with a rule that derives no string may be refused.
        assume(not lark_unproductive(text, start))
        raise


def _walk(c, vocab, text: str) -> None:
    """The greedy tokenization of a member is walkable: each token allowed (by `allows` and by the
    mask), the final state accepting, EOS allowed there."""
    state = c.initial()
    for i, t in enumerate(vocab.encode_greedy(text)):
        assert c.allows(state, t), f"token {i} {vocab[t]!r} of member {text!r} refused"
        assert c.mask(state)[t], f"mask refuses token {i} {vocab[t]!r} of member {text!r}, allows() takes it"
        state = c.advance(state, t)
    assert c.is_accepting(state), f"member {text!r} walked, but the final state is not accepting"
    assert c.allows(state, vocab.eos_ids[0]) and c.mask(state)[vocab.eos_ids[0]], f"EOS refused after member {text!r}"


# ---------------------------------------------------------------- (a) random grammars, derivations, token walks

@settings(max_examples=50, **SETTINGS)
@given(rng=st.randoms(use_true_random=False), vocab_name=st.sampled_from(["gpt-2", "llama-bpe", "llama-spm"]))
def test_derivations_are_members_and_their_greedy_tokenizations_walk(rng, vocab_name):
    grammar = gen.random_grammar(rng)
    text = _built(grammar)
    g = _tether(text, grammar.start)
    assert g.engine in ("dfa", "cfg")
    derived = [d for d in (grammar.derive(rng) for _ in range(3)) if d is not None]
    assume(derived)
    vocab = real_vocab(vocab_name)
    c = g.compile(vocab)
    for pieces in derived:
        s = "".join(pieces)
        assert lark_accepts(text, grammar.start, s), f"the generator derived a non-member {s!r} of\n{text}"
        assert g.matches(s), f"tether rejects the derivation {s!r} ({pieces}) of\n{text}"
        assert g.matches(s.encode("utf-8")), f"tether rejects the derivation {s!r} as bytes, of\n{text}"
        _walk(c, vocab, s)


# ---------------------------------------------------------------- (b) mutations: membership agrees with Lark

@settings(max_examples=150, **SETTINGS)
@given(rng=st.randoms(use_true_random=False))
def test_mutations_agree_with_lark(rng):
    grammar = gen.random_grammar(rng)
    text = _built(grammar)
    g = _tether(text, grammar.start)
    derived = [d for d in (grammar.derive(rng) for _ in range(3)) if d is not None]
    strings = [gen.mutate(d, rng, grammar) for d in derived for _ in range(3)]
    strings += [gen.random_text(rng, grammar) for _ in range(3)] + [""]
    for s in dict.fromkeys(strings):
        if len(s) > gen.MAX_TEXT:
            continue
        expected = lark_accepts(text, grammar.start, s)
        assert g.matches(s) == expected, f"matches({s!r}) is {not expected}, Lark says {expected}, grammar:\n{text}"


def test_generator_terminals_have_greedy_equal_longest_matches_in_lark():
    """Lark's dynamic_complete lexer only tries prefixes of a terminal's leftmost-greedy match, so
    the generator keeps to terminals whose greedy match is their longest one (on short strings)."""
    import itertools

    bodies = [(t.name, t.body, t.needs, t.samples) for t in gen.TERMINALS.values()]
    bodies += [(f"R{i}", f"/{r.pattern}/", (), r.samples) for i, r in enumerate(gen.INLINE_REGEXES)]
    bodies += [(f"I{i}", t.body, (), t.samples) for i, t in enumerate(gen.IGNORES)]
    for name, body, needs, samples in bodies:
        defs = "".join(f"{n}: {gen.TERMINALS[n].body}\n" for n in needs)
        parser = lark_parser(f"start: {name}\n{name}: {body}\n{defs}")
        pattern = next(t.pattern.to_regexp() for t in parser.terminals if t.name == name)
        regex = re.compile(pattern)
        assert regex.fullmatch("") is None, f"{name} matches the empty string"
        alphabet = sorted(set("".join(samples)) | set("a0 "))
        for n in range(1, 5):
            for chars in itertools.product(alphabet, repeat=n):
                s = "".join(chars)
                m = regex.match(s)
                longest = max((k for k in range(1, n + 1) if regex.fullmatch(s[:k])), default=0)
                assert (m.end() if m else 0) == longest, (name, pattern, s)


def test_generator_samples_are_members_of_their_terminals():
    for t in gen.TERMINALS.values():
        defs = "".join(f"{n}: {gen.TERMINALS[n].body}\n" for n in t.needs)
        text = f"start: {t.name}\n{t.name}: {t.body}\n{defs}"
        for s in t.samples:
            assert lark_accepts(text, "start", s), (t.name, s)
    for r in gen.INLINE_REGEXES:
        for s in r.samples:
            assert re.fullmatch(r.pattern, s), (r.pattern, s)


# ---------------------------------------------------------------- (c) fixed grammars

ARITH = r"""
start: expr
expr: expr "+" term | expr "-" term | term
term: term "*" factor | factor
factor: NUMBER | "(" expr ")"
NUMBER: /[0-9]+/
"""

# (grammar, start, members, non-members): each verdict is asserted for Lark too, so the list
# states the intended semantics and the reference at once.
FIXED = [
    ("left recursion", ARITH, "start",
     ["1", "12", "1+2", "1+2*3", "(1+2)*3", "((4))", "1-2-3", "2*3*4+5", "(1)+(2)"],
     ["", "1+", "+1", "(1", "1)", "()", "1++2", "1 + 2", "(1+2", "1*", "a"]),
    ("ambiguous e e", 'start: e\ne: e e | "a"\n', "start",
     ["a", "aa", "aaa", "a" * 12],
     ["", "b", "ab", "aab", "a" * 11 + "b"]),
    ("ambiguous infix", 'start: e\ne: e "+" e | e "*" e | "a" | "(" e ")"\n', "start",
     ["a", "a+a", "a+a*a", "(a+a)*a", "a*a*a*a+a", "((a))"],
     ["", "+", "a+", "a+*a", "(a", "aa"]),
    ("nullable", 'start: a b c\na: "x"?\nb: | "y"\nc: c "z" |\n', "start",
     ["", "x", "y", "z", "xy", "xz", "yz", "xyzz", "zzz"],
     ["yx", "zx", "zy", "xx", "yy", "w"]),
    ("nullable cycle", 'start: a\na: b | "x"\nb: a |\n', "start",
     ["", "x"],
     ["xx", "y"]),
    ("unit cycle", 'start: e "a"\ne: e | "x"\n', "start",
     ["xa"],
     ["", "a", "x", "xxa", "xaa"]),
    ("right recursion", 'start: "a" start | "b"\n', "start",
     ["b", "ab", "aaab"],
     ["", "a", "ba", "abb"]),
    ("balanced", 'start: p*\np: "(" p* ")"\n', "start",
     ["", "()", "()()", "(())", "(()())()"],
     ["(", ")", ")(", "(()", "())"]),
    ("ignore", 'start: "a" "b" | "c"+\n%ignore " "\n', "start",
     ["ab", " ab", "a b", "ab ", "  a  b  ", "c", "c c  c", " c "],
     ["", " ", "a", "b", "a b c", "ac", "a\tb"]),
    ("ignore regex, list", 'start: NAME ("," NAME)*\nNAME: /[a-z]+/\nWS: /[ \\t]+/\n%ignore WS\n', "start",
     ["a", "a,b", "a , b", "\tab ,\tcd ", "a,b,c"],
     ["", ",", "a,", ",a", "a b", "a,,b", "A"]),
    ("keyword vs name", 'start: stmt+\nstmt: "if" NAME | NAME "=" NAME\nNAME: /[a-z]+/\n%ignore " "\n', "start",
     ["if x", "ifx", "x=y", "if if", "ifx=y", "if x if y", "a = b if c", "iff"],
     ["", "if", "x", "=", "x=", "if =", "x y"]),
    ("keyword only as keyword", 'start: "if" NAME\nNAME: /[a-z]+/\n', "start",
     ["ifx", "ifif", "ifa"],
     ["if", "x", "i", "fx", "if x"]),
    ("other start", 'value: list | ATOM\nlist: "[" [value ("," value)*] "]"\nATOM: /[a-z]+/\n', "value",
     ["a", "[]", "[a]", "[a,[b,c],[]]", "[[[]]]"],
     ["", "[", "[a,]", "[,]", "a,b", "[a][b]"]),
    ("unicode", 'start: "é"+ "😀" /[α-ω]/?\n', "start",
     ["é😀", "ééé😀", "é😀λ"],
     ["", "😀", "e😀", "é", "é😀Λ"]),
    ("case-insensitive", 'start: "select"i NAME\nNAME: /[a-z]+/\n%ignore " "\n', "start",
     ["select x", "SELECT x", "SeLeCt abc", "selectx"],
     ["select", "select X", "selec x", "x select"]),
    ("repeat ranges", 'start: "a"~2..4 "b"~2\n', "start",
     ["aabb", "aaabb", "aaaabb"],
     ["abb", "aaaaabb", "aab", "aabbb", ""]),
    ("decorations", '?start: _a -> alias\n_a.2: "q" [b]\n!b: "r"\n', "start",
     ["q", "qr"],
     ["", "r", "qq"]),
    ("terminal composition", 'start: NUM ("," NUM)*\nNUM: DIGIT+ ("." DIGIT+)?\nDIGIT: "0".."9"\n', "start",
     ["1", "1.5", "12,3.25", "0.0,0"],
     ["", "1.", ".5", "1,", "1..2"]),
    ("import common", 'start: NUMBER ("+" NUMBER)*\n%import common.NUMBER\n%import common.WS\n%ignore WS\n', "start",
     ["1", "1 + 2.5", "1e3+.5", "  7  "],
     ["", "+", "1 +", "1 2"]),
]


@pytest.mark.parametrize("name,text,start,members,others", FIXED, ids=[f[0] for f in FIXED])
def test_fixed_grammars_agree_with_lark(name, text, start, members, others):
    g = tether.lark(text, start=start)
    wrong = []
    for s, expected in [(m, True) for m in members] + [(o, False) for o in others]:
        assert lark_accepts(text, start, s) == expected, f"the list is wrong for Lark: {s!r} should be {expected}"
        if bool(g.matches(s)) != expected:
            wrong.append((s, expected))
    assert not wrong, f"{name}: tether disagrees with Lark on (text, Lark's verdict) {wrong}\n{text}"


@pytest.mark.parametrize("name,text,start,members,others", FIXED, ids=[f[0] for f in FIXED])
def test_fixed_grammars_walk_members_on_gpt2(name, text, start, members, others):
    vocab = real_vocab("gpt-2")
    c = tether.lark(text, start=start).compile(vocab)
    for m in members:
        _walk(c, vocab, m)
    for o in others:  # a non-member's greedy tokens: the walk is refused somewhere or ends not accepting
        state, refused = c.initial(), False
        for t in vocab.encode_greedy(o):
            if not c.allows(state, t):
                refused = True
                break
            state = c.advance(state, t)
        assert refused or not c.is_accepting(state), f"{name}: the walk of non-member {o!r} is accepted"


def test_engine_choice():
    assert tether.lark('start: "a" b\nb: "b" | "c"\n').engine == "dfa"
    assert tether.lark('start: "a" ("b" | "c") "d"?\n').engine == "dfa"
    assert tether.lark(ARITH).engine == "cfg"
    assert tether.lark('start: "(" start ")" | "x"\n').engine == "cfg"


def test_bytes_and_str_agree_and_invalid_utf8_is_no_member():
    g = tether.lark('start: /[^a]/+\n')
    assert g.matches("é😀") and g.matches("é😀".encode())
    assert not g.matches(b"\xff") and not g.matches(b"\xc3") and not g.matches("é".encode()[:1])
    g = tether.lark('start: "(" start ")" | /[^()]/\n')
    assert g.matches("(é)") and g.matches("(é)".encode())
    assert not g.matches(b"(\xe9)") and not g.matches(b"(\xed\xa0\x80)")  # Latin-1, an encoded surrogate


@pytest.mark.parametrize("text", [
    "start: foo\n",                       # undefined rule
    "start: FOO\n",                       # undefined terminal
    "start: (\n",                         # syntax error
    'start: "a"\nstart: "b"\n',            # rule defined twice
    "start: /a*/\n",                       # zero-width terminal: Lark's dynamic Earley refuses it
    'start: A\n%import nope.A\n',          # no such grammar to import from
])
def test_grammars_lark_refuses_raise_grammar_error(text):
    with pytest.raises(Exception):
        lark_parser(text, "start")
    with pytest.raises(tether.GrammarError):
        tether.lark(text)


def test_missing_start_rule_raises_grammar_error():
    with pytest.raises(tether.GrammarError):
        tether.lark('expr: "a"\n')  # start="start" by default
    assert tether.lark('expr: "a"\n', start="expr").matches("a")


def test_rule_deriving_nothing_is_refused_and_lark_finds_no_member():
    text = 'start: a\na: a "x"\n'
    assert lark_unproductive(text) == ("a", "start")
    assert not any(lark_accepts(text, "start", s) for s in ["", "x", "xx", "xxx"])
    with pytest.raises(tether.GrammarError):
        tether.lark(text)


def test_overlapping_terminals_under_recursion_stay_polynomial():
    """Two terminals that spell the same text under `start+`: Lark parses "a" * 40 in milliseconds.
    Once, parser nodes doubled per character (matches and masks ran past 512 MB near 24 characters);
    the mask's walk through one long token's inner lexeme boundaries is checked on a 2-token vocabulary."""
    text = 'start: start+ B | A\nA: "a"\nB: "a"\n'
    assert lark_accepts(text, "start", "a" * 40)
    g = tether.lark(text)
    assert g.matches("a" * 40) and not g.matches("")
    vocab = tether.Vocabulary.from_tokens([b"<eos>", b"a" * 32], eos_ids=[0])
    c = g.compile(vocab)
    mask = c.mask(c.initial())
    assert mask[1] and not mask[0]
    assert c.is_accepting(c.advance(c.initial(), 1))
