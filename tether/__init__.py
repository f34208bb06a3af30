"""tether: constrained and structured generation for language models.

    >>> import tether
    >>> vocab = tether.Vocabulary.from_file("tokenizer.json")
    >>> c = tether.regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}").compile(vocab)
    >>> s = c.initial(); row = tether.allocate_bitmask(1, vocab.size)[0]; c.fill_bitmask(s, row)
"""

from __future__ import annotations

from .automata.bitmask import allocate_bitmask, apply_bitmask
from .automata.constraint import Constraint, Matcher
from .automata.regular import Regex, regex
from .errors import (
    ConstraintTooLarge,
    InvalidPattern,
    TetherError,
    TokenRejected,
    UnsupportedPattern,
    VocabularyError,
)
from .limits import Limits
from .vocab import Vocabulary

__version__ = "0.1.0"

__all__ = [
    # vocabularies and constraints
    "Vocabulary",
    "regex",
    "Regex",
    "Constraint",
    "Matcher",
    "Limits",
    # bitmasks
    "allocate_bitmask",
    "apply_bitmask",
    # errors
    "TetherError",
    "InvalidPattern",
    "UnsupportedPattern",
    "ConstraintTooLarge",
    "TokenRejected",
    "VocabularyError",
]
