"""Python types as JSON Schemas, and the decoder that turns a generated text back into the type.

Types go through msgspec's own schema generation (`msgspec.json.schema`), so a type means what
msgspec means by it: Structs, dataclasses, TypedDicts, NamedTuples (arrays), Enums, Literals,
unions, containers, `Annotated[..., msgspec.Meta(...)]`, datetimes, UUIDs, Decimals. Pydantic
models (when pydantic is installed) go through `model_json_schema` and decode with
`model_validate_json`.

    >>> schema, decode = schema_of_type(list[int])
    >>> schema, decode("[1,2]")
    ({'type': 'array', 'items': {'type': 'integer'}}, [1, 2])
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from ...errors import InvalidSchema

__all__ = ["schema_of_type", "is_type"]


def _pydantic_model(tp: Any) -> bool:
    pydantic = sys.modules.get("pydantic")
    if pydantic is None:
        return False
    return isinstance(tp, type) and issubclass(tp, pydantic.BaseModel)


def is_type(value: Any) -> bool:
    """Whether `value` is a Python type to derive a schema from (rather than a schema itself)."""
    if isinstance(value, (dict, bool, str)):
        return False
    return True


def schema_of_type(tp: Any) -> tuple[dict, Callable[[str], Any]]:
    """The JSON Schema of a Python type and a decoder from generated text to a validated value."""
    if _pydantic_model(tp):
        return tp.model_json_schema(), tp.model_validate_json
    import msgspec

    try:
        schema = msgspec.json.schema(tp)
    except (TypeError, ValueError) as e:
        raise InvalidSchema(f"{tp!r} has no JSON Schema: {e}") from None
    decoder = msgspec.json.Decoder(tp)
    return _inline_ref_root(schema), decoder.decode


def _inline_ref_root(schema: dict) -> dict:
    # msgspec writes a Struct as {"$ref": "#/$defs/Name", "$defs": {...}}: already a valid schema.
    return schema
