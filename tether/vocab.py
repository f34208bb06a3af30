"""Vocabularies as byte strings, and the token trie that mask kernels walk.

Constraints speak bytes, models speak token ids; a `Vocabulary` is the bridge. Every token id
maps to the exact bytes it spells, or to None for special/control tokens and for padding ids
(ids the model's logits have but the tokenizer never produces). A `TokenTrie` stores all
spellable tokens as flat numpy arrays in DFS order, so a kernel can prune a whole subtree of
tokens at the first byte a constraint rejects.

    >>> vocab = Vocabulary.from_file("tokenizer.json.gz")
    >>> vocab[15339], vocab.eos_ids
    (b'hello', (128001, 128009))

Tokenizer files are untrusted input, so what one can cost is bounded:

    MAX_TOKENIZER_BYTES  256 MiB of JSON, counted after gzip decompression, which streams in
                         1 MiB chunks: a gzip bomb stops at the budget, and memory never holds
                         more than the budget plus one chunk of text (a file larger than the
                         budget on disk is refused unread). Parsed, JSON takes 4-7x its size in
                         Python objects for real tokenizers (Llama-3: 16 MiB of text, 107 MiB
                         peak) and up to ~25x for adversarial text such as a list of empty
                         objects; lower the budget to load untrusted files on a small machine.
    MAX_VOCAB_IDS        2**22 (4,194,304) token ids: the bound on the largest id in a file, on
                         `size=` and on a token list; a file's ids must also stay below
                         2 x its entries + 1,024, so a few bytes cannot name a huge id space.
                         The per-id arrays then cost at most ~100 MiB.

Both are module attributes read at each load, so a caller can raise or lower them.

Anything malformed (wrong JSON types, negative or non-integer ids, corrupt gzip, JSON nested
too deeply) is a `VocabularyError` naming the file, the field and the entry. The trie cache on
disk is untrusted too: a cached trie is used only if it equals what `TokenTrie.build` would
produce for this vocabulary, checked in numpy in a fraction of the build time; anything else is
rebuilt and rewritten.
"""

from __future__ import annotations

import errno
import functools
import gzip
import hashlib
import json
import operator
import os
import re
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, NamedTuple

import numpy as np

from tether.errors import VocabularyError

__all__ = ["Vocabulary", "TokenTrie", "MAX_TOKENIZER_BYTES", "MAX_VOCAB_IDS"]

# The budgets a tokenizer file gets (see the module docstring). Read at call time, so a caller
# can change them: `tether.vocab.MAX_VOCAB_IDS = 2**23` for a bigger vocabulary.
MAX_TOKENIZER_BYTES = 256 * 2**20
MAX_VOCAB_IDS = 2**22

# Ids a file may leave unnamed beyond twice its entries: real files are dense (every id named),
# so this only refuses files whose few entries name a huge id space.
_ID_SLACK = 1024
_READ_CHUNK = 2**20
_GZIP_MAGIC = b"\x1f\x8b"

# Special tokens that end a sequence or a turn, by name. Instruct models end turns with the
# chat-template markers, so these count as EOS whenever they are special tokens of the vocab.
EOS_NAMES: tuple[str, ...] = (
    "</s>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|im_end|>",
    "<|end|>",
    "<eos>",
    "<end_of_turn>",
    "<|end_of_turn|>",
    "<|EOT|>",
    "<｜end▁of▁sentence｜>",
    "[EOS]",
)

# SentencePiece's control and unknown pieces: they spell nothing even when a converted
# tokenizer.json forgets to flag them special (Phi-3 marks `</s>` non-special; Mistral's
# converted vocab lists them as plain pieces).
_SPM_CONTROL = frozenset({"<unk>", "<s>", "</s>", "<pad>"})

# llama.cpp fills unused embedding rows with `[PAD<id>]` placeholders (Qwen2, Phi-3): padding.
_PAD_PLACEHOLDER = re.compile(r"\[PAD(\d{1,12})\]")  # bounded: int() of 5,000 digits raises
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


# ----------------------------------------------------------------------------------------------
# Checking untrusted values
# ----------------------------------------------------------------------------------------------

_JSON_KINDS = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
               int: "an integer", float: "a number", type(None): "null"}


def _kind(value: Any) -> str:
    """The JSON name of a value's type, for messages: 'an object', 'a list', 'null', ..."""
    return _JSON_KINDS.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    """repr, cut short: a hostile value can be megabytes long."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text):,} characters)"


def _figure(n: int, sep: str = "") -> str:
    """An untrusted int for a message: Python refuses to print ints past 4,300 digits."""
    if abs(n) >= 10**30:
        return f"{'-' if n < 0 else ''}~2**{abs(n).bit_length() - 1}"
    return f"{n:{sep}}"


def _need(ok: bool, where: str, problem: str) -> None:
    """Raise a VocabularyError naming the field (`model.vocab['a']`) unless ok."""
    if not ok:
        raise VocabularyError(f"{where}: {problem}")


def _field(node: dict, key: str, kind: type, where: str, default: Any = None) -> Any:
    """node[key] if it has the JSON type `kind` (absent or null: default)."""
    value = node.get(key)
    if value is None:
        return default
    _need(type(value) is kind, f"{where}.{key}",
          f"must be {_JSON_KINDS[kind]}, not {_kind(value)} {_short(value)}")
    return value


def _as_int(value: Any) -> int | None:
    """value as a Python int if it is an integer (Python or numpy, not a bool), else None."""
    if isinstance(value, (bool, np.bool_)):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def _token_id(value: Any, where: str) -> int:
    """A token id from a file: a non-negative JSON integer (not a bool, float or string)."""
    _need(type(value) is int, where, f"id {_short(value)} is not an integer")
    # Python would read a negative id from the end of the list and overwrite a real token.
    _need(value >= 0, where, f"id {_figure(value)} is negative")
    return value


def _check_id_space(top: int, entries: int, where: str) -> None:
    """The largest id must be plausible: below MAX_VOCAB_IDS and near the number of entries.

    Every id costs a list slot; without this a 200-byte file naming id 10**8 costs 3 GB.
    """
    _need(top < MAX_VOCAB_IDS, where,
          f"id {_figure(top)} is out of range: ids must be below MAX_VOCAB_IDS = "
          f"{MAX_VOCAB_IDS:,}")
    limit = 2 * entries + _ID_SLACK
    _need(top < limit, where,
          f"id {top} is far beyond the {entries:,} entries of the tokenizer: ids must be below "
          f"2 x entries + {_ID_SLACK:,} = {limit:,}")


def _check_count(count: int, what: str) -> None:
    """A number of ids (a list length, `size=`, `len(tokenizer)`) within MAX_VOCAB_IDS."""
    _need(count <= MAX_VOCAB_IDS, what,
          f"{_figure(count, ',')} token ids are more than MAX_VOCAB_IDS = {MAX_VOCAB_IDS:,}")


# ----------------------------------------------------------------------------------------------
# Token strings -> bytes
# ----------------------------------------------------------------------------------------------


@functools.cache
def _byte_level_tables() -> tuple[dict[int, str], dict[int, None]]:
    """GPT-2's byte-to-unicode table, inverted: (char -> latin-1 char of its byte, domain eraser).

    Byte-level BPE writes every byte as a printable character; translating back through this
    table and encoding as latin-1 gives the token's bytes in one C-level pass.
    """
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = b
        else:
            chars[b] = 256 + extra
            extra += 1
    decode = {c: chr(b) for b, c in chars.items()}
    erase = {c: None for c in chars.values()}
    return decode, erase


def _byte_level_bytes(piece: str) -> bytes:
    """One byte-level BPE token's bytes; a token outside the table is plain UTF-8 (as HF does)."""
    decode, erase = _byte_level_tables()
    if piece.translate(erase):
        return piece.encode("utf-8")
    return piece.translate(decode).encode("latin-1")


