"""`@structured`: docstring templates, return annotations as constraints, methods, async, batches.

The fast tests run on `ScriptLM`, a byte-level toy model that writes a scripted answer for each
prompt (so what reaches the model, and how often, is observable); the `model` tests run SmolLM2.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import enum
import inspect
import threading
import typing
from typing import Annotated, Any, Callable, Literal, Optional

import msgspec
import pydantic
import pytest
import torch

import tether
import tether.generation
from tether.errors import GenerationFailed
from tether.integrations.structured import Structured, structured
from tether.models import ModelStats
from tether.samplers import Greedy, Status

import _structured_future as future

# ---------------------------------------------------------------- a model that writes scripted answers

EOS, SEP = 256, 257  # SEP ends the prompt, so the model can tell prompt from output


class ScriptLM:
    """Bytes as tokens; after the prompt it writes `answer(prompt)` byte by byte, then EOS.

    Off the script (the constraint forbade a byte) every allowed token ties, so greedy takes the
    lowest allowed id. Records each batch's size and the threads it ran on."""

    def __init__(self, answer: Callable[[str], str]):
        self.vocab = tether.Vocabulary.from_tokens([bytes([b]) for b in range(256)] + [None, None], eos_ids=[EOS])
        self.answer = answer
        self.stats = ModelStats()
        self.batches: list[int] = []
        self.threads: set[int] = set()
        self.prompts: list[str] = []

    def prompt_ids(self, prompt) -> list[int]:
        text = prompt if isinstance(prompt, str) else "\n".join(f"{m['role']}: {m['content']}" for m in prompt)
        self.prompts.append(text)
        return list(text.encode()) + [SEP]

    def next_logprobs(self, prefixes):
        self.batches.append(len(prefixes))
        self.threads.add(threading.get_ident())
        with self.stats.timed(len(prefixes), sum(map(len, prefixes))):
            rows = torch.zeros(len(prefixes), self.vocab.size)
            for row, prefix in zip(rows, prefixes):
                sep = prefix.index(SEP)
                target = self.answer(bytes(prefix[:sep]).decode()).encode()
                done = bytes(prefix[sep + 1:])
                if done == target:
                    row[EOS] = 20.0
                elif target.startswith(done):
                    row[target[len(done)]] = 20.0
            return torch.log_softmax(rows, dim=-1)


def script(**answers: str) -> ScriptLM:
    """A ScriptLM answering the prompt that contains a key (underscores as spaces) with its value."""
    def answer(prompt: str) -> str:
        for key, value in answers.items():
            if key.replace("_", " ") in prompt:
                return value
        return ""
    return ScriptLM(answer)


class Person(msgspec.Struct):
    name: str
    age: int


# ---------------------------------------------------------------- templates


def test_docstring_is_the_template_filled_from_bound_arguments_with_defaults():
    @dataclasses.dataclass
    class User:
        name: str

    @structured(model=script())
    def greet(user: User, items: list, tone: str = "warm", *rest: str, **extra: int) -> str:
        """Write a {tone} hello to {user.name} about {items[0]!r} (literal {{braces}}), {rest}, {extra}."""

    text = greet.prompt(User("Ann"), ["tea"], "x", "y", k=1)
    first, hint = text.split("\n")
    assert first == "Write a x hello to Ann about 'tea' (literal {braces}), ('y',), {'k': 1}."
    assert hint == 'Answer with JSON matching this schema: {"type":"string"}'
    assert greet.prompt(User("Bo"), [1]).startswith("Write a warm hello to Bo about 1")
    assert greet.template.startswith("Write a {tone} hello")


def test_indented_multiline_docstrings_are_dedented():
    @structured(model=script())
    def f(x: int) -> int:
        """First line {x}.

        Second line.
        """

    assert f.prompt(3).split("\n")[:3] == ["First line 3.", "", "Second line."]


def test_system_turn_makes_the_prompt_chat_messages():
    lm = script(Ann='{"name":"Ann","age":29}')

    @structured(model=lm, system="You extract people.")
    def person(text: str) -> Person:
        """Extract the person: {text}"""

    messages = person.prompt("Ann is 29.")
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == "You extract people."
    assert messages[1]["content"].startswith("Extract the person: Ann is 29.\nAnswer with JSON matching")
    assert person("Ann is 29.") == Person("Ann", 29)
    assert lm.prompts[-1].startswith("system: You extract people.\nuser: Extract the person")


