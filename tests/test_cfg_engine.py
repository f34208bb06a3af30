"""The context-free engine on grammars built directly as IR: engine choice, the language against a
brute-force reference, and the fast masks (lexer rows + boundary forks) against the obvious mask
(every token walked through the configuration automaton) along random walks on a real vocabulary.
"""

from __future__ import annotations

import itertools
import random
import re

import numpy as np
import pytest

import tether
from tether.automata.grammar import Grammar
from tether.grammar.ir import Choice, GrammarIR, Repetition, Rule, RuleRef, Sequence, Terminal, TerminalRef
from tether.grammar.regex import parse_regex

from conftest import real_vocab


def T(name: str, pattern: str) -> Terminal:
    return Terminal(name, parse_regex(pattern), text=pattern)


def seq(*items):
    return Sequence(tuple(items))


def alt(*options):
    return Choice(tuple(options))


R, K = RuleRef, TerminalRef


def arithmetic() -> GrammarIR:
    return GrammarIR(
        {"sum": Rule("sum", alt(R("prod"), seq(R("sum"), K("OP"), R("prod")))),
         "prod": Rule("prod", alt(R("atom"), seq(R("prod"), K("TIMES"), R("atom")))),
         "atom": Rule("atom", alt(K("NUM"), seq(K("LP"), R("sum"), K("RP"))))},
        {"OP": T("OP", r"[+-]"), "TIMES": T("TIMES", r"\*"), "NUM": T("NUM", r"[0-9]+(\.[0-9]+)?"),
         "LP": T("LP", r"\("), "RP": T("RP", r"\)"), "WS": T("WS", r"[ \n]+")},
        "sum", ignore=("WS",))


def balanced() -> GrammarIR:
    # Nested brackets and words that split anywhere: "ab" is one WORD or two.
    return GrammarIR(
        {"s": Rule("s", Repetition(R("item"), 0, None)),
         "item": Rule("item", alt(K("WORD"), seq(K("LB"), R("s"), K("RB")), seq(K("LB"), R("s"), K("RB"), K("BANG"))))},
        {"WORD": T("WORD", r"[a-c]+"), "LB": T("LB", r"\["), "RB": T("RB", r"\]"), "BANG": T("BANG", r"!?")},
        "s")


def ambiguous() -> GrammarIR:
    # e: e e | "a" | "ab" | x?  with a nullable rule and a nullable cycle
    return GrammarIR(
        {"e": Rule("e", alt(seq(R("e"), R("e")), K("A"), K("AB"), seq(R("n"), K("B")))),
         "n": Rule("n", alt(seq(), R("m"))),
         "m": Rule("m", alt(R("n"), K("C")))},
        {"A": T("A", "a"), "AB": T("AB", "ab"), "B": T("B", "b"), "C": T("C", "c+")},
        "e")


def regular() -> GrammarIR:
    return GrammarIR(
        {"list": Rule("list", seq(K("LB"), R("items"), K("RB"))),
         "items": Rule("items", alt(seq(), seq(K("NUM"), Repetition(seq(K("COMMA"), K("NUM")), 0, None))))},
        {"LB": T("LB", r"\["), "RB": T("RB", r"\]"), "NUM": T("NUM", r"-?[0-9]+"), "COMMA": T("COMMA", ","),
         "WS": T("WS", " ")},
        "list", ignore=("WS",))


# Python regexes for the regular and bracket-free parts, as an independent reference.
def _arith_reference(text: str) -> bool:
    tokens = re.findall(r"[0-9]+(?:\.[0-9]+)?|[-+*()]|[ \n]+|.", text)
    if "".join(tokens) != text:
        return False
    toks = [t for t in tokens if not t.isspace()]
    if any(t not in "+-*()" and not re.fullmatch(r"[0-9]+(\.[0-9]+)?", t) for t in toks):
        return False
    # Numbers may also split into several NUM lexemes ("12" = "1" "2") only where the grammar
    # allows two numbers in a row: never. So the greedy tokenization decides, by recursive descent.
    pos = 0

    def atom() -> bool:
        nonlocal pos
        if pos < len(toks) and toks[pos] == "(":
            pos += 1
            if not sum_() or pos >= len(toks) or toks[pos] != ")":
                return False
            pos += 1
            return True
        if pos < len(toks) and toks[pos] not in "+-*()":
            pos += 1
            return True
        return False

    def prod() -> bool:
        nonlocal pos
        if not atom():
            return False
        while pos < len(toks) and toks[pos] == "*":
            pos += 1
            if not atom():
                return False
        return True

    def sum_() -> bool:
        nonlocal pos
        if not prod():
            return False
        while pos < len(toks) and toks[pos] in "+-":
            pos += 1
            if not prod():
                return False
        return True

    # "1 2" would read as two numbers; "12" stays one; greedy findall already splits at spaces.
    return sum_() and pos == len(toks)