def _sentencepiece_bytes(piece: str, space: str, byte_fallback: bool) -> bytes:
    """One SentencePiece piece's bytes: the space marker is a space, `<0xNN>` is one byte."""
    if byte_fallback and len(piece) == 6:
        match = _BYTE_PIECE.fullmatch(piece)
        if match:
            return bytes([int(match.group(1), 16)])
    return piece.replace(space, " ").encode("utf-8")


class _Decoding:
    """How a tokenizer's token strings spell bytes: 'byte_level', 'sentencepiece' or 'text'."""

    def __init__(self, kind: str, space: str = "▁", byte_fallback: bool = False):
        self.kind = kind
        self.space = space
        self.byte_fallback = byte_fallback

    def __call__(self, piece: str) -> bytes:
        if self.kind == "byte_level":
            return _byte_level_bytes(piece)
        if self.kind == "sentencepiece":
            return _sentencepiece_bytes(piece, self.space, self.byte_fallback)
        return piece.encode("utf-8")


def _components(node: Any, key: str, where: str) -> list[tuple[str, dict]]:
    """A tokenizer.json component flattened to (path, part): a `Sequence` becomes its parts.

    A loop, not recursion, so no nesting can exhaust the stack.
    """
    parts: list[tuple[str, dict]] = []
    todo = [] if node is None else [(where, node)]
    while todo:
        where, node = todo.pop()
        _need(type(node) is dict, where, f"must be an object, not {_kind(node)}")
        kind = node.get("type")
        _need(type(kind) is str, f"{where}.type",
              "missing" if kind is None else f"must be a string, not {_kind(kind)}")
        if kind == "Sequence":
            children = node.get(key)
            _need(type(children) is list, f"{where}.{key}",
                  f"must be a list, not {_kind(children)}")
            todo.extend(reversed([(f"{where}.{key}[{i}]", c) for i, c in enumerate(children)]))
        else:
            parts.append((where, node))
    return parts


def _nonempty_string(node: dict, key: str, where: str, default: str) -> str:
    """A replacement string of a decoder: an empty one would insert spaces between characters."""
    value = node.get(key, default)
    _need(type(value) is str and value != "", f"{where}.{key}",
          f"must be a non-empty string, not {_short(value)}")
    return value


def _replace_literal(decoder: dict, where: str) -> str | None:
    """The literal a `Replace` decoder replaces, None for a regex pattern."""
    pattern = decoder.get("pattern")
    _need(type(pattern) is dict, f"{where}.pattern",
          f'must be an object ({{"String": ...}}), not {_kind(pattern)}')
    if "String" not in pattern:
        return None
    return _nonempty_string(pattern, "String", f"{where}.pattern", "")


_KNOWN_DECODERS = {"ByteLevel", "Metaspace", "Replace", "ByteFallback", "Fuse", "Strip"}


def _detect_decoding(spec: dict, model_byte_fallback: bool) -> _Decoding:
    """Read the decoding rule from tokenizer.json's decoder, pre-tokenizer and model."""
    decoders = _components(spec.get("decoder"), "decoders", "decoder")
    pretoks = _components(spec.get("pre_tokenizer"), "pretokenizers", "pre_tokenizer")
    types = {d["type"] for _, d in decoders}
    unknown = types - _KNOWN_DECODERS
    if unknown:
        raise VocabularyError(
            f"unsupported tokenizer decoder {sorted(unknown)}: tether reads byte-level BPE, "
            f"SentencePiece and raw-bytes vocabularies; build one with Vocabulary.from_tokens"
        )
    # Checked before any early return, so a malformed part is refused whichever rule applies.
    replaces = [(d.get("content"), _replace_literal(d, where))
                for where, d in decoders if d["type"] == "Replace"]
    metaspaces = [_nonempty_string(p, "replacement", where, "▁")
                  for where, p in decoders + pretoks if p["type"] == "Metaspace"]
    if "ByteLevel" in types or any(p["type"] == "ByteLevel" for _, p in pretoks):
        return _Decoding("byte_level")
    byte_fallback = model_byte_fallback or "ByteFallback" in types
    if metaspaces:
        return _Decoding("sentencepiece", metaspaces[0], byte_fallback)
    spaces = [literal or "▁" for content, literal in replaces if content == " "]
    if spaces or byte_fallback:
        return _Decoding("sentencepiece", spaces[0] if spaces else "▁", byte_fallback)
    return _Decoding("text")


# ----------------------------------------------------------------------------------------------
# tokenizer.json -> (tokens, specials)
# ----------------------------------------------------------------------------------------------


def _model_of(spec: dict) -> dict:
    """tokenizer.json's `model`, with the fields tether reads type-checked."""
    model = spec.get("model")
    _need(type(model) is dict, "model", f"must be an object, not {_kind(model)}")
    _field(model, "type", str, "model")
    _field(model, "byte_fallback", bool, "model")
    _check_merges(model.get("merges"))
    return model


