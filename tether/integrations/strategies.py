"""Hypothesis strategies that draw from a constraint's language, and shrink within it.

    >>> from tether.integrations.strategies import from_regex, from_schema
    >>> @given(from_schema({"type": "array", "items": {"type": "integer"}}))
    ... def test_mean(xs): ...

Every draw is a walk of `tether.automata.walk` whose choices are hypothesis integers, so
hypothesis' own shrinker minimises the examples: a failing test shrinks to a member of the
language made of the simplest choices (shortest first, then '0' before '1' before 'a' ...).
Every example is a member by construction: `re.fullmatch` holds for `from_regex`, the schema
validates for `from_schema`, the grammar parses for `from_grammar`. `from_model` draws with a
real model steered by the constraint (AWRS-SMC), seeded from a drawn integer so that runs replay.
"""

from __future__ import annotations

import functools
from typing import Any

from .._optional import require
from ..automata.walk import DEFAULT_MAX_SIZE, Walker, walker

st = require("hypothesis.strategies", "tether.integrations.strategies")

__all__ = ["from_regex", "from_schema", "from_grammar", "from_model", "walks"]

_SEEDS = st.integers(0, 2**32 - 1)


@functools.lru_cache(maxsize=4096)
def _index(n: int) -> Any:
    return st.integers(0, n - 1)


class _DrawChooser:
    """A `Chooser` whose picks are hypothesis draws: what the shrinker minimises."""

    __slots__ = ("draw",)

    def __init__(self, draw: Any):
        self.draw = draw

    def choose(self, n: int) -> int:
        return self.draw(_index(n))


def walks(w: Walker) -> Any:
    """A strategy of walks (texts) over a prepared `Walker`.

        >>> w = walker(tether.regex(r"[a-z]+"), max_size=10)
        >>> @given(walks(w)) ... def test_word(s): assert s.isalpha()
    """

    @st.composite
    def _walk(draw: Any) -> str:
        return w.walk(_DrawChooser(draw))

    return _walk()


def from_regex(pattern: str, *, max_size: int = DEFAULT_MAX_SIZE, flags: int = 0) -> Any:
    """Strings that `re.fullmatch(pattern, s, flags)` accepts, of at most `max_size` UTF-8 bytes
    (unless the pattern has no member that short: then a shortest one).

        >>> find(from_regex(r"[a-z]+"), lambda s: len(s) > 5)
        'aaaaaa'

    Raises `InvalidPattern`, `UnsupportedPattern` (backreferences, lookarounds) or
    `EmptyLanguage` at once, not at the first draw.
    """
    from ..automata.regular import regex

    return walks(walker(regex(pattern, flags=flags), max_size=max_size))


def from_schema(schema: Any, *, max_size: int = DEFAULT_MAX_SIZE, max_depth: int | None = None,
                **options: Any) -> Any:
    """Values that validate against a JSON Schema (decoded with `json.loads`), or values of a
    Python type (a dataclass, TypedDict, msgspec Struct, pydantic model: what
    `tether.json_schema` decodes it into), whose JSON text has at most `max_size` bytes.

        >>> find(from_schema({"type": "array", "items": {"type": "integer"}}), lambda xs: sum(xs) > 5)
        [10]

    options: those of `tether.json_schema` (whitespace, property_order, additional_properties,
    lenient, resources, limits). max_depth: see `from_grammar` (recursive schemas only).
    """
    from ..automata.grammar import json_schema

    spec = json_schema(schema, **options)
    return walks(walker(spec, max_size=max_size, max_depth=max_depth)).map(spec.parse)


def from_grammar(spec: Any, *, max_size: int = DEFAULT_MAX_SIZE, max_depth: int | None = None,
                 vocab: Any = None) -> Any:
    """Texts of any tether spec (`tether.lark`, `gbnf`, `sql`, `regex`, `json_schema`) or
    compiled `Constraint`, of at most `max_size` bytes.

        >>> find(from_grammar(tether.lark('start: "(" start ")" | "x"')), lambda s: len(s) > 4)
        '((x))'

    max_depth: open rule invocations of a context-free grammar past which a draw opens no more
    (see `tether.automata.walk`; ignored by grammars without recursion). vocab: draw token by
    token over a real vocabulary instead of byte by byte (a Constraint walks its own).
    """
    return walks(walker(spec, vocab=vocab, max_size=max_size, max_depth=max_depth))


def from_model(lm: Any, constraint: Any, *, prompt: Any = "Write an example.", max_tokens: int = 32,
               n_particles: int = 1, value: bool = False, **smc_options: Any) -> Any:
    """Outputs of the model `lm` constrained by `constraint`, drawn with AWRS-SMC
    (`tether.samplers.SMC`; ``n_particles=1`` is plain AWRS decoding).

        >>> @given(from_model(lm, tether.regex(r"(19|20)[0-9]{2}"), max_tokens=8))
        ... def test_year(text): assert 1900 <= int(text) < 2100

    Each draw seeds the sampler with a hypothesis integer, so a failing example replays. A
    generation that ends INCOMPLETE (out of `max_tokens`) or DEAD is rejected
    (`hypothesis.reject`), never returned. prompt: text, chat messages, or token ids (for a
    model without a tokenizer). value: return the parsed value (`Generation.value`) instead
    of the text. smc_options: the other options of `SMC` (estimator, ess_threshold, ...).
    """
    from hypothesis import reject

    from ..generation import bind
    from ..samplers import SMC, Status

    compiled = bind(constraint, lm)
    ids = _prompt_ids(lm, prompt)
    SMC(n_particles=n_particles, seed=0, **smc_options)  # bad options raise here, not at the first draw

    def generate(seed: int) -> Any:
        sampler = SMC(n_particles=n_particles, seed=seed, **smc_options)
        gen = sampler.run(lm, [ids], compiled, max_tokens)[0]
        if gen.status is not Status.COMPLETE:
            reject()
        return gen.value if value else gen.text

    return _SEEDS.map(generate)


def _prompt_ids(lm: Any, prompt: Any) -> list[int]:
    if isinstance(prompt, (list, tuple)) and prompt and all(isinstance(t, int) and not isinstance(t, bool)
                                                            for t in prompt):
        return [int(t) for t in prompt]
    return list(lm.prompt_ids(prompt))