def test_json_hint_is_the_compact_schema_and_a_regex_gets_none():
    @structured(model=script())
    def person(text: str) -> Person:
        """Extract: {text}"""

    @structured(model=script())
    def year(text: str) -> Annotated[str, tether.regex(r"[0-9]{4}")]:
        """Year of: {text}"""

    hint = person.prompt("x").split("\n")[1]
    # Titles dropped and the $ref inlined: what the measurement in SCHEMA_HINT's comment kept.
    assert hint == ('Answer with JSON matching this schema: {"type":"object","properties":{"name":'
                    '{"type":"string"},"age":{"type":"integer"}},"required":["name","age"]}')
    assert year.prompt("x") == "Year of: x"


def test_recursive_schema_hint_keeps_its_definitions():
    class Node(msgspec.Struct):
        value: int
        kids: list[Node]

    globals()["Node"] = Node  # the annotation "list[Node]" resolves in this module
    try:
        @structured(model=script())
        def tree(text: str) -> Node:
            """Tree of {text}"""

        assert '"$defs"' in tree.prompt("x") and '"$ref":"#/$defs/Node"' in tree.prompt("x")
    finally:
        del globals()["Node"]


def test_unknown_placeholder_fails_at_decoration_naming_it_and_the_function():
    with pytest.raises(TypeError, match=r"docstring of .*make_title has the placeholder \{topic\.x\}: 'topic'"):
        @structured(model=script())
        def make_title(subject: str) -> str:
            """A title about {topic.x}"""

    with pytest.raises(TypeError, match=r"placeholder \{\}: name a parameter"):
        @structured(model=script())
        def positional(subject: str) -> str:
            """A title about {}"""

    with pytest.raises(TypeError, match=r"placeholder \{width\}"):  # nested in a format spec
        @structured(model=script())
        def nested(subject: str) -> str:
            """A title about {subject:>{width}}"""


def test_malformed_template_fails_at_decoration_saying_how_to_write_braces():
    with pytest.raises(ValueError, match=r"docstring of .*broken is not a valid template.*\{\{ and \}\}"):
        @structured(model=script())
        def broken(x: str) -> str:
            """JSON like {"a": 1"""


def test_missing_docstring_is_a_type_error_saying_what_to_write():
    for doc in (None, "   \n  "):
        def nodoc(text: str) -> int: ...
        nodoc.__doc__ = doc
        with pytest.raises(TypeError, match=r"nodoc has no docstring.*write one with \{parameter\}"):
            structured(nodoc)


def test_bad_call_arguments_name_the_function():
    @structured(model=script())
    def f(x: int) -> int:
        """{x.real} {x[0]}"""

    with pytest.raises(TypeError, match=r"f\(\): missing a required argument: 'x'"):
        f()
    with pytest.raises(ValueError, match=r"f: the docstring template does not fit these arguments: TypeError"):
        f(3)  # an int has .real but no [0]
    with pytest.raises(ValueError, match="max_tokens must be an integer >= 1, got 0"):
        structured(max_tokens=0)


# ---------------------------------------------------------------- return annotations


class Tagged(msgspec.Struct):
    tag: Annotated[str, tether.regex("#[a-z]+")]  # msgspec would drop the regex: refused


class Later:
    @structured(max_tokens=16)
    def make(self, text: str) -> "Forward":  # not defined yet: resolved at the first call
        """Make one from {text}"""

    @structured(max_tokens=16)
    def never(self, text: str) -> "NeverDefined":  # noqa: F821
        """Make one from {text}"""


class Forward(msgspec.Struct):
    n: int


