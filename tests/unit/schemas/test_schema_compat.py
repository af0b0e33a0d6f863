"""Every schema change must be backward compatible with the last released schema:
a consumer on the current schema reads what a producer on the released one wrote."""

from __future__ import annotations

import io

import fastavro
import pytest
from fastavro.utils import generate_many

from radstream.streams.codec import load_schema, schema_dir, schema_names

RELEASED = schema_dir() / "released"


def test_no_released_schema_was_removed() -> None:
    released = {p.stem for p in RELEASED.glob("*.avsc")}
    assert released and released <= set(schema_names())


@pytest.mark.parametrize("name", sorted(p.stem for p in RELEASED.glob("*.avsc")))
def test_current_schema_reads_data_written_with_the_released_one(name: str) -> None:
    old = load_schema(name, RELEASED)
    new = load_schema(name)
    for record in generate_many(old, 25):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, old, record)
        buf.seek(0)
        fastavro.schemaless_reader(buf, old, new)  # raises SchemaResolutionError when incompatible
