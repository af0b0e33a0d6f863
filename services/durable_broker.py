"""Where the embedded broker keeps its topics when asked to keep them (`--durable DIR|s3://BUCKET/`, D-051).

Tansu's S3 storage engine is the one durable engine compiled into the shipped binary (its SQLite
and Postgres engines are not). Against SeaweedFS it keeps topics, records and committed
offsets across a broker restart (tests/integration/test_durable_broker.py). So:

- `--durable DIR` runs an embedded SeaweedFS with its data in DIR (services/object_store.py) and
  puts the broker's topics in its bucket `radstream-broker`;
- `--durable s3://BUCKET/` uses that bucket of the S3 store the AWS variables name.

Like the embedded broker itself, this is for demos and single-host trials; production runs
Apache Kafka (--bootstrap), and nothing in the pipeline depends on either.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from radstream.services.object_store import EmbeddedObjectStore
from radstream.streams.blobstore_s3 import S3Settings

BROKER_BUCKET = "radstream-broker"
MEMORY_NOTE = ("note: the embedded broker keeps everything in memory: when it stops, every topic is gone "
               "(threshold history, audit, overrides, changelogs, results); --durable DIR keeps them, "
               "--bootstrap uses a real Kafka")


@dataclass
class DurableStorage:
    """Tansu's `--storage-engine` URL, the variables it reads for it, and the object store we run (if any)."""

    url: str
    env: dict[str, str]
    object_store: EmbeddedObjectStore | None = None

    def describe(self) -> str:
        where = f"SeaweedFS in {self.object_store.folder}" if self.object_store else "S3"
        return f"topics kept in {self.url} ({where})"

    def stop(self) -> None:
        if self.object_store is not None:
            self.object_store.stop()


def tansu_env(settings: S3Settings) -> dict[str, str]:
    """The AWS variables as Tansu's S3 engine (Rust object_store) reads them."""
    env = {"AWS_REGION": settings.region, "AWS_DEFAULT_REGION": settings.region}
    if settings.endpoint:
        env.update(AWS_ENDPOINT=settings.endpoint, AWS_ENDPOINT_URL=settings.endpoint)
        if settings.endpoint.startswith("http://"):
            env["AWS_ALLOW_HTTP"] = "true"
    for name, value in (("AWS_ACCESS_KEY_ID", settings.access_key_id),
                        ("AWS_SECRET_ACCESS_KEY", settings.secret_access_key),
                        ("AWS_SESSION_TOKEN", settings.session_token)):
        if value:
            env[name] = value
    return env


def open_durable_storage(spec: str, env: Mapping[str, str] | None = None) -> DurableStorage:
    """`s3://BUCKET/` (the AWS variables say where) or a folder (an embedded SeaweedFS there, started)."""
    if spec.startswith("s3://"):
        parsed = urlparse(spec)
        if not parsed.netloc or parsed.path.strip("/"):
            raise ValueError(f"--durable {spec!r}: expected s3://BUCKET/ (Tansu keeps its topics at the bucket's root)")
        return DurableStorage(f"s3://{parsed.netloc}/", tansu_env(S3Settings.from_env(os.environ if env is None else env)))
    if "://" in spec:
        raise ValueError(f"--durable {spec!r}: expected a folder or s3://BUCKET/")
    store = EmbeddedObjectStore(Path(spec)).start()
    try:
        store.ensure_bucket(BROKER_BUCKET)
    except Exception:
        store.stop()
        raise
    return DurableStorage(f"s3://{BROKER_BUCKET}/", tansu_env(S3Settings.from_env(store.env())), store)