@pytest.mark.parametrize("annotation, why", [
    (inspect.Signature.empty, "no return annotation"),
    (Any, "allows any value"),
    (None, "allows any value .or only None."),
    (object, "has no JSON Schema"),
    (Callable[[int], int], "has no JSON Schema"),
    (Annotated[int, tether.regex("[0-9]+")], "gives the matched text, not int"),
    (Annotated[str, tether.regex("a"), tether.regex("b")], "more than one tether spec"),
    (Annotated[dict, msgspec.Meta(min_length=3, max_length=1)], "cannot be constrained"),
    (list[Annotated[str, tether.regex("a+")]], r"tether.regex\('a\+'\).* is inside the type.*msgspec.Meta"),
    (Optional["Tagged"], r"tether.regex\('#\[a-z\]\+'\).* is inside the type"),
])
def test_unconstrainable_return_annotation_fails_at_decoration(annotation, why):
    def answer(text: str): ...
    answer.__doc__ = "Answer {text}"
    if annotation is not inspect.Signature.empty:
        answer.__annotations__["return"] = annotation
    with pytest.raises(TypeError, match=why) as info:
        structured(answer, model=script())
    assert "answer" in str(info.value)


def test_forward_reference_resolves_at_first_call(monkeypatch):
    lm = script(two='{"n":2}')
    monkeypatch.setattr(tether.models, "default", lambda: lm)
    assert Later.make(Later(), "two") == Forward(2)
    assert Later().make("two") == Forward(2)
    assert Later.make.constraint.schema["$ref"] == "#/$defs/Forward"


def test_unresolvable_forward_reference_fails_at_first_call_with_a_clear_error(monkeypatch):
    monkeypatch.setattr(tether.models, "default", lambda: script())
    with pytest.raises(TypeError, match=r"Later.never: the return annotation cannot be resolved: .*NeverDefined"):
        Later().never("x")
    with pytest.raises(TypeError, match="NeverDefined"):
        Later.never.constraint


def test_postponed_annotations_module_resolves_return_types(monkeypatch):
    lm = script(France='{"country":"France","city":"Paris"}', Dune='{"title":"Dune","year":1965}')
    monkeypatch.setattr(future.capital._core, "model", lm)
    monkeypatch.setattr(future.Library.book._core, "model", lm)
    assert future.capital("France") == future.Capital("France", "Paris")
    assert future.Library("city").book("Dune, 1965") == future.Book("Dune", 1965)
    assert lm.prompts[-1].startswith("The city library catalogues this book: Dune, 1965")


def test_str_is_a_json_string_decoded_and_a_regex_is_raw_text():
    lm = script(capital='"Pa\\"ris"', year="1969")

    @structured(model=lm)
    def capital(country: str) -> str:
        """The capital of {country}"""

    @structured(model=lm)
    def year(event: str) -> Annotated[str, tether.regex(r"(19|20)[0-9]{2}")]:
        """The year of {event}"""

    @structured(model=lm)
    def year_int(event: str) -> Annotated[int, tether.regex(r"(19|20)[0-9]{2}", parse=int)]:
        """The year of {event}"""

    assert capital("France") == 'Pa"ris'
    assert year("the Moon landing") == "1969"
    assert year_int("the Moon landing") == 1969
    assert isinstance(year.constraint, tether.Regex)


def test_typed_values_are_decoded_into_the_annotated_types():
    class Mood(enum.Enum):
        HAPPY = "happy"

    class Item(pydantic.BaseModel):
        name: str

    cases = [
        (Mood, '"happy"', Mood.HAPPY),
        (Literal["a", "b"], '"b"', "b"),
        (Optional[int], "null", None),
        (datetime.date, '"2024-03-15"', datetime.date(2024, 3, 15)),
        (dict[str, int], '{"a":1}', {"a": 1}),
        (Item, '{"name":"x"}', Item(name="x")),
        (float, "2.5", 2.5),
        (bool, "true", True),
    ]
    for tp, text, value in cases:
        def f(q: str): ...
        f.__doc__ = "Q {q}"
        f.__annotations__["return"] = tp
        got = structured(f, model=ScriptLM(lambda _, text=text: text))("x")
        assert got == value and type(got) is type(value), (tp, got)


def test_json_schema_options_pass_through():
    @structured(model=script(), whitespace="flexible")
    def f(x: str) -> Person:
        """{x}"""

    assert f.constraint.matches('{ "name": "A", "age": 1 }')
    assert not tether.json_schema(Person).matches('{ "name": "A", "age": 1 }')


