"""The public surface: the exports, `import tether` staying light, Limits, the error family, and
what the core does when the `models` extra (torch, transformers, tokenizers) is not installed."""

from __future__ import annotations

import dataclasses
import inspect
import json
import subprocess
import sys
import textwrap
import types

import pytest

import tether
from tether import errors

# Written down on purpose: a removed or an accidentally added export fails here, and the change
# has to be made twice (in tether/__init__.py and below), once deliberately.
EXPECTED_EXPORTS = {
    "classes": {"Vocabulary", "Regex", "Grammar", "JSONSchema", "SQL", "Constraint", "Matcher", "Limits", "Greedy", "Sample", "BeamSearch",
                "SMC", "AWRS", "Generation", "Status", "TetherError", "SpecError", "Location", "InvalidPattern",
                "UnsupportedPattern", "EmptyLanguage", "GrammarError", "InvalidSchema", "UnsupportedSchema", "SQLSchemaError", "ConstraintTooLarge", "TokenRejected", "InvalidState",
                "VocabularyError", "VocabularyMismatch", "ContextLengthExceeded", "GenerationFailed"},
    "functions": {"regex", "lark", "gbnf", "json_schema", "sql", "structured", "infill", "generate", "agenerate", "stream", "allocate_bitmask", "apply_bitmask"},
    "modules": {"models", "samplers", "strategies"},
}
MODULES = {"strategies": "tether.integrations.strategies"}


def test_all_is_the_written_down_set_without_duplicates():
    expected = set().union(*EXPECTED_EXPORTS.values())
    assert len(tether.__all__) == len(set(tether.__all__)), "duplicate names in tether.__all__"
    assert set(tether.__all__) == expected, {
        "unexpected": sorted(set(tether.__all__) - expected), "missing": sorted(expected - set(tether.__all__))}


@pytest.mark.parametrize("name", sorted(tether.__all__))
def test_every_export_is_a_tether_object_of_its_kind(name):
    value = getattr(tether, name)
    if name in EXPECTED_EXPORTS["modules"]:
        assert isinstance(value, types.ModuleType) and value.__name__ == MODULES.get(name, f"tether.{name}")
        return
    assert value.__module__.startswith("tether."), f"tether.{name} comes from {value.__module__}"
    if name in EXPECTED_EXPORTS["classes"]:
        assert inspect.isclass(value), f"tether.{name} should be a class, is {type(value).__name__}"
    else:
        assert inspect.isfunction(value), f"tether.{name} should be a function, is {type(value).__name__}"
    assert value.__doc__, f"tether.{name} has no docstring"


def test_dir_lists_every_export_even_before_lazy_loading():
    out = _run_python("import tether, json; print(json.dumps(dir(tether)))")
    assert set(tether.__all__) <= set(json.loads(out))


def test_import_does_not_load_torch_or_transformers():
    out = _run_python("import sys, tether; print('torch' in sys.modules, 'transformers' in sys.modules)")
    assert out.split() == ["False", "False"]


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        tether.nope  # noqa: B018


# ---------------------------------------------------------------- Limits


def test_limits_fields_are_the_documented_ones():
    assert [f.name for f in dataclasses.fields(tether.Limits)] == [
        "compile_seconds", "automaton_bytes", "mask_cache_bytes"]
    patient = tether.Limits(compile_seconds=0.5, automaton_bytes=1, mask_cache_bytes=10**12)
    assert (patient.compile_seconds, patient.automaton_bytes) == (0.5, 1)


@pytest.mark.parametrize("value", [0, -1, -0.5, True, False, "10", None, float("nan")])
@pytest.mark.parametrize("field", ["compile_seconds", "automaton_bytes", "mask_cache_bytes"])
def test_limits_reject_values_that_are_not_positive_numbers(field, value):
    with pytest.raises(ValueError, match=f"Limits.{field} must be a positive number"):
        tether.Limits(**{field: value})


def test_a_spent_compile_budget_raises_constraint_too_large_naming_the_limit():
    deadline = tether.Limits(compile_seconds=1e-9).deadline("parsing the regex")
    with pytest.raises(tether.ConstraintTooLarge, match=r"parsing the regex: .* s exceeds .*compile_seconds=") as info:
        deadline.check_now()
    assert info.value.limit_name == "compile_seconds" and info.value.unit == "s"


# ---------------------------------------------------------------- errors


FAMILY = {
    # error: (what it must subclass, whether it is also a ValueError)
    "SpecError": ("TetherError", True),
    "InvalidPattern": ("SpecError", True),
    "UnsupportedPattern": ("SpecError", True),
    "EmptyLanguage": ("SpecError", True),
    "GrammarError": ("SpecError", True),
    "InvalidSchema": ("SpecError", True),
    "UnsupportedSchema": ("SpecError", True),
    "SQLSchemaError": ("SpecError", True),
    "ConstraintTooLarge": ("TetherError", False),  # a budget, not a bad value: raising a limit fixes it
    "TokenRejected": ("TetherError", True),
    "InvalidState": ("TetherError", True),
    "VocabularyError": ("TetherError", True),
    "VocabularyMismatch": ("VocabularyError", True),
    "ContextLengthExceeded": ("TetherError", True),
    "GenerationFailed": ("TetherError", False),  # the model's output, not the caller's input, is at fault
}