def _check_merges(merges: Any) -> None:
    """Refuse merges that cannot be a tokenizer's: the container and its two end entries.

    tether never reads merges (masks need only the vocabulary), so checking all 300k entries
    would cost every load ~50 ms for nothing; the ends catch a file that is not a tokenizer.
    """
    if merges is None:
        return
    _need(type(merges) is list, "model.merges", f"must be a list, not {_kind(merges)}")
    for k in sorted({0, len(merges) - 1}) if merges else ():
        m = merges[k]
        pair = type(m) is list and len(m) == 2 and type(m[0]) is str and type(m[1]) is str
        _need(type(m) is str or pair, f"model.merges[{k}]",
              f"must be a string 'a b' or a pair of strings, not {_short(m)}")


def _model_pieces(model: dict) -> dict[int, str]:
    """id -> piece for a tokenizer.json model (dict vocab for BPE/WordLevel, list for Unigram)."""
    vocab = model.get("vocab")
    if type(vocab) is dict:
        return _dict_pieces(vocab, "model.vocab")
    if type(vocab) is list:
        return _list_pieces(vocab, "model.vocab")
    if vocab is None:
        raise VocabularyError(f"model.vocab: missing (a model of type {model.get('type')!r} "
                              f"needs one)")
    raise VocabularyError(f"model.vocab: must be an object ({{piece: id}}) or a list "
                          f"([piece, score] pairs), not {_kind(vocab)}")


def _dict_pieces(vocab: dict, where: str) -> dict[int, str]:
    """id -> piece of a {piece: id} vocabulary: string pieces, distinct non-negative int ids.

    The common case costs a few C-level passes; the slow scans run only to name a bad entry.
    """
    if not set(map(type, vocab)) <= {str}:
        piece = next(p for p in vocab if type(p) is not str)
        raise VocabularyError(f"{where}: token {_short(piece)} is not a string")
    if not set(map(type, vocab.values())) <= {int}:
        for piece, i in vocab.items():
            _token_id(i, f"{where}[{_short(piece)}]")
    pieces = {i: piece for piece, i in vocab.items()}
    if pieces and min(pieces) < 0:
        piece, i = next((p, i) for p, i in vocab.items() if i < 0)
        _token_id(i, f"{where}[{_short(piece)}]")
    if len(pieces) < len(vocab):  # two pieces share an id: which one would the model mean?
        seen: dict[int, str] = {}
        for piece, i in vocab.items():
            _need(i not in seen, where,
                  f"id {i} is given to both {_short(seen.get(i))} and {_short(piece)}")
            seen[i] = piece
    return pieces


def _list_pieces(vocab: list, where: str) -> dict[int, str]:
    """id -> piece of a Unigram vocabulary: [piece, score] pairs, the id is the position."""
    _check_count(len(vocab), where)
    for i, entry in enumerate(vocab):
        if not (type(entry) is list and len(entry) == 2 and type(entry[0]) is str
                and type(entry[1]) in (int, float)):
            raise VocabularyError(f"{where}[{i}]: must be a [piece, score] pair, not "
                                  f"{_short(entry)}")
    return {i: entry[0] for i, entry in enumerate(vocab)}


class _Added(NamedTuple):
    """One checked entry of tokenizer.json's added_tokens."""

    content: str
    special: bool
    where: str  # its path, for messages: added_tokens[3]


def _added_tokens(entries: Any) -> dict[int, _Added]:
    """id -> entry of tokenizer.json's added_tokens (a later entry for an id wins, as in HF)."""
    if entries is None:
        return {}
    _need(type(entries) is list, "added_tokens", f"must be a list, not {_kind(entries)}")
    added: dict[int, _Added] = {}
    for k, entry in enumerate(entries):
        where = f"added_tokens[{k}]"
        _need(type(entry) is dict, where, f"must be an object, not {_kind(entry)}")
        for key in ("id", "content"):
            _need(key in entry, where, f"has no {key!r}")
        token_id = _token_id(entry["id"], where)
        content = entry["content"]
        _need(type(content) is str, f"{where}.content",
              f"must be a string, not {_kind(content)} {_short(content)}")
        added[token_id] = _Added(content, _field(entry, "special", bool, where, False), where)
    return added


def _id_space(pieces: dict[int, str], added: dict[int, _Added], where: str = "model.vocab") -> int:
    """1 + the largest id the model or added_tokens name, once checked plausible."""
    top = max(max(pieces, default=-1), max(added, default=-1))
    if top < 0:
        return 0
    entries = len(pieces) + sum(i not in pieces for i in added)
    _check_id_space(top, entries,
                    added[top].where if top in added else f"{where}[{_short(pieces[top])}]")
    return top + 1


def _is_padding_placeholder(piece: str, token_id: int) -> bool:
    """`[PAD123]` at id 123: an unused row that llama.cpp's conversion filled in."""
    match = _PAD_PLACEHOLDER.fullmatch(piece)
    return bool(match) and int(match.group(1)) == token_id


def _parse_spec(spec: dict) -> tuple[list[bytes | None], dict[str, int], set[int]]:
    """tokens (None = no bytes), special name -> id, and the special ids of a tokenizer.json."""
    model = _model_of(spec)
    decoding = _detect_decoding(spec, bool(model.get("byte_fallback")))
    pieces = _model_pieces(model)
    added = _added_tokens(spec.get("added_tokens"))
    tokens: list[bytes | None] = [None] * _id_space(pieces, added)
    special_names: dict[str, int] = {}
    token_id = -1
    try:
        for token_id, piece in pieces.items():
            if _is_padding_placeholder(piece, token_id):
                continue
            if decoding.kind == "sentencepiece" and piece in _SPM_CONTROL:
                special_names.setdefault(piece, token_id)
                continue
            tokens[token_id] = decoding(piece) or None
        for token_id, entry in added.items():
            content = entry.content
            spm_control = decoding.kind == "sentencepiece" and content in _SPM_CONTROL
            if entry.special or spm_control:
                special_names.setdefault(content, token_id)
                tokens[token_id] = None
            elif _is_padding_placeholder(content, token_id):
                tokens[token_id] = None
            else:
                tokens[token_id] = content.encode("utf-8") or None
    except UnicodeEncodeError as e:  # JSON can escape a lone surrogate (\ud800): no bytes spell it
        raise VocabularyError(
            f"token {token_id} {_short(e.object)} is not valid Unicode ({e.reason})") from None
    return tokens, special_names, set(special_names.values())


