"""Vocabulary (token id -> bytes, EOS, padding) and TokenTrie, on the real vocabularies."""

from __future__ import annotations

import errno
import gzip
import io
import json
import os
import re
import subprocess
import sys
import textwrap
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import data_path, real_vocab
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tether.vocab as vocab_module
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


# ----------------------------------------------------------------------------------------------
# Hostile tokenizer files: bounded ids
# ----------------------------------------------------------------------------------------------

MAX_IDS = 2**22  # vocab_module.MAX_VOCAB_IDS, written down so a change to it is deliberate


def _tiny_spec() -> dict:
    """A minimal byte-level BPE tokenizer.json: 'a', 'b', 'ab' and one EOS special token."""
    return {
        "version": "1.0",
        "added_tokens": [{"id": 3, "content": "<|endoftext|>", "special": True}],
        "decoder": {"type": "ByteLevel"},
        "pre_tokenizer": {"type": "ByteLevel"},
        "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "<|endoftext|>": 3},
                  "merges": ["a b"]},
    }


def _spm_spec() -> dict:
    """A minimal SentencePiece-style tokenizer.json: Replace decoder and byte fallback."""
    return {
        "added_tokens": [{"id": 2, "content": "</s>", "special": True}],
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"}]},
        "model": {"type": "BPE", "byte_fallback": True, "merges": [],
                  "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "<0x41>": 3, "▁a": 4}},
    }


def _metaspace_spec() -> dict:
    """A minimal Unigram tokenizer.json with a Metaspace pre-tokenizer (list vocab)."""
    return {
        "added_tokens": [{"id": 1, "content": "</s>", "special": True}],
        "pre_tokenizer": {"type": "Metaspace", "replacement": "▁"},
        "decoder": {"type": "Metaspace", "replacement": "▁"},
        "model": {"type": "Unigram", "vocab": [["<unk>", 0.0], ["</s>", 0.0], ["▁x", -1.5]]},
    }


def _write(path: Path, spec: dict | bytes | str, *, compress: bool = False) -> Path:
    """A tokenizer file from a spec (dumped as JSON) or raw text, gzip-compressed on request."""
    raw = spec if isinstance(spec, bytes) else (
        spec.encode() if isinstance(spec, str) else json.dumps(spec).encode())
    if compress:
        path = path.with_name(path.name + ".gz")
        raw = gzip.compress(raw)
    path.write_bytes(raw)
    return path


def test_minimal_specs_load(tmp_path):
    vocab = Vocabulary.from_file(_write(tmp_path / "bpe.json", _tiny_spec()))
    assert list(vocab) == [b"a", b"b", b"ab", None] and vocab.eos_ids == (3,)
    vocab = Vocabulary.from_file(_write(tmp_path / "spm.json", _spm_spec(), compress=True))
    assert list(vocab) == [None, None, None, b"A", b" a"] and vocab.eos_ids == (2,)
    vocab = Vocabulary.from_file(_write(tmp_path / "uni.json", _metaspace_spec()))
    assert list(vocab) == [None, None, b" x"] and vocab.eos_ids == (1,)


def test_limits_are_documented():
    assert vocab_module.MAX_VOCAB_IDS == MAX_IDS
    assert vocab_module.MAX_TOKENIZER_BYTES == 256 * 2**20
    for doc in (vocab_module.__doc__, Vocabulary.__doc__):
        assert "MAX_VOCAB_IDS" in doc and "MAX_TOKENIZER_BYTES" in doc


@pytest.mark.parametrize("where", ["vocab", "added"])
@pytest.mark.parametrize("bad_id", [MAX_IDS, 10**8, 10**9, 10**18])
def test_huge_id_in_a_tiny_file_is_refused_at_once(tmp_path, where, bad_id):
    spec = _tiny_spec()
    if where == "vocab":
        spec["model"]["vocab"]["zz"] = bad_id
        field = r"model\.vocab\['zz'\]"
    else:
        spec["added_tokens"].append({"id": bad_id, "content": "<x>", "special": True})
        field = r"added_tokens\[1\]"
    path = _write(tmp_path / "tokenizer.json", spec)
    assert path.stat().st_size < 400  # a few hundred bytes
    start = time.perf_counter()
    with pytest.raises(VocabularyError, match=rf"{field}.*\b{bad_id}\b.*4,194,304"):
        Vocabulary.from_file(path)
    assert time.perf_counter() - start < 1.0


def test_id_far_beyond_the_entry_count_is_refused(tmp_path):
    spec = _tiny_spec()
    spec["model"]["vocab"]["far"] = 100_000  # 5 entries, 100,001 ids: not a tokenizer, a trap
    with pytest.raises(VocabularyError, match=r"model\.vocab\['far'\].*100000.*5 entries"):
        Vocabulary.from_file(_write(tmp_path / "tokenizer.json", spec))
    spec["model"]["vocab"]["far"] = 1_000  # a few unnamed ids are fine: they are padding
    vocab = Vocabulary.from_file(_write(tmp_path / "tokenizer.json", spec))
    assert vocab.size == 1_001 and vocab[1_000] == b"far" and vocab[999] is None


@pytest.mark.parametrize("where", ["vocab", "added"])
@pytest.mark.parametrize("bad", [-1, -3, -(2**40), True, False, 1.0, 2.5, "2", None, [2], {"id": 2}],
                         ids=repr)
def test_token_ids_must_be_non_negative_ints(tmp_path, where, bad):
    spec = _tiny_spec()
    if where == "vocab":
        spec["model"]["vocab"]["zz"] = bad
        field = r"model\.vocab\['zz'\]"
    else:
        spec["added_tokens"].append({"id": bad, "content": "<x>", "special": False})
        field = r"added_tokens\[1\]"
    path = _write(tmp_path / "tokenizer.json", spec)
    with pytest.raises(VocabularyError, match=rf"{field}.*{re.escape(repr(bad))}"):
        Vocabulary.from_file(path)


def test_negative_id_does_not_replace_a_real_token(tmp_path):
    spec = _tiny_spec()
    spec["model"]["vocab"]["evil"] = -2  # Python indexing would overwrite id 2 ('ab')
    with pytest.raises(VocabularyError, match=r"-2"):
        Vocabulary.from_file(_write(tmp_path / "tokenizer.json", spec))


def test_duplicate_id_in_the_model_vocab_is_refused(tmp_path):
    spec = _tiny_spec()
    spec["model"]["vocab"]["ba"] = 2  # 'ab' and 'ba' both id 2: which does the model mean?
    with pytest.raises(VocabularyError, match=r"id 2.*'ab'.*'ba'|id 2.*'ba'.*'ab'"):
        Vocabulary.from_file(_write(tmp_path / "tokenizer.json", spec))


@pytest.mark.parametrize("size", [MAX_IDS + 1, 10**12, 10**30])
def test_size_is_bounded(size):
    start = time.perf_counter()
    with pytest.raises(VocabularyError, match=r"size.*4,194,304"):
        Vocabulary.from_tokens([b"a", None], eos_ids=[1], size=size)
    with pytest.raises(VocabularyError, match=r"size.*4,194,304"):
        Vocabulary.from_file(data_path("tokenizers", "llama-spm", "tokenizer.json.gz"), size=size)
    assert time.perf_counter() - start < 5.0


def test_size_at_the_bound_is_accepted():
    vocab = Vocabulary.from_tokens([b"a", None], eos_ids=[1], size=MAX_IDS)
    assert vocab.size == MAX_IDS and vocab[MAX_IDS - 1] is None


@pytest.mark.parametrize("size", [True, 2.0, "3", b"3", [3]], ids=repr)
def test_size_must_be_an_int(size):
    with pytest.raises(VocabularyError, match=rf"size.*{re.escape(repr(size))}"):
        Vocabulary.from_tokens([b"a", None], eos_ids=[1], size=size)


def test_size_accepts_numpy_integers():
    vocab = Vocabulary.from_tokens([b"a", None], eos_ids=[1], size=np.int64(4))
    assert vocab.size == 4 and type(vocab.size) is int


def test_token_list_is_bounded():
    with pytest.raises(VocabularyError, match=r"4,194,305.*4,194,304"):
        Vocabulary.from_tokens([None] * (MAX_IDS + 1), eos_ids=[0])


@pytest.mark.parametrize("bad", [5, 10**6, "a", 1.5, [97], True, object()], ids=repr)
def test_tokens_must_be_bytes_or_none(bad):
    with pytest.raises(VocabularyError, match=r"token 1\b"):
        Vocabulary.from_tokens([b"a", bad, None], eos_ids=[2])
    with pytest.raises(VocabularyError, match=r"token 1\b"):
        Vocabulary([b"a", bad, None], eos_ids=[2])


def test_bytes_like_tokens_are_accepted():
    vocab = Vocabulary.from_tokens([bytearray(b"a"), memoryview(b"bc"), None], eos_ids=[2])
    assert list(vocab) == [b"a", b"bc", None] and all(type(t) is bytes for t in list(vocab)[:2])


class _SlowTokenizer:
    """A stand-in for a slow GPT-2 transformers tokenizer: `byte_decoder` plus `get_vocab`."""

    byte_decoder: dict = {}
    eos_token_id = 0

    def __init__(self, vocab: dict, length: int | None = None):
        self._vocab = vocab
        self._length = len(vocab) if length is None else length

    def get_vocab(self) -> dict:
        return dict(self._vocab)

    def __len__(self) -> int:
        return self._length


@pytest.mark.parametrize("vocab, match", [
    ({"!": 0, "a": -1}, r"'a'.*-1"),
    ({"!": 0, "a": 10**13}, r"'a'.*10000000000000.*4,194,304"),
    ({"!": 0, "a": "1"}, r"'a'.*'1'"),
    ({"!": 0, "a": 1.0}, r"'a'.*1\.0"),
    ({"!": 0, "a": 100_000}, r"'a'.*100000.*2 entries"),
    ({"!": 0, 7: 1}, r"7.*not a string"),
])
def test_slow_tokenizer_ids_are_checked(vocab, match):
    with pytest.raises(VocabularyError, match=match):
        Vocabulary.from_tokenizer(_SlowTokenizer(vocab))


def test_slow_tokenizer_length_is_bounded():
    with pytest.raises(VocabularyError, match=r"10,000,000,000,000.*4,194,304"):
        Vocabulary.from_tokenizer(_SlowTokenizer({"!": 0, "a": 1}, length=10**13))
    vocab = Vocabulary.from_tokenizer(_SlowTokenizer({"!": 0, "a": 1}, length=8))
    assert vocab.size == 8 and vocab[1] == b"a" and vocab.eos_ids == (0,)


# ----------------------------------------------------------------------------------------------
# Hostile tokenizer files: byte budget, corrupt gzip
# ----------------------------------------------------------------------------------------------


def _traced_peak(fn) -> int:
    """Peak bytes Python allocated while fn ran (zlib's buffers included)."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_gzip_bomb_stops_at_the_byte_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(vocab_module, "MAX_TOKENIZER_BYTES", 1 << 20)
    bomb = tmp_path / "tokenizer.json.gz"
    with gzip.open(bomb, "wb", compresslevel=1) as f:
        f.write(b'{"model": {"vocab": {"')
        block = b"a" * (1 << 20)
        for _ in range(48):
            f.write(block)
    assert bomb.stat().st_size < 1 << 20  # 48 MiB behind a few hundred KiB

    def load():
        with pytest.raises(VocabularyError, match=r"tokenizer\.json\.gz.*1,048,576 bytes"):
            Vocabulary.from_file(bomb)

    assert _traced_peak(load) < 6 << 20  # budget + a chunk or two, never the 48 MiB


def test_plain_file_over_the_budget_is_refused_without_reading_it(tmp_path, monkeypatch):
    monkeypatch.setattr(vocab_module, "MAX_TOKENIZER_BYTES", 1 << 20)
    big = tmp_path / "tokenizer.json"
    with open(big, "wb") as f:
        f.truncate(64 << 20)  # sparse: 64 MiB of zeros that cost no disk

    def load():
        with pytest.raises(VocabularyError, match=r"tokenizer\.json.*1,048,576 bytes"):
            Vocabulary.from_file(big)

    assert _traced_peak(load) < 4 << 20


@pytest.mark.parametrize("compress", [False, True])
def test_byte_budget_is_exact(tmp_path, monkeypatch, compress):
    raw = json.dumps(_tiny_spec()).encode()
    path = _write(tmp_path / "tokenizer.json", raw, compress=compress)
    monkeypatch.setattr(vocab_module, "MAX_TOKENIZER_BYTES", len(raw))
    assert Vocabulary.from_file(path).eos_ids == (3,)
    monkeypatch.setattr(vocab_module, "MAX_TOKENIZER_BYTES", len(raw) - 1)
    with pytest.raises(VocabularyError, match=f"{len(raw) - 1:,} bytes"):
        Vocabulary.from_file(path)


def test_multi_member_gzip_reads_as_one(tmp_path):
    raw = json.dumps(_tiny_spec()).encode()
    path = tmp_path / "tokenizer.json.gz"
    path.write_bytes(gzip.compress(raw[:20]) + gzip.compress(raw[20:]))
    assert list(Vocabulary.from_file(path)) == [b"a", b"b", b"ab", None]


def _gzip_corruptions() -> dict[str, bytes]:
    good = gzip.compress(json.dumps(_tiny_spec()).encode() * 3)
    crc = int.from_bytes(good[-8:-4], "little") ^ 1
    return {
        "truncated": good[: len(good) // 2],
        "cut before the trailer": good[:-5],
        "scrambled body": good[:10] + bytes(b ^ 0x55 for b in good[10:-8]) + good[-8:],
        "invalid block": good[:10] + b"\xff" * 16 + good[26:],
        "bad crc": good[:-8] + crc.to_bytes(4, "little") + good[-4:],
        "bad header": b"\x1f\x8b\x09" + good[3:],
        "only the magic": b"\x1f\x8b",
        "trailing garbage": good + b"garbage!",
    }


@pytest.mark.parametrize("corruption", sorted(_gzip_corruptions()))
def test_corrupt_gzip_is_a_vocabulary_error_naming_the_file(tmp_path, corruption):
    path = tmp_path / "broken.json.gz"
    path.write_bytes(_gzip_corruptions()[corruption])
    with pytest.raises(VocabularyError, match=r"broken\.json\.gz"):
        Vocabulary.from_file(path)


# ----------------------------------------------------------------------------------------------
# Hostile tokenizer files: malformed structure
# ----------------------------------------------------------------------------------------------


def _edit(base, fn):
    """A spec made by applying fn to a fresh copy of base()."""
    spec = base()
    fn(spec)
    return spec


def _model(**changes):
    return lambda spec: spec["model"].update(changes)


def _set(key, value):
    return lambda spec: spec.update({key: value})


def _vocab(**changes):
    return lambda spec: spec["model"]["vocab"].update(changes)


def _added(entry):
    return lambda spec: spec["added_tokens"].append(entry)


def _decoders(*parts):
    return lambda spec: spec.update({"decoder": {"type": "Sequence", "decoders": list(parts)}})


_DEEP = "[" * 100_000 + "]" * 100_000

# name -> (file content, regex the error must match besides the file name)
MALFORMED = {
    "top-level list": ([1, 2], r"object"),
    "top-level string": ("\"model\"", r"object"),
    "deep nesting": (_DEEP, r"nest"),
    "deep nesting inside model": ('{"model": ' + _DEEP + "}", r"nest"),
    "no model": ({"added_tokens": []}, r"'model'"),
    "model is a list": (_edit(_tiny_spec, _set("model", [1])), r"model.*object.*list"),
    "model is a string": (_edit(_tiny_spec, _set("model", "BPE")), r"model.*object.*str"),
    "model is null": (_edit(_tiny_spec, _set("model", None)), r"model.*object"),
    "model type not a string": (_edit(_tiny_spec, _model(type=["BPE"])), r"model\.type"),
    "no vocab": (_edit(_tiny_spec, lambda s: s["model"].pop("vocab")), r"model\.vocab"),
    "vocab is a string": (_edit(_tiny_spec, _model(vocab="abc")), r"model\.vocab.*str"),
    "vocab is a number": (_edit(_tiny_spec, _model(vocab=5)), r"model\.vocab.*int"),
    "vocab id is a huge float": (_edit(_tiny_spec, _vocab(zz=1e300)), r"model\.vocab\['zz'\]"),
    "vocab id overflows": (_edit(_tiny_spec, _vocab(zz=10**400)), r"model\.vocab\['zz'\]"),
    "byte_fallback not a bool": (_edit(_spm_spec, _model(byte_fallback="yes")), r"byte_fallback"),
    "merges not a list": (_edit(_tiny_spec, _model(merges=5)), r"model\.merges"),
    "merges of numbers": (_edit(_tiny_spec, _model(merges=[1, 2])), r"model\.merges\[0\]"),
    "merges of triples": (_edit(_tiny_spec, _model(merges=[["a", "b", "c"]])), r"model\.merges\[0\]"),
    "merges end in garbage": (_edit(_tiny_spec, _model(merges=["a b", {}])), r"model\.merges\[1\]"),
    "unigram entry is a string": (_edit(_metaspace_spec, _model(vocab=["ab", "cd"])),
                                  r"model\.vocab\[0\]"),
    "unigram entry is empty": (_edit(_metaspace_spec, _model(vocab=[[]])), r"model\.vocab\[0\]"),
    "unigram piece not a string": (_edit(_metaspace_spec, _model(vocab=[["a", 0.0], [7, 0.0]])),
                                   r"model\.vocab\[1\]"),
    "unigram score not a number": (_edit(_metaspace_spec, _model(vocab=[["a", "high"]])),
                                   r"model\.vocab\[0\]"),
    "unigram too many ids": (_edit(_metaspace_spec, lambda s: s["added_tokens"].append(
        {"id": 10**7, "content": "<x>", "special": True})), r"added_tokens\[1\].*4,194,304"),
    "added_tokens is an object": (_edit(_tiny_spec, _set("added_tokens", {"id": 3})),
                                  r"added_tokens.*list"),
    "added_tokens is a string": (_edit(_tiny_spec, _set("added_tokens", "abc")),
                                 r"added_tokens.*list"),
    "added entry is a number": (_edit(_tiny_spec, _added(5)), r"added_tokens\[1\].*object"),
    "added entry without id": (_edit(_tiny_spec, _added({"content": "<x>"})),
                               r"added_tokens\[1\].*'id'"),
    "added entry without content": (_edit(_tiny_spec, _added({"id": 4})),
                                    r"added_tokens\[1\].*'content'"),
    "added content not a string": (_edit(_tiny_spec, _added({"id": 4, "content": 5})),
                                   r"added_tokens\[1\].*content"),
    "special content not a string": (
        _edit(_tiny_spec, _added({"id": 4, "content": ["<x>"], "special": True})),
        r"added_tokens\[1\].*content"),
    "added special not a bool": (
        _edit(_tiny_spec, _added({"id": 4, "content": "<x>", "special": "yes"})),
        r"added_tokens\[1\].*special"),
    "decoder is a list": (_edit(_tiny_spec, _set("decoder", [{"type": "ByteLevel"}])),
                          r"decoder.*object"),
    "decoder type not a string": (_edit(_tiny_spec, _set("decoder", {"type": ["ByteLevel"]})),
                                  r"decoder\.type"),
    "decoder type missing": (_edit(_tiny_spec, _set("decoder", {"add_prefix_space": True})),
                             r"decoder\.type"),
    "sequence decoders not a list": (
        _edit(_tiny_spec, _set("decoder", {"type": "Sequence", "decoders": 5})),
        r"decoder\.decoders.*list"),
    "sequence decoders missing": (_edit(_tiny_spec, _set("decoder", {"type": "Sequence"})),
                                  r"decoder\.decoders"),
    "sequence of a number": (_edit(_tiny_spec, _decoders({"type": "ByteLevel"}, 5)),
                             r"decoder\.decoders\[1\].*object"),
    "pre_tokenizer is a string": (_edit(_tiny_spec, _set("pre_tokenizer", "ByteLevel")),
                                  r"pre_tokenizer.*object"),
    "pretokenizers not a list": (
        _edit(_tiny_spec, _set("pre_tokenizer", {"type": "Sequence", "pretokenizers": {}})),
        r"pre_tokenizer\.pretokenizers.*list"),
    "metaspace replacement not a string": (
        _edit(_metaspace_spec, _set("decoder", {"type": "Metaspace", "replacement": 5})),
        r"decoder\.replacement"),
    "metaspace replacement empty": (
        _edit(_metaspace_spec, _set("decoder", {"type": "Metaspace", "replacement": ""})),
        r"decoder\.replacement"),
    "replace without pattern": (
        _edit(_spm_spec, _decoders({"type": "Replace", "content": " "}, {"type": "ByteFallback"})),
        r"decoder\.decoders\[0\]\.pattern"),
    "replace pattern not an object": (
        _edit(_spm_spec, _decoders({"type": "Replace", "pattern": "▁", "content": " "})),
        r"decoder\.decoders\[0\]\.pattern"),
    "replace pattern string not a string": (
        _edit(_spm_spec, _decoders({"type": "Replace", "pattern": {"String": 5}, "content": " "})),
        r"decoder\.decoders\[0\]\.pattern"),
    "padding placeholder with a huge number": (
        _edit(_tiny_spec, _vocab(**{"[PAD" + "9" * 5000 + "]": 4})), None),
    "invalid utf-8": (b'{"model": {"vocab": {"\xff": 0}}}', r"cannot read"),
}


@pytest.mark.parametrize("compress", [False, True], ids=["json", "gz"])
@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_tokenizer_json_is_a_vocabulary_error(tmp_path, name, compress):
    content, match = MALFORMED[name]
    path = _write(tmp_path / "tokenizer.json", content, compress=compress)
    try:
        vocab = Vocabulary.from_file(path)
    except VocabularyError as e:
        assert path.name in str(e), str(e)
        if match is not None:
            assert re.search(match, str(e)), str(e)
    else:  # only a harmless oddity may load, and then it must load correctly
        assert match is None, f"{name} loaded as {vocab!r}"
        assert vocab[4] == ("[PAD" + "9" * 5000 + "]").encode()


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=10,
)


def _paths(node, prefix=()):
    """Every path (tuple of keys/indexes) to a value inside a JSON document."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, prefix + (i,))


@given(data=st.data())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_mutated_tokenizer_json_loads_or_is_a_vocabulary_error(tmp_path_factory, data):
    spec = data.draw(st.sampled_from([_tiny_spec, _spm_spec, _metaspace_spec]))()
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(list(_paths(spec))[1:]))
        parent = spec
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = data.draw(_JSON)
    file = tmp_path_factory.mktemp("fuzz") / "tokenizer.json"
    file.write_text(json.dumps(spec))
    try:
        vocab = Vocabulary.from_file(file)
    except VocabularyError:
        return
    assert 0 < vocab.size <= MAX_IDS
    assert all(t is None or type(t) is bytes for t in vocab)
    assert all(0 <= i < vocab.size for i in vocab.eos_ids)


