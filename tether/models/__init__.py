"""Model adapters: the `CausalLM` / `MaskedDiffusionLM` protocols and their implementations.

`TransformersLM` and `default` load transformers lazily: importing `tether.models`
does not import transformers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import CausalLM, MaskedDiffusionLM, ModelStats
from .default import default, load  # light: import transformers only when called
from .export import safetensors_folder

if TYPE_CHECKING:
    from .transformers import TransformersLM

__all__ = ["CausalLM", "MaskedDiffusionLM", "ModelStats", "TransformersLM", "TransformersMaskedLM", "default", "load", "mdlm", "safetensors_folder", "LlamaCppLM"]


def __getattr__(name: str) -> Any:
    if name == "TransformersLM":
        from .transformers import TransformersLM

        return TransformersLM
    if name == "TransformersMaskedLM":
        from .masked import TransformersMaskedLM

        return TransformersMaskedLM
    if name == "LlamaCppLM":
        from .llamacpp import LlamaCppLM

        return LlamaCppLM
    if name == "mdlm":
        import importlib

        return importlib.import_module(".mdlm", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
