"""Random constrained walks through `tether.json_schema` on the Llama-3 vocabulary.

A walk draws tokens from the constraint's own bitmask, so every text it reaches is one a model
could be made to write; whenever it stands in an accepting state, the text so far must be a
member of the schema's language by an independent judge.

- MaskBench schemas (JSONSchemaBench's maskbench set): a stratified sample (round robin over the
  subsets named in the member names, each shuffled with a fixed seed) of `TETHER_WALK_SCHEMAS`
  schemas (default 96; the issue's full run is `TETHER_WALK_SCHEMAS=2000`). Each schema is
  compiled with one of four option sets (the default; flexible whitespace; any property order;
  additional properties allowed) and walked a few times. Every text in an accepting state must
  be UTF-8 JSON, valid for `jsonschema` (the validator of the schema's `$schema` draft, with its
  format checker) and in `g.matches`. Schemas that raise UnsupportedSchema or ConstraintTooLarge
  are counted, not walked; most of the sample must compile and most walks must complete, so the
  test cannot pass vacuously.
- 30-odd Python types (msgspec Structs, dataclasses, TypedDicts, NamedTuples, enums, literals,
  unions, containers, recursion, `Annotated` metadata, dates/UUIDs/Decimals, pydantic models with
  `Field` constraints): every completed text must decode with msgspec (or pydantic's
  `model_validate_json`) into the type, `g.parse` must return that value, and the text must be
  valid for the type's JSON Schema. Sets (`uniqueItems`) are walked like the others: uniqueness
  is enforced at run time.
- At every state of every walk: `fill_bitmask` agrees with `allows` on all sampled allowed ids and
  on a few hundred forbidden ones (half of them sharing a first byte with an allowed token), EOS
  is allowed iff the state is accepting, special ids never are, some token is allowed, a finished
  state allows only EOS, and `advance` refuses forbidden ids.

A walk explores with uniformly random allowed tokens for a random number of steps, then steers
toward an end (closing characters, digits and separators first, a random allowed token now and
then) until it is accepting or reaches MAX_TOKENS. Everything is seeded (`TETHER_WALK_SEED`);
each failure names the schema, its options, the walk seed and the text, so it replays alone:
    TETHER_WALK_ONLY=Github_easy---o1234 pytest tests/test_json_schema_walks.py -k maskbench
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import enum
import functools
import json
import os
import random
import re
import tarfile
import time
import uuid
import warnings
import zlib
from typing import Annotated, Any, Callable, Literal, NamedTuple, Optional, TypedDict, Union

import jsonschema
import jsonschema.validators
import msgspec
import numpy as np
import pydantic
import pytest

import tether
from tether.errors import TokenRejected

from conftest import data_path, real_vocab

SEED = int(os.environ.get("TETHER_WALK_SEED", "20250611"))
N_SCHEMAS = int(os.environ.get("TETHER_WALK_SCHEMAS", "96"))
ONLY = os.environ.get("TETHER_WALK_ONLY")  # a substring of member names: replay just those
WALKS_PER_SCHEMA = 2
WALKS_PER_TYPE = 4
MAX_TOKENS = 160  # per walk
MAX_EXPLORE = 24  # uniformly random steps before a walk steers toward an end
STEER_RANDOM = 0.15  # while steering, the chance of a random allowed token instead
N_ALLOWED_CHECKED = 96  # per state: allowed ids checked against `allows` (all when fewer)
N_FORBIDDEN_CHECKED = 160  # per state: forbidden ids checked against `allows`
N_ADVANCE_CHECKED = 2  # per state: forbidden ids that `advance` must refuse

MIN_COMPILED_SHARE = 0.6  # of the MaskBench sample
MIN_COMPLETED_SHARE = 0.6  # of the walks of compiled schemas
VOCAB = "llama-bpe"

OPTION_SETS: list[dict[str, str]] = [
    {},
    {"whitespace": "flexible"},
    {"property_order": "any"},
    {"additional_properties": "allow"},
]


# ---------------------------------------------------------------- the walk


@dataclasses.dataclass
class _Tokens:
    """What the walks need to know about a vocabulary, computed once."""

    vocab: Any
    eos: np.ndarray  # bool[size]
    special: np.ndarray  # bool[size]: specials other than EOS
    first_byte: np.ndarray  # int16[size]: -1 for ids without bytes
    steer: list[int]  # single-character tokens, most closing first


@functools.cache
def _tokens(name: str) -> _Tokens:
    vocab = real_vocab(name)
    eos = np.zeros(vocab.size, dtype=bool)
    eos[list(vocab.eos_ids)] = True
    special = np.zeros(vocab.size, dtype=bool)
    special[[t for t in vocab.special_ids if t not in vocab.eos_ids]] = True
    first = np.full(vocab.size, -1, dtype=np.int16)
    for t in range(vocab.size):
        data = vocab[t]
        if data:
            first[t] = data[0]
    steer = []
    for ch in '"}]0123456789:,':
        ids = vocab.encode_greedy(ch)
        if len(ids) == 1:
            steer.append(ids[0])
    return _Tokens(vocab, eos, special, first, steer)


def _mask(c, size: int) -> Callable[[Any], np.ndarray]:
    row = tether.allocate_bitmask(1, size)[0]

    def mask(state) -> np.ndarray:
        row[:] = 0
        c.fill_bitmask(state, row)
        # bit t of word t // 32, unpacked without tether's helper (little-endian words)
        return np.unpackbits(row.view(np.uint8), bitorder="little")[:size].astype(bool)

    return mask


def _check_state(c, tk: _Tokens, state, mask: np.ndarray, rng: np.random.Generator) -> list[str]:
    """The Constraint contract at one state, on a sample of ids; the problems found."""
    problems = []
    accepting = bool(c.is_accepting(state))
    if bool(mask[tk.eos].any()) != accepting or bool(mask[tk.eos].all()) != accepting:
        problems.append(f"EOS in mask {mask[tk.eos].tolist()} but is_accepting {accepting}")
    for e in tk.vocab.eos_ids:
        if c.allows(state, e) != accepting:
            problems.append(f"allows(EOS {e}) is {not accepting}, is_accepting {accepting}")
    if (mask & tk.special).any():
        problems.append(f"special ids allowed: {np.flatnonzero(mask & tk.special)[:5].tolist()}")
    moves = mask & ~tk.eos
    if not mask.any():
        problems.append("dead end: no token allowed, not even EOS")
    elif not accepting and not moves.any():
        problems.append("dead end: not accepting, and only EOS allowed")
    if c.is_finished(state) and (moves.any() or not accepting):
        problems.append(f"is_finished, yet accepting={accepting} and {int(moves.sum())} non-EOS ids allowed")
    allowed = np.flatnonzero(moves)
    if len(allowed) > N_ALLOWED_CHECKED:
        allowed = rng.choice(allowed, N_ALLOWED_CHECKED, replace=False)
    refused = [int(t) for t in allowed if not c.allows(state, int(t))]
    if refused:
        problems.append(f"mask allows, allows() refuses: " + ", ".join(f"{t} {tk.vocab[t]!r}" for t in refused[:5]))
    forbidden = ~mask & ~tk.eos & ~tk.special & (tk.first_byte >= 0)
    near = forbidden & np.isin(tk.first_byte, np.unique(tk.first_byte[moves]))  # same first byte as an allowed id
    sample = []
    for pool in (np.flatnonzero(near), np.flatnonzero(forbidden)):
        k = min(len(pool), N_FORBIDDEN_CHECKED // 2)
        if k:
            sample.extend(rng.choice(pool, k, replace=False).tolist())
    taken = [t for t in sample if c.allows(state, t)]
    if taken:
        problems.append(f"mask forbids, allows() accepts: " + ", ".join(f"{t} {tk.vocab[t]!r}" for t in taken[:5]))
    for t in sample[:N_ADVANCE_CHECKED]:
        try:
            c.advance(state, t)
        except TokenRejected:
            continue
        problems.append(f"advance took the forbidden id {t} {tk.vocab[t]!r}")
    return problems


@dataclasses.dataclass
class Walk:
    completed: bool = False  # reached an accepting state while steering
    text: str | None = None  # the final text (None when it is not UTF-8)
    tokens: int = 0
    failures: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)  # (kind, text, problem)


def _walk(g, c, tk: _Tokens, seed: int, judge: Callable[[str], str | None]) -> Walk:
    """One seeded walk; `judge(text)` returns a problem with an accepted text, or None."""
    rng = np.random.default_rng(seed)
    mask_of = _mask(c, tk.vocab.size)
    explore = int(rng.integers(0, MAX_EXPLORE + 1))
    walk = Walk()
    state, data = c.initial(), bytearray()
    judged: set[bytes] = set()
    for step in range(MAX_TOKENS + 1):
        mask = mask_of(state)
        text = _utf8(data)
        for problem in _check_state(c, tk, state, mask, rng):
            walk.failures.append(("mask", text if text is not None else repr(bytes(data)), problem))
        if walk.failures:
            break
        if c.is_accepting(state) and bytes(data) not in judged:
            judged.add(bytes(data))
            if text is None:
                walk.failures.append(("text", repr(bytes(data)), "accepting, but the text is not UTF-8"))
                break
            problem = judge(text)
            if problem:
                walk.failures.append(("text", text, problem))
                break
        moves = mask & ~tk.eos
        if c.is_accepting(state) and (step >= explore or not moves.any()):
            walk.completed = True
            break
        if step == MAX_TOKENS or not moves.any():
            break  # out of tokens, or a dead end (reported above)
        token = None
        if step >= explore and rng.random() >= STEER_RANDOM:
            token = next((t for t in tk.steer if moves[t]), None)
        if token is None:
            token = int(rng.choice(np.flatnonzero(moves)))
        try:
            state = c.advance(state, token)
        except tether.ConstraintTooLarge:
            raise
        except Exception as e:  # noqa: BLE001 - a mask that allows a token advance refuses
            walk.failures.append(("mask", _utf8(data) or repr(bytes(data)),
                                  f"advance refused the allowed id {token} {tk.vocab[token]!r}: {e!r}"))
            break
        data += tk.vocab[token]
        walk.tokens += 1
    walk.text = _utf8(data)
    return walk


def _utf8(data: bytes | bytearray) -> str | None:
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        return None


def _short(text: str | None, n: int = 400) -> str:
    text = repr(text)
    return text if len(text) <= n else text[: n - 40] + f"... ({len(text):,} chars)"


# ---------------------------------------------------------------- MaskBench


def _key(name: str) -> int:
    """A stable number for a name (Python's hash() of a str changes per process)."""
    return zlib.crc32(name.encode())


def _subset(name: str) -> str:
    base = name.rsplit("/", 1)[-1]
    return base.split("---")[0] if "---" in base else re.sub(r"_\d+\.json$", "", base)


@functools.cache
def _maskbench_sample() -> list[tuple[str, dict]]:
    """(member name, its record) for the stratified sample: round robin over the subsets."""
    with tarfile.open(data_path("jsonschema", "maskbench", "maskbench_data.tar.xz"), "r:xz") as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile() and m.name.endswith(".json")),
                         key=lambda m: m.name)
        if ONLY:
            members = [m for m in members if ONLY in m.name]
        groups: dict[str, list] = collections.defaultdict(list)
        for m in members:
            groups[_subset(m.name)].append(m)
        rng = random.Random(SEED)
        order = sorted(groups)
        for name in order:
            rng.shuffle(groups[name])
        picked = []
        while len(picked) < N_SCHEMAS and any(groups.values()):
            for name in order:
                if groups[name] and len(picked) < N_SCHEMAS:
                    picked.append(groups[name].pop())
        picked.sort(key=lambda m: m.offset_data)  # one pass through the xz stream
        out = [(m.name.rsplit("/", 1)[-1].removesuffix(".json"), json.load(tar.extractfile(m))) for m in picked]
    return sorted(out)


