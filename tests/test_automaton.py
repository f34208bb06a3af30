"""The lazy automaton on hostile input: every pattern ends in a correct constraint or a
`ConstraintTooLarge` that names its stage, within its budget; masks shared across states are exact."""

from __future__ import annotations

import pickle
import random
import re

import numpy as np
import pytest

import tether
from tether.automata.bitmask import bitmask_words, unpack_bitmask
from tether.automata.dfa import LazyDFA
from tether.automata.index import fill_trie_mask
from tether.automata.slices import slices
from tether.errors import ConstraintTooLarge, EmptyLanguage, InvalidState

from conftest import real_vocab

_rng = random.Random(0)
_CJK = "|".join("".join(chr(_rng.randint(0x4E00, 0x9FFF)) for _ in range(_rng.randint(2, 4))) for _ in range(3000))

# name -> (pattern, a member, a non-member). Each was a blow-up, a hang or a crash on the
# eager NFA -> DFA pipeline (seconds to minutes, gigabytes, or ConstraintTooLarge).
HOSTILE = {
    "exponential DFA": (r"(a|b)*a(a|b){30}", "b" + "a" * 31, "a" + "b" * 31),
    "nested counts": (r"(a{0,100}){0,100}", "a" * 9_999, "ab"),  # a longer non-member makes re backtrack for ever
    "nested counts, any char": (r"(.{0,100}){0,100}", "é" * 5_000, "x\n"),
    "nested bounded strings": (r"(?:[a-z]{1,300}){1,300}x", "ab" * 400 + "x", "x"),
    "Unicode class, big count": (r"\w{1,5000}", "日本" * 10 + "a_1", "a b"),
    "JSON string, minLength 10000": (r'"([^"\\\x00-\x1F\x7F-\x9F]|\\["\\/bfnrt]){10000,}"',
                                     '"' + "a" * 10_000 + '"', '"' + "a" * 9_999 + '"'),
    "huge literal": ("a" * 100_000, "a" * 100_000, "a" * 99_999),
    "huge count": (r"a{200000}", "a" * 200_000, "a" * 200_001),
    "3,000 case-insensitive CJK literals": ("(?i)(" + _CJK + ")", _CJK.split("|")[1234], "字"),
    "case-insensitive Unicode class": (r"(?i)[\w\u0400-\u04ff]{3,40}", "ЖжЯя", "Ж"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_patterns_compile_to_correct_constraints(name):
    pattern, member, non_member = HOSTILE[name]
    limits = tether.Limits(compile_seconds=20, automaton_bytes=256 * 1024 * 1024)
    spec = tether.regex(pattern, limits=limits)
    assert spec.matches(member) and re.fullmatch(pattern, member)
    assert not spec.matches(non_member) and not re.fullmatch(pattern, non_member)
    # The automaton holds only what was visited, well inside its memory budget.
    assert spec.dfa.nbytes() < limits.automaton_bytes
    vocab = real_vocab("llama-bpe")
    c = spec.compile(vocab)
    state = c.initial()
    for t in vocab.encode_greedy(member[:300]):
        assert c.allows(state, t)
        state = c.advance(state, t)
    assert c.mask(state).any()


def test_time_budget_stops_a_step_with_its_stage():
    # A budget no step can meet: the first mask must build states, and says so.
    spec = tether.regex(r"(a|b)*a(a|b){40}", limits=tether.Limits(compile_seconds=1e-7))
    c = spec.compile(real_vocab("llama-bpe"))
    with pytest.raises(ConstraintTooLarge) as info:
        c.mask(c.initial())
    assert info.value.unit == "s" and info.value.limit == 1e-7 and info.value.stage == "building automaton states for a mask"
    assert "compile_seconds" in str(info.value)


def test_memory_budget_stops_the_automaton_with_its_figure():
    limits = tether.Limits(automaton_bytes=2 * 1024 * 1024)
    spec = tether.regex(r"(a|b)*a(a|b){40}", limits=limits)
    with pytest.raises(ConstraintTooLarge) as info:
        for n in range(1, 5000):  # distinct strings reach distinct states of the exponential DFA
            spec.matches(format(n, "b").replace("0", "a").replace("1", "b") * 3)
    assert info.value.unit == "bytes" and info.value.limit == limits.automaton_bytes
    assert info.value.size > limits.automaton_bytes


def test_parse_time_budget_is_enforced():
    with pytest.raises(ConstraintTooLarge) as info:
        tether.regex("(?i)(" + _CJK * 20 + ")", limits=tether.Limits(compile_seconds=0.01))
    assert info.value.unit == "s"


def test_empty_language_is_a_typed_error():
    for pattern in [r"[^\x00-\U0010FFFF]", r"a\Zb", r"x^y", r"(a$b|c\Ad)"]:
        with pytest.raises(EmptyLanguage, match="matches no string"):
            tether.regex(pattern)


def test_states_sharing_a_mask_have_equal_masks():
    """Positions deep inside a long bounded repetition share one mask; near its end they do not.

    The reference is each state's own walk of the trie (no sharing), and one-token checks."""
    vocab = real_vocab("llama-bpe")
    c = tether.regex(r'"[^"]{0,300}"').compile(vocab)
    rng = np.random.default_rng(0)
    a = vocab.encode_greedy("a")[0]
    state = c.advance(c.initial(), vocab.encode_greedy('"')[0])
    for position in range(300):
        if position % 23 == 0 or position > 160:
            own = np.zeros(bitmask_words(vocab.size), np.uint32)
            fill_trie_mask(c.dfa, vocab, c._id(state), own)
            mask = c.mask(state)
            assert (mask[: vocab.size] == unpack_bitmask(own.view(np.int32), vocab.size)).all(), position
            for t in rng.choice(vocab.size, 300, replace=False).tolist():
                assert c.allows(state, t) == mask[t]
        state = c.advance(state, a)
    assert c.mask_computations < 160


def test_states_and_tokens_are_checked():
    vocab = real_vocab("gpt-2")
    spec = tether.regex(r"[0-9]+")
    c = spec.compile(vocab)
    assert spec.compile(vocab) is c  # compiled once per vocabulary, caches and all
    stranger = tether.regex(r"[0-9]+").compile(vocab)  # the same language, another automaton
    for bad in (-1, 2**40, "0", 0.0, None, stranger.initial()):
        with pytest.raises(InvalidState):
            c.is_accepting(bad)
    one = vocab.encode_greedy("1")[0]
    assert c.allows(c.initial(), np.int64(one)) and c.advance(c.initial(), np.int32(one)) == c.advance(c.initial(), one)
    import torch

    assert c.allows(c.initial(), torch.tensor(one))
    for bad in (float(one), one + 0.5, True, "1"):
        with pytest.raises(TypeError):
            c.allows(c.initial(), bad)
    with pytest.raises(tether.VocabularyError):
        c.allows(c.initial(), vocab.size + 5)


def test_eos_as_a_tensor_is_accepted_where_the_constraint_accepts():
    import torch

    vocab = real_vocab("gpt-2")
    c = tether.regex(r"1").compile(vocab)
    s = c.advance(c.initial(), vocab.encode_greedy("1")[0])
    assert c.advance(s, torch.tensor(vocab.eos_ids[0])) == s


def test_fill_bitmask_accepts_int32_rows_of_any_origin():
    import torch

    vocab = real_vocab("gpt-2")
    c = tether.regex(r"[0-9]+").compile(vocab)
    expected = tether.allocate_bitmask(1, vocab.size)[0]
    c.fill_bitmask(c.initial(), expected)
    view = np.zeros((2, expected.shape[0]), dtype=np.dtype("int32").newbyteorder("="))[1]
    c.fill_bitmask(c.initial(), view)
    tensor = torch.zeros(expected.shape[0], dtype=torch.int32)
    c.fill_bitmask(c.initial(), tensor)
    assert (view == expected).all() and (tensor.numpy() == expected).all()
    for wrong in (np.zeros(expected.shape[0], np.int64), torch.zeros(expected.shape[0], dtype=torch.int64),
                  np.zeros(3, np.int32)):
        with pytest.raises(ValueError):
            c.fill_bitmask(c.initial(), wrong)


def test_compiled_constraints_pickle_with_their_automaton():
    vocab = real_vocab("gpt-2")
    c = tether.regex(r'\{"a": [0-9]{1,3}\}').compile(vocab)
    path = vocab.encode_greedy('{"a": 12}')
    state = c.initial()
    for t in path[:-1]:
        state = c.advance(state, t)
    copy = pickle.loads(pickle.dumps(c))
    assert (copy.mask(state) == c.mask(state)).all()
    assert copy.is_accepting(copy.advance(state, path[-1]))
    spec = pickle.loads(pickle.dumps(tether.regex(r"ab+")))
    assert spec.matches("abbb") and not spec.matches("a")


def test_step_memo_is_bounded_by_the_cache_budget():
    vocab = real_vocab("gpt-2")
    c = tether.regex(r".*", limits=tether.Limits(mask_cache_bytes=256 * 1024)).compile(vocab)
    s = c.initial()
    for t in range(0, vocab.size):
        c.allows(s, t)
    assert len(c._steps) <= c._steps_limit < vocab.size


def test_lazy_dfa_agrees_with_re_on_assertions():
    patterns = [r"a$\n", r"(a|^b)c", r"(^|a)b", r"a\Z\n?", r"(a$|b)*", r"(\n^a)*", r"a$\n^b", r"($\n)*a",
                r"(a|b$)\n?", r"^(a|\n)*$", r"\A\n*\Z", r"(^a|b^)*c", r"(?m)a$\n^b", r"(?m)(^a\n)*$", r"(?m)(a$|\n)+"]
    texts = ["".join(p) for n in range(6) for p in __import__("itertools").product("ab\n", repeat=n)]
    for pattern in patterns:
        flags = re.M if pattern.startswith("(?m)") else 0
        dfa = LazyDFA.from_regex(pattern)
        for text in texts:
            assert dfa.matches(text.encode()) == (re.fullmatch(pattern, text, flags) is not None), (pattern, text)


def test_compile_is_lazy_for_big_patterns():
    spec = tether.regex(r'"([^"\\\x00-\x1F\x7F-\x9F]|\\["\\/bfnrt]){10000,}"')
    assert spec.dfa.n_states == 1  # nothing is built before it is needed
    assert spec.matches('"' + "ab" * 5_000 + '"') and spec.dfa.n_states > 10_000


def test_slice_masks_equal_a_walk_of_every_token():
    """A state inside a JSON string takes the whole slice at once; the result is the exact mask."""
    vocab = real_vocab("llama-bpe")
    c = tether.regex(r'"([^"\\]|\\.)*"').compile(vocab)
    state = c.advance(c.initial(), vocab.encode_greedy('"')[0])
    s = c._id(state)
    piece = slices(vocab)[0]
    assert c.dfa.covers(s, piece.intervals, piece.max_chars) and piece.words.any()
    naive = np.array([bool(data) and c.dfa.step(s, data) >= 0 for data in vocab], dtype=bool)
    assert (c.mask(state) == naive).all()


@pytest.mark.parametrize("name", ["llama-bpe", "gpt-2", "llama-spm", "qwen2"])
def test_slice_membership_is_pythons_strict_utf8_and_the_class(name):
    """The numba kernel that picks a slice's tokens agrees with `bytes.decode` + `re` on every token."""
    import re

    from tether.automata.bitmask import pack_mask
    from tether.automata.slices import SLICE_CLASSES

    vocab = real_vocab(name)
    piece = slices(vocab)[0]
    whole = re.compile(f"(?:{SLICE_CLASSES[0]})+").fullmatch
    member, longest = [], 0
    for data in vocab:
        try:
            text = data.decode("utf-8") if data else None
        except UnicodeDecodeError:
            text = None
        ok = text is not None and whole(text) is not None
        member.append(ok)
        longest = max(longest, len(text)) if ok else longest
    assert (pack_mask(np.array(member)).view(np.uint32) == piece.words).all()
    assert piece.max_chars == longest
