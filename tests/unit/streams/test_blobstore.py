"""The content-addressed blob store: hashes are verified on every read."""

from __future__ import annotations

import numpy as np
import pytest
from radstream.domain.errors import PermanentError
from radstream.streams.blobstore import DERIVED, RAW, FileBlobStore, open_blob_store


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
    path = tmp_path / "blobs" / RAW / ref["sha256"][:2] / ref["sha256"]
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


def test_raw_and_derived_are_separate_areas_and_old_paths_still_read(tmp_path) -> None:
    store = FileBlobStore(tmp_path)
    raw = store.put(b"DICM instance", "application/dicom")
    png = store.put(b"\x89PNG derived", "image/png", area=DERIVED)
    array = store.put_array(np.zeros(3, np.float32))
    assert (tmp_path / "raw" / raw["sha256"][:2] / raw["sha256"]).exists()
    assert (tmp_path / "derived" / png["sha256"][:2] / png["sha256"]).exists()
    assert array["uri"].startswith((tmp_path / "derived").as_uri())  # arrays are what stages make
    assert store.get_by_digest(png["sha256"], DERIVED) == b"\x89PNG derived"
    with pytest.raises(PermanentError, match="blob not found"):  # by digest: only from the area asked
        store.get_by_digest(raw["sha256"], DERIVED)
    with pytest.raises(PermanentError, match="not a sha256"):
        store.get_by_digest("../" + raw["sha256"][3:], DERIVED)
    old = tmp_path / png["sha256"][:2] / png["sha256"]  # the layout before the split
    old.parent.mkdir()
    old.write_bytes(b"\x89PNG derived")
    assert store.get({**png, "uri": old.as_uri()}) == b"\x89PNG derived"
    assert {b.path for b in store.stored()} >= {str(old), raw["uri"][7:], png["uri"][7:]}  # gc sees every area
    with pytest.raises(ValueError, match="unknown blob area"):
        store.put(b"x", "text/plain", area="elsewhere")


def test_area_of_and_is_derived_follow_the_uri_and_the_walk_reports_each_area(tmp_path) -> None:
    store = FileBlobStore(tmp_path)
    raw, derived = store.put(b"dicom", "application/dicom"), store.put(b"png", "image/png", area=DERIVED)
    legacy_dir = tmp_path / "ab"
    legacy_dir.mkdir()
    legacy = "ab" + "0" * 62
    (legacy_dir / legacy).write_bytes(b"old")
    assert (store.area_of(raw), store.is_derived(raw)) == (RAW, False)
    assert (store.area_of(derived), store.is_derived(derived)) == ("derived", True)
    assert {b.sha256: b.area for b in store.stored()} == {raw["sha256"]: "raw", derived["sha256"]: "derived",
                                                           legacy: None}
