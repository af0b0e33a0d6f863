"""The S3 blob store against a real S3 server (SeaweedFS): the file store's contract (content
addressing, the hash check, the areas, streamed arrays) on objects, atomic writes, and every
failure of the store as a one-line transient error."""

from __future__ import annotations

import numpy as np
import pytest
from radstream.domain.errors import BlobStoreUnavailable, PermanentError
from radstream.streams.blobstore import DERIVED, RAW, open_blob_store
from radstream.streams.blobstore_s3 import PART_BYTES, S3BlobStore, S3Settings


@pytest.fixture
def bucket(seaweedfs) -> str:
    return seaweedfs.bucket()


@pytest.fixture
def store(seaweedfs, bucket) -> S3BlobStore:
    s = open_blob_store(f"s3://{bucket}/site-a", env=seaweedfs.env())
    assert isinstance(s, S3BlobStore)
    return s


def test_blobs_are_content_addressed_objects_in_their_area(store, seaweedfs, bucket) -> None:
    ref = store.put(b"DICM instance", "application/dicom")
    assert ref["uri"] == f"s3://{bucket}/site-a/raw/{ref['sha256'][:2]}/{ref['sha256']}"
    assert store.put(b"DICM instance", "application/dicom") == ref
    assert store.get(ref) == b"DICM instance"
    png = store.put(b"\x89PNG display", "image/png", area=DERIVED)
    assert (store.area_of(ref), store.is_derived(png)) == (RAW, True)
    assert store.get_by_digest(png["sha256"], DERIVED) == b"\x89PNG display"
    with pytest.raises(PermanentError, match="blob not found"):  # by digest: only from the area asked
        store.get_by_digest(ref["sha256"], DERIVED)
    assert sorted(seaweedfs.keys(bucket)) == sorted(
        [f"site-a/raw/{ref['sha256'][:2]}/{ref['sha256']}", f"site-a/derived/{png['sha256'][:2]}/{png['sha256']}"])
    listed = {b.sha256: b for b in store.stored()}
    assert set(listed) == {ref["sha256"], png["sha256"]}
    assert (listed[ref["sha256"]].area, listed[png["sha256"]].area) == (RAW, DERIVED)
    assert listed[ref["sha256"]].size_bytes == len(b"DICM instance") and listed[ref["sha256"]].modified_at > 0
    assert store.delete(listed[png["sha256"]]) is True and store.delete(listed[png["sha256"]]) is False
    assert [b.sha256 for b in store.stored()] == [ref["sha256"]]


@pytest.mark.parametrize("shape", [(3, 4), (0, 3), (), (1100, 1300)])  # the last is over one 5 MiB part
def test_arrays_stream_in_and_out_with_shape_and_dtype(store, shape) -> None:
    a = np.random.default_rng(1).random(shape, dtype=np.float32)
    ref = store.put_array(a)
    assert ref["shape"] == list(shape) and ref["dtype"] == "float32" and store.is_derived(ref)
    assert (ref["size_bytes"] > PART_BYTES) == (a.nbytes > PART_BYTES)
    got = store.get_array(ref)
    assert got.shape == a.shape and got.dtype == a.dtype
    np.testing.assert_array_equal(got, a)


def test_tampered_missing_and_foreign_blobs_are_permanent_errors(store, seaweedfs, bucket) -> None:
    ref = store.put_array(np.arange(6, dtype=np.uint16))
    key = ref["uri"].split(f"s3://{bucket}/", 1)[1]
    body = seaweedfs.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    seaweedfs.client().put_object(Bucket=bucket, Key=key, Body=body[:-1] + b"\x07")
    with pytest.raises(PermanentError, match="hash mismatch"):
        store.get_array(ref)
    with pytest.raises(PermanentError, match="hash mismatch"):
        store.get(ref)
    seaweedfs.client().delete_object(Bucket=bucket, Key=key)
    with pytest.raises(PermanentError, match="blob not found"):
        store.get_array(ref)
    for uri in (f"s3://{bucket}/other/raw/ab/{'a' * 64}", f"s3://another-bucket/site-a/raw/ab/{'a' * 64}",
                f"s3://{bucket}/site-a/../other/{'a' * 64}"):
        with pytest.raises(PermanentError, match="outside the blob store"):
            store.get({**ref, "uri": uri})
    with pytest.raises(PermanentError, match="unsupported blob URI"):
        store.get({**ref, "uri": "file:///etc/passwd"})


def test_a_store_that_does_not_answer_is_transient_in_one_line(seaweedfs, bucket) -> None:
    wrong_key = open_blob_store(f"s3://{bucket}/x", env={**seaweedfs.env(), "AWS_SECRET_ACCESS_KEY": "wrong"})
    nobody = S3BlobStore(f"s3://{bucket}/x", S3Settings(endpoint="http://127.0.0.1:9", access_key_id="a",
                                                        secret_access_key="b", retry_timeout_s=1))
    missing = {"uri": f"s3://{bucket}/x/derived/ab/{'a' * 64}", "sha256": "a" * 64}
    for s, why in ((wrong_key, "403 Forbidden"), (nobody, "error sending request")):
        for call in (lambda: s.put(b"x", "text/plain"), lambda: s.get_array(missing), lambda: s.get(missing),
                     lambda: list(s.stored())):
            with pytest.raises(BlobStoreUnavailable) as err:
                call()
            assert err.value.transient and err.value.code == "blob_store_unavailable"
            assert "\n" not in str(err.value) and why in err.value.reason and s.url in err.value.reason
    # a bucket that is not there is the deployment's fault, not a missing blob: wait for it
    no_bucket = open_blob_store("s3://no-such-bucket-here/x", env=seaweedfs.env())
    with pytest.raises(BlobStoreUnavailable, match="NoSuchBucket"):
        no_bucket.get({**missing, "uri": "s3://no-such-bucket-here/x/derived/ab/" + "a" * 64})


def test_urls_and_settings_come_from_the_url_and_the_aws_variables() -> None:
    settings = S3Settings.from_env({"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ACCESS_KEY_ID": "k",
                                    "AWS_SECRET_ACCESS_KEY": "s", "AWS_DEFAULT_REGION": "eu-west-1"})
    assert (settings.endpoint, settings.access_key_id, settings.region) == ("http://127.0.0.1:1", "k", "eu-west-1")
    assert S3Settings.from_env({"AWS_REGION": "eu-north-1", "AWS_DEFAULT_REGION": "x"}).region == "eu-north-1"
    assert S3BlobStore("s3://bucket", settings).url == "s3://bucket"
    assert S3BlobStore("s3://bucket/a/b/", settings).url == "s3://bucket/a/b"
    for bad in ("s3:///prefix", "s3://b/prefix", "s3://bucket/a//b", "s3://bucket/../x", "s3://bucket/x?y=1"):
        with pytest.raises(ValueError, match="not an S3 blob store URL"):
            S3BlobStore(bad, settings)
