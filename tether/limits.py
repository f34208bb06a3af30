"""Resource limits for compiling and caching constraints, in one object users can raise.

    >>> big = tether.Limits(max_dfa_states=200_000)
    >>> tether.regex(r"[a-z]{1,500}", limits=big)
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limits"]


@dataclass(frozen=True)
class Limits:
    """Bounds that turn a pathological constraint into a `ConstraintTooLarge` error.

    max_nfa_states: character-level automaton states built from a regex.
    max_dfa_states: DFA states built before minimising (character DFA, then byte DFA).
    mask_cache_bytes: memory the per-state mask cache of one compiled constraint may hold.
    """

    max_nfa_states: int = 100_000
    max_dfa_states: int = 100_000
    mask_cache_bytes: int = 256 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("max_nfa_states", "max_dfa_states", "mask_cache_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Limits.{name} must be positive, got {getattr(self, name)}")


DEFAULT_LIMITS = Limits()
