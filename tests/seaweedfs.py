"""A real S3 server for the tests: SeaweedFS (`EmbeddedObjectStore`, services/object_store.py).

Used through the session fixture `seaweedfs` (tests/conftest.py): one server for every S3 test,
each test in its own bucket (`seaweedfs.bucket()`), with `seaweedfs.env(bucket)` the AWS
variables and RADSTREAM_BLOB_URL a process needs. `stop()` and `start()` take the server away and
bring it back on the same ports and data folder (an outage, then the store returns). The tests'
own look at a bucket goes through boto3, a client independent of the obstore under test.
"""

from __future__ import annotations

import uuid

from radstream.services.object_store import EmbeddedObjectStore, seaweedfs_missing

__all__ = ["SeaweedFS", "seaweedfs_missing"]


class SeaweedFS(EmbeddedObjectStore):
    def env(self, bucket: str | None = None, prefix: str = "blobs") -> dict[str, str]:  # type: ignore[override]
        """The standard AWS variables for this server, and RADSTREAM_BLOB_URL when a bucket is given."""
        env = super().env()
        if bucket is not None:
            env["RADSTREAM_BLOB_URL"] = f"s3://{bucket}/{prefix}"
        return env

    def bucket(self) -> str:
        """A new, empty bucket."""
        name = f"t-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        paginator = self.client().get_paginator("list_objects_v2")
        return [o["Key"] for page in paginator.paginate(Bucket=bucket, Prefix=prefix) for o in page.get("Contents", [])]
