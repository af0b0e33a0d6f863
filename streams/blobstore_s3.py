"""The blob store on S3-compatible object storage (`RADSTREAM_BLOB_URL=s3://BUCKET/PREFIX`, D-050).

Same layout, content addressing and hash check as the file store:
`s3://BUCKET/PREFIX/<area>/<sha[:2]>/<sha256>`. The client is obstore (chosen by measurement
against SeaweedFS, D-050). The endpoint and credentials come from the standard AWS variables
(`S3Settings.from_env`).

- Atomic: a blob is one PUT (up to 5 MiB) or one multipart upload, which S3 shows only once
  completed, whole; a reader never sees part of one.
- Streaming: writes go from the array's own buffer in 5 MiB parts, reads come in chunks into
  the array allocated for them; the whole pixel array is never held twice.
- Every failure but "no such blob" is transient (`BlobStoreUnavailable`): an unreachable
  endpoint, a timeout, a 5xx, refused credentials, a missing bucket. The runtime then holds
  the partition and commits nothing until the store answers again (streams/holds.py).
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import PurePosixPath
from typing import IO, Any
from urllib.parse import urlparse

from radstream.domain.errors import BlobStoreUnavailable, PermanentError, StageError
from radstream.domain.retention import StoredBlob
from radstream.streams.blobstore_base import SHA256_NAME, Area, BlobRef, BlobStore, area_of_path, verify_digest

PART_BYTES = 5 << 20  # S3's smallest multipart part; a blob up to this size is one PUT
_UPLOAD_CONCURRENCY = 2  # parts in flight per upload: bounds the memory a write holds
_NAME = re.compile(r"^[A-Za-z0-9.\-_]{3,63}$")


@dataclass(frozen=True)
class S3Settings:
    """The endpoint and credentials, from the standard AWS variables (also what the AWS CLI reads)."""

    endpoint: str | None = None  # AWS_ENDPOINT_URL; None: AWS itself
    region: str = "us-east-1"  # AWS_REGION, else AWS_DEFAULT_REGION
    access_key_id: str | None = None  # AWS_ACCESS_KEY_ID
    secret_access_key: str | None = None  # AWS_SECRET_ACCESS_KEY
    session_token: str | None = None  # AWS_SESSION_TOKEN
    connect_timeout_s: float = 5.0
    timeout_s: float = 30.0  # one request, start to end
    retry_timeout_s: float = 10.0  # the client's own retries of one call, in all

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "S3Settings":
        return cls(endpoint=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None,
                   region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
                   access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
                   secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
                   session_token=env.get("AWS_SESSION_TOKEN") or None)


def parse_s3_url(url: str) -> tuple[str, str]:
    """`s3://BUCKET/PREFIX` as (bucket, prefix without slashes at either end); ValueError if not one."""
    parsed = urlparse(url)
    bucket, prefix = parsed.netloc, parsed.path.strip("/")
    if parsed.scheme != "s3" or not _NAME.match(bucket) or parsed.query or parsed.fragment:
        raise ValueError(f"not an S3 blob store URL: {url!r} (expected s3://BUCKET/PREFIX)")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise ValueError(f"not an S3 blob store URL: {url!r} (empty, '.' or '..' in the prefix)")
    return bucket, prefix


class S3BlobStore(BlobStore):
    """Blobs as objects under `s3://BUCKET/PREFIX/`, through obstore."""

    def __init__(self, url: str, settings: S3Settings) -> None:
        try:
            from obstore.store import S3Store
        except ImportError:
            raise ValueError("an s3:// blob store needs the obstore package (pip install obstore)") from None
        self.bucket, self.prefix = parse_s3_url(url)
        self.url = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.settings = settings
        config: dict[str, Any] = {"region": settings.region}
        for key, value in (("endpoint", settings.endpoint), ("access_key_id", settings.access_key_id),
                           ("secret_access_key", settings.secret_access_key), ("token", settings.session_token)):
            if value:
                config[key] = value
        self._store = S3Store(self.bucket, config=config, client_options={
            "allow_http": bool(settings.endpoint and settings.endpoint.startswith("http://")),
            "connect_timeout": timedelta(seconds=settings.connect_timeout_s),
            "timeout": timedelta(seconds=settings.timeout_s),
        }, retry_config={
            "max_retries": 3, "retry_timeout": timedelta(seconds=settings.retry_timeout_s),
            "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=2), "base": 2},
        })

    # -- the primitives -------------------------------------------------------------------------
    def _key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def _uri(self, area: Area, digest: str) -> str:
        return f"s3://{self.bucket}/{self._key(f'{area}/{digest[:2]}/{digest}')}"

    def _relative(self, uri: str) -> PurePosixPath:
        parsed = urlparse(uri)
        if parsed.scheme != "s3":
            raise PermanentError(f"unsupported blob URI scheme: {uri}", code="blob_uri")
        key = parsed.path.lstrip("/")
        root = f"{self.prefix}/" if self.prefix else ""
        if parsed.netloc != self.bucket or not key.startswith(root) \
                or any(part in ("", ".", "..") for part in key[len(root):].split("/")):
            raise PermanentError(f"blob URI outside the blob store: {uri}", code="blob_uri")
        return PurePosixPath(key[len(root):])

    def _object(self, uri: str) -> str:
        return self._key(str(self._relative(uri)))

    def _exists(self, uri: str) -> bool:
        import obstore

        try:
            obstore.head(self._store, self._object(uri))
            return True
        except FileNotFoundError as exc:
            if _no_bucket(exc):
                raise self._unavailable("head", uri, exc) from None
            return False
        except Exception as exc:
            raise self._unavailable("head", uri, exc) from None

    def _write(self, uri: str, parts: Sequence[memoryview], size: int) -> None:
        import obstore

        key = self._object(uri)
        try:
            if size <= PART_BYTES:
                body = parts[0] if len(parts) == 1 else b"".join(parts)  # at most one part's worth
                obstore.put(self._store, key, body, use_multipart=False)
            else:
                obstore.put(self._store, key, _slices(parts, PART_BYTES), chunk_size=PART_BYTES,
                            max_concurrency=_UPLOAD_CONCURRENCY)
        except Exception as exc:
            raise self._unavailable("put", uri, exc) from None

    def get(self, ref: BlobRef) -> bytes:
        """One GET into one buffer, hashed there; the bytes returned are its one copy."""
        uri = self._checked_uri(ref["uri"])
        try:
            body = self._get(uri).bytes()
        except StageError:
            raise
        except Exception as exc:  # the connection dropped mid-body
            raise self._unavailable("get", uri, exc) from None
        verify_digest(hashlib.sha256(memoryview(body)), ref)
        return body.to_bytes()

    def _get(self, uri: str) -> Any:
        import obstore

        try:
            return obstore.get(self._store, self._object(uri))
        except FileNotFoundError as exc:
            if _no_bucket(exc):
                raise self._unavailable("get", uri, exc) from None
            raise PermanentError(f"blob not found: {uri}", code="blob_missing") from None
        except Exception as exc:
            raise self._unavailable("get", uri, exc) from None

    def _open(self, uri: str) -> IO[bytes]:
        stream = self._get(uri).stream(min_chunk_size=1 << 20)
        return _ChunkReader(iter(stream), lambda exc: self._unavailable("get", uri, exc))

    def stored(self) -> Iterator[StoredBlob]:
        """Every object under the prefix whose name is a sha256, with its area and LastModified."""
        import obstore

        root = f"{self.prefix}/" if self.prefix else ""
        try:
            for batch in obstore.list(self._store, self.prefix or None, chunk_size=1000):
                for meta in batch:
                    key = meta["path"]
                    name = key.rsplit("/", 1)[-1]
                    if SHA256_NAME.match(name) and key.startswith(root):
                        yield StoredBlob(name, f"s3://{self.bucket}/{key}", int(meta["size"]),
                                         meta["last_modified"].timestamp(), area_of_path(PurePosixPath(key[len(root):])))
        except Exception as exc:
            raise self._unavailable("list", self.url, exc) from None

    def delete(self, blob: StoredBlob) -> bool:
        import obstore

        relative = self._relative(blob.path)
        if relative.name != blob.sha256:
            raise PermanentError(f"not a blob of this store: {blob.path}", code="blob_uri")
        if not self._exists(blob.path):  # S3 deletes a missing key without a word: ask first
            return False
        try:
            obstore.delete(self._store, self._key(str(relative)))
        except Exception as exc:
            raise self._unavailable("delete", blob.path, exc) from None
        return True

    def _unavailable(self, op: str, uri: str, exc: BaseException) -> BlobStoreUnavailable:
        return BlobStoreUnavailable(f"blob store {self.url} did not answer ({op} {uri}): {_one_line(exc)}")


class _ChunkReader(io.RawIOBase):
    """A GET's chunks as a readable stream; an error mid-stream is the store's, so transient."""

    def __init__(self, chunks: Iterator[Any], on_error: Any) -> None:
        self._chunks = chunks
        self._on_error = on_error
        self._current = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._current:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                return 0
            except Exception as exc:
                raise self._on_error(exc) from None
            self._current = memoryview(chunk).cast("B")
        n = min(len(b), len(self._current))
        memoryview(b).cast("B")[:n] = self._current[:n]
        self._current = self._current[n:]
        return n


def _slices(parts: Sequence[memoryview], size: int) -> Iterator[memoryview]:
    """The parts as views of at most `size` bytes each (no copies; the client groups them into parts)."""
    for part in parts:
        for start in range(0, len(part), size):
            yield part[start:start + size]


def _no_bucket(exc: BaseException) -> bool:
    """A 404 for the bucket itself is a deployment fault (transient: wait), not a missing blob."""
    return "NoSuchBucket" in str(exc)


def _one_line(exc: BaseException) -> str:
    """obstore's messages run over many lines (a debug dump, an XML body) and repeat the URL: the
    first line without the repeats, and the S3 error code when the server sent one."""
    full = str(exc)
    text = full.split("\n", 1)[0].split("<?xml", 1)[0]
    text = re.sub(r" for path \S+?:", ":", text)
    text = re.sub(r"Error performing (\w+) \S+ in [\d.]+\w*,?", r"\1", text)
    text = " ".join(text.split()).rstrip(" :-")
    if len(text) > 300:
        text = text[:300] + "..."
    code = re.search(r"<Code>([A-Za-z]+)</Code>", full)
    return f"{text} ({code.group(1)})" if code else text or type(exc).__name__
