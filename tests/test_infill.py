"""`tether.infill`: whether text with holes completes into the language, against brute force on
random small grammars and regexes; completions are members; typed errors."""

from __future__ import annotations

import itertools
import random

import pytest

import tether
from tether.automata.infill import Completer, Hole, infill
from tether.automata.walk import byte_vocabulary

from fuzz._grammargen import random_grammar


def brute_force(spec, parts, alphabet, max_len):
    """Some filling of the holes with strings over `alphabet` of at most `max_len` characters each."""
    words = [""] + ["".join(w) for n in range(1, max_len + 1) for w in itertools.product(alphabet, repeat=n)]
    holes = sum(p is None for p in parts)
    for fill in itertools.product(words, repeat=holes):
        it = iter(fill)
        text = "".join(next(it) if p is None else p for p in parts)
        if spec.matches(text):
            return fill
    return None


def template(rng: random.Random, text: str, holes: int) -> list:
    """`text` with `holes` random slices cut out (each replaced by None)."""
    cuts = sorted(rng.sample(range(len(text) + 1), min(2 * holes, len(text) + 1)))
    if len(cuts) % 2:
        cuts = cuts[:-1]
    parts, pos = [], 0
    for a, b in zip(cuts[::2], cuts[1::2]):
        parts += [text[pos:a], None]
        pos = b
    parts.append(text[pos:])
    return parts if None in parts else [text, None]


UNDECIDED = "undecided"


def check(spec, parts, alphabet, max_len):
    """True/False: infill's answer, checked against brute force; UNDECIDED where its search hit the bound."""
    try:
        found = infill(parts, spec, max_states=20_000)
    except tether.ConstraintTooLarge:
        found = UNDECIDED
    if found not in (None, UNDECIDED):
        assert spec.matches(found.text), (parts, found)
        assert len(found.holes) == parts.count(None)
    witness = brute_force(spec, parts, alphabet, max_len)
    if witness is not None:  # a short completion exists: the capped searches find one before any bound
        assert found not in (None, UNDECIDED), (parts, witness)
    return UNDECIDED if found == UNDECIDED else found is not None


def test_infill_agrees_with_brute_force_on_random_grammars():
    rng = random.Random(7)
    cases = completable = undecided = 0
    while cases < 100:
        g = random_grammar(rng)
        try:
            spec = tether.lark(g.render(), start=g.start)
        except tether.SpecError:
            continue
        alphabet = sorted(set("".join(g.alphabet())))[:6]
        pieces = g.derive(rng)
        if rng.random() < 0.5 and pieces:
            parts = template(rng, "".join(pieces), rng.randint(1, 2))
        else:
            from fuzz._grammargen import random_text

            parts = template(rng, random_text(rng, g, 3), 1)
        holes = parts.count(None)
        answer = check(spec, parts, alphabet, 3 if holes == 1 else 2)
        undecided += answer == UNDECIDED
        completable += answer is True
        cases += 1
    # Both answers occur; a few searches over ever deeper nesting stop at the bound (ConstraintTooLarge),
    # none of them where a short completion exists (checked above).
    assert 20 < completable < cases - undecided and undecided <= 10, (completable, undecided)


def test_infill_agrees_with_brute_force_on_random_regexes():
    from test_dingo import random_regex

    rng = random.Random(11)
    seen = set()
    for _ in range(200):
        pattern = random_regex(rng)
        spec = tether.regex(pattern)
        text = "".join(rng.choice("abc") for _ in range(rng.randint(0, 4)))
        parts = template(rng, text, rng.randint(1, 2))
        seen.add(check(spec, parts, "abc", 3 if parts.count(None) == 1 else 2))
    assert seen == {True, False}  # regular languages: the search always decides