def _eos_from_names(special_names: dict[str, int]) -> tuple[int, ...]:
    """Ids of the well-known end-of-sequence/turn special tokens present in the vocabulary."""
    return tuple(sorted({special_names[name] for name in EOS_NAMES if name in special_names}))


def _parse_source(spec: dict, source: str) -> tuple[list[bytes | None], dict[str, int], set[int]]:
    """_parse_spec, with the file (or tokenizer) named in every error."""
    try:
        return _parse_spec(spec)
    except VocabularyError as e:
        raise VocabularyError(f"{source}: {e}") from None


# ----------------------------------------------------------------------------------------------
# Reading tokenizer files within the byte budget
# ----------------------------------------------------------------------------------------------


def _over_budget(path: Path, how: str) -> VocabularyError:
    return VocabularyError(
        f"tokenizer file {path} {how} MAX_TOKENIZER_BYTES = {MAX_TOKENIZER_BYTES:,} bytes; "
        f"raise tether.vocab.MAX_TOKENIZER_BYTES for a vocabulary this large"
    )


def _gunzip_bounded(f: IO[bytes], path: Path, limit: int) -> bytearray:
    """Decompress chunk by chunk, stopping one byte past `limit`: a bomb never fills memory."""
    out = bytearray()
    with gzip.GzipFile(fileobj=f, mode="rb") as g:
        while chunk := g.read(min(_READ_CHUNK, limit + 1 - len(out))):
            out += chunk
            if len(out) > limit:
                raise _over_budget(path, "decompresses to more than")
    return out


def _read_bounded(path: Path) -> bytes | bytearray:
    """The file's bytes, gunzipped if compressed, at most MAX_TOKENIZER_BYTES of them."""
    limit = MAX_TOKENIZER_BYTES
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size > limit:
                raise _over_budget(path, "is larger than")
            if f.peek(2)[:2] == _GZIP_MAGIC:
                return _gunzip_bounded(f, path, limit)
            data = f.read(limit + 1)  # a pipe or device reports no size: read is bounded too
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise VocabularyError(f"cannot read tokenizer file {path}: {e}") from e
    if len(data) > limit:
        raise _over_budget(path, "is larger than")
    return data


def _loads(raw: bytes | bytearray | str, source: str) -> dict:
    """Parse tokenizer JSON: an object with a `model`, else a VocabularyError naming the source."""
    try:
        spec = json.loads(raw)
    except RecursionError:  # the C parser stops cleanly at the recursion limit
        raise VocabularyError(f"cannot read tokenizer {source}: JSON nested too deeply") from None
    except ValueError as e:
        raise VocabularyError(f"cannot read tokenizer {source}: {e}") from e
    if not isinstance(spec, dict):
        raise VocabularyError(f"{source} is not a Hugging Face tokenizer.json: the top level is "
                              f"{_kind(spec)}, not an object")
    if "model" not in spec:
        raise VocabularyError(f"{source} is not a Hugging Face tokenizer.json (no 'model' key)")
    return spec


def _read_spec(path: Path) -> dict:
    """Parse a tokenizer.json, gzip-compressed or not, with a clear error for anything else."""
    return _loads(_read_bounded(path), f"file {path}")


# ----------------------------------------------------------------------------------------------
# transformers tokenizers
# ----------------------------------------------------------------------------------------------


def _as_id_tuple(ids: Any, name: str = "eos_ids") -> tuple[int, ...]:
    """An int, None or an iterable of ints as a tuple of ints; numpy integers count as ints.

    A string is refused rather than iterated ("34" is not ids 3 and 4), and so are floats and
    bools: an id is an integer, never a truncated number.
    """
    if ids is None:
        return ()
    single = _as_int(ids)
    if single is not None:
        return (single,)
    if isinstance(ids, (str, bytes, bytearray, memoryview)) or not isinstance(ids, Iterable):
        raise VocabularyError(f"{name}={_short(ids)}: pass an int or a list of ints")
    items = tuple(ids)
    if set(map(type, items)) <= {int}:  # the usual case, one C-level pass
        return items
    out = []
    for i in items:
        value = _as_int(i)
        if value is None:
            raise VocabularyError(f"{name}={_short(ids)}: {_short(i)} is not an integer id")
        out.append(value)
    return tuple(out)


def _parse_slow_tokenizer(tokenizer: Any) -> tuple[list[bytes | None], dict[str, int], set[int]]:
    """A slow (Python) transformers tokenizer: GPT-2 style `byte_decoder` or SentencePiece."""
    if hasattr(tokenizer, "byte_decoder"):
        decoding = _Decoding("byte_level")
    elif hasattr(tokenizer, "sp_model"):
        decoding = _Decoding("sentencepiece", "▁", True)
    else:
        raise VocabularyError(
            f"cannot read the vocabulary of {type(tokenizer).__name__}: pass a fast tokenizer, "
            f"a tokenizers.Tokenizer, or build one with Vocabulary.from_tokens"
        )
    vocab = tokenizer.get_vocab()
    _need(isinstance(vocab, dict), "get_vocab()", f"must return a dict, not {_kind(vocab)}")
    pieces = _dict_pieces(vocab, "get_vocab()")
    specials = set(getattr(tokenizer, "all_special_ids", ()))
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    specials |= {int(i) for i, tok in added.items() if getattr(tok, "special", False)}
    tokens: list[bytes | None] = [None] * _id_space(pieces, {}, "get_vocab()")
    names: dict[str, int] = {}
    for token_id, piece in pieces.items():
        if token_id in specials or (decoding.kind == "sentencepiece" and piece in _SPM_CONTROL):
            names.setdefault(piece, token_id)
        elif token_id in added:
            tokens[token_id] = str(added[token_id]).encode("utf-8") or None
        elif not _is_padding_placeholder(piece, token_id):
            tokens[token_id] = decoding(piece) or None
    return tokens, names, set(names.values())


# ----------------------------------------------------------------------------------------------
# Token trie
# ----------------------------------------------------------------------------------------------


