"""Resource limits for compiling and running constraints, in one object users can raise.

    >>> patient = tether.Limits(compile_seconds=60)
    >>> tether.regex(r"[a-z]{1,500}", limits=patient)

The limits bound what a user waits for and pays for, compile time and memory,
never intermediate sizes: a huge pattern whose automaton is small compiles. Every
stage (parsing, building automaton states, caching masks) checks them and raises
`ConstraintTooLarge` naming the stage and the figure it reached.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .errors import ConstraintTooLarge

__all__ = ["Limits", "Deadline"]

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Bounds that turn a pathological constraint into a `ConstraintTooLarge` error.

    compile_seconds: wall time one compile step may take: parsing a pattern, or
        building the automaton states that one mask or one token step needs
        (automata are built lazily, as masks and steps visit them).
    automaton_bytes: memory the automaton of one constraint may hold (its
        transition rows and the expressions behind its states).
    mask_cache_bytes: memory the cached masks and token steps of one compiled
        constraint may hold; past it, the oldest entries are dropped (never an error).
    """

    compile_seconds: float = 10.0
    automaton_bytes: int = 512 * MiB
    mask_cache_bytes: int = 256 * MiB

    def __post_init__(self) -> None:
        for name in ("compile_seconds", "automaton_bytes", "mask_cache_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"Limits.{name} must be a positive number, got {value!r}")

    def deadline(self, stage: str) -> "Deadline":
        """A clock for one compile step of `stage`, started now."""
        return Deadline(stage, self.compile_seconds)


DEFAULT_LIMITS = Limits()


class Deadline:
    """Raises `ConstraintTooLarge` from `check()` once a step has run past its time budget.

    `check()` is cheap (it reads the clock once every `every` calls), so loops call
    it on every iteration.

        >>> d = limits.deadline("parsing the regex")
        >>> for item in work: d.check(); ...
    """

    __slots__ = ("stage", "seconds", "start", "_count", "_every")

    def __init__(self, stage: str, seconds: float, every: int = 256):
        self.stage = stage
        self.seconds = seconds
        self.start = time.perf_counter()
        self._count = 0
        self._every = every

    def check(self) -> None:
        self._count += 1
        if self._count >= self._every:
            self._count = 0
            self.check_now()

    def check_now(self) -> None:
        elapsed = time.perf_counter() - self.start
        if elapsed > self.seconds:
            raise ConstraintTooLarge(self.stage, round(elapsed, 2), float(self.seconds), unit="s",
                                     limit_name="compile_seconds")
