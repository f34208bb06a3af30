"""Optional dependencies, imported where they are used, with an error that names the extra to install.

    >>> torch = require("torch", "tether.apply_bitmask")
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require", "EXTRAS"]

# Which extra of the `tether` package brings each optional dependency.
EXTRAS = {"torch": "models", "transformers": "models", "tokenizers": "models", "gguf": "models",
          "accelerate": "models", "tqdm": "models", "hypothesis": "test"}


def require(module: str, feature: str) -> ModuleType:
    """Import `module`, or raise an ImportError saying that `feature` needs it and which extra has it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # also an inner `require` of a module that needs it: name the outer feature
        top = (exc.name or module).partition(".")[0]
        extra = EXTRAS.get(top)
        if extra is None:
            raise
        raise ImportError(f"{feature} needs {top}: pip install 'tether[{extra}]'", name=top) from exc
