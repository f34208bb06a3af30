"""The README's examples run: every ```python exec block (in a fresh namespace, in a fresh
interpreter's order) and every `$ tether ...` line of a ```console block (from the repository
root; `--json` output must parse)."""

from __future__ import annotations

import json
import linecache
import re
import shlex
import subprocess
import sys
import types
from pathlib import Path

import pytest

from conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.S | re.M)


def blocks(info: str) -> list[str]:
    return [body for tag, body in FENCE.findall(README) if tag.strip() == info]


PYTHON = blocks("python exec")
COMMANDS = [line[2:] for body in blocks("console") for line in body.splitlines() if line.startswith("$ tether ")]
NEEDS_MODEL = re.compile(r"tether\.models\.default|^tether (generate|demo)\b", re.M)


def _marks(text: str) -> list:
    return [pytest.mark.model] if NEEDS_MODEL.search(text) else []


def _first_line(text: str) -> str:
    return next(line for line in text.splitlines() if line.strip() and not line.startswith("#"))[:60]


def test_the_readme_has_runnable_examples():
    assert len(PYTHON) >= 4 and len(COMMANDS) >= 5, (len(PYTHON), len(COMMANDS))


@pytest.mark.parametrize("code", [pytest.param(c, marks=_marks(c), id=_first_line(c)) for c in PYTHON])
def test_python_example_runs(code, monkeypatch):
    """As a module of its own, the way a user's script runs it (types resolve through sys.modules)."""
    monkeypatch.chdir(REPO_ROOT)
    module = types.ModuleType("readme_example")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    # The block's own source under a name of its own, so that what reads a function's source
    # (hypothesis' @given does) finds the block rather than the README's first lines.
    filename = f"<README.md block {PYTHON.index(code)}>"
    monkeypatch.setitem(linecache.cache, filename, (len(code), None, code.splitlines(True), filename))
    exec(compile(code, filename, "exec", dont_inherit=True), module.__dict__)  # noqa: S102 - our own README


@pytest.mark.parametrize("command", [pytest.param(c, marks=_marks(c), id=c[:60]) for c in COMMANDS])
def test_command_example_runs(command):
    argv = shlex.split(command)
    tether = Path(sys.executable).with_name("tether")
    done = subprocess.run([str(tether), *argv[1:]], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip(), "the command printed nothing"
    if "--json" in argv:
        json.loads(done.stdout)
