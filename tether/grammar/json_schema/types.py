"""Python types as JSON Schemas, and the decoder that turns a generated text back into the type.

Types go through msgspec's own schema generation (`msgspec.json.schema`), so a type means what
msgspec means by it: Structs, dataclasses, TypedDicts, NamedTuples (arrays), Enums, Literals,
unions, containers, `Annotated[..., msgspec.Meta(...)]`, datetimes, UUIDs, Decimals. Pydantic
models (when pydantic is installed) go through `model_json_schema` and decode with
`model_validate_json`.

    >>> schema, decode = schema_of_type(list[int])
    >>> schema, decode("[1,2]")
    ({'type': 'array', 'items': {'type': 'integer'}}, [1, 2])

msgspec's schema is looser than its decoder for a few types (a `datetime` is any string, a
`Decimal` has a format JSON Schema does not define): `refine` walks the type and the schema
together and writes down what the decoder accepts, so that every generated text decodes.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from ...errors import InvalidSchema

__all__ = ["schema_of_type", "is_type"]

# What msgspec's decoder accepts for string-encoded types, as JSON Schema keywords (subsets of it
# where the full syntax is larger: decimals without exponents, durations in whole-ish units).
_DECIMAL = {"pattern": r"^-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,30})?$"}
_BASE64 = {"pattern": r"^(?:[A-Za-z0-9+/]{4}){0,1024}(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"}
_SECONDS = r"[0-9]{1,6}(\.[0-9]{1,6})?S"
_CLOCK = rf"T([0-9]{{1,6}}H([0-9]{{1,6}}M)?({_SECONDS})?|[0-9]{{1,6}}M({_SECONDS})?|{_SECONDS})"
_DURATION = {"pattern": rf"^P([0-9]{{1,6}}D({_CLOCK})?|{_CLOCK})$"}
_NAIVE_DATETIME = {"pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?$"}
_DOUBLE_MAX = sys.float_info.max
_NAIVE_TIME = {"pattern": r"^[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?$"}


def _pydantic_model(tp: Any) -> bool:
    pydantic = sys.modules.get("pydantic")
    if pydantic is None:
        return False
    return isinstance(tp, type) and issubclass(tp, pydantic.BaseModel)


def is_type(value: Any) -> bool:
    """Whether `value` is a Python type to derive a schema from (rather than a schema itself)."""
    return not isinstance(value, (dict, bool, str))


def schema_of_type(tp: Any) -> tuple[dict, Callable[[str], Any]]:
    """The JSON Schema of a Python type and a decoder from generated text to a validated value."""
    if _pydantic_model(tp):
        return tp.model_json_schema(), tp.model_validate_json
    import msgspec

    try:
        schema = msgspec.json.schema(tp)
        info = msgspec.inspect.type_info(tp)
    except (TypeError, ValueError) as e:
        raise InvalidSchema(f"{tp!r} has no JSON Schema: {e}") from None
    refine(schema, info, schema.get("$defs", {}))
    return schema, msgspec.json.Decoder(tp).decode


def refine(node: Any, info: Any, defs: dict, seen: set | None = None) -> None:
    """Add to `node` (msgspec's schema of the type `info` describes) what msgspec's decoder checks
    beyond it: date-time and time formats, decimal and base64 syntax, the duration units, floats
    within a double's range."""
    from msgspec import inspect as mi

    seen = set() if seen is None else seen
    if not isinstance(node, dict):
        return
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        name = ref[len("#/$defs/"):]
        if name in seen or name not in defs:
            return
        seen.add(name)
        node = defs[name]
    kind = type(info)
    if kind is mi.DateTimeType:
        node.update({"format": "date-time"} if info.tz is not False else {"pattern": _NAIVE_DATETIME["pattern"]})
    elif kind is mi.TimeType:
        node.update({"format": "time"} if info.tz is not False else _NAIVE_TIME)
    elif kind is mi.DecimalType:
        node.pop("format", None)
        node.update(_DECIMAL)
    elif kind is mi.FloatType:  # the decoder refuses what overflows a double (1e400)
        node["maximum"] = min(node.get("maximum", _DOUBLE_MAX), _DOUBLE_MAX)
        node["minimum"] = max(node.get("minimum", -_DOUBLE_MAX), -_DOUBLE_MAX)
    elif kind in (mi.BytesType, mi.ByteArrayType, mi.MemoryViewType):
        node.update(_BASE64)
    elif kind is mi.TimeDeltaType:
        node.update(_DURATION)
    elif kind in (mi.StructType, mi.DataclassType, mi.TypedDictType):
        if getattr(info, "array_like", False):
            for item, field in zip(node.get("prefixItems", ()), info.fields):
                refine(item, field.type, defs, seen)
            return
        props = node.get("properties", {})
        for field in info.fields:
            if field.encode_name in props:
                refine(props[field.encode_name], field.type, defs, seen)
    elif kind is mi.NamedTupleType:
        for item, field in zip(node.get("prefixItems", ()), info.fields):
            refine(item, field.type, defs, seen)
    elif kind in (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType):
        refine(node.get("items"), info.item_type, defs, seen)
    elif kind is mi.TupleType:
        for item, sub in zip(node.get("prefixItems", ()), info.item_types):
            refine(item, sub, defs, seen)
    elif kind is mi.DictType:
        refine(node.get("additionalProperties"), info.value_type, defs, seen)
    elif kind is mi.UnionType:
        options = node.get("anyOf")
        members = [t for t in info.types if type(t) is not mi.NoneType]
        if options is None and len(members) == 1:
            refine(node, members[0], defs, seen)
        elif options is not None:
            options = [o for o in options if o != {"type": "null"}]
            if len(options) == len(members):
                for option, member in zip(options, members):
                    refine(option, member, defs, seen)

