"""Give llvmlite's `ffi.lib` an empty `__dict__`, so code that scans module namespaces survives it.

llvmlite's library wrapper answers every attribute with a function wrapper, `__dict__`
included, so `vars(llvmlite.binding.ffi.lib)` is not a dict. vLLM's CPU worker (0.32) scans
every loaded module at start-up with `vars(value).get("kernel")` and crashes on it
("'_lib_fn_wrapper' object has no attribute 'get'") in any process that imported numba,
i.e. tether, first. The wrapper's class gains a subclass whose `__dict__` is empty (the same
object, so every reference sees it); nothing in llvmlite reads `lib.__dict__`.
"""

from __future__ import annotations


def patch() -> None:
    try:
        from llvmlite.binding import ffi
    except ImportError:  # pragma: no cover - numba always brings llvmlite
        return
    lib = getattr(ffi, "lib", None)
    if lib is None:
        return
    try:
        if isinstance(vars(lib), dict):
            return
    except TypeError:
        pass

    class _Lib(type(lib)):
        __slots__ = ()

        @property
        def __dict__(self) -> dict:  # type: ignore[override]
            return {}

    try:
        lib.__class__ = _Lib
    except TypeError:  # pragma: no cover - a layout this shim does not know: leave it
        pass


patch()