# ---------------------------------------------------------------- calls, caching, failures


def test_constraint_compiles_once_and_the_default_model_loads_at_the_first_call(monkeypatch):
    lm = script(Ann='{"name":"Ann","age":29}')
    loads = []
    monkeypatch.setattr(tether.models, "default", lambda: loads.append(1) or lm)

    @structured
    def person(text: str) -> Person:
        """Extract: {text}"""

    compiles = []
    spec = person.constraint
    original = spec.compile
    monkeypatch.setattr(spec, "compile", lambda vocab: compiles.append(1) or original(vocab))
    assert loads == [] and compiles == []  # nothing at decoration
    assert person("Ann is 29") == Person("Ann", 29)
    assert person("Ann again") == Person("Ann", 29)
    assert person.map(["Ann", "Ann"]) == [Person("Ann", 29)] * 2
    assert loads == [1] and compiles == [1]


def test_sampler_and_max_tokens_pass_to_generate():
    seen = []

    class Spy:
        def run(self, model, prompts, constraint, max_tokens, *, n=1):
            seen.append(max_tokens)
            return Greedy().run(model, prompts, constraint, max_tokens, n=n)

    @structured(model=script(x="7"), sampler=Spy(), max_tokens=9)
    def f(q: str) -> int:
        """{q}"""

    assert f("x") == 7 and seen == [9]


def test_too_few_tokens_raise_generation_failed_with_the_partial_text():
    @structured(model=script(Ann='{"name":"Ann","age":29}'), max_tokens=5)
    def person(text: str) -> Person:
        """Extract: {text}"""

    with pytest.raises(GenerationFailed, match=r"person ended incomplete after 5 tokens \(raise max_tokens\)") as info:
        person("Ann is 29")
    assert info.value.text == '{"nam' and info.value.status is Status.INCOMPLETE
    assert info.value.generation.text == '{"nam' and info.value.index is None
    assert isinstance(info.value, tether.TetherError)


def test_wraps_keeps_the_function_metadata():
    def original(text: str) -> int:
        """Count the words of {text}."""

    f = structured(original, model=script())
    assert isinstance(f, Structured)
    assert f.__wrapped__ is original and f.__name__ == "original" and f.__doc__ == original.__doc__
    assert f.__qualname__ == original.__qualname__ and f.__module__ == __name__
    assert inspect.signature(f) == inspect.signature(original)
    assert "original" in repr(f)


def test_the_body_is_not_run():
    calls = []

    @structured(model=script(x="1"))
    def f(q: str) -> int:
        """{q}"""
        calls.append(q)
        return 99

    assert f("x") == 1 and calls == []


# ---------------------------------------------------------------- methods, static and class methods


class Shop:
    kind = "bakery"

    def __init__(self, name: str):
        self.name = name

    @structured(max_tokens=32)
    def price(self, item: str) -> float:
        """At {self.name} the {item} costs"""

    @staticmethod
    @structured(max_tokens=32)
    def plain(item: str) -> int:
        """How many {item}"""

    @structured(max_tokens=32)
    @staticmethod
    def plain_inside(item: str) -> int:
        """How many {item}"""

    @classmethod
    @structured(max_tokens=32)
    def of_kind(cls, item: str) -> int:
        """How many {item} in a {cls.kind}"""

    @structured(max_tokens=32)
    @classmethod
    def of_kind_inside(cls, item: str) -> int:
        """How many {item} in a {cls.kind}"""


def test_methods_bind_self_and_static_and_class_methods_stack(monkeypatch):
    lm = script(Mo_the_bun="1.5", Al_the_bun="2.0", How_many_loaves_in_a_bakery="12", How_many_loaves="3")
    monkeypatch.setattr(tether.models, "default", lambda: lm)
    mo, al = Shop("Mo"), Shop("Al")
    assert mo.price("bun") == 1.5 and al.price("bun") == 2.0
    assert mo.price.prompt("bun").startswith("At Mo the bun costs")
    assert Shop.price(mo, "bun") == 1.5
    assert mo.price.map(["bun", {"item": "bun"}]) == [1.5, 1.5]
    assert mo.price.__wrapped__ is Shop.__dict__["price"].__wrapped__
    assert Shop.plain("loaves") == 3 and mo.plain("loaves") == 3
    assert Shop.plain_inside("loaves") == 3
    assert Shop.of_kind("loaves") == 12 and mo.of_kind("loaves") == 12
    assert Shop.of_kind_inside("loaves") == 12


