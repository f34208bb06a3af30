"""The grammar corpus end to end: every GBNF grammar of llama.cpp and llguidance compiles to a
constraint (on the engine its IR calls for), and outlines' sample inputs are in the languages of
outlines' Lark grammars, for tether exactly as for Lark's own Earley parser.
"""

from __future__ import annotations

import lark
import pytest

import tether

from conftest import data_path, real_vocab

GBNF_DIRS = [("llama.cpp", "grammars"), ("llguidance", "sample_parser", "data", "from-llama.cpp")]
GBNF_FILES = sorted(p for d in GBNF_DIRS for p in data_path("grammars", *d).glob("*.gbnf"))

# A grammar without recursion is a regex; the others need the context-free engine.
RECURSIVE = {"arithmetic", "c", "json", "json_arr"}


def test_the_gbnf_corpus_is_there():
    assert len(GBNF_FILES) >= 16, GBNF_FILES


@pytest.mark.parametrize("path", GBNF_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_gbnf_grammar_compiles_and_masks(path):
    g = tether.gbnf(path.read_text())
    assert g.engine == ("cfg" if path.stem in RECURSIVE else "dfa"), g.engine
    c = g.compile(real_vocab("llama-bpe"))
    assert c.mask(c.initial()).any()


OUTLINES = data_path("grammars", "outlines")
SAMPLES = sorted((OUTLINES / "tests" / "cfg_samples").glob("*/*.test"))


def test_the_outlines_samples_are_there():
    assert {p.parent.name for p in SAMPLES} == {"json", "arithmetic"} and len(SAMPLES) >= 5


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_outlines_samples_are_accepted_by_tether_and_lark(sample):
    grammar_file = OUTLINES / "src" / "outlines" / "grammars" / f"{sample.parent.name}.lark"
    # The files end with a newline that is not part of the sample (the arithmetic grammar ignores
    # only inline whitespace): outlines' own test reads them the same way, stripped.
    text, data = grammar_file.read_text(), sample.read_text().rstrip("\n")
    reference = lark.Lark(text, parser="earley", lexer="dynamic_complete", import_paths=[str(grammar_file.parent)])
    reference.parse(data)  # raises if Lark refuses it
    g = tether.lark(text, import_paths=[str(grammar_file.parent)])
    assert g.matches(data)
    vocab = real_vocab("llama-bpe")
    c = g.compile(vocab)
    state = c.advance_many(c.initial(), vocab.encode_greedy(data))
    assert c.is_accepting(state)
    for cut in (1, len(data) // 2, len(data) - 1):  # a prefix is not a member; a wrong byte is rejected
        assert not g.matches(data[:cut] + "\x00") and g.matches(data[:cut]) == _lark_accepts(reference, data[:cut])


def _lark_accepts(parser: lark.Lark, text: str) -> bool:
    try:
        parser.parse(text)
    except lark.exceptions.LarkError:
        return False
    return True
