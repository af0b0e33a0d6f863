"""The webhook forwarder's retry policy and dedupe (fake transport), and the gateway load check."""

from __future__ import annotations

import math

import pytest
from gateway_records import study_result
from radstream.services.gateway import gateway_load
from radstream.services.gateway.forward import RetryPolicy, WebhookForwarder
from radstream.domain.errors import PermanentError, TransientError
from radstream.streams.stage import Inbound


class FakeWebhook:
    def __init__(self, replies: list[int | Exception]) -> None:
        self.replies = replies
        self.calls: list[dict[str, str]] = []

    def __call__(self, url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
        self.calls.append(headers)
        reply = self.replies.pop(0) if self.replies else 200
        if isinstance(reply, Exception):
            raise reply
        return reply


def _forwarder(replies, attempts: int = 4):
    hook, sleeps = FakeWebhook(replies), []
    return WebhookForwarder("http://hook", RetryPolicy(attempts, 0.5, 1.5), post=hook, sleep=sleeps.append), hook, sleeps


def test_retries_with_bounded_backoff_then_posts_once_per_key() -> None:
    fwd, hook, sleeps = _forwarder([503, ConnectionRefusedError("refused"), 429, 200])
    result = study_result(key="k1")
    assert fwd.process(Inbound(result)) == []
    assert sleeps == [0.5, 1.0, 1.5]  # doubled, capped
    assert {h["Idempotency-Key"] for h in hook.calls} == {"k1"} and len(hook.calls) == 4
    fwd.process(Inbound(result))  # a redelivery: not posted again
    fwd.process(Inbound({**result, "final": False, "idempotency_key": "k2"}))  # not final: not forwarded
    assert len(hook.calls) == 4 and fwd.delivered == 1


def test_a_refusal_is_permanent_and_exhaustion_is_transient() -> None:
    fwd, _, _ = _forwarder([400])
    with pytest.raises(PermanentError, match="HTTP 400"):
        fwd.deliver("k", b"{}")
    fwd, _, sleeps = _forwarder([OSError("down")] * 3, attempts=3)
    with pytest.raises(TransientError, match="failed 3 times"):
        fwd.deliver("k", b"{}")
    assert len(sleeps) == 2


def test_gateway_load_reports_latency_percentiles() -> None:
    report = gateway_load(n_clients=4, events=40, rate_hz=400)
    assert report.delivered == 160 and report.cut_off == 0
    assert 0 <= report.p50_ms <= report.p99_ms <= report.max_ms and math.isfinite(report.p99_ms)
    assert report.as_dict()["clients"] == 4
