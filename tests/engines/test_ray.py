"""The Ray Data batch job (examples/ray_batch.py): 200 prompts on 2 actors, every record valid,
run in a network namespace of its own whose only interface is loopback (Ray's core servers
listen on every interface), and no process of the cluster left once it returns."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import jsonschema
import psutil
import pytest

from conftest import REPO_ROOT, isolated

sys.path.insert(0, str(REPO_ROOT / "examples"))
from ray_batch import PERSON  # noqa: E402


def leftovers(temp: str) -> list[int]:
    """Processes whose command line names the cluster's folder (raylet, GCS, workers, agents)."""
    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if any(temp in part for part in p.info["cmdline"] or ()):
                found.append(p.info["pid"])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


@pytest.fixture
def temp():
    # Short: Ray's Unix sockets live under it, and socket paths are limited to 107 bytes.
    path = tempfile.mkdtemp(prefix="tray", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_batch_job_of_200_prompts_on_2_actors(temp):
    out = Path(temp) / "people"
    done = isolated([sys.executable, str(REPO_ROOT / "examples" / "ray_batch.py"), "--prompts", "200",
                     "--out", str(out)], temp, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for f in sorted(out.glob("*.json")) for line in f.read_text().splitlines()]
    assert sorted(r["id"] for r in records) == list(range(200))
    for r in records:
        assert r["ok"], r
        value = json.loads(r["value"])
        jsonschema.validate(value, PERSON)
        assert value == json.loads(r["text"])
    deadline = time.time() + 30
    while leftovers(temp) and time.time() < deadline:
        time.sleep(0.5)
    assert leftovers(temp) == [], "processes of the Ray cluster outlived ray.shutdown()"


def test_the_namespace_has_only_loopback(temp):
    done = isolated(["ip", "-o", "addr"], temp, timeout=60)
    assert done.returncode == 0, done.stderr
    interfaces = {line.split()[1] for line in done.stdout.splitlines()}
    assert interfaces == {"lo"}, done.stdout
