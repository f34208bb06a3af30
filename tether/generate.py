"""`tether.generate`: one call from a prompt and a constraint to valid output.

    >>> lm = tether.models.default()
    >>> tether.generate(lm, "Pick a year", tether.regex(r"(19|20)[0-9]{2}")).text
    '2023'
"""

from __future__ import annotations

from typing import Sequence, Union, overload

from .automata.constraint import Constraint
from .models.base import CausalLM
from .samplers.base import Generation
from .samplers.lcd import Greedy

__all__ = ["generate"]


def bind(constraint, model: CausalLM) -> Constraint:
    """A compiled constraint for the model's vocabulary (compiling a spec such as `tether.regex(...)`)."""
    if isinstance(constraint, Constraint):
        return constraint
    if hasattr(constraint, "compile"):
        return constraint.compile(model.vocab)
    raise TypeError(f"expected a constraint (e.g. tether.regex(...)), got {type(constraint).__name__}")


@overload
def generate(model: CausalLM, prompt: str, constraint, *, sampler=..., max_tokens: int = ...,
             n: None = ...) -> Generation: ...
@overload
def generate(model: CausalLM, prompt: Sequence[str], constraint, *, sampler=..., max_tokens: int = ...,
             n: int | None = ...) -> list[Generation]: ...


def generate(model: CausalLM, prompt: Union[str, Sequence[str]], constraint, *, sampler=None,
             max_tokens: int = 64, n: int | None = None):
    """Generate constrained output for a prompt (or a list of prompts, batched).

    sampler: `Greedy()` (default), `Sample(...)`, `BeamSearch(...)` or `SMC(...)`.
    Returns a `Generation` (`.text`, `.value`, `.status`) for one prompt and no
    `n`, else a list with `n` generations per prompt, in prompt order. Check
    `.ok`: a generation that reached `max_tokens` first is INCOMPLETE.
    """
    compiled = bind(constraint, model)
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    copies = 1 if n is None else n
    if copies < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    ids = [model.prompt_ids(p) for p in prompts]
    batch = [p for p in ids for _ in range(copies)]
    generations = (sampler or Greedy()).run(model, batch, compiled, max_tokens)
    if isinstance(prompt, str) and n is None:
        return generations[0]
    return generations
