"""Vocabulary (token id -> bytes, EOS, padding) and TokenTrie, on the real vocabularies."""

from __future__ import annotations

import errno
import gzip
import json
import os

import numpy as np
import pytest
from conftest import data_path, real_vocab
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.errors import VocabularyError
from tether.vocab import TokenTrie, Vocabulary

# name -> (size, EOS ids): sizes from shared/data/README.md, EOS from each model's configs.
REAL = {
    "gpt-2": (50_257, (50256,)),
    "llama-bpe": (128_256, (128001, 128009)),  # <|end_of_text|>, <|eot_id|>
    "qwen2": (151_936, (151643, 151645)),  # <|endoftext|>, <|im_end|>
    "llama-spm": (32_000, (2,)),
    "phi-3": (32_064, (2, 32000, 32007)),  # </s>, <|endoftext|>, <|end|>
    "cl100k": (100_261, (100256,)),
    "mistral-sp32k": (32_000, (2,)),
    "tekken": (131_072, (2,)),
}
WITH_VECTORS = ["gpt-2", "llama-bpe", "qwen2", "llama-spm", "phi-3"]
SENTENCEPIECE = {"llama-spm", "phi-3"}


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path_factory, monkeypatch):
    """Tries cache under a per-run directory, never the user's home."""
    monkeypatch.setenv("TETHER_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "tether-cache"))


def _spec(name: str) -> dict:
    return json.loads(gzip.decompress(data_path("tokenizers", name, "tokenizer.json.gz").read_bytes()))


def _vectors(name: str) -> list[tuple[str, list[int]]]:
    """llama.cpp's vectors: inputs split by the separator line, one line of ids per input."""
    inp = data_path("tokenizers", name, "test-vectors.inp").read_text(encoding="utf-8")
    out = data_path("tokenizers", name, "test-vectors.out").read_text(encoding="utf-8")
    texts = inp.split("\n__ggml_vocab_test__\n")
    assert texts[-1] == ""  # the file ends with a separator
    lines = out.split("\n")
    assert lines[-1] == ""
    pairs = list(zip(texts[:-1], lines[:-1], strict=True))
    return [(text, [int(x) for x in line.split()]) for text, line in pairs]


# ----------------------------------------------------------------------------------------------
# Real vocabularies
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_vocabulary_loads(name):
    size, eos = REAL[name]
    vocab = real_vocab(name)
    assert vocab.size == len(vocab) == size
    assert vocab.eos_ids == eos
    assert set(eos) <= vocab.special_ids
    assert all(vocab[i] is None for i in vocab.special_ids)
    assert len(vocab.fingerprint) == 32


@pytest.mark.parametrize("name", WITH_VECTORS)
def test_test_vectors_spell_their_input(name):
    vocab = real_vocab(name)
    vectors = _vectors(name)
    assert len(vectors) == 46
    for text, ids in vectors:
        expected = text.encode("utf-8")
        if name in SENTENCEPIECE and text:  # the dummy prefix: one space before non-empty text
            expected = b" " + expected
        assert all(vocab[i] is not None for i in ids), (text, ids)
        assert vocab.decode(ids) == expected, (text, ids)


def test_decoding_rules_on_known_tokens():
    gpt2 = real_vocab("gpt-2")
    assert gpt2[262] == b" the"  # Ġthe
    assert gpt2[198] == b"\n"  # Ċ
    spm = real_vocab("llama-spm")
    assert spm[3 + 0x41] == b"A"  # <0x41>: byte fallback
    assert spm[3 + 0xE2] == b"\xe2"  # a lone UTF-8 lead byte
    assert spm[0] is None and spm[1] is None and spm[2] is None  # <unk> <s> </s>
    assert spm[259] == b"  "  # ▁▁


def test_control_and_placeholder_tokens_have_no_bytes():
    phi3 = real_vocab("phi-3")
    assert phi3[2] is None  # </s>: flagged non-special in tokenizer.json, a SentencePiece control
    assert phi3[32011] is None and phi3[32063] is None  # [PAD32011]...: llama.cpp filler rows
    assert phi3[32007] is None  # <|end|>
    qwen = real_vocab("qwen2")
    assert all(qwen[i] is None for i in range(151646, 151936))  # [PAD151646]...
    mistral = real_vocab("mistral-sp32k")  # no added_tokens at all: specials found by name
    assert {0, 1, 2} <= mistral.special_ids
    tekken = real_vocab("tekken")
    assert all(tekken[i] is None for i in range(1000)) and tekken[1000] is not None


def test_added_non_special_tokens_spell_their_content(tmp_path):
    spec = _spec("gpt-2")
    spec["added_tokens"].append({"id": 50257, "content": "<tool é>", "special": False,
                                 "single_word": False, "lstrip": False, "rstrip": False,
                                 "normalized": False})
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(spec))
    vocab = Vocabulary.from_file(path)
    assert vocab.size == 50258
    assert vocab[50257] == "<tool é>".encode()