def _validator(schema: Any):
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def _schema_judge(g, schema: Any) -> Callable[[str], str | None]:
    validator = _validator(schema)

    def judge(text: str) -> str | None:
        try:
            value = json.loads(text)
        except ValueError as e:
            return f"accepting, but not JSON: {e}"
        try:
            error = jsonschema.exceptions.best_match(validator.iter_errors(value))
        except Exception as e:  # noqa: BLE001 - jsonschema could not judge (an unresolvable $ref, ...)
            return f"jsonschema raised {e!r}"[:400]
        if error is not None:
            return f"jsonschema: {error.message[:300]} at {error.json_path} (schema {'/'.join(map(str, error.schema_path))})"
        if not g.matches(text):
            return "accepting, but g.matches() says no"
        return None

    return judge


@dataclasses.dataclass
class _Run:
    counts: collections.Counter
    failures: dict[str, list[str]]  # kind -> failure lines
    unsupported: list[str]


@functools.cache
def _maskbench_run() -> _Run:
    tk = _tokens(VOCAB)
    counts: collections.Counter = collections.Counter()
    failures: dict[str, list[str]] = collections.defaultdict(list)
    unsupported = []
    seconds: list[tuple[float, str]] = []
    for name, record in _maskbench_sample():
        schema = record["schema"]
        options = OPTION_SETS[_key(name) % len(OPTION_SETS)]  # by name, so TETHER_WALK_ONLY replays it
        where = f"{name} {options or 'default'}"
        counts["schemas"] += 1
        started = time.perf_counter()  # for the report of the slowest schemas only; nothing asserts on time
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                g = tether.json_schema(schema, **options)
        except (tether.UnsupportedSchema, tether.ConstraintTooLarge, tether.InvalidSchema) as e:
            counts[type(e).__name__] += 1
            if isinstance(e, tether.ConstraintTooLarge) and "nesting depth" in str(e) and _depth(schema) < 64:
                # a RecursionError inside the compiler, on a schema that is not deep: a loop, not a limit
                failures["compile"].append(f"{where}: {e} -- but the schema nests only {_depth(schema)} "
                                           f"levels and names {json.dumps(schema).count('$ref')} $refs")
            unsupported.append(f"{where}: {type(e).__name__}: {str(e)[:160]}")
            continue
        except tether.EmptyLanguage as e:
            counts["EmptyLanguage"] += 1
            try:  # a wrong verdict only if jsonschema agrees with MaskBench that an instance is valid
                validator = _validator(schema)
                valid = [t["data"] for t in record.get("tests", []) if t.get("valid") and validator.is_valid(t["data"])]
            except Exception:  # noqa: BLE001 - jsonschema cannot judge this schema
                valid = []
            if valid:
                failures["compile"].append(f"{where}: EmptyLanguage ({e}), yet MaskBench lists valid "
                                           f"instances, e.g. {_short(json.dumps(valid[0]), 200)}")
            continue
        except Exception as e:  # noqa: BLE001 - a crash, not a refusal
            failures["compile"].append(f"{where}: json_schema raised {e!r}"[:600])
            continue
        counts["compiled"] += 1
        try:
            c = g.compile(tk.vocab)
            judge = _schema_judge(g, schema)
        except Exception as e:  # noqa: BLE001
            failures["compile"].append(f"{where}: compile(vocab) or the validator raised {e!r}"[:600])
            continue
        for k in range(WALKS_PER_SCHEMA):
            seed = SEED * 1_000_003 + _key(name) * 16 + k
            try:
                walk = _walk(g, c, tk, seed, judge)
            except tether.ConstraintTooLarge as e:
                counts["walks too large"] += 1
                unsupported.append(f"{where} walk seed {seed}: ConstraintTooLarge mid-walk: {str(e)[:160]}")
                continue
            except Exception as e:  # noqa: BLE001
                failures["crash"].append(f"{where} walk seed {seed}: {e!r}"[:600])
                continue
            counts["walks"] += 1
            counts["tokens"] += walk.tokens
            counts["completed"] += walk.completed
            for kind, text, problem in walk.failures:
                failures[kind].append(f"{where} walk seed {seed}: {problem}\n    text: {_short(text)}")
        seconds.append((time.perf_counter() - started, where))
    print(f"\nMaskBench walks on {VOCAB} (seed {SEED}, {N_SCHEMAS} schemas): {_summary(counts)}")
    for line in unsupported:
        print("  not walked:", line)
    print("  slowest:", "; ".join(f"{where} {t:.1f} s" for t, where in sorted(seconds, reverse=True)[:5]))
    return _Run(counts, dict(failures), unsupported)