# ---------------------------------------------------------------- async


def test_async_function_returns_a_coroutine_and_runs_the_model_off_the_event_loop():
    lm = script(Ann='{"name":"Ann","age":29}', Ben='{"name":"Ben","age":31}')

    @structured(model=lm)
    async def person(text: str) -> Person:
        """Extract: {text}"""

    async def main():
        loop_thread = threading.get_ident()
        pending = person("Ann is 29")
        assert inspect.iscoroutine(pending)
        one = await pending
        both = await person.map(["Ann", "Ben"])
        assert loop_thread not in lm.threads
        return one, both

    assert asyncio.run(main()) == (Person("Ann", 29), [Person("Ann", 29), Person("Ben", 31)])


def test_async_failures_raise_when_awaited_and_bad_arguments_at_the_call():
    @structured(model=script(x='"toolong"'), max_tokens=3)
    async def f(q: str) -> str:
        """{q}"""

    with pytest.raises(TypeError, match="missing a required argument"):
        f()
    with pytest.raises(GenerationFailed) as info:
        asyncio.run(f("x"))
    assert info.value.text == '"to'


# ---------------------------------------------------------------- map


def test_map_is_one_batched_generate_call(monkeypatch):
    lm = script(Ann='{"name":"Ann","age":29}', Ben='{"name":"Ben","age":31}', Cy='{"name":"Cy","age":5}')
    calls = []
    real = tether.generation.generate
    monkeypatch.setattr(tether.generation, "generate", lambda *a, **k: calls.append(a[1]) or real(*a, **k))

    @structured(model=lm)
    def person(text: str, hint: str = "") -> Person:
        """Extract{hint}: {text}"""

    values = person.map([{"text": "Ann"}, ("Ben", "!"), "Cy"])
    assert values == [Person("Ann", 29), Person("Ben", 31), Person("Cy", 5)]
    assert len(calls) == 1 and len(calls[0]) == 3 and calls[0][1].startswith("Extract!: Ben")
    # One model call per step for the whole batch, one step per byte of the longest answer (after
    # its "}" only EOS is allowed, which takes no model call).
    assert lm.batches[0] == 3 and len(lm.batches) == len('{"name":"Ann","age":29}')
    assert person.map([]) == [] and len(calls) == 1


def test_map_failure_names_the_index_or_returns_the_error_in_place():
    lm = script(Ann='{"name":"Ann","age":29}', Bob='{"name":"Bob the very long name","age":30}')

    @structured(model=lm, max_tokens=24)
    def person(text: str) -> Person:
        """Extract: {text}"""

    with pytest.raises(GenerationFailed, match=r"person.map item 1 ended incomplete") as info:
        person.map(["Ann", "Bob", "Ann"])
    assert info.value.index == 1 and info.value.text == '{"name":"Bob the very lo'
    values = person.map(["Ann", "Bob", "Ann"], return_exceptions=True)
    assert values[0] == values[2] == Person("Ann", 29)
    assert isinstance(values[1], GenerationFailed) and values[1].index == 1


# ---------------------------------------------------------------- SmolLM2 end to end


class City(msgspec.Struct):
    name: str
    country: str


@dataclasses.dataclass
class Book:
    title: str
    year: int


class Recipe(typing.TypedDict):
    dish: str
    minutes: int


class Product(pydantic.BaseModel):
    name: str = pydantic.Field(max_length=30)
    in_stock: bool


class Mood(enum.Enum):
    HAPPY = "happy"
    SAD = "sad"


Small = Annotated[int, msgspec.Meta(ge=0, le=1000)]  # bounded: a small model may run on digits


@pytest.fixture(scope="module")
def smol(request):
    torch.set_num_threads(1)
    from tether.models import default

    return default(progress=False)


