"""Shared fixtures: the real data in ../shared/data, located from the repository root."""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

import pytest

# Tests never write tether's disk cache into the home directory: one fresh folder per run.
os.environ["TETHER_CACHE_DIR"] = tempfile.mkdtemp(prefix="tether-test-cache-")

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT.parent / "shared" / "data"


def data_path(*parts: str) -> Path:
    """A path under ../shared/data; fails loudly (never skips) when the data is missing."""
    path = DATA_DIR.joinpath(*parts)
    if not path.exists():
        pytest.fail(
            f"test data missing: {path} (tether's tests read the shared data set from "
            f"../shared/data next to the repository; see README)",
            pytrace=False,
        )
    return path


@functools.cache
def real_vocab(name: str):
    """A real vocabulary from ../shared/data/tokenizers/<name>/tokenizer.json.gz, loaded once per run."""
    from tether import Vocabulary

    return Vocabulary.from_file(data_path("tokenizers", name, "tokenizer.json.gz"))
