"""tether: constrained and structured generation for language models.

    >>> import tether
    >>> vocab = tether.Vocabulary.from_file("tokenizer.json")
    >>> c = tether.regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}").compile(vocab)
    >>> s = c.initial(); row = tether.allocate_bitmask(1, vocab.size)[0]; c.fill_bitmask(s, row)
    >>> json = tether.lark(open("json.lark").read()).compile(vocab)   # context-free grammars too
    >>> query = tether.sql(db="shop.sqlite")                          # SQL naming only real columns
"""

from __future__ import annotations

from . import _llvmlite_compat  # noqa: F401  (first: see its docstring)
from .automata.bitmask import allocate_bitmask, apply_bitmask
from .automata.constraint import Constraint, Matcher
from .automata.grammar import Grammar, JSONSchema, gbnf, json_schema, lark
from .infilling import infill
from .automata.regular import Regex, regex
from .automata.sql import SQL, sql
from .integrations.structured import structured
from .errors import (
    ConstraintTooLarge,
    ContextLengthExceeded,
    EmptyLanguage,
    GenerationFailed,
    GrammarError,
    InvalidPattern,
    InvalidSchema,
    InvalidState,
    Location,
    SpecError,
    TetherError,
    TokenRejected,
    UnsupportedPattern,
    UnsupportedSchema,
    SQLSchemaError,
    VocabularyError,
    VocabularyMismatch,
)
from .limits import Limits
from .vocab import Vocabulary

__version__ = "0.1.0"

# torch and transformers load on first use of these, not on `import tether`.
_LAZY = {
    "generate": ("tether.generation", "generate"),  # not a module named `generate`: it would shadow this
    "agenerate": ("tether.generation", "agenerate"),
    "stream": ("tether.generation", "stream"),
    "models": ("tether.models", None),
    "samplers": ("tether.samplers", None),
    "strategies": ("tether.integrations.strategies", None),  # hypothesis loads with it
    "Greedy": ("tether.samplers", "Greedy"),
    "Sample": ("tether.samplers", "Sample"),
    "BeamSearch": ("tether.samplers", "BeamSearch"),
    "SMC": ("tether.samplers", "SMC"),
    "AWRS": ("tether.samplers", "AWRS"),
    "Generation": ("tether.samplers", "Generation"),
    "Status": ("tether.samplers", "Status"),
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'tether' has no attribute {name!r}")
    module_name, attr = _LAZY[name]
    from ._optional import require

    module = require(module_name, f"tether.{name}")
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    # vocabularies and constraints
    "Vocabulary",
    "regex",
    "Regex",
    "lark",
    "gbnf",
    "json_schema",
    "sql",
    "structured",
    "infill",
    "Grammar",
    "JSONSchema",
    "SQL",
    "Constraint",
    "Matcher",
    "Limits",
    # generation (loaded lazily)
    "generate",
    "agenerate",
    "stream",
    "Greedy",
    "Sample",
    "BeamSearch",
    "SMC",
    "AWRS",
    "Generation",
    "Status",
    "models",
    "samplers",
    "strategies",
    # bitmasks
    "allocate_bitmask",
    "apply_bitmask",
    # errors
    "TetherError",
    "SpecError",
    "Location",
    "InvalidPattern",
    "UnsupportedPattern",
    "EmptyLanguage",
    "GrammarError",
    "InvalidSchema",
    "UnsupportedSchema",
    "SQLSchemaError",
    "ConstraintTooLarge",
    "TokenRejected",
    "InvalidState",
    "VocabularyError",
    "VocabularyMismatch",
    "ContextLengthExceeded",
    "GenerationFailed",
]