@pytest.mark.model
def test_smollm2_returns_instances_of_the_annotated_types(smol):
    @structured(max_tokens=40)
    def city(text: str) -> City:
        """Extract the city from: {text}"""

    @structured(max_tokens=40)
    def book(text: str) -> Book:
        """Extract the book from: {text}"""

    @structured(max_tokens=40)
    def recipe(text: str) -> Recipe:
        """Extract the recipe from: {text}"""

    @structured(max_tokens=40)
    def product(text: str) -> Product:
        """Extract the product from: {text}"""

    @structured(max_tokens=8)
    def size(drink: str) -> Literal["small", "medium", "large"]:
        """Pick the size of a {drink}."""

    @structured(max_tokens=8)
    def mood(text: str) -> Mood:
        """What is the mood of: {text}"""

    @structured(max_tokens=8)
    def legs(animal: str) -> Small:
        """How many legs does {animal} have?"""

    @structured(max_tokens=12)
    def boiling(where: str) -> Annotated[float, msgspec.Meta(ge=-100, le=1000)]:
        """At what temperature in Celsius does water boil {where}?"""

    @structured(max_tokens=6)
    def true(claim: str) -> bool:
        """Is this true: {claim}"""

    @structured(max_tokens=32)
    def colors(text: str) -> Annotated[list[str], msgspec.Meta(max_length=4)]:
        """List the colors in: {text}"""

    @structured(max_tokens=16)
    def day(event: str) -> datetime.date:
        """What is the date of {event}?"""

    @structured(max_tokens=8)
    def year(event: str) -> Annotated[str, tether.regex(r"(1[5-9]|20)[0-9]{2}")]:
        """In which year did this happen: {event}? Answer with the year only."""

    cases = [
        (city, "Paris is the capital of France.", City),
        (book, "Dune was written by Frank Herbert in 1965.", Book),
        (recipe, "Pancakes take 20 minutes.", dict),
        (product, "The USB cable is in stock.", Product),
        (size, "large coffee", str),
        (mood, "I lost my keys again, this is awful.", Mood),
        (legs, "a spider", int),
        (boiling, "at sea level", float),
        (true, "The sun is cold.", bool),
        (colors, "red, green and blue", list),
        (day, "Christmas Day 2023", datetime.date),
        (year, "the first Moon landing", str),
    ]
    for fn, text, tp in cases:
        value = fn(text)
        assert isinstance(value, tp), (fn.__name__, value)
    assert set(recipe("Tea takes 3 minutes.")) == {"dish", "minutes"}
    assert size("large coffee") in ("small", "medium", "large")
    assert all(isinstance(c, str) for c in colors("red and blue"))
    assert year.constraint.matches(year("the first Moon landing"))


@pytest.mark.model
def test_smollm2_async_method_postponed_annotations_and_a_batch(smol):
    class Assistant:
        def __init__(self, topic: str):
            self.topic = topic

        @structured(max_tokens=40)
        def fact(self, about: str) -> City:
            """You know {self.topic}. Name a city in {about}."""

    @structured(max_tokens=40)
    async def city_async(text: str) -> City:
        """Extract the city from: {text}"""

    assert isinstance(Assistant("geography").fact("Italy"), City)
    assert isinstance(asyncio.run(city_async("Tokyo is the largest city in Japan.")), City)
    assert isinstance(future.capital("France"), future.Capital)
    assert isinstance(future.Library("city").book("1984 by George Orwell, 1949"), future.Book)

    @structured(max_tokens=40)
    def city(text: str) -> City:
        """Extract the city from: {text}"""

    cities = city.map(["Paris is in France.", "Rome is in Italy.", "Oslo is in Norway."])
    assert len(cities) == 3 and all(isinstance(c, City) for c in cities)


@pytest.mark.model
def test_smollm2_too_few_tokens_raise_generation_failed(smol):
    @structured(max_tokens=2)
    def city(text: str) -> City:
        """Extract the city from: {text}"""

    with pytest.raises(GenerationFailed) as info:
        city("Paris is the capital of France.")
    assert info.value.status is Status.INCOMPLETE and info.value.text.startswith("{")
    assert len(info.value.generation.token_ids) == 2
