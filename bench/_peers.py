"""The peer engines behind one small face, shared by the benches in this folder.

``Engine``: ``compile(pattern) -> compiled``, ``start(compiled) -> cursor``, ``restart``,
``fill(cursor, row)`` (a packed int32 bitmask row of ceil(V / 32) words), ``consume(cursor, token)``.
Wrappers for tether, outlines-core (``Index``/``Guide``), llguidance (``grammar_from_regex`` +
``LLMatcher``) and xgrammar (``compile_regex``, one thread, cache off), all on one tether
``Vocabulary``. Importing this module first pins every thread pool to one thread; the benches are
run as ``python bench/<script>.py`` so that this folder is on ``sys.path``.
"""

from __future__ import annotations

import os

# One thread everywhere, set before any engine is imported (rayon: outlines-core / llguidance).
for _var in ("RAYON_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
             "OPENBLAS_NUM_THREADS", "TOKENIZERS_PARALLELISM"):
    os.environ.setdefault(_var, "false" if _var == "TOKENIZERS_PARALLELISM" else "1")

import gzip
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

import tether

REPO = Path(__file__).resolve().parent.parent
TOKENIZER = REPO.parent / "shared" / "data" / "tokenizers" / "llama-bpe" / "tokenizer.json.gz"

perf = time.perf_counter_ns


def read_tokenizer_json(path: Path = TOKENIZER) -> str:
    """The Llama-3 tokenizer.json text (llguidance and xgrammar build their vocabularies from it)."""
    if not path.exists():
        raise SystemExit(f"missing Llama-3 tokenizer: expected {path} (the shared data folder next "
                         f"to the repository: ../shared/data/tokenizers/llama-bpe/tokenizer.json.gz)")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return f.read()


class Engine:
    """compile(pattern) -> compiled; start(compiled) -> cursor; fill/consume on the cursor."""

    name = ""
    version = ""
    eos_ids: tuple[int, ...] = ()  # the EOS ids this engine was told about

    def compile(self, pattern: str) -> Any: ...

    _ptrs: dict[int, tuple[np.ndarray, int]]

    def ptr(self, row: np.ndarray) -> int:
        """The row's address, looked up once: `row.ctypes.data` costs ~3 µs a call, more than a
        peer's whole mask fill, and is bench overhead, not the engine's."""
        try:
            cache = self._ptrs
        except AttributeError:
            cache = self._ptrs = {}
        got = cache.get(id(row))
        if got is None or got[0] is not row:
            got = cache[id(row)] = (row, row.ctypes.data)
        return got[1]

    def start(self, compiled: Any) -> Any: ...
    def restart(self, cursor: Any) -> Any: return cursor
    def fill(self, cursor: Any, row: np.ndarray) -> None: ...
    def consume(self, cursor: Any, token: int) -> Any: ...  # returns the (new) cursor


class Null(Engine):
    """Does nothing: times the harness itself (timer calls, the Engine indirection)."""

    name = "null"

    def start(self, compiled):
        return compiled

    def fill(self, cur, row):
        pass

    def consume(self, cur, token):
        return cur



class Tether(Engine):
    name = "tether"

    def __init__(self, vocab: tether.Vocabulary):
        self.vocab = vocab
        self.version = tether.__version__
        self.eos_ids = tuple(vocab.eos_ids)

    def compile(self, pattern):
        return tether.regex(pattern).compile(self.vocab)

    # the cursor is (constraint, state): tether states are plain values
    def start(self, c):
        return [c, c.initial()]

    def restart(self, cur):
        cur[1] = cur[0].initial()
        return cur

    def fill(self, cur, row):
        cur[0].fill_bitmask(cur[1], row)

    def consume(self, cur, token):
        cur[1] = cur[0].advance(cur[1], token)
        return cur


