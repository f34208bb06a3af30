"""Structured functions in a module under postponed annotations (every annotation is a string),
for tests/test_structured.py: the return types resolve through `typing.get_type_hints`."""

from __future__ import annotations

import msgspec

from tether.integrations.structured import structured


class Capital(msgspec.Struct):
    country: str
    city: str


@structured(max_tokens=48)
def capital(country: str) -> Capital:
    """What is the capital of {country}?"""


class Library:
    def __init__(self, name: str):
        self.name = name

    @structured(max_tokens=48)
    def book(self, text: str) -> Book:  # Book is defined below: resolved at the first call
        """The {self.name} library catalogues this book: {text}"""


class Book(msgspec.Struct):
    title: str
    year: int
