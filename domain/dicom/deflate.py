"""Deflated Explicit VR Little Endian (PS3.5 A.5) without trusting the ratio: a bounded inflate.

A deflated dataset is a raw deflate stream (RFC 1951) after the File Meta group. Deflate
reaches ratios over 1000:1, so 500 kB on the wire can become 1 GB in memory when a parser
inflates it whole (pydicom does). `inflated_size` walks the stream in fixed-size output
chunks and stops as soon as the total passes the limit, so measuring a bomb costs one
chunk of memory, never its inflated size.
"""

from __future__ import annotations

import zlib

CHUNK = 1 << 20  # output bytes per step: the most this ever holds


class InflateLimitExceeded(ValueError):
    """The stream inflates past the limit."""


def inflated_size(stream: bytes, limit: int, chunk: int = CHUNK) -> int:
    """Bytes the raw deflate `stream` inflates to; InflateLimitExceeded past `limit`, ValueError if corrupt."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    pending = stream
    try:
        while pending:
            total += len(inflater.decompress(pending, chunk))
            if total > limit:
                raise InflateLimitExceeded(f"inflates past {limit} bytes")
            pending = inflater.unconsumed_tail
            if inflater.eof:
                break
        total += len(inflater.flush(chunk))
    except zlib.error as exc:
        raise ValueError(f"corrupt deflate stream ({exc})") from None
    if total > limit:
        raise InflateLimitExceeded(f"inflates past {limit} bytes")
    return total
