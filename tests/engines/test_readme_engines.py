"""The README's "Scaling out" examples (```python engines blocks) run, each as a script of its
own in a fresh interpreter, the way a user runs them: vLLM with its default engine process,
Ray in a network namespace with loopback only."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import REPO_ROOT, isolated

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.S | re.M)
BLOCKS = {next(engine for engine in ("vllm", "llamacpp", "ray") if f"tether.integrations.{engine}" in body): body
          for tag, body in FENCE.findall(README) if tag.strip() == "python engines"}
YEAR = re.compile(r"(19|20)[0-9]{2}")


def test_there_is_one_example_per_engine_in_under_ten_lines():
    assert set(BLOCKS) == {"vllm", "llamacpp", "ray"}
    assert all(len(body.strip().splitlines()) < 10 for body in BLOCKS.values())


@pytest.fixture
def workdir():
    path = tempfile.mkdtemp(prefix="trd", dir="/tmp")  # short: Ray's Unix sockets live under it
    yield Path(path)
    shutil.rmtree(path, ignore_errors=True)


def run(engine: str, workdir: Path) -> list[str]:
    script = workdir / f"{engine}_example.py"
    script.write_text(BLOCKS[engine])
    command = [sys.executable, str(script)]
    if engine == "ray":
        done = isolated(command, str(workdir), cwd=workdir, timeout=900)
    else:
        done = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


def test_vllm_example(workdir):
    year, person = run("vllm", workdir)[-2:]
    assert YEAR.fullmatch(year), year
    assert isinstance(json.loads(person)["name"], str)


def test_llamacpp_example(workdir):
    lines = run("llamacpp", workdir)[-3:]
    assert all(YEAR.fullmatch(line) for line in lines), lines


def test_ray_example(workdir):
    run("ray", workdir)
    rows = [json.loads(line) for f in (workdir / "numbers").glob("*.json") for line in f.read_text().splitlines()]
    assert len(rows) == 200 and all(r["ok"] and re.fullmatch(r"[1-9][0-9]{0,2}", r["text"]) for r in rows)
    assert all(json.loads(r["value"]) == r["text"] for r in rows)