class TokenTrie:
    """All spellable tokens as a byte trie in flat arrays, DFS preorder, children by byte.

    Node 0 is the root (the empty string). A kernel walking a constraint over the trie visits
    `i + 1` to descend and jumps to `skip[i]` to prune node i's whole subtree; the ids of the
    tokens spelled by the path to node i are `tok_ids[tok_start[i]:tok_start[i + 1]]`.

    byte:      uint8[n_nodes]      byte on the edge into the node (root: 0)
    depth:     int32[n_nodes]      length of the node's string (root: 0)
    skip:      int32[n_nodes]      first node after the node's subtree (root: n_nodes)
    tok_start: int32[n_nodes + 1]  offsets into tok_ids
    tok_ids:   int32[n_tokens]     token ids, grouped by node, increasing within a node
    """

    __slots__ = ("byte", "depth", "skip", "tok_start", "tok_ids", "max_depth")
    FIELDS = ("byte", "depth", "skip", "tok_start", "tok_ids")

    def __init__(self, byte: np.ndarray, depth: np.ndarray, skip: np.ndarray,
                 tok_start: np.ndarray, tok_ids: np.ndarray):
        self.byte = np.ascontiguousarray(byte, dtype=np.uint8)
        self.depth = np.ascontiguousarray(depth, dtype=np.int32)
        self.skip = np.ascontiguousarray(skip, dtype=np.int32)
        self.tok_start = np.ascontiguousarray(tok_start, dtype=np.int32)
        self.tok_ids = np.ascontiguousarray(tok_ids, dtype=np.int32)
        self._check_shapes()
        self.max_depth = int(self.depth.max())  # sizes the kernels' path stack

    def _check_shapes(self) -> None:
        """Reject arrays that do not fit together (a corrupt cache file, a bad caller)."""
        n = len(self.byte)
        if n < 1 or len(self.depth) != n or len(self.skip) != n or len(self.tok_start) != n + 1:
            raise ValueError("TokenTrie arrays have inconsistent lengths")
        if self.tok_start[0] != 0 or self.tok_start[-1] != len(self.tok_ids):
            raise ValueError("TokenTrie tok_start does not cover tok_ids")
        if self.skip[0] != n or self.depth[0] != 0:
            raise ValueError("TokenTrie root is malformed")

    @property
    def n_nodes(self) -> int:
        return len(self.byte)

    def __repr__(self) -> str:
        return f"TokenTrie(n_nodes={self.n_nodes:,}, n_tokens={len(self.tok_ids):,})"

    def tokens_at(self, node: int) -> np.ndarray:
        """Ids of the tokens whose bytes end exactly at `node`."""
        return self.tok_ids[self.tok_start[node]:self.tok_start[node + 1]]

    def child(self, node: int, byte: int) -> int:
        """The child of `node` along `byte`, or -1; a scan of the children (they are sorted)."""
        c, end = node + 1, int(self.skip[node])
        while c < end:
            b = int(self.byte[c])
            if b == byte:
                return c
            if b > byte:
                return -1
            c = int(self.skip[c])
        return -1

    def find(self, data: bytes) -> int:
        """The node spelling `data`, or -1 if no token starts with it."""
        node = 0
        for b in data:
            node = self.child(node, b)
            if node < 0:
                return -1
        return node

    @classmethod
    def build(cls, tokens: Sequence[bytes | None]) -> TokenTrie:
        """Build from id -> bytes: sort the strings, then one linear pass (duplicates add no node).

        In lexicographic order a string's trie nodes that are new are exactly those below its
        longest common prefix with the previous string, and emitting them in that order is
        the DFS preorder with children in increasing byte order.
        """
        ids = [i for i, data in enumerate(tokens) if data]
        ids.sort(key=tokens.__getitem__)  # stable: equal strings keep increasing ids
        strings = list(map(tokens.__getitem__, ids))
        lengths = np.fromiter(map(len, strings), dtype=np.int64, count=len(strings))
        layout = _layout(np.frombuffer(b"".join(strings), dtype=np.uint8), lengths)
        skip = _skip_index(layout.start.tolist(), layout.lcp.tolist(), layout.new.tolist(),
                           len(layout.byte))
        return cls(layout.byte, layout.depth, skip, layout.tok_start, np.array(ids, np.int32))


class _Layout(NamedTuple):
    """The trie arrays but `skip` for strings taken in a given order, and how they were made."""

    flat: np.ndarray  # the strings concatenated
    offsets: np.ndarray  # where each starts in flat
    lengths: np.ndarray
    lcp: np.ndarray  # common prefix with the previous string
    start: np.ndarray  # each string's first new node
    new: np.ndarray  # how many nodes it adds (0 for a duplicate)
    byte: np.ndarray
    depth: np.ndarray
    tok_start: np.ndarray


def _layout(flat: np.ndarray, lengths: np.ndarray) -> _Layout:
    """Lay out the trie of the strings concatenated in `flat`, in that order: numpy only.

    For sorted strings this is the trie; the cache check feeds it the file's order and compares.
    """
    offsets = _starts(lengths)
    lcp = _adjacent_lcp(flat, offsets, lengths)
    new = lengths - lcp  # 0 for a duplicate of the previous string
    start = np.ones(len(lengths), dtype=np.int64)
    np.cumsum(new[:-1], out=start[1:])
    start[1:] += 1
    n_nodes = 1 + int(new.sum())
    depth = np.zeros(n_nodes, dtype=np.int32)
    depth[1:] = np.arange(1, n_nodes) - np.repeat(start - lcp - 1, new)
    byte = np.zeros(n_nodes, dtype=np.uint8)
    byte[1:] = flat[np.repeat(offsets - 1, new) + depth[1:]]
    end_node = start + new - 1  # a duplicate ends where the previous string ends
    tok_start = np.zeros(n_nodes + 1, dtype=np.int32)
    np.cumsum(np.bincount(end_node, minlength=n_nodes), out=tok_start[1:])
    return _Layout(flat, offsets, lengths, lcp, start, new, byte, depth, tok_start)


def _starts(lengths: np.ndarray) -> np.ndarray:
    """Where each of consecutive strings of these lengths starts (an exclusive cumsum)."""
    starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    return starts


