"""Fill in the middle with an autoregressive model: each hole gets the model's most likely text
among those that let the rest of the template complete into the language.

    >>> fill(lm, ['{"name":"', None, '","age":', None, "}"], person.compile(lm.vocab)).holes
    ('Ada', '36')

Left to right: fixed text is appended as it is (its longest-match tokens); inside a hole, each
step scores the text so far once and takes the likeliest token the constraint allows after which
the rest can still be completed (`tether.automata.infill.Completer` decides, lazily), unless
closing the hole is likelier: the first token of the text after it (or end of text after the last
hole) against the best token that stays inside. Greedy, so "most likely" is per token.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..automata.infill import Completer, Hole, Infill
from ..errors import TokenRejected
from .base import check_vocab

__all__ = ["fill"]

_CANDIDATES = 64  # allowed tokens tried per step, likeliest first


def fill(model: Any, parts: Sequence[str | bytes | None], constraint: Any, *, prompt: Any = None,
         max_tokens: int = 64) -> Infill | None:
    """The model's filling of `parts` (None for each hole) in the language of `constraint` (compiled
    for `model.vocab`), or None when no completion exists; `max_tokens` bounds each hole."""
    check_vocab(model.vocab, constraint.vocab)
    vocab = constraint.vocab
    eos = set(vocab.eos_ids)
    pieces = [p.encode("utf-8") if isinstance(p, str) else p for p in parts]
    completer = Completer(constraint)
    if completer.complete(pieces) is None:
        return None
    context = list(model.prompt_ids(prompt if prompt is not None else "Fill in the text."))
    state, ids, holes = constraint.initial(), [], []
    for k, piece in enumerate(pieces):
        rest = pieces[k + 1:]
        if piece is not None:
            for t in vocab.encode_greedy(piece) if piece else []:
                state = constraint.advance(state, t)
                ids.append(t)
            continue
        start = len(ids)
        following = next((p for p in rest if p is not None and p), None)
        close_token = vocab.encode_greedy(following)[0] if following else min(eos) if eos else None
        for _ in range(max_tokens):
            logp = model.next_logprobs([context + ids])[0].float().cpu().numpy()
            can_close = completer.complete(rest, start=state) is not None
            allowed = np.flatnonzero(constraint.mask(state))
            allowed = allowed[[int(t) not in eos for t in allowed]]
            best = None
            for t in allowed[np.argsort(-logp[allowed], kind="stable")][:_CANDIDATES].tolist():
                try:
                    after = constraint.advance(state, t)
                except TokenRejected:
                    continue
                if completer.complete([Hole()] + list(rest), start=after) is not None:
                    best = (float(logp[t]), t, after)
                    break
            closing = float(logp[close_token]) if close_token is not None else -np.inf
            if can_close and (best is None or closing >= best[0]):
                break
            if best is None:
                return None
            _, t, state = best
            ids.append(t)
        else:
            if completer.complete(rest, start=state) is None:
                return None
        holes.append(vocab.decode(ids[start:]).decode("utf-8", errors="replace"))
    if not constraint.is_accepting(state):
        return None
    return Infill(vocab.decode(ids).decode("utf-8", errors="replace"), tuple(holes))
