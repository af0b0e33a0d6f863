"""What every blob store shares: the BlobRef, the two areas, content addressing, the hash check
on every read, and arrays streamed in and out (so a pixel array is never held twice).

A backend subclasses `BlobStore` and supplies where a blob lives and how its bytes move
(streams/blobstore.py: files; streams/blobstore_s3.py: S3). Callers import from
streams/blobstore.py, which also opens a store from its URL.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import IO, Any, Literal

import numpy as np
from radstream.domain.errors import PermanentError
from radstream.domain.retention import StoredBlob

BlobRef = dict[str, Any]
Area = Literal["raw", "derived"]
RAW: Area = "raw"
DERIVED: Area = "derived"
AREAS: tuple[Area, ...] = (RAW, DERIVED)
NPY = "application/x-npy"
SHA256_NAME = re.compile(r"^[0-9a-f]{64}$")


class BlobStore:
    """The one blob store interface. Subclasses implement the five primitives at the end."""

    url: str  # reopens the same store in another process (decode's bounded worker)

    def put(self, data: bytes | bytearray | memoryview, media_type: str, shape: tuple[int, ...] = (),
            dtype: str = "", area: Area = RAW) -> BlobRef:
        """Store `data` in `area`: raw (the default: what arrived) or derived (what a stage made)."""
        return self._put_parts([memoryview(data).cast("B")], media_type, shape, dtype, area)

    def put_array(self, array: np.ndarray, area: Area = DERIVED) -> BlobRef:
        """Arrays are what stages make (pixels, tensors): derived unless told otherwise. Written as
        .npy from the array's own memory (header, then its buffer): no second copy is made."""
        if not array.flags.c_contiguous:
            array = array.copy(order="C")  # a strided view has no one buffer to write from
        return self._put_parts(npy_parts(array), NPY, array.shape, str(array.dtype), area)

    def get(self, ref: BlobRef) -> bytes:
        """Read and verify a blob. Missing or corrupt blobs are permanent errors."""
        with self._open(self._checked_uri(ref["uri"])) as f:
            data = f.read()
        verify_digest(hashlib.sha256(data), ref)
        return data

    def get_array(self, ref: BlobRef) -> np.ndarray:
        """Read a .npy blob into one array allocated for it, hashing as it streams in."""
        with self._open(self._checked_uri(ref["uri"])) as raw:
            f = _HashingReader(raw)
            try:
                version = np.lib.format.read_magic(f)
                read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                               (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                if read_header is None:
                    raise ValueError(f"npy format version {version} is not read here")
                shape, fortran, dtype = read_header(f)
            except (ValueError, SyntaxError) as exc:
                raise PermanentError(f"blob {ref['uri']} is not an .npy array: {exc}", code="blob_format") from None
            if dtype.hasobject:
                raise PermanentError(f"blob {ref['uri']} holds Python objects, not an array", code="blob_format")
            array = np.empty(shape, dtype=dtype, order="F" if fortran else "C")
            view = memoryview(array.reshape(-1, order="A")).cast("B") if array.size else memoryview(b"")
            got = 0
            while got < len(view):
                n = f.readinto(view[got:])
                if not n:
                    raise PermanentError(f"blob {ref['uri']} ends early", code="blob_hash_mismatch")
                got += n
            if f.read(1):  # anything after the array is not what was hashed at write time
                raise PermanentError(f"blob hash mismatch for {ref['uri']}", code="blob_hash_mismatch")
        verify_digest(f.hash, ref)
        return array

    def get_by_digest(self, sha256: str, area: Area) -> bytes:
        """Read and verify the blob with this sha256 in `area`, from where `put` stores it.

        For readers that must not trust a record's `uri` (the gateway, from `derived`): the
        location comes from the digest and the area alone, so a record can only name content
        of that area.
        """
        if not _is_sha256(sha256):
            raise PermanentError("not a sha256 digest", code="blob_uri")
        return self.get({"uri": self._uri(checked_area(area), sha256), "sha256": sha256})

    def area_of(self, ref: BlobRef) -> Area | None:
        """The area a ref's URI points into (`raw` or `derived`), None for a blob from before
        the split; a URI outside the store is a PermanentError. Says nothing about the content:
        readers that must not trust the URI use `get_by_digest`."""
        return area_of_path(self._relative(ref["uri"]))

    def is_derived(self, ref: BlobRef) -> bool:
        return self.area_of(ref) == DERIVED

    def _put_parts(self, parts: Sequence[memoryview], media_type: str, shape: tuple[int, ...], dtype: str,
                   area: Area) -> BlobRef:
        h = hashlib.sha256()
        for part in parts:
            h.update(part)
        digest = h.hexdigest()
        size = sum(len(p) for p in parts)
        uri = self._uri(checked_area(area), digest)
        if not self._exists(uri):  # content-addressed: the same bytes are already there
            self._write(uri, parts, size)
        return {"uri": uri, "sha256": digest, "size_bytes": size, "media_type": media_type,
                "shape": [int(s) for s in shape], "dtype": dtype}

    def _checked_uri(self, uri: str) -> str:
        self._relative(uri)
        return uri

    # -- what a backend supplies ---------------------------------------------------------------
    def _uri(self, area: Area, digest: str) -> str:
        """Where `put` stores a blob: `<store>/<area>/<sha[:2]>/<sha>`."""
        raise NotImplementedError

    def _relative(self, uri: str) -> PurePosixPath:
        """A URI's place inside the store; PermanentError (`blob_uri`) for any other URI."""
        raise NotImplementedError

    def _exists(self, uri: str) -> bool:
        raise NotImplementedError

    def _write(self, uri: str, parts: Sequence[memoryview], size: int) -> None:
        """Write the parts, in order, as one blob that readers see whole or not at all."""
        raise NotImplementedError

    def _open(self, uri: str) -> IO[bytes]:
        """A stream of the blob's bytes; PermanentError `blob_missing` when there is none."""
        raise NotImplementedError

    def stored(self) -> Iterator[StoredBlob]:
        """Every blob in the store, with its area (retention)."""
        raise NotImplementedError

    def delete(self, blob: StoredBlob) -> bool:
        """Remove one blob (retention); False when it was already gone."""
        raise NotImplementedError


def npy_parts(array: np.ndarray) -> list[memoryview]:
    """A C-contiguous array as the two parts of its .npy file: the header, and a view of its
    own buffer (what `np.save` would write, without copying the data)."""
    header = io.BytesIO()
    fields = np.lib.format.header_data_from_array_1_0(array)
    try:
        np.lib.format.write_array_header_1_0(header, fields)
    except ValueError:  # a header over 64 KiB (a very long shape): format 2.0
        header = io.BytesIO()
        np.lib.format.write_array_header_2_0(header, fields)
    body = memoryview(array.reshape(-1)).cast("B") if array.size else memoryview(b"")
    return [header.getbuffer(), body]


class _HashingReader(io.RawIOBase):
    """Reads through to a stream and hashes every byte that passes."""

    def __init__(self, inner: IO[bytes]) -> None:
        self._inner = inner
        self.hash = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self._inner.readinto(b)  # type: ignore[attr-defined]
        if n:
            self.hash.update(memoryview(b)[:n])
        return n or 0


def verify_digest(h: Any, ref: BlobRef) -> None:
    if h.hexdigest() != ref["sha256"]:
        raise PermanentError(f"blob hash mismatch for {ref['uri']}", code="blob_hash_mismatch")


def checked_area(area: str) -> Area:
    if area not in AREAS:
        raise ValueError(f"unknown blob area {area!r}: expected one of {', '.join(AREAS)}")
    return area  # type: ignore[return-value]


def area_of_path(relative: PurePosixPath) -> Area | None:
    """`<area>/<sha[:2]>/<sha>` is in that area; anything else (the old root layout) in none."""
    parts = relative.parts
    return parts[0] if len(parts) == 3 and parts[0] in AREAS else None  # type: ignore[return-value]


def _is_sha256(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


