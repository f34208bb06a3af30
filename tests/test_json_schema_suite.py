"""The official JSON Schema Test Suite (draft2020-12 and draft7, with the optional format files).

Every schema is compiled in the strict default (remotes preloaded as `resources`, nothing
fetched), with `property_order="any"` and `additional_properties="allow"` so that every valid
instance has a text in the language; each instance is written with `canonical_json` and must be
accepted iff the suite says it is valid. Per keyword file the pass / fail / unsupported counts are
a ratchet: tests/data/json_schema_suite_baseline.json records them, and a file may not pass fewer
cases than recorded. An invalid instance accepted by a compiled schema is always an error.

To record improvements: TETHER_UPDATE_SUITE_BASELINE=1 pytest tests/test_json_schema_suite.py
"""

from __future__ import annotations

import collections
import json
import os
import warnings
from pathlib import Path

import pytest

import tether
from tether.grammar.json_schema import canonical_json

from conftest import data_path

BASELINE = Path(__file__).parent / "data" / "json_schema_suite_baseline.json"
DRAFTS = {"draft2020-12": "https://json-schema.org/draft/2020-12/schema",
          "draft7": "http://json-schema.org/draft-07/schema#"}


def _remotes() -> dict:
    root = data_path("jsonschema", "test-suite", "remotes")
    return {f"http://localhost:1234/{p.relative_to(root).as_posix()}": json.loads(p.read_text())
            for p in root.rglob("*.json")}


def _files(draft: str) -> list[Path]:
    root = data_path("jsonschema", "test-suite", draft)
    return sorted(root.glob("*.json")) + sorted((root / "optional" / "format").glob("*.json"))


def _run_file(path: Path, draft: str, remotes: dict) -> tuple[collections.Counter, list[str]]:
    counts: collections.Counter = collections.Counter()
    unsound: list[str] = []
    for case in json.loads(path.read_text()):
        schema = case["schema"]
        if isinstance(schema, dict) and "$schema" not in schema:
            schema = {**schema, "$schema": DRAFTS[draft]}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                grammar = tether.json_schema(schema, property_order="any", additional_properties="allow",
                                             resources=remotes)
        except tether.UnsupportedSchema:
            counts["unsupported"] += len(case["tests"])
            continue
        except tether.EmptyLanguage:
            grammar = None
        for test in case["tests"]:
            accepted = grammar is not None and grammar.matches(canonical_json(test["data"]))
            if accepted == test["valid"]:
                counts["pass"] += 1
            elif accepted:
                unsound.append(f"{path.name}: {case['description']} / {test['description']}")
            else:
                counts["fail"] += 1
    return counts, unsound


@pytest.fixture(scope="module")
def results() -> dict:
    remotes = _remotes()
    out: dict = {}
    for draft in DRAFTS:
        for path in _files(draft):
            name = path.relative_to(data_path("jsonschema", "test-suite", draft)).as_posix()
            out[f"{draft}/{name}"] = _run_file(path, draft, remotes)
    if os.environ.get("TETHER_UPDATE_SUITE_BASELINE"):
        BASELINE.write_text(json.dumps({k: dict(sorted(c.items())) for k, (c, _) in sorted(out.items())}, indent=1) + "\n")
    return out


def test_no_invalid_instance_is_accepted(results):
    unsound = [u for _, (_, found) in results.items() for u in found]
    assert not unsound, unsound


def test_no_keyword_file_passes_fewer_cases_than_its_baseline(results):
    baseline = json.loads(BASELINE.read_text())
    worse = {name: (baseline[name].get("pass", 0), counts["pass"]) for name, (counts, _) in results.items()
             if name in baseline and counts["pass"] < baseline[name].get("pass", 0)}
    assert not worse, f"(baseline, now) passes per file: {worse}"
    assert set(baseline) == set(results), "the suite's files changed: update the baseline"


def test_more_cases_pass_than_llguidance_recorded(results):
    recorded = json.loads(data_path("grammars", "llguidance", "json_schema_test_suite",
                                    "expected_json_schema_test_suite.json").read_text())["draft2020-12"]
    theirs = sum(v == "pass" for cases in recorded.values() for tests in cases.values() for v in tests.values())
    ours = sum(c["pass"] for name, (c, _) in results.items() if name.startswith("draft2020-12/"))
    assert ours > theirs, (ours, theirs)
