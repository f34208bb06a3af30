"""Context-free grammars end to end on SmolLM2-135M-Instruct: greedy, beam search and AWRS-SMC
generations for a left-recursive arithmetic grammar (Lark) and the JSON grammar (llama.cpp's
GBNF) must all be in the language, checked by the grammar itself and by an independent reference
(Python's `json`; Lark's Earley parser for arithmetic).
"""

from __future__ import annotations

import json

import lark
import pytest

import tether
from tether.samplers import BeamSearch, Greedy, SMC, Status

from conftest import data_path

pytestmark = pytest.mark.model

ARITHMETIC = r"""
?start: sum
?sum: product | sum "+" product | sum "-" product
?product: atom | product "*" atom | product "/" atom
?atom: NUMBER | "(" sum ")" | "-" atom
NUMBER: /[0-9]+/
%ignore " "
"""

PROMPTS = {
    "arithmetic": ["Write an arithmetic expression that equals 12, using + and *. Output only the expression.",
                   "Output only a math expression with parentheses, like (3+4)*2."],
    "json": ['Output only a JSON object describing a book, with "title" and "year".',
             "Reply with a JSON array of three small integers and nothing else."],
}

SAMPLERS = {
    "greedy": lambda: Greedy(),
    "beam": lambda: BeamSearch(3),
    "smc": lambda: SMC(4, seed=0),
}


@pytest.fixture(scope="module")
def lm():
    import torch

    torch.set_num_threads(1)
    from tether.models import default

    return default(progress=False)


@pytest.fixture(scope="module")
def grammars():
    return {
        "arithmetic": (tether.lark(ARITHMETIC), 24),
        "json": (tether.gbnf(data_path("grammars", "llama.cpp", "grammars", "json.gbnf").read_text()), 48),
    }


def _reference_accepts(name: str, text: str) -> bool:
    if name == "json":
        try:
            json.loads(text)
        except ValueError:
            return False
        return True
    parser = lark.Lark(ARITHMETIC, parser="earley", lexer="dynamic_complete")
    try:
        parser.parse(text)
    except lark.exceptions.LarkError:
        return False
    return True


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
@pytest.mark.parametrize("name", sorted(PROMPTS))
def test_generations_are_in_the_language(lm, grammars, name, sampler):
    grammar, max_tokens = grammars[name]
    assert grammar.engine == "cfg"
    c = grammar.compile(lm.vocab)
    gens = tether.generate(lm, PROMPTS[name], c, sampler=SAMPLERS[sampler](), max_tokens=max_tokens)
    complete = 0
    for g in gens:
        state = c.advance_many(c.initial(), [t for t in g.token_ids if t not in lm.vocab.eos_ids])
        if g.status is Status.COMPLETE:
            complete += 1
            assert grammar.matches(g.text) and c.is_accepting(state), (name, sampler, g.text)
            assert _reference_accepts(name, g.text), (name, sampler, g.text)
        else:  # cut by max_tokens: still a live prefix of the language
            assert c.mask(state).any(), (name, sampler, g.text)
    assert complete >= 1, (name, sampler, [g.text for g in gens])