def _depth(value: Any) -> int:
    """JSON nesting depth, plus one per `$ref` (a chain of references nests too)."""
    if isinstance(value, dict):
        return 1 + ("$ref" in value) + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _summary(counts: collections.Counter) -> str:
    walks = counts["walks"] or 1
    return (", ".join(f"{v:,} {k}" for k, v in sorted(counts.items()))
            + f"; {counts['completed'] / walks:.0%} of walks completed")


def _report(lines: list[str], what: str) -> str:
    return f"{len(lines)} {what} (seed {SEED}):\n" + "\n".join(lines[:40])


def test_maskbench_walk_texts_are_valid_instances():
    run = _maskbench_run()
    lines = run.failures.get("text", []) + run.failures.get("compile", []) + run.failures.get("crash", [])
    assert not lines, _report(lines, "walks reached a text the schema rejects, or crashed")


def test_maskbench_masks_agree_with_allows_along_walks():
    run = _maskbench_run()
    lines = run.failures.get("mask", [])
    assert not lines, _report(lines, "states break the mask contract")


def test_maskbench_sample_mostly_compiles_and_walks_complete():
    run = _maskbench_run()
    counts = run.counts
    assert counts["schemas"] == len(_maskbench_sample()) > 0
    if ONLY:
        return
    assert counts["schemas"] == min(N_SCHEMAS, 11_305)  # every member of the sample was tried
    assert counts["compiled"] >= MIN_COMPILED_SHARE * counts["schemas"], _summary(counts)
    assert counts["walks"] >= WALKS_PER_SCHEMA * counts["compiled"] * 0.9, _summary(counts)
    assert counts["completed"] >= MIN_COMPLETED_SHARE * counts["walks"], _summary(counts)
    subsets = {_subset(name) for name, _ in _maskbench_sample()}
    assert len(subsets) >= min(N_SCHEMAS, 21) * 0.9, sorted(subsets)


