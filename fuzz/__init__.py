"""tether's fuzzers: one entry point, one module per target.

    python -m fuzz regex --seconds 60 --seed 1
    python -m fuzz all --seconds 30          # every target in turn (what `make test` runs)

A target is a module `fuzz/<name>.py` (names starting with "_" are helpers) that defines
`add_arguments(parser)` and `run(args) -> int` (0 if no failure was found, else 1) and a
docstring whose first line describes it; the registry below finds it, so a new front-end
(`json`, `lark`, ...) adds one file. Failing cases go to tests/regressions/<name>.jsonl, which
tests/test_fuzz_regressions.py replays.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

__all__ = ["targets"]


def targets() -> dict[str, ModuleType]:
    """Every fuzz target by name, imported (a target that fails to import is an error, not a skip)."""
    found = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if callable(getattr(module, "run", None)) and callable(getattr(module, "add_arguments", None)):
            found[info.name] = module
    return found
