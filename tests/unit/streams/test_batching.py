"""The batching rule: run at once when nothing more is buffered; wait, up to max_wait, only while
messages keep arriving. A scripted source on a simulated clock, so nothing here measures time:
the clock moves only when the rule waits, by what it asked to wait.

The source stands in for the Kafka consumer's `consume(num_messages, timeout)` because the rule
is about when messages *would* arrive, which a real broker cannot script; the runtime's use of
it against the real broker is covered by every pipeline test.
"""

from __future__ import annotations

from radstream.streams.batching import collect_batch


class ScriptedSource:
    """Messages that become available at given (simulated) times; `fetch` waits on the clock."""

    def __init__(self, arrivals: list[float]) -> None:
        self.pending = sorted(arrivals)
        self.now = 0.0
        self.waits: list[float] = []  # every timeout the rule asked for

    def clock(self) -> float:
        return self.now

    def _take(self, n: int) -> list[float]:
        ready = [t for t in self.pending if t <= self.now][:n]
        self.pending = self.pending[len(ready):]
        return ready

    def fetch(self, n: int, timeout: float) -> list[float]:
        self.waits.append(timeout)
        got = self._take(n)
        if got or timeout <= 0:
            return got
        upcoming = [t for t in self.pending if t <= self.now + timeout]
        self.now = upcoming[0] if upcoming else self.now + timeout  # returns on arrival, or at the timeout
        return self._take(n)


def test_nothing_buffered_runs_the_first_message_at_once() -> None:
    source = ScriptedSource([0.5])  # the next message is 500 ms away
    batch = collect_batch("first", source.fetch, max_batch=8, max_wait_s=0.020, clock=source.clock)
    assert batch == ["first"]
    assert source.waits == [0.0] and source.now == 0.0  # one look at the buffer, no wait at all


def test_a_full_buffer_fills_the_batch_without_waiting() -> None:
    source = ScriptedSource([0.0] * 20)
    batch = collect_batch("first", source.fetch, max_batch=8, max_wait_s=0.020, clock=source.clock)
    assert len(batch) == 8 and source.now == 0.0 and all(w == 0.0 for w in source.waits)


def test_a_short_burst_waits_one_gap_then_runs() -> None:
    """Three buffered behind the first, then silence: one wait of one gap (5 ms), not the 20 ms budget."""
    source = ScriptedSource([0.0, 0.0, 0.0, 1.0])
    batch = collect_batch("first", source.fetch, max_batch=8, max_wait_s=0.020, clock=source.clock)
    assert len(batch) == 4
    assert source.now == 0.005 and max(source.waits) == 0.005


def test_while_messages_keep_arriving_it_waits_up_to_max_wait() -> None:
    """One every 2 ms, forever: the batch takes those that came within 20 ms of the first."""
    source = ScriptedSource([0.0] + [0.002 * i for i in range(1, 100)])
    batch = collect_batch("first", source.fetch, max_batch=32, max_wait_s=0.020, clock=source.clock)
    assert batch == ["first", 0.0] + [0.002 * i for i in range(1, 11)]  # up to t = 20 ms
    assert source.now <= 0.020 + 1e-12


def test_arrivals_slower_than_the_gap_end_the_batch() -> None:
    """One buffered, the next 8 ms later (beyond the 5 ms gap): it does not wait for it."""
    source = ScriptedSource([0.0, 0.008])
    batch = collect_batch("first", source.fetch, max_batch=8, max_wait_s=0.020, clock=source.clock)
    assert batch == ["first", 0.0] and source.now == 0.005


def test_the_batch_never_exceeds_max_batch_and_zero_wait_only_drains() -> None:
    source = ScriptedSource([0.0, 0.0, 0.001, 0.002])
    assert len(collect_batch("first", source.fetch, max_batch=2, max_wait_s=0.020, clock=source.clock)) == 2
    drain = ScriptedSource([0.0, 0.0, 0.001])
    batch = collect_batch("first", drain.fetch, max_batch=16, max_wait_s=0.0, clock=drain.clock)
    assert batch == ["first", 0.0, 0.0] and drain.now == 0.0  # the other stages: what is buffered, no wait
