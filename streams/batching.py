"""Dynamic batching that never idles: run what is there, wait only while more keeps coming.

After the first message, the batch takes what the consumer has already buffered. If nothing
more is buffered, it runs at once: a lone image at a quiet moment is not held back to fill a
batch that will not fill. While messages keep arriving (the last look found some), it looks
again, waiting at most `gap_s` for the next one, until the batch is full or `max_wait_s` has
passed since the first message. Waiting for a batch only pays when the next message is
already on its way; otherwise it is pure latency.

`collect_batch` is pure given its `fetch` and `clock`, so the rule is tested with a scripted
source and a simulated clock (tests/unit/streams/test_batching.py); the runtime passes the
consumer's `consume` and `time.monotonic`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# (at most n messages, waiting up to timeout_s for them) -> the messages; timeout 0 returns what
# is buffered. confluent_kafka's Consumer.consume(num_messages, timeout) has this shape.
Fetch = Callable[[int, float], list[T]]


def default_gap_s(max_wait_s: float) -> float:
    """How long to wait for the next message while they are arriving: a quarter of the budget,
    so a stream that stops costs at most that much latency, not the whole max_wait."""
    return max_wait_s / 4


def collect_batch(first: T, fetch: Fetch, max_batch: int, max_wait_s: float,
                  clock: Callable[[], float] = time.monotonic, gap_s: float | None = None) -> list[T]:
    """The batch that starts with `first`, by the rule in the module docstring."""
    gap = default_gap_s(max_wait_s) if gap_s is None else gap_s
    batch = [first]
    started = clock()
    arriving = False
    while len(batch) < max_batch:
        buffered = fetch(max_batch - len(batch), 0.0)
        if buffered:
            batch += buffered
            arriving = True
            continue
        remaining = max_wait_s - (clock() - started)
        if not arriving or remaining <= 0 or gap <= 0:
            break
        nxt = fetch(1, min(gap, remaining))
        if not nxt:
            break  # the stream paused: run what is there
        batch += nxt
    return batch