def test_engine_is_chosen_from_the_ir():
    assert Grammar(arithmetic()).engine == "cfg"
    assert Grammar(balanced()).engine == "cfg"
    assert Grammar(regular()).engine == "dfa"


def test_regular_grammar_keeps_its_language_with_ignore_between_terminals():
    g = Grammar(regular())
    members = ["[]", "[1]", "[ 1 , -2 ]", " [1,2,3] ", "[  ]", "[1 ,2]"]
    non = ["[", "[1,]", "[,1]", "[1 2]", "1", "[- 1]", "[1,,2]"]
    assert all(g.matches(s) for s in members)
    assert not any(g.matches(s) for s in non)


@pytest.mark.parametrize("text", ["1", "1+2", " 1 + 2 * 3 ", "(1)", "((1.5)*(2-3))", "1+2+3*4*5",
                                  "1+", "()", "1 2", "1..2", "(1", "1)", "", " ", "+1", "1*-2", "12 * 3"])
def test_arithmetic_language(text):
    assert Grammar(arithmetic()).matches(text) == _arith_reference(text)


def _brute_balanced(text: str) -> bool:
    """s = item*, item = WORD | [ s ] | [ s ] !?  (the BANG terminal is nullable: "!?")."""
    if re.search(r"[^a-c\[\]!]", text) or re.search(r"(?<!\])!", text):  # "!" only right after "]"
        return False
    depth = 0
    for ch in text:
        depth += (ch == "[") - (ch == "]")
        if depth < 0:
            return False
    return depth == 0


def test_bracket_language_exhaustively():
    g = Grammar(balanced())
    for n in range(6):
        for chars in itertools.product("ab[]!", repeat=n):
            text = "".join(chars)
            assert g.matches(text) == _brute_balanced(text), text


def _brute_ambiguous(text: str) -> bool:
    # e derives: nonempty concatenations of "a", "ab", and c*b (n: empty or m; m: n or c+)
    return re.fullmatch(r"(?:a|ab|(?:c+)?b)+", text) is not None


def test_ambiguous_nullable_cycle_language_exhaustively():
    g = Grammar(ambiguous())
    for n in range(7):
        for chars in itertools.product("abc", repeat=n):
            text = "".join(chars)
            assert g.matches(text) == _brute_ambiguous(text), text


@pytest.mark.parametrize("make", [arithmetic, balanced, ambiguous])
@pytest.mark.parametrize("vocab_name", ["llama-bpe", "gpt-2"])
def test_fast_masks_equal_the_reference_masks_along_random_walks(make, vocab_name):
    vocab = real_vocab(vocab_name)
    g = Grammar(make())
    c = g.compile(vocab)
    rng = random.Random(7)
    for _ in range(6):
        state, text = c.initial(), b""
        for _ in range(12):
            fast, ref = c.mask(state), c.reference_mask(state)
            diff = np.nonzero(fast != ref)[0]
            assert not len(diff), (text, [(vocab[int(i)], bool(fast[i])) for i in diff[:8]])
            assert fast[list(vocab.eos_ids)].all() == c.is_accepting(state)
            allowed = [int(i) for i in np.nonzero(fast)[0] if int(i) not in vocab.eos_ids]
            if not allowed:
                assert c.is_accepting(state)
                break
            for t in rng.sample(allowed, min(20, len(allowed))):  # allows agrees with the mask
                assert c.allows(state, t)
            token = rng.choice(allowed)
            state = c.advance(state, token)
            text += vocab[token]
            # no dead ends: some continuation of the text is in the language
            assert c.is_accepting(state) or c.mask(state).any()
        assert g.matches(text) == c.is_accepting(state)


def test_rejected_tokens_are_rejected():
    vocab = real_vocab("llama-bpe")
    c = Grammar(arithmetic()).compile(vocab)
    s = c.initial()
    mask = c.mask(s)
    for t in np.nonzero(~mask)[0][:300].tolist():
        if vocab[t]:
            assert not c.allows(s, t)
            with pytest.raises(tether.TokenRejected):
                c.advance(s, t)


