"""What every sampler returns, and the counters it keeps.

    >>> g = tether.generate(lm, "Year?", tether.regex(r"[0-9]{4}"))
    >>> g.status, g.text
    ('complete', '1969')
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Iterator

__all__ = ["Status", "Generation", "SamplerStats"]


class Status(str, Enum):
    """How a generation ended. Only COMPLETE output is a member of the constraint's language."""

    COMPLETE = "complete"  # the constraint accepted and the sequence ended (EOS, or nothing else allowed)
    INCOMPLETE = "incomplete"  # max_tokens was reached before the constraint accepted an end
    DEAD = "dead"  # no token was allowed (a weight-zero particle)


@dataclass
class SamplerStats:
    """Where the time went: model calls and seconds, constraint checks and seconds."""

    steps: int = 0
    tokens: int = 0
    model_calls: int = 0
    model_seconds: float = 0.0
    constraint_seconds: float = 0.0
    constraint_checks: int = 0
    masks: int = 0

    @contextmanager
    def constraint_time(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.constraint_seconds += time.perf_counter() - start

    @contextmanager
    def model_time(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.model_calls += 1
            self.model_seconds += time.perf_counter() - start

    @property
    def constraint_share(self) -> float:
        total = self.model_seconds + self.constraint_seconds
        return self.constraint_seconds / total if total else 0.0


@dataclass
class Generation:
    """One generated sequence.

    `value` is the constraint's parsed value of `text` when `status` is
    COMPLETE (for a regex: the text itself), else None: incomplete output is
    never presented as valid.
    """

    token_ids: list[int]
    text: str
    status: Status
    logprob: float = 0.0
    value: Any = None
    stats: SamplerStats = field(default_factory=SamplerStats)
    details: Any = None  # sampler-specific extras (SMC: the full `SMCResult`)

    @property
    def ok(self) -> bool:
        return self.status is Status.COMPLETE

    def __str__(self) -> str:
        return self.text if self.ok else f"<{self.status.value}: {self.text!r}>"
