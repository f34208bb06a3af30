"""The public surface: every export resolves, and `import tether` stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import tether


def test_every_export_resolves():
    for name in tether.__all__:
        assert getattr(tether, name) is not None, name
    assert sorted(tether.__all__) == sorted(set(tether.__all__))


def test_import_does_not_load_torch_or_transformers():
    code = "import sys, tether; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        tether.nope  # noqa: B018


@pytest.mark.parametrize("field", ["max_nfa_states", "max_dfa_states", "mask_cache_bytes"])
def test_limits_reject_non_positive_values(field):
    with pytest.raises(ValueError, match=field):
        tether.Limits(**{field: 0})


def test_errors_form_one_family():
    for name in ["InvalidPattern", "UnsupportedPattern", "ConstraintTooLarge", "TokenRejected", "VocabularyError"]:
        assert issubclass(getattr(tether, name), tether.TetherError)