def test_infill_fills_json_and_sql_templates():
    person = tether.json_schema({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                                 "required": ["name", "age"]})
    found = infill(['{"name":"', None, '","age":', None, "}"], person)
    assert found is not None and person.matches(found.text) and found.holes[0] == ""
    assert infill(['{"age":', None, "}"], person) is None  # "name" is required first
    q = tether.sql(ddl="CREATE TABLE singer(name TEXT, age INT);")
    found = infill(["SELECT ", None, " FROM singer WHERE age > ", None], q)
    assert found is not None and q.matches(found.text), found
    # No table "nowhere": no completion, but expressions nest without end, so the search cannot
    # prove it and stops at its bound instead of answering.
    with pytest.raises(tether.ConstraintTooLarge):
        infill(["SELECT ", None, " FROM nowhere"], q, max_states=2_000)


def test_holes_with_byte_bounds():
    c = tether.regex("ab?c?d*").compile(byte_vocabulary())
    done = Completer(c)
    assert done.complete([b"a", None, b"c"]) == [b""]
    assert done.complete([b"a", Hole(1), b"c"]) == [b"b"]
    assert done.complete([b"a", Hole(1, 1)]) == [b"b"]
    assert done.complete([b"a", Hole(3, 4)]) == [b"bcd"]
    assert done.complete([b"ab", Hole(1), b"c"]) is None
    assert done.complete([b"a", Hole(2, 2), b"c"]) is None


def test_a_search_past_its_bound_is_a_typed_error():
    nested = tether.lark('start: "(" start ")" | "x" "y" "z" "w"')
    with pytest.raises(tether.ConstraintTooLarge, match="completion of the holes"):
        infill(["(", None, "q"], nested, max_states=200)
    with pytest.raises(TypeError, match="expected a constraint"):
        infill(["a", None], "a|b")


# ---------------------------------------------------------------- with a model


class PreferLM:
    """A causal LM that puts its mass on the bytes of `favourite`, in order, then on EOS."""

    def __init__(self, favourite: bytes):
        import torch

        from tether.models import ModelStats

        self.torch = torch
        self.vocab = tether.Vocabulary.from_tokens([bytes([b]) for b in range(256)] + [None], eos_ids=[256])
        self.favourite, self.stats = favourite, ModelStats()

    def prompt_ids(self, prompt):
        return []

    def next_logprobs(self, prefixes):
        rows = []
        for p in prefixes:
            text = self.vocab.decode(p)
            row = self.torch.full((257,), -10.0)
            nxt = self.favourite[len(text)] if len(text) < len(self.favourite) else None
            row[256 if nxt is None else nxt] = 0.0
            rows.append(self.torch.log_softmax(row, dim=-1))
        return self.torch.stack(rows)


def test_a_model_fills_holes_with_its_likeliest_text_that_still_completes():
    person = tether.json_schema({"type": "object", "properties": {"name": {"type": "string"},
                                                                  "age": {"type": "integer"}}, "required": ["name", "age"]})
    parts = ['{"name":"', None, '","age":', None, "}"]
    lm = PreferLM(b'{"name":"Ada","age":36}')
    found = tether.infill(parts, person, model=lm)
    assert found.holes == ("Ada", "36") and found.text == '{"name":"Ada","age":36}'
    # the model's wish must yield to the language: it wants letters where digits must go
    found = tether.infill(parts, person, model=PreferLM(b'{"name":"Ada","age":"x"}'))
    assert found is not None and person.matches(found.text) and found.holes[0] == "Ada"
    assert tether.infill(['{"age":', None, "}"], person, model=lm) is None


@pytest.mark.model
def test_smollm2_fills_a_json_template():
    lm = tether.models.default(progress=False)
    person = tether.json_schema({"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 20}, "age": {"type": "integer", "minimum": 0, "maximum": 120}},
        "required": ["name", "age"]})
    found = tether.infill(['{"name":"', None, '","age":', None, "}"], person, model=lm,
                          prompt="Describe Ada Lovelace, who died at 36, as JSON.")
    assert found is not None and person.matches(found.text), found
    assert found.holes[0] and found.holes[1].isdigit()
