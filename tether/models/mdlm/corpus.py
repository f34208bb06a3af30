"""The training corpus of tether's small MDLM, built only from the data the project already has.

    >>> corpus = build_corpus()                       # reads ../shared/data, downloads nothing
    >>> corpus.counts()["train"]["sql"], corpus.train[0].source
    (..., 'json')

Three sources, each a list of short documents (one document is one training row):

- ``json``: the valid instances of JSONSchemaBench / MaskBench
  (``jsonschema/maskbench/maskbench_data.tar.xz``), serialised compactly
  (``separators=(",", ":")``, key order kept, non-ASCII kept), which is the layout tether's
  JSON constraints produce by default.
- ``sql``: Spider's training gold queries (``sql/spider/train_gold.sql``), with the runs of
  spaces Spider's annotators left around operators and commas collapsed to one space.
- ``english``: short English prose: the ``description`` and ``title`` strings inside the
  MaskBench schemas (written by people for people: "The owner string, such as ..."),
  kept when they look like a sentence (ASCII, 4+ words, 20-400 characters, not a URL or code),
  plus the Spider questions in ``tests/data/spider_questions.jsonl`` when that file is there.
  Nothing else; no web text was available, so the English is documentation-flavoured.

Every source is deduplicated, and the train / held-out split is a hash of the text
(sha1 mod 1000 < `heldout_permille`), so it does not depend on file order or on the
other documents, and a document never lands on both sides.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

__all__ = ["Document", "Corpus", "build_corpus", "default_data_dir", "SOURCES"]

SOURCES = ("json", "sql", "english")

MASKBENCH = ("jsonschema", "maskbench", "maskbench_data.tar.xz")
SPIDER_SQL = ("sql", "spider", "train_gold.sql")
# The repository's own test data: 30 Spider questions with their gold SQL.
SPIDER_QUESTIONS = Path(__file__).resolve().parents[3] / "tests" / "data" / "spider_questions.jsonl"

_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"[A-Za-z]{2,}")


@dataclass(frozen=True)
class Document:
    """One training row's text and where it came from (`source` is one of SOURCES)."""

    text: str
    source: str


@dataclass
class Corpus:
    """Deduplicated documents, split deterministically into `train` and `heldout`."""

    train: list[Document] = field(default_factory=list)
    heldout: list[Document] = field(default_factory=list)
    data_dir: str = ""

    def counts(self) -> dict[str, dict[str, int]]:
        """Documents and characters per split and source, for record.json."""
        out: dict[str, dict[str, int]] = {}
        for split, docs in (("train", self.train), ("heldout", self.heldout)):
            row = {s: 0 for s in SOURCES} | {f"{s}_chars": 0 for s in SOURCES}
            for d in docs:
                row[d.source] += 1
                row[f"{d.source}_chars"] += len(d.text)
            out[split] = row
        return out


def default_data_dir() -> Path:
    """``../shared/data`` next to the repository (where CI and developer machines have it)."""
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


def build_corpus(data_dir: "str | Path | None" = None, *, heldout_permille: int = 20,
                 max_per_source: int | None = None) -> Corpus:
    """Read the three sources under `data_dir` and split them (see the module docstring).

    `max_per_source` keeps only the first N documents of each source (for fast tests).
    A missing data file is a FileNotFoundError naming it.

        >>> c = build_corpus(max_per_source=100)
        >>> len(c.train) + len(c.heldout) <= 300
        True
    """
    if not 0 < heldout_permille < 1000:
        raise ValueError(f"heldout_permille must be in 1..999, got {heldout_permille}")
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    readers = {"json": lambda: _json_and_prose(root)[0], "sql": lambda: _sql(root),
               "english": lambda: _json_and_prose(root)[1]}
    _json_and_prose.cache = {}  # one pass over the tarball serves both json and english
    corpus = Corpus(data_dir=str(root))
    for source in SOURCES:
        seen: set[str] = set()
        for text in readers[source]():
            if not text or text in seen:
                continue
            seen.add(text)
            doc = Document(text, source)
            (corpus.heldout if _is_heldout(text, heldout_permille) else corpus.train).append(doc)
            if max_per_source is not None and len(seen) >= max_per_source:
                break
    return corpus


def _is_heldout(text: str, permille: int) -> bool:
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:8], 16) % 1000 < permille


def _need(path: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"MDLM corpus data missing: {path} (the shared data set lives in "
                                f"../shared/data next to the repository; pass data_dir= otherwise)")
    return path


def _json_and_prose(root: Path) -> tuple[list[str], list[str]]:
    """(compact valid instances, English description/title strings) from the MaskBench tarball."""
    cache = _json_and_prose.cache
    if root in cache:
        return cache[root]
    instances: list[str] = []
    prose: list[str] = []
    per_member: list[tuple[str, list[str], list[str]]] = []
    # Streamed in archive order (xz cannot seek back cheaply), then sorted by member name, so
    # the order does not depend on how the tarball was packed.
    with tarfile.open(_need(root.joinpath(*MASKBENCH)), "r|xz") as tar:
        for member in tar:
            if not member.isfile() or not member.name.endswith(".json"):
                continue
            try:
                item = json.load(tar.extractfile(member))
            except ValueError:
                continue  # a broken member is not training data
            if not isinstance(item, dict):
                continue
            found = [json.dumps(test["data"], separators=(",", ":"), ensure_ascii=False)
                     for test in item.get("tests", ())
                     if isinstance(test, dict) and test.get("valid") is True and "data" in test]
            per_member.append((member.name, found, list(_described(item.get("schema")))))
    for _, found, described in sorted(per_member, key=lambda row: row[0]):
        instances.extend(found)
        prose.extend(described)
    if SPIDER_QUESTIONS.is_file():
        for line in SPIDER_QUESTIONS.read_text(encoding="utf-8").splitlines():
            if line.strip():
                prose.append(json.loads(line)["question"].strip())
    cache[root] = (instances, prose)
    return instances, prose


_json_and_prose.cache = {}  # type: ignore[attr-defined]


def _described(schema: Any) -> Iterator[str]:
    """The `description` / `title` strings of a schema that read as English sentences."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("description", "title") and isinstance(value, str):
                    text = _SPACES.sub(" ", value).strip()
                    if _is_prose(text):
                        yield text
                elif isinstance(value, (dict, list)):
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)


def _is_prose(text: str) -> bool:
    if not 20 <= len(text) <= 400 or not text.isascii():
        return False
    if text.startswith(("http", "{", "[", "<", "$", "/")) or "```" in text:
        return False
    return len(_WORD.findall(text)) >= 4


def _sql(root: Path) -> Iterable[str]:
    for line in _need(root.joinpath(*SPIDER_SQL)).read_text(encoding="utf-8").splitlines():
        query = line.split("\t", 1)[0]
        query = _SPACES.sub(" ", query).strip()
        if query:
            yield query
