"""The bounded inflate: exact sizes below the limit, a refusal past it, without inflating a bomb whole."""

from __future__ import annotations

import resource
import zlib

import pytest

from radstream.domain.dicom.deflate import InflateLimitExceeded, inflated_size


def raw_deflate(data: bytes) -> bytes:
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return deflater.compress(data) + deflater.flush()


def test_the_size_of_an_ordinary_stream() -> None:
    data = bytes(range(256)) * 5000
    assert inflated_size(raw_deflate(data), len(data)) == len(data)


def test_a_bomb_is_refused_after_one_chunk_past_the_limit() -> None:
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    bomb = b"".join(deflater.compress(zeros) for _ in range(512)) + deflater.flush()  # 512 MiB inflated
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(InflateLimitExceeded):
        inflated_size(bomb, 64 << 20)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 32 * 1024  # kB: never the 64 MiB


def test_a_corrupt_stream_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="corrupt deflate stream"):
        inflated_size(b"\xff\xff\xff\xff" * 8, 1 << 20)
