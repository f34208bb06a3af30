"""The Constraint contract on real vocabularies: sound, complete, no dead ends, mask == allows."""

from __future__ import annotations

import re
import warnings
from collections import deque

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tether
from tether.automata.bitmask import pack_mask, unpack_bitmask
from tether.automata.index import _NO_STATES, _NO_WORDS, _trie_kernel

from conftest import real_vocab

VOCABS = ["gpt-2", "llama-bpe", "llama-spm"]

# The shapes JSON fields and real tasks take, plus Unicode and awkward cases.
PATTERNS = [
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}",
    r"[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,4}",
    r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?",
    r'"([^"\\]|\\["\\/bfnrt])*"',
    r"(true|false|null)",
    r"\{\"name\": \"[A-Za-z ]{1,20}\", \"age\": [0-9]{1,3}\}",
    r"SELECT [a-z_]+(, [a-z_]+)* FROM [a-z_]+( WHERE [a-z_]+ = [0-9]+)?;",
    r"(?i)héllo wörld!?",
    r"[😀-😏]{1,3} ?\w+",
    r"\d+(\s\d+)*",
    r"(ab|a)(bc|c)*",
    r".{0,12}",
]


def _live_witness(dfa, state: int) -> bytes | None:
    """The shortest byte string leading from automaton state `state` to acceptance (BFS), or None."""
    seen = {state: b""}
    queue = deque([state])
    while queue:
        s = queue.popleft()
        if dfa.accepting(s):
            return seen[s]
        for b, t in enumerate(dfa.row(s).tolist()):
            if t >= 0 and t not in seen:
                seen[t] = seen[s] + bytes([b])
                queue.append(t)
    return None


def _all_states(dfa) -> list[int]:
    """Every state of a finite automaton, building each row."""
    seen, stack = {dfa.initial}, [dfa.initial]
    while stack:
        for t in set(dfa.row(stack.pop()).tolist()) - seen - {-1}:
            seen.add(t)
            stack.append(t)
    return sorted(seen)


def _check_state(c, vocab, state, rng, full: bool):
    mask = c.mask(state)
    assert mask.shape == (vocab.size,)
    ids = range(vocab.size) if full else rng.choice(vocab.size, 600, replace=False).tolist()
    ids = list(ids) + list(np.flatnonzero(mask)[:200]) + list(vocab.eos_ids)
    for t in ids:
        assert c.allows(state, int(t)) == bool(mask[t]), (state, t, vocab[int(t)])
    for t in vocab.special_ids - set(vocab.eos_ids):
        assert not mask[t]
    for t in vocab.eos_ids:
        assert mask[t] == c.is_accepting(state)
    return mask


@pytest.mark.parametrize("vocab_name", VOCABS)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_random_walks_are_sound_and_never_dead_end(vocab_name, data):
    vocab = real_vocab(vocab_name)
    pattern = data.draw(st.sampled_from(PATTERNS), label="pattern")
    spec = tether.regex(pattern)
    c = spec.compile(vocab)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    state, ids = c.initial(), []
    for step in range(data.draw(st.integers(1, 25), label="steps")):
        mask = _check_state(c, vocab, state, rng, full=step == 0)
        assert mask.any(), f"dead end after {vocab.decode(ids)!r}"
        witness = _live_witness(c.dfa, c._id(state))
        assert witness is not None, "a reachable state that cannot reach acceptance"
        vocab.encode_greedy(witness)  # the vocabulary can spell a way out
        allowed = np.flatnonzero(mask)
        token = int(rng.choice(allowed))
        if token in vocab.eos_ids:
            break
        state = c.advance(state, token)
        ids.append(token)
    if c.is_accepting(state):
        text = vocab.decode(ids).decode("utf-8")
        assert re.fullmatch(pattern, text), (pattern, text)
    else:
        with pytest.raises(tether.TokenRejected):
            c.advance(state, vocab.eos_ids[0])


