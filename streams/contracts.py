"""What the `.avsc` contracts say about their fields, for code that copies values between events.

A stage's output carries forward each field that its input's schema also has, except the ones
the stage fills in itself. `carried_fields` derives that list from the two schemas, so the stages
keep no field lists of their own: a field added to both contracts is carried with no code change,
and tests/unit/streams/test_contracts.py pins what each stage carries today.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

from radstream.streams.codec import schema_dir

# In every event, and never copied from the input: `schema_version` is the writer schema's own
# default, and each stage derives its own `idempotency_key`.
NEVER_CARRIED = ("schema_version", "idempotency_key")

# What a missing value of a required primitive field becomes when the field has no default.
_ZERO: dict[str, Any] = {"string": "", "bytes": b"", "int": 0, "long": 0, "float": 0.0, "double": 0.0,
                         "boolean": False}


@dataclass(frozen=True)
class RecordField:
    """One field of a record schema."""

    name: str
    nullable: bool
    fallback: Any = None  # a required field's default, else its type's zero; None for a nullable field


@cache
def _raw(schema: str) -> dict:
    with open(schema_dir() / f"{schema}.avsc", encoding="utf-8") as f:
        return json.load(f)


def field_names(schema: str) -> tuple[str, ...]:
    """The top-level fields of `schema`, in its order."""
    return tuple(f["name"] for f in _raw(schema)["fields"])


def carried_fields(input_schema: str, output_schema: str, exclude: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The fields of `output_schema` (in its order) that `input_schema` also has, less NEVER_CARRIED
    and `exclude` (what the stage sets itself)."""
    unknown = set(exclude) - set(field_names(output_schema))
    if unknown:
        raise ValueError(f"{output_schema} has no field {', '.join(sorted(unknown))}")
    available = set(field_names(input_schema))
    skipped = set(NEVER_CARRIED) | set(exclude)
    return tuple(name for name in field_names(output_schema) if name in available and name not in skipped)


def record_fields(schema: str, field: str) -> tuple[RecordField, ...]:
    """The fields of the record that `schema`'s field `field` holds (e.g. ImageDecoded's `metadata`)."""
    raw = _raw(schema)
    named = _named_types(raw, raw.get("namespace", ""))
    try:
        declared = next(f["type"] for f in raw["fields"] if f["name"] == field)
    except StopIteration:
        raise ValueError(f"{schema} has no field {field!r}") from None
    record = _record_in(declared, named, raw.get("namespace", ""))
    if record is None:
        raise ValueError(f"{schema}.{field} is not a record")
    return tuple(_record_field(f) for f in record["fields"])


def _record_field(f: dict) -> RecordField:
    declared = f["type"]
    if isinstance(declared, list) and "null" in declared:
        return RecordField(f["name"], nullable=True)
    fallback = f["default"] if "default" in f else _ZERO.get(declared) if isinstance(declared, str) else None
    return RecordField(f["name"], nullable=False, fallback=fallback)


def _named_types(node: Any, namespace: str, found: dict[str, dict] | None = None) -> dict[str, dict]:
    """Every named type (record, enum, fixed) defined inside `node`, by short and full name."""
    found = {} if found is None else found
    if isinstance(node, list):
        for item in node:
            _named_types(item, namespace, found)
    elif isinstance(node, dict):
        if node.get("type") in ("record", "enum", "fixed") and "name" in node:
            space = node.get("namespace", namespace)
            found[node["name"]] = node
            found[f"{space}.{node['name']}" if space and "." not in node["name"] else node["name"]] = node
            namespace = space
        for key in ("fields", "type", "items", "values"):
            if key in node:
                _named_types(node[key], namespace, found)
    return found


def _record_in(declared: Any, named: dict[str, dict], namespace: str) -> dict | None:
    """The record schema a field type names: inline, by reference, or as a branch of a union."""
    if isinstance(declared, str):
        declared = named.get(declared) or named.get(f"{namespace}.{declared}")
    if isinstance(declared, list):
        return next((r for r in (_record_in(t, named, namespace) for t in declared) if r), None)
    if isinstance(declared, dict) and declared.get("type") == "record":
        return declared
    return None