# ----------------------------------------------------------------------------------------------
# Sizes, EOS, errors
# ----------------------------------------------------------------------------------------------


def test_size_larger_than_tokenizer_pads_with_none():
    path = data_path("tokenizers", "llama-spm", "tokenizer.json.gz")
    vocab = Vocabulary.from_file(path, size=32_064)
    assert len(vocab) == 32_064
    assert all(vocab[i] is None for i in range(32_000, 32_064))
    assert not vocab.special_ids & set(range(32_000, 32_064))
    assert len(vocab.trie.tok_ids) == len(real_vocab("llama-spm").trie.tok_ids)
    assert vocab.fingerprint != real_vocab("llama-spm").fingerprint
    with pytest.raises(IndexError):
        vocab[32_064]


def test_size_smaller_than_tokenizer_is_an_error():
    path = data_path("tokenizers", "llama-spm", "tokenizer.json.gz")
    with pytest.raises(VocabularyError, match=r"31,999.*32,000"):
        Vocabulary.from_file(path, size=31_999)


def test_eos_override_is_validated():
    path = data_path("tokenizers", "llama-spm", "tokenizer.json.gz")
    assert Vocabulary.from_file(path, eos_ids=[13]).eos_ids == (13,)
    assert Vocabulary.from_file(path, eos_ids=[13])[13] is None  # EOS never spells text
    with pytest.raises(VocabularyError, match="32,000"):
        Vocabulary.from_file(path, eos_ids=[32_000])
    assert Vocabulary.from_file(path, eos_ids=[32_000], size=32_001).eos_ids == (32_000,)
    with pytest.raises(VocabularyError, match="EOS"):
        Vocabulary.from_tokens([b"a"], eos_ids=[])


def test_missing_eos_asks_for_eos_ids(tmp_path):
    spec = _spec("gpt-2")
    spec["added_tokens"][0]["content"] = "<|something|>"
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(VocabularyError, match="eos_ids="):
        Vocabulary.from_file(path)
    assert Vocabulary.from_file(path, eos_ids=50256).eos_ids == (50256,)


def test_unreadable_file_is_a_vocabulary_error(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text("{not json")
    with pytest.raises(VocabularyError, match="cannot read"):
        Vocabulary.from_file(path)
    with pytest.raises(VocabularyError):
        Vocabulary.from_file(tmp_path / "missing.json")


def test_fingerprint_is_stable_and_sensitive():
    a = Vocabulary.from_tokens([b"a", b"b", None], eos_ids=[2])
    assert a.fingerprint == Vocabulary.from_tokens([b"a", b"b", None], eos_ids=[2]).fingerprint
    assert a.fingerprint != Vocabulary.from_tokens([b"a", b"c", None], eos_ids=[2]).fingerprint
    assert a.fingerprint != Vocabulary.from_tokens([b"a", b"b", None], eos_ids=[2], size=4).fingerprint
    assert a.fingerprint != Vocabulary.from_tokens([b"ab", b"", None], eos_ids=[2]).fingerprint


def test_decode_skips_specials_and_padding():
    vocab = Vocabulary.from_tokens([b"a", b"bc", None, b""], eos_ids=[2], size=6)
    assert vocab[3] is None  # empty bytes are no bytes
    assert vocab.decode([0, 2, 1, 3, 5, 0]) == b"abca"
    assert vocab.special_ids == {2}
    assert list(vocab) == [b"a", b"bc", None, None, None, None]


# ----------------------------------------------------------------------------------------------
# Other tokenizer objects
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gpt-2", "phi-3"])
def test_from_tokenizers_tokenizer_matches_from_file(name):
    from tokenizers import Tokenizer

    raw = gzip.decompress(data_path("tokenizers", name, "tokenizer.json.gz").read_bytes())
    vocab = Vocabulary.from_tokenizer(Tokenizer.from_str(raw.decode("utf-8")))
    ref = real_vocab(name)
    assert list(vocab) == list(ref)
    assert (vocab.eos_ids, vocab.special_ids, vocab.fingerprint) == (
        ref.eos_ids, ref.special_ids, ref.fingerprint)


def test_from_transformers_fast_tokenizer():
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    raw = gzip.decompress(data_path("tokenizers", "llama-spm", "tokenizer.json.gz").read_bytes())
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(raw.decode("utf-8")),
                                  eos_token="</s>", bos_token="<s>", unk_token="<unk>")
    vocab = Vocabulary.from_tokenizer(tok, size=32_016)
    ref = real_vocab("llama-spm")
    assert vocab.eos_ids == (2,)
    assert vocab.size == 32_016 and list(vocab)[:32_000] == list(ref)