def test_states_are_ints_and_forks_share_nothing_mutable():
    vocab = real_vocab("llama-bpe")
    c = Grammar(arithmetic()).compile(vocab)
    s = c.initial()
    one = vocab.encode_greedy("(1+")  # noqa: F841  (the vocabulary spells it)
    a = c.advance_many(s, vocab.encode_greedy("(1+"))
    b = c.advance_many(s, vocab.encode_greedy("(1+"))
    assert isinstance(a, int) and a == b and hash(a) == hash(b)
    closed = c.advance_many(a, vocab.encode_greedy("2)"))
    assert c.is_accepting(closed) and not c.is_accepting(a)
    with pytest.raises(tether.InvalidState):
        c.allows(12345, 0)


# ---------------------------------------------------------------- hostile grammars and limits


def test_huge_alternation_compiles_and_masks_within_budget():
    words = [f"w{i}x" for i in range(5000)]
    g = tether.gbnf('root ::= "(" root ")" | item\nitem ::= ' + " | ".join(f'"{w}"' for w in words))
    assert g.engine == "cfg"
    c = g.compile(real_vocab("gpt-2"))
    s = c.advance_many(c.initial(), real_vocab("gpt-2").encode_greedy("((w4321"))
    assert c.mask(s).any() and not c.is_accepting(s)
    assert c.is_accepting(c.advance_many(s, real_vocab("gpt-2").encode_greedy("x))")))
    assert g.matches("w17x") and not g.matches("w5000x")


def test_exponential_ambiguity_is_polynomial_and_bounded_by_the_deadline():
    ir = GrammarIR({"e": Rule("e", alt(seq(R("e"), R("e")), seq(R("e"), R("e"), R("e")), K("A")))},
                   {"A": T("A", "a+")}, "e")
    g = Grammar(ir)
    assert g.matches("a" * 60)  # Catalan-many parses, merged into shared parser nodes
    slow = Grammar(ir, limits=tether.Limits(compile_seconds=0.05))
    with pytest.raises(tether.ConstraintTooLarge) as info:
        slow.matches("a" * 3000)
    assert info.value.limit_name == "compile_seconds" and "parser" in info.value.stage


def test_parser_memory_is_bounded_by_automaton_bytes():
    g = Grammar(arithmetic(), limits=tether.Limits(automaton_bytes=200_000))
    with pytest.raises(tether.ConstraintTooLarge) as info:
        g.matches("(" * 5000 + "1" + ")" * 5000)
    assert info.value.limit_name == "automaton_bytes"


def test_deep_nesting_in_the_input_needs_no_recursion():
    g = Grammar(arithmetic())
    assert g.matches("(" * 20000 + "1" + ")" * 20000)
    assert not g.matches("(" * 20000 + "1" + ")" * 19999)


def test_text_may_end_where_nothing_can_follow():
    # After the last ")" the parser expects no terminal at all: its lexer state is empty.
    g = Grammar(GrammarIR({"s": Rule("s", alt(seq(K("LP"), R("s"), K("RP")), K("X")))},
                          {"LP": T("LP", r"\("), "RP": T("RP", r"\)"), "X": T("X", "x")}, "s"))
    for n in range(8):
        for chars in itertools.product("()x", repeat=n):
            text = "".join(chars)
            k = len(text) // 2
            assert g.matches(text) == (text == "(" * k + "x" + ")" * k), text
    c = g.compile(real_vocab("gpt-2"))
    s = c.advance_many(c.initial(), real_vocab("gpt-2").encode_greedy("((x))"))
    assert c.is_accepting(s) and c.is_finished(s) and not c.mask(s)[:-1].any()


from test_strategies import JSON_LARK as LAZY_JSON  # ESCAPED_STRING: a lazy terminal


@pytest.mark.parametrize("vocab_name", ["gpt-2", "llama-bpe"])
def test_fast_masks_equal_the_reference_masks_after_a_lazy_terminal_ends(vocab_name):
    """ESCAPED_STRING ends at its first closing quote (a lazy regex): after `{"a"` the string cannot
    go on, though its regex alone would read on (a regression: the vocabulary-slice shortcut let
    49,715 GPT-2 tokens through there)."""
    vocab = real_vocab(vocab_name)
    c = tether.lark(LAZY_JSON).compile(vocab)
    doc = '{"a": "x\\"y", "bc": [1, "", {"d": null}]}'
    state = c.initial()
    for t in vocab.encode_greedy(doc):
        fast, ref = c.mask(state), c.reference_mask(state)
        diff = np.nonzero(fast != ref)[0]
        assert not len(diff), [(vocab[int(i)], bool(fast[i])) for i in diff[:8]]
        state = c.advance(state, t)
    assert c.is_accepting(state)