# ----------------------------------------------------------------------------------------------
# eos_ids
# ----------------------------------------------------------------------------------------------

BAD_EOS = ["34", "3", b"\x03", bytearray(b"\x03"), 3.0, True, np.bool_(True), np.float64(3.0),
           [3.0], [True], ["3"], [b"3"], [None], [[3]], -1, [-1], [0, -1], 4, [10**20],
           np.int64(-1), None]


@pytest.mark.parametrize("bad", BAD_EOS, ids=repr)
def test_bad_eos_ids_name_the_value(tmp_path, bad):
    with pytest.raises((TypeError, VocabularyError), match=re.escape(f"eos_ids={bad!r}")):
        Vocabulary.from_tokens([b"a", b"b", b"c", None], eos_ids=bad)
    if bad is None:
        return  # from_file reads None as "detect EOS by name"
    with pytest.raises((TypeError, VocabularyError), match=re.escape(f"eos_ids={bad!r}")):
        Vocabulary.from_file(_write(tmp_path / "tokenizer.json", _tiny_spec()), eos_ids=bad)


@pytest.mark.parametrize("good", [3, np.int64(3), np.uint8(3), [np.int32(3)], np.array([3]), (3,),
                                  range(3, 4), {3}, [3, 3]], ids=repr)
def test_integer_eos_ids_are_accepted(tmp_path, good):
    assert Vocabulary.from_tokens([b"a", b"b", b"c", None], eos_ids=good).eos_ids == (3,)
    vocab = Vocabulary.from_file(_write(tmp_path / "tokenizer.json", _tiny_spec()), eos_ids=good)
    assert vocab.eos_ids == (3,) and all(type(i) is int for i in vocab.eos_ids)


