"""Content-addressed blob store for the claim-check pattern: pixels never travel in Kafka.

Events carry a BlobRef (uri, sha256, size, media type, shape, dtype); consumers
verify the hash on every read. Two areas: `raw/` holds what arrived (DICOM instances,
PHI inside), `derived/` what the stages made from it (pixels, tensors, display PNGs).
The gateway reads display images from `derived/` only, by digest (D-024); retention
(`blobs gc`, D-029) walks both and tells them apart by area. Blobs written before the split (`<root>/<sha[:2]>/<sha>`) are
still read through their URIs.

`BlobStore` holds what every backend shares (content addressing, the hash check, the
areas, arrays streamed in and out so a pixel array is never held twice); a backend
supplies where a blob lives and how its bytes move: `FileBlobStore` here (`file://`, the
embedded default), `S3BlobStore` in streams/blobstore_s3.py (`s3://BUCKET/PREFIX`, D-050).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import IO
from urllib.parse import unquote, urlparse

from radstream.domain.errors import PermanentError, TransientError
from radstream.domain.retention import StoredBlob
from radstream.streams.blobstore_base import (  # noqa: F401 (the blob store's public names, for callers)
    AREAS,
    DERIVED,
    NPY,
    RAW,
    SHA256_NAME,
    Area,
    BlobRef,
    BlobStore,
    area_of_path,
    checked_area,
    verify_digest,
    npy_parts,
)


class FileBlobStore(BlobStore):
    """Blobs as files under `root/<area>/<sha[:2]>/<sha>`; writes are atomic (temp file + rename)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.url = self.root.as_uri()

    def area_dir(self, area: Area) -> Path:
        """The folder of one area: `raw` (what arrived) or `derived` (what a stage made)."""
        return self.root / checked_area(area)

    def get(self, ref: BlobRef) -> bytes:
        path = self._path(ref["uri"])
        try:
            data = path.read_bytes()  # one read, into the one bytes object returned
        except FileNotFoundError:
            raise PermanentError(f"blob not found: {ref['uri']}", code="blob_missing") from None
        except OSError as exc:
            raise TransientError(f"cannot read blob {ref['uri']}: {exc.strerror}", code="blob_io") from exc
        verify_digest(hashlib.sha256(data), ref)
        return data

    def stored(self) -> Iterator[StoredBlob]:
        """Every blob file under the root, at any depth, with its area (temp files of writes in
        flight are not blobs: their names are not a sha256)."""
        for dirpath, _, files in os.walk(self.root):
            for name in files:
                if SHA256_NAME.match(name):
                    path = Path(dirpath) / name
                    try:
                        st = path.stat()
                    except FileNotFoundError:  # deleted meanwhile (another gc, a test cleaning up)
                        continue
                    yield StoredBlob(name, str(path), st.st_size, st.st_mtime,
                                     area_of_path(PurePosixPath(path.relative_to(self.root).as_posix())))

    def delete(self, blob: StoredBlob) -> bool:
        path = Path(blob.path).resolve()
        if not path.is_relative_to(self.root) or path.name != blob.sha256:
            raise PermanentError(f"not a blob of this store: {blob.path}", code="blob_uri")
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def _uri(self, area: Area, digest: str) -> str:
        return (self.root / area / digest[:2] / digest).as_uri()

    def _relative(self, uri: str) -> PurePosixPath:
        return PurePosixPath(self._path(uri).relative_to(self.root).as_posix())

    def _exists(self, uri: str) -> bool:
        return self._path(uri).exists()

    def _write(self, uri: str, parts: Sequence[memoryview], size: int) -> None:
        path = self._path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                for part in parts:
                    f.write(part)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _open(self, uri: str) -> IO[bytes]:
        try:
            return self._path(uri).open("rb")
        except FileNotFoundError:
            raise PermanentError(f"blob not found: {uri}", code="blob_missing") from None
        except OSError as exc:
            raise TransientError(f"cannot read blob {uri}: {exc.strerror}", code="blob_io") from exc

    def _path(self, uri: str) -> Path:
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            raise PermanentError(f"unsupported blob URI scheme: {uri}", code="blob_uri")
        path = Path(unquote(parsed.path)).resolve()
        if not path.is_relative_to(self.root):
            raise PermanentError(f"blob URI outside the blob store: {uri}", code="blob_uri")
        return path


def open_blob_store(url: str, env: dict[str, str] | None = None) -> BlobStore:
    """`file:///path` or a plain path; `s3://BUCKET/PREFIX`, with the endpoint and credentials
    from the standard AWS variables in `env` (default: the process environment). Other schemes
    are refused with a clear error."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        return FileBlobStore(unquote(parsed.path) if parsed.scheme else url)
    if parsed.scheme == "s3":
        from radstream.streams.blobstore_s3 import S3BlobStore, S3Settings

        return S3BlobStore(url, S3Settings.from_env(os.environ if env is None else env))
    raise ValueError(f"unsupported blob store URL {url!r}: file:// (or a path) and s3://BUCKET/PREFIX are implemented")