# ---------------------------------------------------------------- Python types


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 5


class Point(msgspec.Struct):
    x: int
    y: float


class User(msgspec.Struct):
    name: str
    email: Optional[str] = None
    age: int = 0


@dataclasses.dataclass
class Item:
    sku: str
    qty: int
    price: float


class Movie(TypedDict):
    title: str
    year: Annotated[int, msgspec.Meta(ge=1888, le=2100)]
    rating: Literal["G", "PG", "R"]


class Partial(TypedDict, total=False):
    a: int
    b: bool


class Pair(NamedTuple):
    left: int
    right: str


class Address(msgspec.Struct):
    street: str
    zip: Annotated[str, msgspec.Meta(pattern="^[0-9]{5}$")]


class LineItem(msgspec.Struct):
    item: Item
    color: Color


class Order(msgspec.Struct):
    id: uuid.UUID
    lines: list[LineItem]
    ship_to: Optional[Address] = None
    priority: Priority = Priority.LOW


class Tree(msgspec.Struct):
    value: int
    children: list["Tree"] = []


class Node(msgspec.Struct):
    label: str
    next: Optional["Node"] = None


class Bounded(msgspec.Struct):
    percent: Annotated[int, msgspec.Meta(ge=0, le=100)]
    ratio: Annotated[float, msgspec.Meta(gt=0, lt=1)]
    code: Annotated[str, msgspec.Meta(max_length=6, pattern="^[a-z]+$")]
    few: Annotated[list[int], msgspec.Meta(min_length=1, max_length=3)]