def test_from_transformers_slow_gpt2_tokenizer(tmp_path):
    from transformers import GPT2Tokenizer

    model = _spec("gpt-2")["model"]
    (tmp_path / "vocab.json").write_text(json.dumps(model["vocab"]), encoding="utf-8")
    merges = "\n".join(" ".join(m) if isinstance(m, list) else m for m in model["merges"])
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + merges + "\n", encoding="utf-8")
    tok = GPT2Tokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
    vocab = Vocabulary.from_tokenizer(tok)
    assert vocab.eos_ids == (50256,)
    assert list(vocab) == list(real_vocab("gpt-2"))


def test_unknown_tokenizer_object_is_a_vocabulary_error():
    with pytest.raises(VocabularyError, match="from_tokens"):
        Vocabulary.from_tokenizer(object())


# ----------------------------------------------------------------------------------------------
# Trie
# ----------------------------------------------------------------------------------------------


def _node_strings(trie: TokenTrie) -> list[bytes]:
    """Every node's string, from depths and bytes alone (the parent is the last shallower node)."""
    path: list[bytes] = [b""]
    out = [b""]
    for i in range(1, trie.n_nodes):
        d = int(trie.depth[i])
        assert 1 <= d <= len(path), "depth jumps by more than one"
        del path[d:]
        path.append(path[-1] + bytes([trie.byte[i]]))
        out.append(path[-1])
    return out


def _naive_skip(depth: np.ndarray) -> list[int]:
    """skip[i] = first j > i with depth[j] <= depth[i], else n (the oracle)."""
    n = len(depth)
    skip, stack = [n] * n, []
    for j in range(n):
        while stack and depth[stack[-1]] >= depth[j]:
            skip[stack.pop()] = j
        stack.append(j)
    return skip


def _check_trie(vocab: Vocabulary) -> None:
    trie = vocab.trie
    n = trie.n_nodes
    assert (trie.byte.dtype, trie.depth.dtype, trie.skip.dtype) == (np.uint8, np.int32, np.int32)
    assert (trie.tok_start.dtype, trie.tok_ids.dtype) == (np.int32, np.int32)
    assert len(trie.depth) == len(trie.skip) == n and len(trie.tok_start) == n + 1
    assert trie.byte[0] == 0 and trie.depth[0] == 0 and trie.skip[0] == n
    strings = _node_strings(trie)
    assert all(a < b for a, b in zip(strings, strings[1:])), "not DFS preorder by byte"
    assert trie.skip.tolist() == _naive_skip(trie.depth)
    # every token with bytes sits exactly once at the node spelling it; nothing else is there
    spelled = [i for i in range(len(vocab)) if vocab[i] is not None]
    assert sorted(trie.tok_ids.tolist()) == spelled
    counts = np.diff(trie.tok_start)
    assert counts.min() >= 0
    node_of = np.repeat(np.arange(n), counts)
    assert all(strings[node] == vocab[tid] for node, tid in zip(node_of.tolist(), trie.tok_ids.tolist()))
    # no dead leaves: every leaf ends a token
    leaves = np.flatnonzero(trie.skip[1:] == np.arange(2, n + 1)) + 1
    assert (counts[leaves] > 0).all()