class OutlinesCore(Engine):
    name = "outlines-core"

    def __init__(self, vocab: tether.Vocabulary):
        import outlines_core
        from outlines_core import Guide, Index, Vocabulary

        self.version = getattr(outlines_core, "__version__", "")
        self._Guide, self._Index = Guide, Index
        eos = vocab.eos_ids[0]
        table: dict[bytes, list[int]] = {}
        for i in range(vocab.size):
            b = vocab[i]
            if b is not None:
                table.setdefault(b, []).append(i)
        self.vocab = Vocabulary(eos, table)
        self.eos_ids = (eos,)
        self.words = (vocab.size + 31) // 32

    def compile(self, pattern):
        return self._Index(pattern, self.vocab)

    def start(self, index):
        return self._Guide(index)

    def restart(self, g):
        g.reset()
        return g

    def fill(self, g, row):
        g.write_mask_into(self.ptr(row), self.words, 4)

    def consume(self, g, token):
        g.advance(token, return_tokens=False)
        return g


class LLGuidance(Engine):
    name = "llguidance"

    def __init__(self, vocab: tether.Vocabulary, tokenizer_json: str):
        import llguidance

        self.version = getattr(llguidance, "__version__", "")
        self._llg = llguidance
        eos = vocab.eos_ids[0]
        self.tok = llguidance.LLTokenizer(tokenizer_json, n_vocab=vocab.size, eos_token=eos)
        self.eos_ids = (eos,)
        self.nbytes = 4 * ((vocab.size + 31) // 32)

    def compile(self, pattern):
        grm = self._llg.LLMatcher.grammar_from_regex(pattern)
        m = self._llg.LLMatcher(self.tok, grm, log_level=0)
        if m.is_error():
            raise RuntimeError(m.get_error())
        return m

    def start(self, m):  # the matcher is the compiled object; paths reset it
        return m

    def restart(self, m):
        m.reset()
        return m

    def fill(self, m, row):
        m.unsafe_compute_mask_ptr(self.ptr(row), self.nbytes)

    def consume(self, m, token):
        if not m.consume_token(token) or m.is_error():
            raise RuntimeError(f"llguidance rejected token {token}: {m.get_error()}")
        return m


class XGrammar(Engine):
    name = "xgrammar"

    def __init__(self, vocab: tether.Vocabulary, tokenizer_json: str):
        import tokenizers
        import torch
        import xgrammar
        from transformers import PreTrainedTokenizerFast

        torch.set_num_threads(1)
        self.version = getattr(xgrammar, "__version__", "")
        self._xg = xgrammar
        hf = PreTrainedTokenizerFast(tokenizer_object=tokenizers.Tokenizer.from_str(tokenizer_json),
                                     eos_token="<|end_of_text|>")
        self.eos_ids = tuple(vocab.eos_ids)
        info = xgrammar.TokenizerInfo.from_huggingface(hf, vocab_size=vocab.size,
                                                       stop_token_ids=list(self.eos_ids))
        self.compiler = xgrammar.GrammarCompiler(info, max_threads=1, cache_enabled=False)
        self.bm = xgrammar.allocate_token_bitmask(1, vocab.size)
        self.bm_np = self.bm.numpy()[0]  # shares memory with the torch tensor

    def compile(self, pattern):
        return self.compiler.compile_regex(pattern)

    def start(self, cg):
        return self._xg.GrammarMatcher(cg)

    def restart(self, m):
        m.reset()
        return m

    def fill(self, m, row):
        # xgrammar writes into a torch tensor; the bench hands it the tensor's own numpy view
        m.fill_next_token_bitmask(self.bm)

    def row_for(self, row):
        return self.bm_np

    def consume(self, m, token):
        if not m.accept_token(token):
            raise RuntimeError(f"xgrammar rejected token {token}")
        return m


MAKERS: dict[str, Callable[[tether.Vocabulary, str], Engine]] = {
    "tether": lambda vocab, tokenizer_json: Tether(vocab),
    "outlines-core": lambda vocab, tokenizer_json: OutlinesCore(vocab),
    "llguidance": lambda vocab, tokenizer_json: LLGuidance(vocab, tokenizer_json),
    "xgrammar": lambda vocab, tokenizer_json: XGrammar(vocab, tokenizer_json),
}


def make_engine(name: str, vocab: tether.Vocabulary, tokenizer_json: str) -> Engine:
    """One engine on the given vocabulary; raises (ImportError and the like) when it is unavailable."""
    return MAKERS[name](vocab, tokenizer_json)


def row_view(eng: Engine, row: np.ndarray) -> np.ndarray:
    """Where ``eng.fill`` really wrote the mask (xgrammar writes into its own tensor)."""
    return eng.row_for(row) if hasattr(eng, "row_for") else row