# ----------------------------------------------------------------------------------------------
# Untrusted trie cache
# ----------------------------------------------------------------------------------------------

# Duplicates ('a' x2, 'ab' x2), a three-level branch and a special: every array matters.
# Nodes: 0 root, 1 a, 2 ab, 3 abc, 4 b, 5 b\0, 6 ba, 7 c.
_CACHE_TOKENS = [b"ab", b"a", b"b", b"a", None, b"abc", b"b\x00", b"ba", b"c", b"ab"]


def _cache_vocab(tokens=_CACHE_TOKENS) -> Vocabulary:
    return Vocabulary.from_tokens(tokens, eos_ids=[4])


def _good_arrays(tokens=_CACHE_TOKENS) -> dict[str, np.ndarray]:
    trie = TokenTrie.build(list(_cache_vocab(tokens)))
    return {name: getattr(trie, name).copy() for name in TokenTrie.FIELDS}


def _change(name, index, value):
    def corrupt(a):
        a[name][index] = value
        return a
    return corrupt


def _swap(name, i, j):
    def corrupt(a):
        a[name][[i, j]] = a[name][[j, i]]
        return a
    return corrupt


def _retype(name, dtype, shift=0):
    def corrupt(a):
        a[name] = a[name].astype(dtype) + shift
        return a
    return corrupt


