"""Vocabularies as byte strings, and the token trie that mask kernels walk.

Constraints speak bytes, models speak token ids; a `Vocabulary` is the bridge. Every token id
maps to the exact bytes it spells, or to None for special/control tokens and for padding ids
(ids the model's logits have but the tokenizer never produces). A `TokenTrie` stores all
spellable tokens as flat numpy arrays in DFS order, so a kernel can prune a whole subtree of
tokens at the first byte a constraint rejects.

    >>> vocab = Vocabulary.from_file("tokenizer.json.gz")
    >>> vocab[15339], vocab.eos_ids
    (b'hello', (128001, 128009))
"""

from __future__ import annotations

import errno
import functools
import gzip
import hashlib
import json
import os
import re
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tether.errors import VocabularyError

__all__ = ["Vocabulary", "TokenTrie"]

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
_PAD_PLACEHOLDER = re.compile(r"\[PAD(\d+)\]")
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


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


def _components(node: dict | None, key: str) -> list[dict]:
    """A tokenizer.json component flattened: a `Sequence` becomes its parts."""
    if not node:
        return []
    if node.get("type") == "Sequence":
        return [part for child in node.get(key, []) for part in _components(child, key)]
    return [node]


_KNOWN_DECODERS = {"ByteLevel", "Metaspace", "Replace", "ByteFallback", "Fuse", "Strip"}


def _detect_decoding(spec: dict) -> _Decoding:
    """Read the decoding rule from tokenizer.json's decoder, pre-tokenizer and model."""
    decoders = _components(spec.get("decoder"), "decoders")
    pretoks = _components(spec.get("pre_tokenizer"), "pretokenizers")
    types = {d.get("type") for d in decoders}
    unknown = types - _KNOWN_DECODERS
    if unknown:
        raise VocabularyError(
            f"unsupported tokenizer decoder {sorted(unknown)}: tether reads byte-level BPE, "
            f"SentencePiece and raw-bytes vocabularies; build one with Vocabulary.from_tokens"
        )
    if "ByteLevel" in types or any(p.get("type") == "ByteLevel" for p in pretoks):
        return _Decoding("byte_level")
    model = spec.get("model") or {}
    byte_fallback = bool(model.get("byte_fallback")) or "ByteFallback" in types
    for part in decoders + pretoks:
        if part.get("type") == "Metaspace":
            return _Decoding("sentencepiece", part.get("replacement", "▁"), byte_fallback)
    replaces_space = any(
        d.get("type") == "Replace" and d.get("content") == " " for d in decoders
    )
    if replaces_space or byte_fallback:
        space = next(
            (d["pattern"].get("String", "▁") for d in decoders
             if d.get("type") == "Replace" and d.get("content") == " "),
            "▁",
        )
        return _Decoding("sentencepiece", space, byte_fallback)
    return _Decoding("text")


# ----------------------------------------------------------------------------------------------
# tokenizer.json -> (tokens, specials)
# ----------------------------------------------------------------------------------------------


def _model_pieces(model: dict) -> dict[int, str]:
    """id -> piece for a tokenizer.json model (dict vocab for BPE/WordLevel, list for Unigram)."""
    vocab = model.get("vocab")
    if isinstance(vocab, dict):
        return {int(i): piece for piece, i in vocab.items()}
    if isinstance(vocab, list):
        return {i: entry[0] for i, entry in enumerate(vocab)}
    raise VocabularyError(f"tokenizer.json model of type {model.get('type')!r} has no vocab")


def _is_padding_placeholder(piece: str, token_id: int) -> bool:
    """`[PAD123]` at id 123: an unused row that llama.cpp's conversion filled in."""
    match = _PAD_PLACEHOLDER.fullmatch(piece)
    return bool(match) and int(match.group(1)) == token_id


def _parse_spec(spec: dict) -> tuple[list[bytes | None], dict[str, int], set[int]]:
    """tokens (None = no bytes), special name -> id, and the special ids of a tokenizer.json."""
    decoding = _detect_decoding(spec)
    pieces = _model_pieces(spec.get("model") or {})
    added = {int(a["id"]): a for a in spec.get("added_tokens") or []}
    n = 1 + max(list(pieces) + list(added), default=-1)
    tokens: list[bytes | None] = [None] * n
    special_names: dict[str, int] = {}
    for token_id, piece in pieces.items():
        if _is_padding_placeholder(piece, token_id):
            continue
        if decoding.kind == "sentencepiece" and piece in _SPM_CONTROL:
            special_names.setdefault(piece, token_id)
            continue
        tokens[token_id] = decoding(piece) or None
    for token_id, entry in added.items():
        content = entry["content"]
        spm_control = decoding.kind == "sentencepiece" and content in _SPM_CONTROL
        if entry.get("special") or spm_control:
            special_names.setdefault(content, token_id)
            tokens[token_id] = None
        elif _is_padding_placeholder(content, token_id):
            tokens[token_id] = None
        else:
            tokens[token_id] = content.encode("utf-8") or None
    return tokens, special_names, set(special_names.values())