class Day(msgspec.Struct):
    day: datetime.date
    note: str


class Stamp(msgspec.Struct):
    at: datetime.datetime


class Clock(msgspec.Struct):
    clock: datetime.time


class Span(msgspec.Struct):
    length: datetime.timedelta


class Blob(msgspec.Struct):
    data: bytes


class Money(msgspec.Struct):
    amount: decimal.Decimal
    currency: Literal["EUR", "USD"]


class Cat(msgspec.Struct, tag=True):
    lives: int


class Dog(msgspec.Struct, tag=True):
    good: bool


class Vec(msgspec.Struct, array_like=True):
    x: int
    y: int


class Renamed(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    first_name: str
    last_seen: Optional[int] = None


class PUser(pydantic.BaseModel):
    name: str = pydantic.Field(min_length=1, max_length=12, pattern=r"^[A-Za-z]+$")
    age: int = pydantic.Field(ge=0, le=150)
    score: float = pydantic.Field(gt=0, lt=1)
    tags: list[str] = pydantic.Field(default_factory=list, max_length=3)


class PTeam(pydantic.BaseModel):
    title: str
    color: Color
    lead: PUser
    members: list[PUser] = pydantic.Field(max_length=2)
    founded: Optional[datetime.date] = None


class PNode(pydantic.BaseModel):
    value: int
    children: list["PNode"] = []


class PStamp(pydantic.BaseModel):
    at: datetime.datetime
    ref: uuid.UUID
    kind: Literal["a", "b"]


# name -> type; the checks decode with pydantic for pydantic models and msgspec for the rest.
NONE = type(None)
TYPES: dict[str, tuple[Any, type | tuple[type, ...]]] = {  # name -> (type, what g.parse must return)
    "Struct Point": (Point, Point),
    "Struct with defaults": (User, User),
    "dataclass": (Item, Item),
    "TypedDict": (Movie, dict),
    "TypedDict total=False": (Partial, dict),
    "NamedTuple": (Pair, Pair),
    "Enum": (Color, Color),
    "IntEnum": (Priority, Priority),
    "Literal": (Literal["a", "b", "c"], str),
    "Optional[int]": (Optional[int], (int, NONE)),
    "Union[int, str, None]": (Union[int, str, None], (int, str, NONE)),
    "list[int]": (list[int], list),
    "dict[str, float]": (dict[str, float], dict),
    "tuple[int, str, bool]": (tuple[int, str, bool], tuple),
    "tuple[int, ...]": (tuple[int, ...], tuple),
    "frozenset[int]": (frozenset[int], frozenset),
    "set[str]": (set[str], set),
    "frozenset[Literal]": (frozenset[Literal["x", "y", "z"]], frozenset),
    "nested Struct": (Order, Order),
    "recursive Tree": (Tree, Tree),
    "recursive linked list": (Node, Node),
    "Annotated Meta bounds": (Bounded, Bounded),
    "date": (Day, Day),
    "datetime": (Stamp, Stamp),
    "time": (Clock, Clock),
    "timedelta": (Span, Span),
    "bytes": (Blob, Blob),
    "Decimal": (Money, Money),
    "uuid.UUID": (uuid.UUID, uuid.UUID),
    "tagged union": (Union[Cat, Dog], (Cat, Dog)),
    "array_like Struct": (Vec, Vec),
    "rename camel": (Renamed, Renamed),
    "dict[str, list[Point]]": (dict[str, list[Point]], dict),
    "pydantic Field constraints": (PUser, PUser),
    "pydantic nested": (PTeam, PTeam),
    "pydantic recursive": (PNode, PNode),
    "pydantic datetime, uuid, Literal": (PStamp, PStamp),
}

# What tether refuses today, with the keyword it names: when support lands, move the type out.
KNOWN_UNSUPPORTED: dict[str, str] = {}  # type name -> the keyword tether refuses for it

# Options per type walk: walks k = 0, 1, 2, 3 of a type use these in turn.
TYPE_OPTIONS: list[dict[str, str]] = [{}, {"whitespace": "flexible"}, {}, {"property_order": "any"}]


def _is_pydantic(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, pydantic.BaseModel)


def _type_judge(g, tp: Any, kind: type | tuple[type, ...]) -> Callable[[str], str | None]:
    validator = _validator(g.schema)
    decode = tp.model_validate_json if _is_pydantic(tp) else msgspec.json.Decoder(tp).decode

    def judge(text: str) -> str | None:
        try:
            expected = decode(text)
        except (msgspec.ValidationError, msgspec.DecodeError, pydantic.ValidationError) as e:
            return f"the type's own decoder refuses it: {str(e)[:300]}"
        try:
            value = g.parse(text)
        except Exception as e:  # noqa: BLE001
            return f"g.parse raised {e!r}"[:400]
        if type(value) is not type(expected) or not _same(value, expected):
            return f"g.parse gave {value!r} ({type(value).__name__}), the decoder {expected!r}"[:400]
        if not isinstance(value, kind):
            return f"g.parse gave a {type(value).__name__}, not a {kind}"
        error = jsonschema.exceptions.best_match(validator.iter_errors(json.loads(text)))
        if error is not None:
            return f"jsonschema (the type's schema): {error.message[:300]} at {error.json_path}"
        if not g.matches(text):
            return "accepting, but g.matches() says no"
        return None

    return judge


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) or (a != a and b != b)  # NaN-like values (Decimal('NaN')) equal themselves here
    except Exception:  # noqa: BLE001
        return False