def _dead_leaf(a):
    """A node for byte 0xff that no token ends at or below: consistent, but not the vocab's trie."""
    n = len(a["byte"])
    a["byte"] = np.append(a["byte"], np.uint8(0xFF))
    a["depth"] = np.append(a["depth"], np.int32(1))
    a["skip"] = np.append(a["skip"], np.int32(n + 1))
    a["skip"][0] = n + 1
    a["tok_start"] = np.append(a["tok_start"], a["tok_start"][-1])
    return a


def _npy_header_zip(shape) -> bytes:
    """An npz whose byte array claims `shape` (terabytes) but holds nothing."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        with zf.open("byte.npy", "w") as f:
            np.lib.format.write_array_header_1_0(
                f, {"descr": "|u1", "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _good_file_bytes(tmp_path) -> bytes:
    path = tmp_path / "good.npz"
    np.savez(path, **_good_arrays())
    return path.read_bytes()


CACHE_CORRUPTIONS = {
    "tok_ids out of range": _change("tok_ids", 0, 10**9),
    "tok_ids negative": _change("tok_ids", 0, -(2**31)),
    "tok_ids names a special": _change("tok_ids", 0, 4),
    "tok_ids one past the end": _change("tok_ids", 0, len(_CACHE_TOKENS)),
    "tok_ids permuted across nodes": _swap("tok_ids", 0, 8),
    "tok_ids permuted within a node": _swap("tok_ids", 0, 1),
    "tok_ids permuted same counts": _swap("tok_ids", 4, 6),
    "tok_ids duplicated": _change("tok_ids", 1, 1),
    "skip backwards": _change("skip", 5, 1),
    "skip to itself": _change("skip", 4, 4),
    "skip to zero": _change("skip", 4, 0),
    "skip past the end": _change("skip", 2, 9),
    "skip too far": _change("skip", 1, 8),
    "skip too short": _change("skip", 1, 2),
    "skip into a sibling subtree": _change("skip", 5, 7),
    "depth jumps": _change("depth", 3, 7),
    "depth zero": _change("depth", 2, 0),
    "depth negative": _change("depth", 1, -1),
    "depth reparents": _change("depth", 7, 2),
    "byte changed": _change("byte", 7, ord("d")),
    "byte order": _swap("byte", 1, 4),
    "root byte": _change("byte", 0, 1),
    "tok_start not monotone": _change("tok_start", 2, 5),
    "tok_start past the end": _change("tok_start", 8, 10),
    "tok_start moves a token": _change("tok_start", 3, 3),
    "all int64": lambda a: {k: v.astype(np.int64) for k, v in a.items()},
    "depth float": _retype("depth", np.float64),
    "byte int32 wrapping": _retype("byte", np.int32, 256),
    "tok_ids big-endian": _retype("tok_ids", ">i4"),
    "tok_ids 2-D": lambda a: {**a, "tok_ids": a["tok_ids"].reshape(1, -1)},
    "tok_ids objects": lambda a: {**a, "tok_ids": a["tok_ids"].astype(object)},
    "skip missing": lambda a: {k: v for k, v in a.items() if k != "skip"},
    "dead leaf": _dead_leaf,
    "another vocabulary": lambda a: _good_arrays([*_CACHE_TOKENS[:8], b"d", b"ab"]),
    "empty trie": lambda a: _good_arrays([None] * len(_CACHE_TOKENS)),
    "truncated": lambda a: ("truncated", 0.5),
    "truncated at the end": lambda a: ("truncated", 0.97),
    "empty file": lambda a: b"",
    "not a zip": lambda a: b"PK\x03\x04 garbage" * 10,
    "terabyte shape": lambda a: _npy_header_zip((2**40,)),
}


def test_cache_fixture_is_the_trie_the_corruptions_assume():
    good = _good_arrays()
    assert good["byte"].tolist() == [0, *b"abcb", 0, *b"ac"]
    assert good["depth"].tolist() == [0, 1, 2, 3, 1, 2, 2, 1]
    assert good["skip"].tolist() == [8, 4, 4, 4, 7, 6, 7, 8]
    assert good["tok_start"].tolist() == [0, 0, 2, 4, 5, 6, 7, 8, 9]
    assert good["tok_ids"].tolist() == [1, 3, 0, 9, 5, 2, 6, 7, 8]


def _write_cache(path: Path, corruption, tmp_path) -> None:
    result = corruption(_good_arrays())
    if isinstance(result, tuple):  # ("truncated", fraction of the good file)
        good = _good_file_bytes(tmp_path)
        path.write_bytes(good[: int(len(good) * result[1])])
    elif isinstance(result, bytes):
        path.write_bytes(result)
    else:
        with open(path, "wb") as f:
            np.savez(f, **result)


def _no_build(monkeypatch):
    def no_build(tokens):
        raise AssertionError("should have loaded from disk")

    monkeypatch.setattr(TokenTrie, "build", staticmethod(no_build))


@pytest.mark.parametrize("corruption", list(CACHE_CORRUPTIONS))
def test_untrusted_cache_is_rebuilt_and_rewritten(tmp_path, monkeypatch, corruption):
    monkeypatch.setenv("TETHER_CACHE_DIR", str(tmp_path))
    good = _good_arrays()
    path = tmp_path / f"trie-{_cache_vocab().fingerprint}.npz"
    _write_cache(path, CACHE_CORRUPTIONS[corruption], tmp_path)
    trie = _cache_vocab().trie  # a fresh Vocabulary: its cached_property reads the file
    assert {name: getattr(trie, name).tolist() for name in good} == {
        name: array.tolist() for name, array in good.items()}
    assert [getattr(trie, name).dtype for name in good] == [a.dtype for a in good.values()]
    _no_build(monkeypatch)  # the rebuilt trie was written back, and is accepted
    assert _arrays(_cache_vocab().trie) == _arrays(trie)


@given(tokens=st.lists(st.binary(min_size=1, max_size=4), min_size=1, max_size=12),
       data=st.data())
@settings(max_examples=150, deadline=None)
def test_any_changed_cache_value_is_refused(tokens, data):
    """Change one value of a valid cached trie: the loaded trie is still exactly build's."""
    vocab = Vocabulary.from_tokens([*tokens, None], eos_ids=[len(tokens)])
    good = TokenTrie.build(list(vocab))
    arrays = {name: getattr(good, name).copy() for name in TokenTrie.FIELDS}
    name = data.draw(st.sampled_from(TokenTrie.FIELDS))
    index = data.draw(st.integers(0, len(arrays[name]) - 1))
    info = np.iinfo(arrays[name].dtype)
    near = st.integers(max(int(info.min), -2), min(int(info.max), 12))
    arrays[name][index] = data.draw(st.integers(int(info.min), int(info.max)) | near)
    vocab_module.cache_dir().mkdir(parents=True, exist_ok=True)
    with open(vocab_module.cache_dir() / f"trie-{vocab.fingerprint}.npz", "wb") as f:
        np.savez(f, **arrays)
    fresh = Vocabulary.from_tokens([*tokens, None], eos_ids=[len(tokens)])
    assert _arrays(fresh.trie) == _arrays(good)