def _eos_from_names(special_names: dict[str, int]) -> tuple[int, ...]:
    """Ids of the well-known end-of-sequence/turn special tokens present in the vocabulary."""
    return tuple(sorted({special_names[name] for name in EOS_NAMES if name in special_names}))


def _read_spec(path: Path) -> dict:
    """Parse a tokenizer.json, gzip-compressed or not, with a clear error for anything else."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        spec = json.loads(raw)
    except (OSError, ValueError, EOFError) as e:
        raise VocabularyError(f"cannot read tokenizer file {path}: {e}") from e
    if not isinstance(spec, dict) or "model" not in spec:
        raise VocabularyError(f"{path} is not a Hugging Face tokenizer.json (no 'model' key)")
    return spec


# ----------------------------------------------------------------------------------------------
# transformers tokenizers
# ----------------------------------------------------------------------------------------------


def _as_id_tuple(ids: Any) -> tuple[int, ...]:
    """An int, None or an iterable of ints as a tuple of ints."""
    if ids is None:
        return ()
    if isinstance(ids, (int, np.integer)):
        return (int(ids),)
    return tuple(int(i) for i in ids)


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
    specials = set(getattr(tokenizer, "all_special_ids", ()))
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    specials |= {int(i) for i, tok in added.items() if getattr(tok, "special", False)}
    n = 1 + max(vocab.values(), default=-1)
    tokens: list[bytes | None] = [None] * n
    names: dict[str, int] = {}
    for piece, token_id in vocab.items():
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
        offsets = np.zeros(len(strings), dtype=np.int64)
        np.cumsum(lengths[:-1], out=offsets[1:])
        flat = np.frombuffer(b"".join(strings), dtype=np.uint8)
        lcp = _adjacent_lcp(flat, offsets, lengths)
        new = lengths - lcp  # 0 for a duplicate of the previous string
        start = np.ones(len(strings), dtype=np.int64)
        np.cumsum(new[:-1], out=start[1:])
        start[1:] += 1
        n_nodes = 1 + int(new.sum())
        depth = np.zeros(n_nodes, dtype=np.int32)
        depth[1:] = np.arange(1, n_nodes) - np.repeat(start - lcp - 1, new)
        byte = np.zeros(n_nodes, dtype=np.uint8)
        byte[1:] = flat[np.repeat(offsets - 1, new) + depth[1:]]
        skip = _skip_index(start.tolist(), lcp.tolist(), new.tolist(), n_nodes)
        end_node = start + new - 1  # a duplicate ends where the previous string ends
        tok_start = np.zeros(n_nodes + 1, dtype=np.int32)
        np.cumsum(np.bincount(end_node, minlength=n_nodes), out=tok_start[1:])
        tok_ids = np.array(ids, dtype=np.int32)
        return cls(byte, depth, skip, tok_start, tok_ids)


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


def _load_trie(path: Path) -> TokenTrie | None:
    """A cached trie, or None when absent or unreadable (a corrupt file is rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return TokenTrie(*(data[name] for name in TokenTrie.FIELDS))
    except Exception:  # any corruption: truncated zip, missing array, bad shapes
        return None


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
    """

    size: int
    eos_ids: tuple[int, ...]
    special_ids: frozenset[int]
    fingerprint: str

    def __init__(self, tokens: Sequence[bytes | None], *, eos_ids: Iterable[int] | int,
                 special_ids: Iterable[int] = (), size: int | None = None):
        base = len(tokens)
        if size is None:
            size = base
        if size < base:
            raise VocabularyError(
                f"size={size:,} is smaller than the tokenizer's {base:,} token ids; the logits "
                f"width must cover every id the tokenizer can produce"
            )
        eos = tuple(sorted(set(_as_id_tuple(eos_ids))))
        if not eos:
            raise VocabularyError("a vocabulary needs at least one EOS id (pass eos_ids=)")
        bad = [i for i in eos if not 0 <= i < size]
        if bad:
            raise VocabularyError(f"eos_ids {bad} out of range for a vocabulary of size {size:,}")
        specials = frozenset(int(i) for i in special_ids) | frozenset(eos)
        toks = [bytes(t) if t else None for t in tokens] + [None] * (size - base)
        for i in specials:
            if 0 <= i < size:
                toks[i] = None
        self._tokens = toks
        self.size = size
        self.eos_ids = eos
        self.special_ids = frozenset(i for i in specials if 0 <= i < size)
        self.fingerprint = _fingerprint(toks, eos)

    # -- constructors ---------------------------------------------------------------------

    @classmethod
    def from_tokens(cls, tokens: Sequence[bytes | None], *, eos_ids: Iterable[int] | int,
                    size: int | None = None) -> Vocabulary:
        """A raw-bytes vocabulary (tiktoken-style, or a tiny test vocabulary).

        None entries and the EOS ids are special tokens. A tiktoken `Encoding` converts as
        `[enc.decode_single_token_bytes(i) ...]` with None for the ids it lacks.
        """
        specials = [i for i, t in enumerate(tokens) if t is None]
        return cls(tokens, eos_ids=eos_ids, special_ids=specials, size=size)

    @classmethod
    def from_file(cls, path: str | os.PathLike, *, eos_ids: Iterable[int] | int | None = None,
                  size: int | None = None) -> Vocabulary:
        """A Hugging Face tokenizer.json (or .json.gz); EOS detected by name unless given."""
        path = Path(path)
        spec = _read_spec(path)
        return cls._from_spec(spec, eos_ids=eos_ids, size=size, source=str(path))

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, *, eos_ids: Iterable[int] | int | None = None,
                       size: int | None = None) -> Vocabulary:
        """A `tokenizers.Tokenizer` or a transformers tokenizer (fast, or slow GPT-2/SentencePiece)."""
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None and hasattr(tokenizer, "to_str") and hasattr(tokenizer, "get_vocab"):
            spec = json.loads(tokenizer.to_str())
            return cls._from_spec(spec, eos_ids=eos_ids, size=size, source=repr(tokenizer)[:60])
        if backend is not None:
            tokens, names, specials = _parse_spec(json.loads(backend.to_str()))
        else:
            tokens, names, specials = _parse_slow_tokenizer(tokenizer)
        if eos_ids is None:
            eos_ids = _as_id_tuple(getattr(tokenizer, "eos_token_id", None))
            eos_ids += _eos_from_names(names)
            if not eos_ids:
                raise VocabularyError(
                    f"cannot tell the EOS token of {type(tokenizer).__name__}: pass eos_ids="
                )
        width = max(len(tokens), len(tokenizer) if hasattr(tokenizer, "__len__") else 0)
        tokens = tokens + [None] * (width - len(tokens))
        return cls._checked(tokens, eos_ids, specials, size)

    @classmethod
    def _from_spec(cls, spec: dict, *, eos_ids: Iterable[int] | int | None, size: int | None,
                   source: str) -> Vocabulary:
        """Shared path of from_file and from_tokenizer(tokenizers.Tokenizer)."""
        tokens, names, specials = _parse_spec(spec)
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
        width = len(tokens) if size is None else size
        bad = [i for i in eos if not 0 <= i < width]
        if bad:
            raise VocabularyError(
                f"eos_ids {bad} out of range: the tokenizer has {len(tokens):,} ids"
                + (f" and size={size:,}" if size is not None else "")
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
        """The token trie, built once per vocabulary and cached on disk by fingerprint."""
        path = cache_dir() / f"trie-{self.fingerprint}.npz"
        trie = _load_trie(path)
        if trie is None or len(trie.tok_ids) != sum(t is not None for t in self._tokens):
            trie = TokenTrie.build(self._tokens)
            _save_trie(trie, path)
        return trie


def _fingerprint(tokens: list[bytes | None], eos: tuple[int, ...]) -> str:
    """A stable hash of (size, tokens, eos): length-prefixed bytes, -1 for no bytes."""
    h = hashlib.sha256(b"tether-vocab-v1")
    lengths = np.fromiter((len(t) if t is not None else -1 for t in tokens), dtype="<i8",
                          count=len(tokens))
    h.update(np.int64(len(tokens)).tobytes())
    h.update(np.asarray(eos, dtype="<i8").tobytes())
    h.update(lengths.tobytes())
    h.update(b"".join(t for t in tokens if t is not None))
    return h.hexdigest()[:32]
