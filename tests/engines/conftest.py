"""Fixtures of the serving-engine tests (`make test-engines`, in .venv-engines): the embedded
SmolLM2 as a safetensors folder (vLLM) and its tokenizer."""

from __future__ import annotations

import functools
import os
import subprocess
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


def isolated(command: list[str], ray_temp: str, **kwargs) -> subprocess.CompletedProcess:
    """`command` in a new network namespace with only loopback up (Ray's core servers listen on
    every interface; there, every interface is loopback), Ray's files under `ray_temp`."""
    script = 'ip link set lo up && exec "$@"'
    env = {**os.environ, "RAY_TMPDIR": ray_temp, "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.run(["unshare", "--net", "sh", "-c", script, "sh", *command], env=env,
                          capture_output=True, text=True, **kwargs)