def _compile_type(name: str, options: dict):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tether.json_schema(TYPES[name][0], **options)


@pytest.mark.parametrize("name", [n for n in TYPES if n not in KNOWN_UNSUPPORTED])
def test_python_type_walks_decode_into_the_type(name):
    tk = _tokens(VOCAB)
    tp, kind = TYPES[name]
    lines, completed = [], 0
    for k in range(WALKS_PER_TYPE):
        options = TYPE_OPTIONS[k % len(TYPE_OPTIONS)]
        g = _compile_type(name, options)
        c = g.compile(tk.vocab)
        seed = SEED * 7 + _key(name) * 16 + k
        walk = _walk(g, c, tk, seed, _type_judge(g, tp, kind))
        completed += walk.completed
        for what, text, problem in walk.failures:
            lines.append(f"{name} {options or 'default'} walk seed {seed}: {what}: {problem}\n    text: {_short(text)}")
    assert not lines, f"schema {json.dumps(_compile_type(name, {}).schema)[:300]}\n" + "\n".join(lines)
    assert completed >= 1, f"{name}: none of {WALKS_PER_TYPE} walks completed within {MAX_TOKENS} tokens"


def test_the_type_list_is_broad():
    assert len(TYPES) - len(KNOWN_UNSUPPORTED) >= 30
