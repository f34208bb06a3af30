"""Fixtures of the serving-engine tests (`make test-engines`, in .venv-engines): the embedded
SmolLM2 as a safetensors folder (vLLM) and its tokenizer."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def smollm2_folder():
    import tether

    return tether.models.safetensors_folder(progress=False)


@pytest.fixture(scope="session")
def folder():
    return smollm2_folder()


@pytest.fixture(scope="session")
def tokenizer(folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))
