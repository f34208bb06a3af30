"""The typed errors tether raises.

Every error names what went wrong and where, so a caller can catch the family
(`TetherError`) or a precise kind.

    >>> try: tether.regex(r"(a)\\1")
    ... except tether.UnsupportedPattern as e: print(e.construct, e.position)
    backreference 3
"""

from __future__ import annotations

__all__ = [
    "TetherError",
    "InvalidPattern",
    "UnsupportedPattern",
    "ConstraintTooLarge",
    "TokenRejected",
    "VocabularyError",
]


class TetherError(Exception):
    """Base class of every error tether raises on purpose."""


class InvalidPattern(TetherError, ValueError):
    """A regex that does not parse (as Python's `re` would also refuse it)."""

    def __init__(self, pattern: str, position: int | None, reason: str):
        self.pattern = pattern
        self.position = position
        self.reason = reason
        where = f" at position {position}" if position is not None else ""
        super().__init__(f"invalid regex{where}: {reason} in {pattern!r}")


class UnsupportedPattern(TetherError, ValueError):
    """A valid regex that uses a construct outside the regular subset (backreference, lookaround, ...)."""

    def __init__(self, pattern: str, position: int, construct: str):
        self.pattern = pattern
        self.position = position
        self.construct = construct
        super().__init__(
            f"unsupported regex construct: {construct} at position {position} in {pattern!r} "
            f"(only regular constructs can be compiled to an automaton)"
        )


class ConstraintTooLarge(TetherError):
    """Compiling would exceed a resource limit (see `tether.Limits`)."""

    def __init__(self, what: str, size: int, limit: int, hint: str = "raise the limit in tether.Limits"):
        self.what = what
        self.size = size
        self.limit = limit
        super().__init__(f"{what}: {size:,} exceeds the limit of {limit:,} ({hint})")


class TokenRejected(TetherError, ValueError):
    """`advance` was asked to consume a token the constraint does not allow in that state."""

    def __init__(self, state: object, token_id: int, token: bytes | None):
        self.state = state
        self.token_id = token_id
        self.token = token
        super().__init__(f"token {token_id} ({token!r}) is not allowed in state {state!r}")


class VocabularyError(TetherError, ValueError):
    """A vocabulary that cannot be read, or one that does not fit the model or constraint it meets."""
