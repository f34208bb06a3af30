"""A constraint named by a request's plain-data arguments, as serving engines carry them.

    >>> args = tether_args(regex=r"[0-9]{4}")             # {"tether": {"regex": "[0-9]{4}"}}
    >>> SamplingParams(max_tokens=16, extra_args=args)    # vLLM: the processor compiles it

An engine passes per-request data between processes as JSON-like values (vLLM's
`SamplingParams.extra_args`), so a request names its constraint by what tether's
constructors take: exactly one of

    {"regex": pattern, "flags": int}
    {"json_schema": schema, "whitespace": ..., "property_order": ..., "additional_properties": ...}
    {"lark": text, "start": "start"}
    {"gbnf": text, "start": "root"}
    {"sql": {"ddl": text} | {"db": path} | {}}
    {"key": name}             # a spec `register(name, spec)` put in this process's registry

`compiled(args, vocab)` builds and compiles it once per distinct arguments and vocabulary
(an LRU of `CACHE_SIZE`), so a batch of requests sharing a schema compiles it once.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any, Mapping

from ..automata.constraint import Constraint
from ..errors import SpecError, TetherError
from ..vocab import Vocabulary

__all__ = ["KEY", "CACHE_SIZE", "tether_args", "spec_from_args", "compiled", "register", "unregister"]

KEY = "tether"  # the key of the constraint's arguments in a request's extra arguments
CACHE_SIZE = 64

_OPTIONS = {
    "regex": {"flags"},
    "json_schema": {"whitespace", "property_order", "additional_properties", "lenient"},
    "lark": {"start"},
    "gbnf": {"start"},
    "sql": set(),
    "key": set(),
}

_lock = threading.Lock()
_registry: dict[str, Any] = {}
_specs: OrderedDict[str, Any] = OrderedDict()


def tether_args(**kind: Any) -> dict[str, dict[str, Any]]:
    """The extra arguments that name a constraint: `{"tether": {...}}`, checked.

        >>> tether_args(json_schema={"type": "integer"}, whitespace="flexible")
        {'tether': {'json_schema': {'type': 'integer'}, 'whitespace': 'flexible'}}
    """
    args = dict(kind)
    spec_from_args(args)  # a bad pattern or schema fails here, where the request is made
    return {KEY: args}


def register(name: str, spec: Any) -> None:
    """Let requests name `spec` (anything with `.compile(vocab)`, e.g. a JSON Schema made from a
    Python type) by `{"key": name}`. The registry is this process's: register in the process
    that runs the engine's sampler (vLLM in one process: `VLLM_ENABLE_V1_MULTIPROCESSING=0`)."""
    if not isinstance(name, str) or not name:
        raise TypeError("name must be a non-empty str")
    if not callable(getattr(spec, "compile", None)):
        raise TypeError(f"spec must be a tether specification (with .compile(vocab)), got {type(spec).__name__}")
    with _lock:
        _registry[name] = spec


def unregister(name: str) -> None:
    with _lock:
        _registry.pop(name, None)


def spec_from_args(args: Mapping[str, Any]) -> Any:
    """The tether specification that `args` name; `SpecError` saying what is wrong otherwise."""
    if not isinstance(args, Mapping):
        raise SpecError(f"the {KEY!r} request argument must be a dict like {{'regex': '...'}}, "
                        f"got {type(args).__name__}")
    kinds = [k for k in args if k in _OPTIONS]
    if len(kinds) != 1:
        raise SpecError(f"the {KEY!r} request argument needs exactly one of {sorted(_OPTIONS)}, "
                        f"got {sorted(args)}")
    kind = kinds[0]
    unknown = set(args) - {kind} - _OPTIONS[kind]
    if unknown:
        raise SpecError(f"unknown option(s) {sorted(unknown)} for {kind!r}; it takes {sorted(_OPTIONS[kind]) or 'none'}")
    if kind == "key":
        with _lock:
            spec = _registry.get(args["key"])
        if spec is None:
            raise SpecError(f"no constraint registered as {args['key']!r} in this process "
                            f"(tether.integrations.requests.register(name, spec))")
        return spec
    canonical = json.dumps(args, sort_keys=True)
    with _lock:
        spec = _specs.get(canonical)
        if spec is not None:
            _specs.move_to_end(canonical)
            return spec
    spec = _build(kind, args)
    with _lock:
        _specs[canonical] = spec
        while len(_specs) > CACHE_SIZE:
            _specs.popitem(last=False)
    return spec


def compiled(args: Mapping[str, Any], vocab: Vocabulary) -> Constraint:
    """The constraint `args` name, compiled for `vocab` (once per distinct arguments and vocabulary)."""
    return spec_from_args(args).compile(vocab)


def _build(kind: str, args: Mapping[str, Any]) -> Any:
    import tether

    value = args[kind]
    options = {k: v for k, v in args.items() if k != kind}
    if kind in ("regex", "lark", "gbnf") and not isinstance(value, str):
        raise SpecError(f"{kind!r} must be the text of the {kind}, got {type(value).__name__}")
    if kind == "sql":
        if not isinstance(value, Mapping) or set(value) - {"ddl", "db"}:
            raise SpecError("'sql' takes {} (any names), {'ddl': create_statements} or {'db': path}")
        return tether.sql(**value)
    try:
        return getattr(tether, kind)(value, **options)
    except TetherError:
        raise
    except (TypeError, ValueError) as exc:
        raise SpecError(f"bad {kind!r} request argument: {exc}") from exc
