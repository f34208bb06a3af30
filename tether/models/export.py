"""A GGUF model as a Hugging Face safetensors folder, for engines that do not read GGUF (vLLM).

    >>> folder = tether.models.safetensors_folder()          # the embedded SmolLM2, converted once
    >>> LLM(model=str(folder), dtype="bfloat16")

The folder is cached on disk under `cache_dir` (default `safetensors/` in tether's cache,
`$TETHER_CACHE_DIR` or `~/.cache/tether`), keyed by the GGUF file's name, size and modification time, and written
to a temporary folder first, so an interrupted conversion never leaves a half folder behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["safetensors_folder"]

_FORMAT = 2  # bumped when the folder's layout changes, so stale conversions are not reused


def safetensors_folder(gguf: "str | os.PathLike | None" = None, *, cache_dir: "str | os.PathLike | None" = None,
                       dtype: str = "float32", progress: bool = True) -> Path:
    """The folder (config, safetensors weights, tokenizer) of a GGUF model, converted on first use.

    gguf: a GGUF file; by default the embedded SmolLM2-135M-Instruct. dtype: the weights'
    type in the folder ("float32", the dequantised GGUF exactly; "bfloat16" or "float16"
    halve the disk). Offline: nothing is fetched.
    """
    from .._optional import require
    from ..vocab import cache_dir as tether_cache_dir
    from .default import default_model_path, load

    path = Path(gguf) if gguf is not None else default_model_path()
    if not path.is_file():
        raise FileNotFoundError(f"no GGUF file at {path}")
    if dtype not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"dtype must be 'float32', 'bfloat16' or 'float16', got {dtype!r}")
    stat = path.stat()
    tag = hashlib.sha256(f"{_FORMAT}|{path.name}|{stat.st_size}|{stat.st_mtime_ns}|{dtype}".encode()).hexdigest()[:16]
    root = Path(cache_dir) if cache_dir is not None else tether_cache_dir() / "safetensors"
    folder = root / f"{path.stem}-{tag}"
    if (folder / "config.json").is_file():
        return folder
    torch = require("torch", "tether.models.safetensors_folder")
    lm = load(path, progress=progress)
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=root))
    try:
        model = lm.model.to(getattr(torch, dtype))
        # transformers refuses save_pretrained on a model read from GGUF (it counts as quantised),
        # so the folder is written by hand: the config without the quantisation entry, the
        # generation config, the weights, the tokenizer. Tied output embeddings are stored once,
        # under the input embedding's name, which is the one loaders (vLLM's too) read.
        config = model.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.torch_dtype = dtype
        config.save_pretrained(scratch)
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(scratch)
        state = model.state_dict()
        if getattr(config, "tie_word_embeddings", False):
            state.pop("lm_head.weight", None)
        safetensors = require("safetensors.torch", "tether.models.safetensors_folder")
        safetensors.save_file({k: v.contiguous() for k, v in state.items()}, str(scratch / "model.safetensors"),
                              metadata={"format": "pt"})
        lm.tokenizer.save_pretrained(scratch)
        try:
            os.rename(scratch, folder)
        except OSError:  # another process finished first
            if not (folder / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return folder