@pytest.mark.parametrize("name", sorted(FAMILY))
def test_errors_form_one_family(name):
    cls, (parent, is_value_error) = getattr(errors, name), FAMILY[name]
    assert issubclass(cls, getattr(errors, parent)) and issubclass(cls, tether.TetherError)
    assert issubclass(cls, ValueError) == is_value_error
    assert name in errors.__all__
    if name in tether.__all__:
        assert getattr(tether, name) is cls


def test_every_error_class_is_covered():
    # A new error class must take its place in FAMILY above (and so be thought about).
    classes = {n for n in errors.__all__ if inspect.isclass(getattr(errors, n)) and issubclass(getattr(errors, n), Exception)}
    assert classes == set(FAMILY) | {"TetherError"}


def test_errors_say_what_and_where():
    unsupported = errors.UnsupportedPattern("a^b", 1, "anchor")
    assert (unsupported.construct, unsupported.position, unsupported.location.offset) == ("anchor", 1, 1)
    assert str(unsupported).startswith("unsupported regex construct at position 1: anchor")
    assert str(unsupported).endswith("in 'a^b'")
    invalid = errors.InvalidPattern("[a-", 0, "unterminated character set")
    assert str(invalid) == "invalid regex at position 0: unterminated character set in '[a-'"
    empty = errors.EmptyLanguage("matches no string", source="[^\\x00-\\U0010FFFF]")
    assert str(empty).startswith("empty language: matches no string")
    long_source = errors.SpecError("bad", source="x" * 500)
    assert "(500 characters)" in str(long_source) and len(str(long_source)) < 300
    too_large = errors.ConstraintTooLarge("building automaton states", 600, 512, unit="MiB", limit_name="automaton_bytes")
    assert str(too_large) == ("building automaton states: 600 MiB exceeds the limit of 512 MiB "
                              "(raise tether.Limits(automaton_bytes=...))")
    rejected = errors.TokenRejected(3, 17, b"ab")
    assert (rejected.state, rejected.token_id, rejected.token) == (3, 17, b"ab") and "17" in str(rejected)


@pytest.mark.parametrize(("location", "text"), [
    (errors.Location(offset=4), "at position 4"),
    (errors.Location(rule="value", line=3, column=7), "in rule 'value' line 3, column 7"),
    (errors.Location(pointer="/properties/age"), "at /properties/age"),
    (errors.Location(pointer=""), "at /"),
    (errors.Location(), ""),
])
def test_locations_read_as_text(location, text):
    assert str(location) == text


# ---------------------------------------------------------------- without the `models` extra

# Runs in a fresh interpreter where torch, transformers and tokenizers cannot be imported (a
# meta-path finder refuses them, as if they were not installed), and reports what each probe did.
_WITHOUT_MODELS = textwrap.dedent(r"""
    import json, sys

    class NotInstalled:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in {"torch", "transformers", "tokenizers"}:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())

    import tether

    report = {}
    vocab = tether.Vocabulary.from_tokens([b"a", b"b", b"1", b"12", None], eos_ids=[4])
    c = tether.regex(r"[ab]+1").compile(vocab)
    s0 = c.initial()
    s1 = c.advance(s0, 0)
    s2 = c.advance(s1, 2)
    report["masks"] = [c.mask(s).tolist() for s in (s0, s1, s2)]
    report["accepting"] = [c.is_accepting(s) for s in (s0, s1, s2)]
    row = tether.allocate_bitmask(1, vocab.size)[0]
    c.fill_bitmask(s1, row)
    report["bitmask"] = row.tolist()

    probes = {
        "tether.generate": lambda: tether.generate,
        "tether.samplers": lambda: tether.samplers,
        "tether.SMC": lambda: tether.SMC,
        "tether.models.default()": lambda: tether.models.default(),
        "tether.apply_bitmask": lambda: tether.apply_bitmask(object(), row),
    }
    for name, probe in probes.items():
        try:
            probe()
            report[name] = "no error"
        except Exception as e:
            report[name] = f"{type(e).__name__}: {e}"
    report["loaded"] = sorted(m for m in ("torch", "transformers", "tokenizers") if m in sys.modules)
    print(json.dumps(report))
""")


@pytest.fixture(scope="module")
def without_models() -> dict:
    return json.loads(_run_python(_WITHOUT_MODELS).splitlines()[-1])


def test_core_works_without_the_models_extra(without_models):
    # [ab]+1 over tokens a, b, 1, 12, EOS: first a letter, then a letter or "1", then only EOS.
    assert without_models["masks"] == [
        [True, True, False, False, False],
        [True, True, True, False, False],
        [False, False, False, False, True],
    ]
    assert without_models["accepting"] == [False, False, True]
    assert without_models["bitmask"] == [0b00111]
    assert without_models["loaded"] == []


@pytest.mark.parametrize("probe", ["tether.generate", "tether.samplers", "tether.SMC"])
def test_generation_without_the_models_extra_names_the_extra(without_models, probe):
    message = without_models[probe]
    assert message == f"ImportError: {probe} needs torch: pip install 'tether[models]'"


@pytest.mark.parametrize("probe", ["tether.models.default()", "tether.apply_bitmask"])
def test_model_helpers_without_the_models_extra_name_the_extra(without_models, probe):
    message = without_models[probe]
    assert message.startswith("ImportError: ") and "pip install 'tether[models]'" in message, message


def _run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout
