"""Every case the fuzzers saved in tests/regressions/<target>.jsonl, replayed by the check that found it.

    python -m fuzz regex --seconds 60          # appends failing cases to tests/regressions/regex.jsonl
    python -m fuzz grammar --seconds 60        # ... and to tests/regressions/grammar.jsonl
    python -m fuzz jsonschema --seconds 60     # ... and to tests/regressions/jsonschema.jsonl
    python -m fuzz sql --seconds 60            # ... and to tests/regressions/sql.jsonl
    python -m pytest tests/test_fuzz_regressions.py
"""

from __future__ import annotations

import json

import pytest

from fuzz import _harness
from fuzz import grammar as grammar_fuzz
from fuzz import jsonschema as jsonschema_fuzz
from fuzz import regex as regex_fuzz
from fuzz import sql as sql_fuzz

from conftest import data_path

# target -> the function that checks one of its cases (None when tether does what the case expects)
REPLAYERS = {"regex": regex_fuzz.check_case, "grammar": grammar_fuzz.check_case,
             "jsonschema": jsonschema_fuzz.check_case, "sql": sql_fuzz.check_case}
# target -> the keys every saved case of it has
REQUIRED = {"regex": {"kind", "pattern", "flags", "expected"}, "grammar": {"kind", "grammar", "start", "expected"},
            "jsonschema": {"kind", "schema", "options", "expected"}, "sql": {"kind", "db", "text", "expected"}}


def _cases() -> list[tuple[str, int, dict]]:
    found = []
    for target in REPLAYERS:
        if _harness.regression_path(target).exists():
            found += [(target, line, case) for line, case in enumerate(_harness.load_cases(target), 1)]
    return found


def _case_id(item: tuple[str, int, dict]) -> str:
    target, line, case = item
    source = case.get("pattern", case.get("grammar", json.dumps(case.get("schema", ""), ensure_ascii=False)))
    return f"{target}:{line}:{case['kind']}:{source[:24]}"


@pytest.mark.parametrize("target", sorted(REPLAYERS))
def test_regression_file_is_there_and_not_empty(target):
    path = _harness.regression_path(target)
    assert path.exists(), f"{path} is missing: it holds the fuzzers' saved cases and must be committed"
    cases = _harness.load_cases(target)
    assert len(cases) >= 5, f"{path} holds {len(cases)} cases; the seed cases are gone"
    for case in cases:
        assert REQUIRED[target] <= set(case), case


@pytest.mark.parametrize("item", _cases(), ids=_case_id)
def test_saved_case_still_holds(item):
    target, line, case = item
    if "vocab" in case:
        data_path("tokenizers", case["vocab"], "tokenizer.json.gz")  # fails loudly when the data is missing
    problem = REPLAYERS[target](case)
    assert problem is None, f"{_harness.regression_path(target).name} line {line}: {problem}\n  case: {case}"
