"""Regular constraints: a pattern compiled once to a lazy byte DFA, then bound to any vocabulary.

    >>> date = tether.regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
    >>> c = date.compile(vocab)   # cheap, and cached per vocabulary: masks are computed lazily per state
"""

from __future__ import annotations

import re
from typing import Any, Callable

from ..errors import EmptyLanguage
from ..limits import DEFAULT_LIMITS, Limits
from ..vocab import Vocabulary
from .dfa import LazyDFA
from .index import DFAConstraint
from .stepping import PerVocabulary

__all__ = ["Regex", "regex"]



class Regex:
    """A regex constraint, independent of any tokenizer: Python `re` syntax, `re.fullmatch` semantics.

    Raises `InvalidPattern` for what `re` rejects, `UnsupportedPattern` for
    non-regular constructs (backreferences, lookarounds, word boundaries,
    possessive quantifiers, atomic groups), `EmptyLanguage` for a pattern that
    matches no string, and `ConstraintTooLarge` past `limits`.
    """

    def __init__(self, pattern: str, *, flags: int = 0, limits: Limits | None = None,
                 parse: Callable[[str], Any] | None = None):
        self.pattern = pattern
        self.parse = parse
        self.flags = flags
        self.limits = limits or DEFAULT_LIMITS
        self.dfa = LazyDFA.from_regex(pattern, flags, self.limits)
        if self.dfa.is_empty:
            raise EmptyLanguage("the pattern matches no string, so nothing could be generated", source=pattern)
        self._compiled = PerVocabulary()

    def __repr__(self) -> str:
        return f"tether.regex({self.pattern!r})"

    def matches(self, text: str | bytes) -> bool:
        """Whether `text` is in the language (the reference the constraint is tested against)."""
        return self.dfa.matches(text.encode() if isinstance(text, str) else text)

    def compile(self, vocab: Vocabulary) -> DFAConstraint:
        """Bind to a vocabulary. Masks are computed on demand and cached per state; compiling
        again for the same vocabulary returns the same constraint, caches and all."""
        return self._compiled.get(vocab, lambda: DFAConstraint(self.dfa, vocab, self.limits, source=self.pattern,
                                                              parse=self.parse))


def regex(pattern: str, *, flags: int | re.RegexFlag = 0, limits: Limits | None = None,
          parse: Callable[[str], Any] | None = None) -> Regex:
    """A constraint that the output full-matches `pattern` (Python `re` syntax).

    `parse` turns a complete output into its value (e.g. `json.loads` for a
    regex that spells JSON); by default the value is the text.

        >>> c = tether.regex(r"(yes|no)").compile(vocab)
        >>> c.is_accepting(c.initial())
        False
    """
    return Regex(pattern, flags=int(flags), limits=limits, parse=parse)
