"""`tether.infill`: complete text with holes into a constraint's language, with or without a model.

    >>> tether.infill(['{"name":"', None, '","age":', None, "}"], person).text
    '{"name":"","age":0}'
    >>> tether.infill(['{"name":"', None, '","age":', None, "}"], person, model=lm).holes
    ('John', '30')

Without a model the answer is the search's: each hole the shortest filling that lets the rest
complete (`tether.automata.infill`). With an autoregressive model each hole gets the model's
likeliest text among those that keep a completion possible (`tether.samplers.infilling`; needs
the `models` extra). This module is light: torch loads only with a model.
"""

from __future__ import annotations

from typing import Any, Sequence

from .automata.infill import MAX_STATES, Infill
from .automata.infill import infill as _search

__all__ = ["infill", "Infill"]


def infill(parts: Sequence[str | bytes | None], spec: Any, *, model: Any = None, prompt: Any = None,
           max_tokens: int = 64, max_states: int = MAX_STATES) -> Infill | None:
    """A completion of `parts` (text, and None for each hole) in the language of `spec`, or None
    if there is none.

        >>> tether.infill(["SELECT ", None, " FROM singer"], tether.sql(db=conn)).holes
        ('Name',)

    `spec`: any spec (`tether.regex`, `lark`, `gbnf`, `json_schema`, `sql`) or compiled constraint.
    model: an autoregressive tether model (`tether.models.default()`): holes are filled with its
        likeliest text, each at most `max_tokens` tokens, after `prompt` (text or chat messages,
        the task the template is part of). Without one, each hole gets the shortest filling.
    Raises `ConstraintTooLarge` when the search visits more than `max_states` states without an
    answer (a context-free language whose holes admit ever deeper nesting).
    """
    if model is None:
        return _search(parts, spec, max_states=max_states)
    from .samplers.infilling import fill

    constraint = spec.compile(model.vocab) if hasattr(spec, "compile") else spec
    return fill(model, parts, constraint, prompt=prompt, max_tokens=max_tokens)
