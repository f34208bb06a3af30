"""Typed extraction end to end on SmolLM2-135M-Instruct: 20 prompts, each with a Python type
(msgspec Structs, dataclasses, TypedDicts, pydantic models, Enums, Literals, constrained ints
and strings, nested and optional fields); greedy generation must return an instance of the type,
decoded and validated by msgspec (or pydantic), whose JSON text `jsonschema` also validates.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import typing

import jsonschema
import msgspec
import pydantic
import pytest

import tether
from tether.samplers import Greedy, Status

pytestmark = pytest.mark.model


class Mood(enum.Enum):
    HAPPY = "happy"
    SAD = "sad"
    NEUTRAL = "neutral"


class City(msgspec.Struct):
    name: str
    country: str
    population: typing.Annotated[int, msgspec.Meta(ge=0)]


class Person(msgspec.Struct):
    name: typing.Annotated[str, msgspec.Meta(max_length=40)]
    age: typing.Annotated[int, msgspec.Meta(ge=0, le=120)]


class Team(msgspec.Struct):
    name: str
    members: typing.Annotated[list[Person], msgspec.Meta(max_length=3)]


@dataclasses.dataclass
class Book:
    title: str
    author: str
    year: int


@dataclasses.dataclass
class Review:
    stars: typing.Literal[1, 2, 3, 4, 5]
    mood: Mood
    summary: typing.Annotated[str, msgspec.Meta(max_length=80)]


class Recipe(typing.TypedDict):
    dish: str
    ingredients: list[str]
    minutes: int


class Event(msgspec.Struct):
    title: str
    day: datetime.date


class Product(pydantic.BaseModel):
    name: str = pydantic.Field(max_length=40)
    price: float = pydantic.Field(ge=0)
    in_stock: bool


class Address(pydantic.BaseModel):
    street: str
    city: str
    zip_code: str = pydantic.Field(pattern=r"^[0-9]{5}$")


class Contact(msgspec.Struct):
    name: str
    phone: typing.Optional[str] = None
    email: typing.Optional[str] = None


class Color(msgspec.Struct):
    r: typing.Annotated[int, msgspec.Meta(ge=0, le=255)]
    g: typing.Annotated[int, msgspec.Meta(ge=0, le=255)]
    b: typing.Annotated[int, msgspec.Meta(ge=0, le=255)]


class Boiling(msgspec.Struct):
    celsius: float


class Point(typing.NamedTuple):
    x: int
    y: int


CASES: list[tuple[str, typing.Any]] = [
    ("Extract the city: Paris is the capital of France and has about 2100000 inhabitants.", City),
    ("Extract the person: Alice Smith is 34 years old.", Person),
    ("The book Dune was written by Frank Herbert in 1965. Give the book as JSON.", Book),
    ("Review: 'Loved it, wonderful food and friendly staff!' Give stars, mood and a short summary.", Review),
    ("Pancakes need flour, eggs and milk and take 20 minutes. Give the recipe as JSON.", Recipe),
    ("The product 'USB cable' costs 9.99 and is in stock. Give it as JSON.", Product),
    ("Address: 12 Main Street, Springfield, 62704. Give it as JSON.", Address),
    ("Contact: Bob, phone 555-1234. Give the contact as JSON.", Contact),
    ("Give the RGB color of pure red as JSON.", Color),
    ("Team Rockets has members Ann (29) and Ben (31). Give the team as JSON.", Team),
    ("The meeting 'Kickoff' is on 2024-03-15. Give the event as JSON.", Event),
    ("Is the sentence 'I lost my keys again' happy, sad or neutral?", Mood),
    ("How many legs does a spider have? Answer as JSON.", typing.Annotated[int, msgspec.Meta(ge=0, le=1000)]),
    ("Is water wet? Answer true or false.", bool),
    ("List three primary colors as a JSON array of strings.", typing.Annotated[list[str], msgspec.Meta(max_length=3)]),
    ("What is the boiling point of water in Celsius? Answer as JSON.", Boiling),
    ("Pick a size for a large coffee: small, medium or large.", typing.Literal["small", "medium", "large"]),
    ("Give the point with x=3 and y=4 as a JSON array.", Point),
    ("Map the words one, two to their numbers as a JSON object.", dict[str, int]),
    ("Name a fruit, or null if you cannot.", typing.Optional[typing.Annotated[str, msgspec.Meta(max_length=20)]]),
]


@pytest.fixture(scope="module")
def lm():
    import torch

    torch.set_num_threads(1)
    from tether.models import default

    return default(progress=False)


def _is_instance(value: typing.Any, tp: typing.Any) -> bool:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _is_instance(value, typing.get_args(tp)[0])
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if origin is typing.Union:
        return any(_is_instance(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin is not None:
        return isinstance(value, origin)
    if tp is float:
        return isinstance(value, (int, float))
    if getattr(tp, "__annotations__", None) and issubclass(tp, dict):  # a TypedDict
        return isinstance(value, dict) and set(value) == set(tp.__annotations__)
    return isinstance(value, tp)


@pytest.mark.parametrize("prompt, tp", CASES, ids=[str(i) for i in range(len(CASES))])
def test_typed_extraction_returns_an_instance_of_the_type(lm, prompt, tp):
    constraint = tether.json_schema(tp, property_order="declared")
    gen = tether.generate(lm, prompt, constraint, sampler=Greedy(), max_tokens=96)
    assert gen.status is Status.COMPLETE, (gen.status, gen.text)
    assert _is_instance(gen.value, tp), (gen.text, gen.value)
    jsonschema.Draft202012Validator(constraint.schema, format_checker=jsonschema.FormatChecker()) \
        .validate(json.loads(gen.text))
