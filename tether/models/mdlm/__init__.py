"""tether's own small masked diffusion LM (MDLM), shipped with the package, and how it was made.

    >>> lm = tether.models.mdlm.default()          # loaded once per process, offline
    >>> x = torch.tensor([lm.prompt_ids('{"id":') + [lm.mask_id] * 12])
    >>> lm.logprobs(x).shape
    torch.Size([1, 15, 4096])

A ~6M-parameter bidirectional transformer trained on CPU in about 20 minutes with the MDLM
objective (Sahoo et al. 2024) on compact JSON instances, Spider SQL and short English
descriptions; `weights/record.json` says exactly how. It is small: it knows the shape of JSON
and SQL, not the world. It exists so that the diffusion samplers have a real model to run
everywhere, with no download.

Modules: `model` (network and objective), `corpus` (training data), `tokenizer`, `data`
(rows and buckets), `train` (the training CLI), `lm` (the adapter), `sample` (a plain
unconstrained sampler, to measure the model).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .lm import MDLM

__all__ = ["default", "load", "weights_dir", "MDLM"]

_lock = threading.Lock()
_model: "MDLM | None" = None


def weights_dir() -> Path:
    """The folder of the shipped weights (package data)."""
    return Path(__file__).resolve().parent / "weights"


def default() -> "MDLM":
    """The shipped MDLM as a `MaskedDiffusionLM`, loaded once per process (thread-safe, offline).

    Later calls return the same object. A FileNotFoundError names the missing file if the
    package was installed without its weights.
    """
    global _model
    if _model is not None:
        return _model
    with _lock:
        if _model is None:
            _model = load(weights_dir())
    return _model


def load(folder: "str | Path") -> "MDLM":
    """An MDLM written by `python -m tether.models.mdlm.train --out folder`."""
    from .lm import MDLM

    return MDLM.load(folder)


def __getattr__(name: str) -> Any:
    if name == "MDLM":  # torch loads only when the adapter is asked for
        from .lm import MDLM

        return MDLM
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
