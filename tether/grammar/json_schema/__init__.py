"""JSON Schema (and Python types) -> the grammar IR.

    >>> schema_to_ir({"type": "array", "items": {"type": "integer"}, "uniqueItems": True}).unique_paths
    frozenset({()})
    >>> canonical_json([1, 2.5])
    '[1,2.5]'

`compile` builds the IR (regular parts as regex trees, recursion as rules), `resolve` follows
`$ref`, `merge` is the schema algebra (`allOf`, `not`, drafts), `strings` and `numbers` the
JSON texts of string and number values, `formats` the `format` languages, `types` Python types.
"""

from .compile import MAX_WHITESPACE, Options, canonical_json, schema_to_ir, search_tree
from .types import is_type, schema_of_type

__all__ = ["Options", "schema_to_ir", "canonical_json", "search_tree", "schema_of_type", "is_type",
           "MAX_WHITESPACE"]
