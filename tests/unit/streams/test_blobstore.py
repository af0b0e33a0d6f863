"""The content-addressed blob store: hashes are verified on every read."""

from __future__ import annotations

import numpy as np
import pytest

from radstream.streams.blobstore import FileBlobStore, open_blob_store
from radstream.domain.errors import PermanentError


def test_put_get_round_trip_is_content_addressed(tmp_path) -> None:
    store = FileBlobStore(tmp_path)
    ref = store.put(b"hello", "text/plain")
    assert ref["uri"].startswith("file://") and ref["uri"].endswith(ref["sha256"])
    assert store.put(b"hello", "text/plain")["uri"] == ref["uri"]
    assert store.get(ref) == b"hello"


def test_arrays_round_trip_with_shape_and_dtype(tmp_path) -> None:
    store = FileBlobStore(tmp_path)
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    ref = store.put_array(a)
    assert ref["shape"] == [3, 4] and ref["dtype"] == "float32"
    np.testing.assert_array_equal(store.get_array(ref), a)


def test_tampered_missing_and_foreign_blobs_are_permanent_errors(tmp_path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    ref = store.put(b"pixels", "application/octet-stream")
    path = tmp_path / "blobs" / ref["sha256"][:2] / ref["sha256"]
    path.write_bytes(b"pixelz")
    with pytest.raises(PermanentError, match="hash mismatch"):
        store.get(ref)
    path.unlink()
    with pytest.raises(PermanentError, match="blob not found"):
        store.get(ref)
    outside = tmp_path / "secret"
    outside.write_bytes(b"x")
    with pytest.raises(PermanentError, match="outside the blob store"):
        store.get({**ref, "uri": outside.as_uri()})
    with pytest.raises(PermanentError, match="unsupported blob URI"):
        store.get({**ref, "uri": "http://example.invalid/x"})


def test_open_blob_store_refuses_unknown_schemes(tmp_path) -> None:
    assert isinstance(open_blob_store(str(tmp_path)), FileBlobStore)
    with pytest.raises(ValueError, match="unsupported blob store URL"):
        open_blob_store("ftp://x/y")