@pytest.mark.parametrize("vocab_name", VOCABS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_greedy_tokenization_of_members_is_accepted(vocab_name, data):
    vocab = real_vocab(vocab_name)
    pattern = data.draw(st.sampled_from(PATTERNS), label="pattern")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = data.draw(st.from_regex(re.compile(pattern), fullmatch=True), label="text")
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        return
    c = tether.regex(pattern).compile(vocab)
    state = c.initial()
    for t in vocab.encode_greedy(text):
        assert c.allows(state, t), (text, vocab[t])
        state = c.advance(state, t)
    assert c.is_accepting(state) and c.allows(state, vocab.eos_ids[0])


def test_kernel_matches_its_naive_loop():
    vocab = real_vocab("llama-spm")
    dfa = tether.regex(r"[a-f0-9 ]{0,6}(xyz)?").dfa
    states = _all_states(dfa)
    assert len(states) > 5
    trie = vocab.trie
    for state in states:
        fast = np.zeros((vocab.size + 31) // 32, np.uint32)
        slow = np.zeros_like(fast)
        nxt_fast = np.full(vocab.size, -1, np.int32)
        nxt_slow = np.full(vocab.size, -1, np.int32)
        for out, nxt, kernel in ((fast, _NO_STATES, _trie_kernel), (slow, _NO_STATES, _trie_kernel.py_func),
                                 (_NO_WORDS, nxt_fast, _trie_kernel), (_NO_WORDS, nxt_slow, _trie_kernel.py_func)):
            stack = np.empty(trie.max_depth + 1, np.int32)
            stack[0] = state
            done = kernel(dfa.table, dfa.byte_class, trie.byte, trie.depth, trie.skip, trie.tok_start,
                          trie.tok_ids, stack, out, nxt, 1)
            assert done == trie.n_nodes  # every row was built, so the walk never stopped
        naive = np.array([bool(data) and dfa.step(state, data) >= 0 for data in vocab], dtype=bool)
        assert (fast == slow).all() and (nxt_fast == nxt_slow).all()
        assert ((nxt_fast >= 0) == naive).all()
        assert all(nxt_fast[t] == dfa.step(state, vocab[t]) for t in np.flatnonzero(naive)[:200])
        assert (unpack_bitmask(fast.view(np.int32), vocab.size) == naive).all()


def test_mask_walk_resumes_where_rows_are_missing():
    """A fresh automaton: the kernel stops at each unbuilt row and the wrapper resumes it."""
    vocab = real_vocab("gpt-2")
    pattern = r"[a-z]{2,9}(-[0-9]{1,3})?"
    lazy = tether.regex(pattern).dfa
    full = tether.regex(pattern).dfa
    _all_states(full)
    words_lazy = np.zeros((vocab.size + 31) // 32, np.uint32)
    words_full = np.zeros_like(words_lazy)
    tether.automata.index.fill_trie_mask(lazy, vocab, lazy.initial, words_lazy)
    tether.automata.index.fill_trie_mask(full, vocab, full.initial, words_full)
    assert (words_lazy == words_full).all() and words_lazy.any()


def test_padding_ids_are_never_allowed():
    base = real_vocab("gpt-2")
    vocab = tether.Vocabulary.from_tokens(list(base), eos_ids=base.eos_ids, size=base.size + 47)
    c = tether.regex(r".*").compile(vocab)
    mask = c.mask(c.initial())
    assert mask.shape == (base.size + 47,) and not mask[base.size:].any()
    assert not c.allows(c.initial(), base.size + 3)


def test_advance_rejects_with_typed_error_and_eos_only_when_accepting():
    vocab = real_vocab("gpt-2")
    c = tether.regex(r"ab?").compile(vocab)
    s = c.initial()
    with pytest.raises(tether.TokenRejected) as info:
        c.advance(s, vocab.encode_greedy("b")[0])
    assert "not allowed" in str(info.value)
    with pytest.raises(tether.TokenRejected):
        c.advance(s, vocab.eos_ids[0])
    s = c.advance(s, vocab.encode_greedy("a")[0])
    assert c.is_accepting(s) and c.advance(s, vocab.eos_ids[0]) == s
    s = c.advance(s, vocab.encode_greedy("b")[0])
    assert c.is_finished(s) and c.mask(s).sum() == len(vocab.eos_ids)


def test_bitmask_layout_and_batched_apply():
    vocab = real_vocab("gpt-2")
    c = tether.regex(r"[0-9]+").compile(vocab)
    bm = tether.allocate_bitmask(2, vocab.size)
    s1 = c.advance(c.initial(), vocab.encode_greedy("1")[0])
    c.fill_bitmask(c.initial(), bm[0])
    c.fill_bitmask(s1, bm[1])
    for row, s in zip(bm, [c.initial(), s1]):
        mask = c.mask(s)
        assert (row == pack_mask(mask)).all()
        ids = np.flatnonzero(mask)
        assert all((row[i // 32] >> (i % 32)) & 1 for i in ids[:100])
    logits = torch.randn(2, vocab.size + 64)
    before = logits.clone()
    tether.apply_bitmask(logits, bm)
    for r, s in enumerate([c.initial(), s1]):
        allowed = torch.from_numpy(c.mask(s))
        assert torch.isinf(logits[r, vocab.size:]).all()
        assert torch.equal(logits[r, : vocab.size][allowed], before[r, : vocab.size][allowed])
        assert torch.isneginf(logits[r, : vocab.size][~allowed]).all()
    one = torch.randn(vocab.size)
    tether.apply_bitmask(one, bm[1])
    assert torch.isfinite(one).sum() == c.mask(s1).sum()
    with pytest.raises(ValueError):
        c.fill_bitmask(c.initial(), np.zeros(3, np.int32))


def test_matcher_consumes_and_rolls_back():
    vocab = real_vocab("gpt-2")
    m = tether.regex(r"(yes|no)").compile(vocab).matcher()
    row = tether.allocate_bitmask(1, vocab.size)[0]
    tokens = vocab.encode_greedy("yes")
    for t in tokens:
        m.consume(t)
    assert m.is_accepting()
    m.rollback(len(tokens))
    assert not m.is_accepting()
    with pytest.raises(tether.TokenRejected):
        m.consume(vocab.encode_greedy("x")[0])
    m.fill_next_bitmask(row)
    assert unpack_bitmask(row, vocab.size).sum() == m.constraint.mask(m.state).sum()
    for t in tokens + [vocab.eos_ids[0]]:
        m.consume(t)
    assert m.is_finished()


def test_compiled_constraint_is_shared_across_threads():
    from concurrent.futures import ThreadPoolExecutor

    vocab = real_vocab("llama-bpe")

    def path(c):
        states = [c.initial()]
        for ch in '"abcdefgh':
            states.append(c.advance(states[-1], vocab.encode_greedy(ch)[0]))
        return states

    reference = tether.regex(r'"[^"]{0,8}"').compile(vocab)
    serial = [pack_mask(reference.mask(s)) for s in path(reference)]
    c = tether.regex(r'"[^"]{0,8}"').compile(vocab)  # fresh: the threads build its rows and masks
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda s: pack_mask(c.mask(s)), path(c) * 3))
    assert all((a == b).all() for a, b in zip(parallel, serial * 3))


# ---------------------------------------------------------------- matcher parity with the peers' matchers


@pytest.mark.parametrize("pattern, forced", [
    (r"abc(d|e)f", b"abc"),
    (r"(ab|ac)x", b"a"),
    (r"x?yz", b""),
    (r"[0-9]+", b""),
    (r"\{\"k\":(1|2)\}", b'{"k":'),
])
def test_forced_bytes_are_what_every_match_starts_with(pattern, forced):
    vocab = real_vocab("gpt-2")
    m = tether.regex(pattern).compile(vocab).matcher()
    assert m.forced_bytes() == forced
    ids = m.forced_tokens()
    assert vocab.decode(ids) == forced
    assert m.validate_tokens(ids) == len(ids)  # the run is allowed as it stands


def test_forced_bytes_walk_a_json_schema_between_choices():
    vocab = real_vocab("llama-bpe")
    spec = tether.json_schema({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                               "required": ["name", "age"]})
    m = spec.compile(vocab).matcher()
    assert m.forced_bytes() == b'{"name":"'
    assert m.accept_string('{"name":"Al"')
    assert m.forced_bytes() == b',"age":'
    assert m.forced_bytes(limit=3) == b',"a'
    assert m.accept_string(m.forced_bytes()) and m.accept_string("41}")
    assert m.is_accepting() and m.forced_bytes() == b""  # EOS or more digits: a choice


def test_accept_string_consumes_only_prefixes_of_the_language():
    vocab = real_vocab("gpt-2")
    pattern = r"(yes|no|maybe)!?"
    m = tether.regex(pattern).compile(vocab).matcher()
    for text, ok in [("ma", True), ("mx", False), ("", True), ("nope", False)]:
        m.reset()
        assert m.accept_string(text) is ok, text
        assert m.consumed == (len(vocab.encode_greedy(text)) if ok else 0)
    m.reset()
    assert m.accept_string("may") and m.accept_string("be") and m.is_accepting()
    assert not m.accept_string("!!") and m.accept_string("!") and m.is_finished()
    # agreement with Python's re on every prefix of matches and near-misses
    import re

    for word in ["yes", "no!", "maybe!", "yesno", "mayb!"]:
        for i in range(len(word) + 1):
            m.reset()
            prefix = word[:i]
            is_prefix = any(w.startswith(prefix) for w in ["yes", "no", "maybe", "yes!", "no!", "maybe!"])
            assert m.accept_string(prefix) is is_prefix, prefix
            assert m.is_accepting() is (is_prefix and re.fullmatch(pattern, prefix) is not None)


def test_validate_tokens_counts_the_accepted_run_and_consumes_nothing():
    vocab = real_vocab("gpt-2")
    c = tether.regex(r"[0-9]{2,3}").compile(vocab)
    m = c.matcher()
    digits = [vocab.encode_greedy(d)[0] for d in "1234"]
    eos = vocab.eos_ids[0]
    assert m.validate_tokens(digits) == 3
    assert m.validate_tokens(digits[:2] + [eos, digits[0]]) == 3  # nothing after EOS
    assert m.validate_tokens([eos]) == 0
    assert m.consumed == 0 and m.state == c.initial()


def test_fill_next_bitmask_writes_the_indexed_row_of_numpy_and_torch_bitmasks():
    vocab = real_vocab("gpt-2")
    c = tether.regex(r"(yes|no)").compile(vocab)
    m = c.matcher()
    m.consume(vocab.encode_greedy("y")[0])
    expected = c.mask(m.state)
    for bitmask in (tether.allocate_bitmask(3, vocab.size), torch.zeros((3, (vocab.size + 31) // 32), dtype=torch.int32)):
        m.fill_next_bitmask(bitmask, index=2)
        rows = np.asarray(bitmask)
        assert (unpack_bitmask(rows[2], vocab.size) == expected).all()
        assert not rows[:2].any()
