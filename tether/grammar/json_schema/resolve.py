"""Where a `$ref` points: base URIs, `$id`, `$anchor`, JSON pointers, preloaded remote documents.

A `Resolver` indexes a schema document (and any documents passed as `resources`) once: every
`$id` names a resource, every `$anchor` (and a draft-7 `$id: "#name"`) names a node. `resolve`
then follows a reference from a base URI to the node and the base URI that holds there.

    >>> r = Resolver({"$defs": {"a": {"type": "integer"}}})
    >>> r.resolve("#/$defs/a", r.root_base)[0]
    {'type': 'integer'}

Nothing is fetched: a reference to a document that was not preloaded is an `UnsupportedSchema`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urldefrag, urljoin

from ...errors import InvalidSchema, UnsupportedSchema

__all__ = ["Resolver", "draft_of", "DRAFTS"]

ROOT_BASE = "urn:tether:root"

DRAFTS = {
    "draft-03": 3, "draft-04": 4, "draft-06": 6, "draft-07": 7, "2019-09": 2019, "2020-12": 2020,
}
_META_HOSTS = ("json-schema.org/",)


def draft_of(schema: Any, default: int = 2020) -> int:
    """The draft a schema's `$schema` names (2020-12 when it names none)."""
    if isinstance(schema, dict) and isinstance(schema.get("$schema"), str):
        uri = schema["$schema"]
        for key, draft in DRAFTS.items():
            if key in uri:
                if draft == 3:
                    raise UnsupportedSchema("$schema", "draft 3 is not supported (drafts 4, 6, 7, 2019-09 "
                                            "and 2020-12 are)", pointer="/$schema")
                return draft
    return default


def _uses_id_anchors(draft: int) -> bool:
    return draft <= 7  # `$id: "#name"` (draft 6/7, `id` in draft 4) is a plain-name anchor


def _id_keyword(draft: int) -> str:
    return "id" if draft == 4 else "$id"


def _own_id(node: dict, draft: int) -> str | None:
    """The node's `$id`; up to draft 7 a `$ref` makes its siblings, `$id` included, ignored."""
    own = node.get(_id_keyword(draft))
    if not isinstance(own, str) or (draft <= 7 and "$ref" in node):
        return None
    return own


# Keywords whose values are schemas, lists of schemas, or maps of schemas: what the index walks.
_ONE = ("additionalProperties", "additionalItems", "propertyNames", "contains", "not", "if", "then",
        "else", "unevaluatedProperties", "unevaluatedItems", "items", "contentSchema")
_MANY = ("allOf", "anyOf", "oneOf", "prefixItems", "items")
_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas", "dependencies")


def subschemas(node: dict) -> list[tuple[str, Any]]:
    """(pointer suffix, subschema) for every schema directly under `node`."""
    out = []
    for key in _ONE:
        value = node.get(key)
        if isinstance(value, (dict, bool)):
            out.append((f"/{key}", value))
    for key in _MANY:
        value = node.get(key)
        if isinstance(value, list):
            out.extend((f"/{key}/{i}", v) for i, v in enumerate(value))
    for key in _MAPS:
        value = node.get(key)
        if isinstance(value, dict):
            out.extend((f"/{key}/{_escape(k)}", v) for k, v in value.items() if isinstance(v, (dict, bool)))
    return out


def _join(base: str, ref: str) -> str:
    """`ref` resolved against `base` (RFC 3986), also for URN bases, which `urljoin` leaves alone."""
    if ref == "" or ref.startswith("#"):
        return urldefrag(base)[0] + ref
    if ":" in ref.split("/", 1)[0]:
        return ref  # absolute
    return urljoin(base, ref)


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


class Resolver:
    """The resources and anchors of a schema document and its preloaded remotes."""

    def __init__(self, root: Any, resources: dict[str, Any] | None = None, draft: int = 2020):
        self.root = root
        self.draft = draft
        self.documents: dict[str, Any] = {}  # resource URI (no fragment) -> node
        self.anchors: dict[str, Any] = {}  # "uri#name" -> node
        self.root_base = ROOT_BASE
        if isinstance(root, dict):
            own = root.get(_id_keyword(draft))
            if isinstance(own, str) and not own.startswith("#"):
                self.root_base = urldefrag(_join(ROOT_BASE, own))[0]
        self._index(root, self.root_base, draft)
        self.documents.setdefault(self.root_base, root)
        for uri, doc in (resources or {}).items():
            base = urldefrag(uri)[0]
            self.documents.setdefault(base, doc)
            self._index(doc, base, draft_of(doc, draft))

    def _index(self, doc: Any, base: str, draft: int) -> None:
        todo = [(doc, base)]
        while todo:
            node, node_base = todo.pop()
            if not isinstance(node, dict):
                continue
            own = _own_id(node, draft)
            if own is not None:
                if own.startswith("#") and _uses_id_anchors(draft):
                    self.anchors[f"{node_base}{own}"] = node
                else:
                    uri, fragment = urldefrag(_join(node_base, own))
                    node_base = uri
                    self.documents.setdefault(uri, node)
                    if fragment and _uses_id_anchors(draft):
                        self.anchors[f"{uri}#{fragment}"] = node
            for key in ("$anchor", "$dynamicAnchor"):
                anchor = node.get(key)
                if isinstance(anchor, str):
                    self.anchors.setdefault(f"{node_base}#{anchor}", node)
            todo.extend((sub, node_base) for _, sub in subschemas(node))

    def base_of(self, node: Any, parent_base: str, draft: int) -> str:
        """The base URI inside `node`, reached from a parent whose base is `parent_base`."""
        if isinstance(node, dict):
            own = _own_id(node, draft)
            if own is not None and not (own.startswith("#") and _uses_id_anchors(draft)):
                return urldefrag(_join(parent_base, own))[0]
        return parent_base

    def resolve(self, ref: str, base: str, pointer: str = "", draft: int = 2020) -> tuple[Any, str]:
        """The node `ref` names from `base`, and the base URI that holds inside it."""
        if not isinstance(ref, str):
            raise InvalidSchema(f"$ref must be a string, got {ref!r}", location=_at(pointer))
        target = _join(base, ref)
        uri, fragment = urldefrag(target)
        if uri not in self.documents:
            if any(host in uri for host in _META_HOSTS):
                raise UnsupportedSchema("$ref", f"a reference to the meta-schema {uri!r} (pass it in resources=)",
                                        pointer=pointer)
            raise UnsupportedSchema("$ref", f"a remote reference to {uri!r}: nothing is fetched (pass the "
                                    "document in resources={uri: schema})", pointer=pointer)
        doc = self.documents[uri]
        if not fragment:
            return doc, uri
        if not fragment.startswith("/"):
            node = self.anchors.get(f"{uri}#{fragment}")
            if node is None:
                raise InvalidSchema(f"$ref {ref!r}: no anchor {fragment!r} in {uri!r}", location=_at(pointer))
            return node, self.base_of(node, uri, draft)
        node, node_base = doc, uri
        for raw in fragment[1:].split("/"):
            key = unquote(raw).replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                raise InvalidSchema(f"$ref {ref!r} points to nothing (no {key!r})", location=_at(pointer))
            node_base = self.base_of(node, node_base, draft)
        return node, node_base


def _at(pointer: str):
    from ...errors import Location

    return Location(pointer=pointer)