@pytest.mark.parametrize("name", ["gpt-2", "llama-spm", "phi-3"])
def test_trie_invariants_on_real_vocabulary(name):
    _check_trie(real_vocab(name))


def test_trie_keeps_duplicates():
    tokens = [b"ab", b"a", b"b", b"a", None, b"ab", b"", b"\x00", b"a\x00"]
    vocab = Vocabulary.from_tokens(tokens, eos_ids=[4])
    _check_trie(vocab)
    trie = vocab.trie
    assert trie.tokens_at(trie.find(b"a")).tolist() == [1, 3]
    assert trie.tokens_at(trie.find(b"ab")).tolist() == [0, 5]
    assert trie.find(b"c") == -1
    assert trie.n_nodes == 1 + len({b"a", b"ab", b"b", b"\x00", b"a\x00"})


@given(st.lists(st.binary(max_size=5), max_size=30))
@settings(max_examples=150, deadline=None)
def test_trie_invariants_on_random_vocabularies(tokens):
    _check_trie(Vocabulary.from_tokens([*tokens, None], eos_ids=[len(tokens)]))


def test_empty_trie():
    trie = Vocabulary.from_tokens([None], eos_ids=[0]).trie
    assert trie.n_nodes == 1 and trie.skip.tolist() == [1] and trie.tok_start.tolist() == [0, 0]


# ----------------------------------------------------------------------------------------------
# Trie disk cache
# ----------------------------------------------------------------------------------------------


def _tiny() -> Vocabulary:
    return Vocabulary.from_tokens([b"x", b"xy", b"y", None], eos_ids=[3])


def _arrays(trie: TokenTrie) -> list[list[int]]:
    return [getattr(trie, f).tolist() for f in TokenTrie.FIELDS]


def test_trie_is_cached_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("TETHER_CACHE_DIR", str(tmp_path))
    first = _tiny().trie
    path = tmp_path / f"trie-{_tiny().fingerprint}.npz"
    assert path.is_file()

    def no_build(tokens):
        raise AssertionError("should have loaded from disk")

    monkeypatch.setattr(TokenTrie, "build", staticmethod(no_build))
    assert _arrays(_tiny().trie) == _arrays(first)


def test_corrupt_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("TETHER_CACHE_DIR", str(tmp_path))
    good = _arrays(_tiny().trie)
    path = tmp_path / f"trie-{_tiny().fingerprint}.npz"
    path.write_bytes(b"PK\x03\x04 garbage")
    assert _arrays(_tiny().trie) == good
    np.savez(path, byte=np.zeros(2, np.uint8))  # readable but incomplete
    assert _arrays(_tiny().trie) == good
    assert _arrays(TokenTrie(*np.load(path).values())) == good  # rewritten


def test_read_only_cache_is_tolerated_silently(tmp_path, monkeypatch, recwarn):
    monkeypatch.setenv("TETHER_CACHE_DIR", str(tmp_path))

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(os, "replace", read_only)
    assert _tiny().trie.n_nodes == 4
    assert not recwarn.list
    assert not list(tmp_path.iterdir())  # no temporary left behind


def test_other_cache_write_failures_warn(tmp_path, monkeypatch):
    monkeypatch.setenv("TETHER_CACHE_DIR", str(tmp_path))

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.warns(UserWarning, match="could not cache"):
        assert _tiny().trie.n_nodes == 4


# ----------------------------------------------------------------------------------------------
# encode_greedy
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gpt-2", "llama-spm"])
@given(text=st.text(max_size=40))
@settings(max_examples=60, deadline=None)
def test_encode_greedy_round_trips(name, text):
    vocab = real_vocab(name)
    ids = vocab.encode_greedy(text)
    assert vocab.decode(ids) == text.encode("utf-8")
    assert all(vocab[i] is not None for i in ids)


def test_encode_greedy_takes_longest_match_and_reports_gaps():
    vocab = Vocabulary.from_tokens([b"a", b"ab", b"abc", b"b", b"a", None], eos_ids=[5])
    assert vocab.encode_greedy("abcab") == [2, 1]
    assert vocab.encode_greedy(b"aab") == [0, 1]
    assert vocab.encode_greedy("") == []
    with pytest.raises(VocabularyError, match="0x64"):
        vocab.encode_greedy("abd")
    assert real_vocab("gpt-2").encode_greedy(" the") == [262]
