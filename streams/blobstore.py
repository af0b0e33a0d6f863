"""Content-addressed blob store for the claim-check pattern: pixels never travel in Kafka.

Events carry a BlobRef (uri, sha256, size, media type, shape, dtype); consumers
verify the hash on every read. Two areas: `raw/` holds what arrived (DICOM instances,
PHI inside), `derived/` what the stages made from it (pixels, tensors, display PNGs).
The gateway reads display images from `derived/` only, by digest (D-024); retention
(`blobs gc`, D-029) walks both and tells them apart by area. Blobs written before the split (`<root>/<sha[:2]>/<sha>`) are
still read through their URIs.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlparse

import numpy as np
from radstream.domain.errors import PermanentError, TransientError
from radstream.domain.retention import StoredBlob

BlobRef = dict[str, Any]
Area = Literal["raw", "derived"]
RAW: Area = "raw"
DERIVED: Area = "derived"
AREAS: tuple[Area, ...] = (RAW, DERIVED)
_SHA256_NAME = re.compile(r"^[0-9a-f]{64}$")


class FileBlobStore:
    """Blobs as files under `root/<area>/<sha[:2]>/<sha>`; writes are atomic (temp file + rename)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def area_dir(self, area: Area) -> Path:
        """The folder of one area: `raw` (what arrived) or `derived` (what a stage made)."""
        if area not in AREAS:
            raise ValueError(f"unknown blob area {area!r}: expected one of {', '.join(AREAS)}")
        return self.root / area

    def put(self, data: bytes, media_type: str, shape: tuple[int, ...] = (), dtype: str = "",
            area: Area = RAW) -> BlobRef:
        """Store `data` in `area`: raw (the default: what arrived) or derived (what a stage made)."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.area_dir(area) / digest[:2] / digest
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return {
            "uri": path.as_uri(),
            "sha256": digest,
            "size_bytes": len(data),
            "media_type": media_type,
            "shape": [int(s) for s in shape],
            "dtype": dtype,
        }

    def get(self, ref: BlobRef) -> bytes:
        """Read and verify a blob. Missing or corrupt blobs are permanent errors."""
        path = self._path(ref["uri"])
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise PermanentError(f"blob not found: {ref['uri']}", code="blob_missing") from None
        except OSError as exc:
            raise TransientError(f"cannot read blob {ref['uri']}: {exc.strerror}", code="blob_io") from exc
        digest = hashlib.sha256(data).hexdigest()
        if digest != ref["sha256"]:
            raise PermanentError(f"blob hash mismatch for {ref['uri']}", code="blob_hash_mismatch")
        return data

    def get_by_digest(self, sha256: str, area: Area) -> bytes:
        """Read and verify the blob with this sha256 in `area`, from where `put` stores it.

        For readers that must not trust a record's `uri` (the gateway, from `derived`): the
        path comes from the digest and the area alone, so a record can only name content
        of that area.
        """
        if not _is_sha256(sha256):
            raise PermanentError("not a sha256 digest", code="blob_uri")
        return self.get({"uri": (self.area_dir(area) / sha256[:2] / sha256).as_uri(), "sha256": sha256})

    def put_array(self, array: np.ndarray, area: Area = DERIVED) -> BlobRef:
        """Arrays are what stages make (pixels, tensors): derived unless told otherwise."""
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
        return self.put(buf.getvalue(), "application/x-npy", array.shape, str(array.dtype), area=area)

    def get_array(self, ref: BlobRef) -> np.ndarray:
        return np.load(io.BytesIO(self.get(ref)), allow_pickle=False)

    def area_of(self, ref: BlobRef) -> Area | None:
        """The area a ref's URI points into (`raw` or `derived`), None for a blob from before
        the split; a URI outside the store is a PermanentError. Says nothing about the content:
        readers that must not trust the URI use `get_by_digest`."""
        return _area_of(self._path(ref["uri"]).relative_to(self.root))

    def is_derived(self, ref: BlobRef) -> bool:
        return self.area_of(ref) == DERIVED

    def stored(self) -> Iterator[StoredBlob]:
        """Every blob file under the root, at any depth, with its area (temp files of writes in
        flight are not blobs: their names are not a sha256)."""
        for dirpath, _, files in os.walk(self.root):
            for name in files:
                if _SHA256_NAME.match(name):
                    path = Path(dirpath) / name
                    try:
                        st = path.stat()
                    except FileNotFoundError:  # deleted meanwhile (another gc, a test cleaning up)
                        continue
                    yield StoredBlob(name, str(path), st.st_size, st.st_mtime,
                                     _area_of(path.relative_to(self.root)))

    def delete(self, blob: StoredBlob) -> bool:
        """Remove one blob file (retention); False when it was already gone."""
        path = Path(blob.path).resolve()
        if not path.is_relative_to(self.root) or path.name != blob.sha256:
            raise PermanentError(f"not a blob of this store: {blob.path}", code="blob_uri")
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def _path(self, uri: str) -> Path:
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            raise PermanentError(f"unsupported blob URI scheme: {uri}", code="blob_uri")
        path = Path(unquote(parsed.path)).resolve()
        if not path.is_relative_to(self.root):
            raise PermanentError(f"blob URI outside the blob store: {uri}", code="blob_uri")
        return path


def _area_of(relative: Path) -> Area | None:
    """`<area>/<sha[:2]>/<sha>` is in that area; anything else (the old root layout) in none."""
    parts = relative.parts
    return parts[0] if len(parts) == 3 and parts[0] in AREAS else None  # type: ignore[return-value]


def _is_sha256(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def open_blob_store(url: str) -> FileBlobStore:
    """`file:///path` or a plain path. Other schemes are refused with a clear error."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        return FileBlobStore(unquote(parsed.path) if parsed.scheme else url)
    raise ValueError(f"unsupported blob store URL {url!r}: only file:// (or a path) is implemented")