def test_valid_cache_is_accepted_as_is(tmp_path, monkeypatch):
    monkeypatch.setenv("TETHER_CACHE_DIR", str(tmp_path))
    path = tmp_path / f"trie-{_cache_vocab().fingerprint}.npz"
    with open(path, "wb") as f:
        np.savez(f, **_good_arrays())
    good = [a.tolist() for a in _good_arrays().values()]
    _no_build(monkeypatch)
    assert _arrays(_cache_vocab().trie) == good


@pytest.mark.parametrize("name", ["gpt-2", "llama-spm"])
def test_real_vocabulary_cache_is_validated(tmp_path, monkeypatch, name):
    monkeypatch.setenv("TETHER_CACHE_DIR", str(tmp_path))
    vocab = real_vocab(name)
    fresh = TokenTrie.build(list(vocab))
    path = tmp_path / f"trie-{vocab.fingerprint}.npz"
    arrays = {f: getattr(fresh, f).copy() for f in TokenTrie.FIELDS}
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    copy = Vocabulary(list(vocab), eos_ids=vocab.eos_ids, special_ids=vocab.special_ids,
                      size=vocab.size)
    assert copy.fingerprint == vocab.fingerprint
    with monkeypatch.context() as m:
        _no_build(m)
        assert _arrays(copy.trie) == _arrays(fresh)  # accepted: no rebuild
    # two tokens of different lengths swapped deep inside the real trie: rejected, rebuilt
    ids = arrays["tok_ids"]
    lengths = np.array([len(vocab[int(i)]) for i in ids])
    j = int(np.flatnonzero(lengths != lengths[len(ids) // 2])[-1])
    ids[[len(ids) // 2, j]] = ids[[j, len(ids) // 2]]
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    copy = Vocabulary(list(vocab), eos_ids=vocab.eos_ids, special_ids=vocab.special_ids,
                      size=vocab.size)
    assert _arrays(copy.trie) == _arrays(fresh)


_MASK_SCRIPT = textwrap.dedent("""
    import os, sys
    import numpy as np
    import tether
    for cache in sys.argv[1:]:  # one child for all: importing tether and numba costs seconds
        os.environ["TETHER_CACHE_DIR"] = cache
        vocab = tether.Vocabulary.from_tokens({tokens!r}, eos_ids=[4])
        c = tether.regex("a+b?").compile(vocab)
        print(np.flatnonzero(c.mask(c.initial())).tolist(), flush=True)
""")
KERNEL_HAZARDS = ["tok_ids out of range", "tok_ids negative", "skip to itself", "skip to zero"]


def test_hostile_cache_cannot_crash_or_hang_the_mask_kernel(tmp_path):
    """A segfault or an endless loop in a numba kernel would take pytest down: use a child."""
    caches = [tmp_path / "clean"]
    for k, corruption in enumerate(KERNEL_HAZARDS):
        caches.append(tmp_path / f"hostile-{k}")
        caches[-1].mkdir()
        _write_cache(caches[-1] / f"trie-{_cache_vocab().fingerprint}.npz",
                     CACHE_CORRUPTIONS[corruption], tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", _MASK_SCRIPT.format(tokens=_CACHE_TOKENS), *map(str, caches)],
        capture_output=True, text=True, timeout=120)
    masks = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 0, (masks, result.stderr[-2000:])
    assert masks == [[0, 1, 3, 9]] * len(caches)  # a, ab (twice each), hostile or not
