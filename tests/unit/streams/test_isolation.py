"""Bounded work in a worker process: results come back, limits reject with a reason, and the
worker is replaced so the caller keeps going."""

from __future__ import annotations

import time

import pytest

from radstream.domain.errors import NotAnImage, Rejected
from radstream.streams.isolation import BoundedWorker


def _add(a: int, b: int) -> int:
    return a + b


def _hang() -> None:
    time.sleep(60)


def _hog() -> bytearray:
    return bytearray(2 << 30)  # 2 GiB


def _not_an_image() -> None:
    raise NotAnImage("not an image: Basic Text SR")


def test_results_errors_and_limits() -> None:
    worker = BoundedWorker(timeout_s=10, memory_bytes=1 << 30)
    try:
        assert worker.call(_add, 2, 3) == 5
        with pytest.raises(NotAnImage, match="Basic Text SR") as info:
            worker.call(_not_an_image)
        assert info.value.code == "not_an_image"  # the code survives the trip between processes
        with pytest.raises(Rejected) as info:
            worker.call(_hog)
        assert info.value.code in ("memory_limit", "decoder_crash")
        worker.timeout_s = 1
        t0 = time.monotonic()
        with pytest.raises(Rejected, match="longer than 1 s") as info:
            worker.call(_hang)
        assert info.value.code == "timeout" and time.monotonic() - t0 < 5
        worker.timeout_s = 10
        assert worker.call(_add, 1, 1) == 2  # a fresh worker took over
    finally:
        worker.close()