def _adjacent_lcp(flat: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Longest common prefix of each sorted string with the previous one (first: 0).

    Advances all pairs one byte at a time, dropping pairs that mismatched: total work is the
    sum of the prefixes, not pairs x longest token.
    """
    lcp = np.zeros(len(lengths), dtype=np.int64)
    if len(lengths) < 2:
        return lcp
    limit = np.minimum(lengths[1:], lengths[:-1])
    active = np.flatnonzero(limit > 0) + 1
    j = 0
    while len(active):
        same = flat[offsets[active] + j] == flat[offsets[active - 1] + j]
        active = active[same]
        j += 1
        lcp[active] = j
        active = active[limit[active - 1] > j]
    return lcp


def _skip_index(start: list[int], lcp: list[int], new: list[int], n_nodes: int) -> np.ndarray:
    """skip[i] = first node after i's subtree, from the path stack of the sorted strings.

    When string k arrives, the nodes of the previous path deeper than lcp[k] are complete:
    their subtrees end where string k's new nodes begin.
    """
    skip = [n_nodes] * n_nodes
    stack: list[int] = []  # stack[d - 1] = node at depth d on the current path
    for k, first in enumerate(start):
        closed = stack[lcp[k]:]
        for node in closed:
            skip[node] = first
        del stack[lcp[k]:]
        stack.extend(range(first, first + new[k]))
    return np.array(skip, dtype=np.int32)


# ----------------------------------------------------------------------------------------------
# Disk cache for tries
# ----------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Where tether caches derived data: `$TETHER_CACHE_DIR`, else `~/.cache/tether`."""
    env = os.environ.get("TETHER_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "tether"


_READ_ONLY = {errno.EACCES, errno.EPERM, errno.EROFS}


def _load_trie(path: Path, lengths: np.ndarray, joined: bytes) -> TokenTrie | None:
    """The cached trie of a vocabulary, or None when absent or not exactly what build returns.

    The file is untrusted: out-of-range ids would crash the mask kernel, a skip index that does
    not move forward would hang it, and permuted ids would silently change masks. So it is read
    with bounded sizes and exact dtypes, then checked value by value against the vocabulary
    (`_check_cached_trie`); any failure means rebuild. The vocabulary comes as `lengths[i]`,
    len(tokens[i]) or -1 for None, and `joined`, the tokens' bytes concatenated in id order.
    """
    if not path.is_file():
        return None
    try:
        arrays = _read_trie_file(path, lengths)
        _check_cached_trie(arrays, lengths, joined)
        return TokenTrie(**arrays)
    except Exception:  # any corruption: truncated zip, missing array, wrong values
        return None


# dtype of each cached array, exactly: a cast would wrap bytes and ids instead of refusing them.
_TRIE_DTYPES = {"byte": np.dtype(np.uint8), "depth": np.dtype(np.int32),
                "skip": np.dtype(np.int32), "tok_start": np.dtype(np.int32),
                "tok_ids": np.dtype(np.int32)}
_NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0}


def _read_trie_file(path: Path, lengths: np.ndarray) -> dict[str, np.ndarray]:
    """The five arrays of a trie file, sized for this vocabulary before anything is allocated.

    A trie has at most one node per token byte (plus the root) and one id per spellable token,
    which bounds every array and the file itself: no header can make this allocate terabytes.
    """
    spelled = lengths[lengths > 0]
    max_nodes = 1 + int(spelled.sum())
    bounds = {"byte": max_nodes, "depth": max_nodes, "skip": max_nodes,
              "tok_start": max_nodes + 1, "tok_ids": len(spelled)}
    if path.stat().st_size > 16 * (max_nodes + len(spelled)) + 2**16:
        raise ValueError("trie file larger than this vocabulary's trie can be")
    with zipfile.ZipFile(path) as zf:
        return {name: _read_npy(zf, name, _TRIE_DTYPES[name], bound)
                for name, bound in bounds.items()}


def _read_npy(zf: zipfile.ZipFile, name: str, dtype: np.dtype, max_len: int) -> np.ndarray:
    """One 1-D array of exactly `dtype` and at most max_len items from an npz, else ValueError."""
    with zf.open(f"{name}.npy") as fp:
        shape, _, stored = _NPY_HEADERS[np.lib.format.read_magic(fp)](fp)
        if stored != dtype or len(shape) != 1 or not 0 <= shape[0] <= max_len:
            raise ValueError(f"{name}: {stored} {shape}, expected {dtype} of at most {max_len}")
        size = shape[0] * dtype.itemsize
        data = fp.read(size)
        if len(data) != size:
            raise ValueError(f"{name}: truncated")
        return np.frombuffer(data, dtype=dtype).copy()  # writable, as the kernels' arrays are


def _check_cached_trie(arrays: dict[str, np.ndarray], lengths: np.ndarray, joined: bytes) -> None:
    """Raise ValueError unless the arrays are exactly what `TokenTrie.build` returns.

    build sorts the tokens and then lays the trie out; the file's tok_ids already are the
    sorted order, so checking needs no sort and no Python loop at all: tok_ids must be a
    permutation of the spellable ids in build's order, byte/depth/tok_start must equal the
    layout of that order, and skip must be the subtree ends of that depth sequence.
    """
    tok_ids = arrays["tok_ids"]
    if len(tok_ids) and (tok_ids.min() < 0 or tok_ids.max() >= len(lengths)):
        raise ValueError("token id out of range")
    if not np.array_equal(np.bincount(tok_ids, minlength=len(lengths)), lengths > 0):
        raise ValueError("tok_ids is not a permutation of the spellable ids")
    spelled = np.maximum(lengths, 0)
    order_lengths = spelled[tok_ids]
    # the tokens' bytes in the file's order, gathered from the id-ordered concatenation
    gather = np.repeat(_starts(spelled)[tok_ids] - _starts(order_lengths), order_lengths)
    gather += np.arange(len(gather))
    layout = _layout(np.frombuffer(joined, dtype=np.uint8)[gather], order_lengths)
    _check_order(layout, tok_ids)
    for name in ("byte", "depth", "tok_start"):
        if not np.array_equal(arrays[name], getattr(layout, name)):
            raise ValueError(f"{name} differs from the trie of the vocabulary")
    _check_skip(arrays["skip"], layout.depth)


def _check_order(layout: _Layout, ids: np.ndarray) -> None:
    """Raise unless the strings are in build's order: by bytes, equal strings by increasing id."""
    if len(ids) < 2:
        return
    lcp, prev, cur = layout.lcp[1:], layout.lengths[:-1], layout.lengths[1:]
    differ = lcp < np.minimum(prev, cur)  # neither string is a prefix of the other
    at = lcp[differ]
    if not (layout.flat[layout.offsets[:-1][differ] + at]
            < layout.flat[layout.offsets[1:][differ] + at]).all():
        raise ValueError("tokens out of order")
    prefix = ~differ  # then the previous string must be the shorter, or equal with a lower id
    shorter = prev[prefix] < cur[prefix]
    tie = (prev[prefix] == cur[prefix]) & (ids[:-1][prefix] < ids[1:][prefix])
    if not (shorter | tie).all():
        raise ValueError("tokens out of order")


def _check_skip(skip: np.ndarray, depth: np.ndarray) -> None:
    """Raise unless skip[i] is the first node after i's subtree, for a valid preorder `depth`.

    Every jump must move forward, stay in bounds and land at depth <= depth[i]: then skip[i] is
    at least the true end of i's subtree. Equality everywhere follows from one sum, since the
    subtree sizes add up to the sum of depths (node k lies in the subtrees of its depth[k]
    ancestors). Kernels then always make progress and never skip a live token.
    """
    n = len(depth)
    if len(skip) != n:
        raise ValueError("skip has the wrong length")
    index = np.arange(n)
    if not ((skip > index) & (skip <= n)).all():
        raise ValueError("skip does not move forward")
    inside = skip < n
    if not (depth[skip[inside]] <= depth[inside]).all():
        raise ValueError("skip lands inside the subtree")
    if int((skip - index - 1).sum()) != int(depth.sum(dtype=np.int64)):
        raise ValueError("skip jumps past nodes outside the subtree")


def _save_trie(trie: TokenTrie, path: Path) -> None:
    """Write atomically; a read-only cache location is not an error, other failures warn."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **{name: getattr(trie, name) for name in TokenTrie.FIELDS})
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as e:
        if e.errno not in _READ_ONLY:
            warnings.warn(f"tether could not cache the token trie at {path}: {e}", stacklevel=3)


# ----------------------------------------------------------------------------------------------
# Vocabulary
# ----------------------------------------------------------------------------------------------


class Vocabulary:
    """Token id -> bytes for one model, with its EOS ids and logits width.

        >>> vocab = Vocabulary.from_tokens([b"a", b"b", b"ab", None], eos_ids=[3])
        >>> vocab[2], vocab.decode([0, 2, 3]), vocab.size
        (b'ab', b'aab', 4)

    `size` is the logits width; ids past the tokenizer's own size are padding. Special tokens
    (EOS among them) and padding ids have no bytes (`vocab[i] is None`) and are never part of
    the trie, so no constraint can spell them.

    Bounds: a tokenizer file is read only up to MAX_TOKENIZER_BYTES (256 MiB of JSON after
    decompression, streamed, so memory holds at most that plus a 1 MiB chunk before parsing);
    ids, `size=` and token lists stop at MAX_VOCAB_IDS (2**22), and a file's largest id must
    stay below 2 x its entries + 1,024. Tokens must be bytes (or bytearray/memoryview) or None,
    ids and `size=` integers (numpy integers too, never bools, floats or strings). Every
    violation is a `VocabularyError` that names the value.
    """

    size: int
    eos_ids: tuple[int, ...]
    special_ids: frozenset[int]
    fingerprint: str

    def __init__(self, tokens: Sequence[bytes | None], *, eos_ids: Iterable[int] | int,
                 special_ids: Iterable[int] = (), size: int | None = None):
        base = len(tokens)
        _check_count(base, "tokens")
        size = _checked_size(size, base)
        eos = tuple(sorted(set(_as_id_tuple(eos_ids))))
        if not eos:
            raise VocabularyError(f"eos_ids={_short(eos_ids)}: a vocabulary needs at least one "
                                  f"EOS id (pass eos_ids=)")
        bad = [i for i in eos if not 0 <= i < size]
        if bad:
            raise VocabularyError(f"eos_ids={_short(eos_ids)}: {bad} out of range for a "
                                  f"vocabulary of size {size:,}")
        # Special ids outside [0, size) name no token here and are dropped, as they always were.
        specials = frozenset(_as_id_tuple(special_ids, "special_ids")) | frozenset(eos)
        toks = _as_token_bytes(tokens) + [None] * (size - base)
        for i in specials:
            if 0 <= i < size:
                toks[i] = None
        self._tokens = toks
        # what the fingerprint hashes, kept for the check of the cached trie
        self._lengths = _token_lengths(toks)
        self._joined = b"".join(t for t in toks if t is not None)
        self.size = size
        self.eos_ids = eos
        self.special_ids = frozenset(i for i in specials if 0 <= i < size)
        self.fingerprint = _fingerprint(self._lengths, self._joined, eos)

    # -- constructors ---------------------------------------------------------------------

    @classmethod
    def from_tokens(cls, tokens: Sequence[bytes | None], *, eos_ids: Iterable[int] | int,
                    size: int | None = None) -> Vocabulary:
        """A raw-bytes vocabulary (tiktoken-style, or a tiny test vocabulary).

        None entries and the EOS ids are special tokens. A tiktoken `Encoding` converts as
        `[enc.decode_single_token_bytes(i) ...]` with None for the ids it lacks.
        """
        _check_count(len(tokens), "tokens")
        specials = [i for i, t in enumerate(tokens) if t is None]
        return cls(tokens, eos_ids=eos_ids, special_ids=specials, size=size)

    @classmethod
    def from_file(cls, path: str | os.PathLike, *, eos_ids: Iterable[int] | int | None = None,
                  size: int | None = None) -> Vocabulary:
        """A Hugging Face tokenizer.json (or .json.gz); EOS detected by name unless given.

        Untrusted files are fine: see the class docstring for the bounds they get.
        """
        path = Path(path)
        spec = _read_spec(path)
        return cls._from_spec(spec, eos_ids=eos_ids, size=size, source=str(path))

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, *, eos_ids: Iterable[int] | int | None = None,
                       size: int | None = None) -> Vocabulary:
        """A `tokenizers.Tokenizer` or a transformers tokenizer (fast, or slow GPT-2/SentencePiece)."""
        source = repr(tokenizer)[:60]
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None and hasattr(tokenizer, "to_str") and hasattr(tokenizer, "get_vocab"):
            spec = _loads(tokenizer.to_str(), source)
            return cls._from_spec(spec, eos_ids=eos_ids, size=size, source=source)
        if backend is not None:
            tokens, names, specials = _parse_source(_loads(backend.to_str(), source), source)
        else:
            tokens, names, specials = _parse_slow_tokenizer(tokenizer)
        if eos_ids is None:
            eos_ids = _as_id_tuple(getattr(tokenizer, "eos_token_id", None))
            eos_ids += _eos_from_names(names)
            if not eos_ids:
                raise VocabularyError(
                    f"cannot tell the EOS token of {type(tokenizer).__name__}: pass eos_ids="
                )
        length = len(tokenizer) if hasattr(tokenizer, "__len__") else 0
        _check_count(length, "len(tokenizer)")
        width = max(len(tokens), length)
        tokens = tokens + [None] * (width - len(tokens))
        return cls._checked(tokens, eos_ids, specials, size)

    @classmethod
    def _from_spec(cls, spec: dict, *, eos_ids: Iterable[int] | int | None, size: int | None,
                   source: str) -> Vocabulary:
        """Shared path of from_file and from_tokenizer(tokenizers.Tokenizer)."""
        tokens, names, specials = _parse_source(spec, source)
        if eos_ids is None:
            eos_ids = _eos_from_names(names)
            if not eos_ids:
                raise VocabularyError(
                    f"cannot tell the EOS token of {source}: none of its special tokens has a "
                    f"well-known end-of-sequence name; pass eos_ids="
                )
        return cls._checked(tokens, eos_ids, specials, size)

    @classmethod
    def _checked(cls, tokens: list[bytes | None], eos_ids: Iterable[int] | int,
                 specials: set[int], size: int | None) -> Vocabulary:
        """Validate user overrides with messages that name the tokenizer's own numbers."""
        eos = _as_id_tuple(eos_ids)
        width = _checked_size(size, len(tokens))
        bad = [i for i in eos if not 0 <= i < width]
        if bad:
            raise VocabularyError(
                f"eos_ids={_short(eos_ids)}: {bad} out of range: the tokenizer has "
                f"{len(tokens):,} ids" + (f" and size={size:,}" if size is not None else "")
            )
        return cls(tokens, eos_ids=eos, special_ids=specials, size=size)

    # -- access ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, token_id: int) -> bytes | None:
        """The token's bytes; None for special and padding ids."""
        i = int(token_id)
        if not 0 <= i < self.size:
            raise IndexError(f"token id {i} out of range for a vocabulary of size {self.size:,}")
        return self._tokens[i]

    def __iter__(self) -> Iterator[bytes | None]:
        return iter(self._tokens)

    def __repr__(self) -> str:
        return f"Vocabulary(size={self.size:,}, eos_ids={self.eos_ids}, fingerprint={self.fingerprint[:12]})"

    def decode(self, ids: Iterable[int]) -> bytes:
        """The bytes a sequence of ids spells; special and padding ids spell nothing."""
        return b"".join(self[i] or b"" for i in ids)

    def encode_greedy(self, text: str | bytes) -> list[int]:
        """Longest-match tokenization through the trie (lowest id among equal strings).

        Not the model's tokenizer: a witness that the vocabulary can spell `text`, which is
        what completeness checks need.
        """
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        trie, out, pos = self.trie, [], 0
        while pos < len(data):
            node, best, best_end = 0, -1, pos
            for end in range(pos, len(data)):
                node = trie.child(node, data[end])
                if node < 0:
                    break
                if trie.tok_start[node] < trie.tok_start[node + 1]:
                    best, best_end = int(trie.tok_ids[trie.tok_start[node]]), end + 1
            if best < 0:
                raise VocabularyError(
                    f"no token spells byte {data[pos]:#04x} at offset {pos} of {data[:40]!r}"
                )
            out.append(best)
            pos = best_end
        return out

    @functools.cached_property
    def trie(self) -> TokenTrie:
        """The token trie, built once per vocabulary and cached on disk by fingerprint.

        The cache file is used only if it is exactly the trie build would return (it is
        checked, not trusted); otherwise the trie is rebuilt and the file rewritten.
        """
        path = cache_dir() / f"trie-{self.fingerprint}.npz"
        trie = _load_trie(path, self._lengths, self._joined)
        if trie is None:
            trie = TokenTrie.build(self._tokens)
            _save_trie(trie, path)
        return trie


def _checked_size(size: Any, base: int) -> int:
    """`size=` as an int: None means the tokenizer's own width; never below it or past the bound."""
    if size is None:
        return base
    value = _as_int(size)
    if value is None:
        raise VocabularyError(f"size={_short(size)} is not an integer")
    if value < base:
        raise VocabularyError(
            f"size={_figure(value, ',')} is smaller than the tokenizer's {base:,} token ids; "
            f"the logits width must cover every id the tokenizer can produce"
        )
    if value > MAX_VOCAB_IDS:
        raise VocabularyError(
            f"size={_figure(value, ',')} is beyond MAX_VOCAB_IDS = {MAX_VOCAB_IDS:,}")
    return value


def _as_token_bytes(tokens: Sequence[Any]) -> list[bytes | None]:
    """The tokens as bytes, None for no bytes (empty counts as none); anything else is refused.

    bytes(5) would be five zero bytes and bytes(10**12) a terabyte, so ints never get there.
    """
    if set(map(type, tokens)) <= {bytes, type(None)}:  # the usual case: one C-level pass
        return [t or None for t in tokens]
    out: list[bytes | None] = []
    for i, t in enumerate(tokens):
        if t is not None and not isinstance(t, (bytes, bytearray, memoryview)):
            raise VocabularyError(f"token {i} is {_short(t)} ({type(t).__name__}), not bytes "
                                  f"or None")
        out.append(bytes(t) or None if t is not None else None)
    return out


def _token_lengths(tokens: list[bytes | None]) -> np.ndarray:
    """len of each token, -1 for None (the fingerprint hashes it with the bytes)."""
    return np.fromiter((len(t) if t is not None else -1 for t in tokens), dtype="<i8",
                       count=len(tokens))


def _fingerprint(lengths: np.ndarray, joined: bytes, eos: tuple[int, ...]) -> str:
    """A stable hash of (size, tokens, eos): length-prefixed bytes, -1 for no bytes."""
    h = hashlib.sha256(b"tether-vocab-v1")
    h.update(np.int64(len(lengths)).tobytes())
    h.update(np.asarray(eos, dtype="<i8").tobytes())
    h.update(lengths.tobytes())
    h.update(joined)
    return h.hexdigest()[:32]
