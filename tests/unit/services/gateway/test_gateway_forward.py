"""The webhook forwarder's retry policy, dedupe, redirects, URL checks and signature (fake
transport: the real server is in tests/integration/test_gateway.py), and the gateway load check."""

from __future__ import annotations

import hashlib
import hmac
import math

import pytest
from gateway_records import study_result
from radstream.services.gateway import gateway_load
from radstream.services.gateway.forward import RetryPolicy, WebhookForwarder, redact_url
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


SECRET = b"s" * 32


def _forwarder(replies, attempts: int = 4, url: str = "https://hook.example/in?token=t0ps3cret"):
    hook, sleeps = FakeWebhook(replies), []
    fwd = WebhookForwarder(url, SECRET, RetryPolicy(attempts, 0.5, 1.5), post=hook, sleep=sleeps.append)
    return fwd, hook, sleeps


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


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_a_permanent_failure_and_the_message_names_no_path(status: int) -> None:
    fwd, hook, sleeps = _forwarder([status])
    with pytest.raises(PermanentError, match=f"HTTP {status} \\(a redirect, not followed") as caught:
        fwd.deliver("k", b"{}")
    assert len(hook.calls) == 1 and sleeps == [] and fwd.delivered == 0
    assert "https://hook.example" in str(caught.value) and "token" not in str(caught.value)
    assert "/in" not in str(caught.value) and caught.value.code == "webhook_redirected"


def test_urls_are_redacted_to_scheme_and_host() -> None:
    assert redact_url("https://user:pw@hook.example:8443/a/b?token=x#f") == "https://hook.example:8443"
    assert redact_url("http://[::1]:9/x") == "http://[::1]:9"
    fwd, _, _ = _forwarder([])
    assert fwd.health()["webhook"] == "https://hook.example"


def test_plain_http_and_short_secrets_are_refused_unless_allowed() -> None:
    with pytest.raises(ValueError, match="plain http") as caught:
        WebhookForwarder("http://hook.example/in?token=x", SECRET)
    assert "token" not in str(caught.value)
    assert WebhookForwarder("http://hook.example/in", SECRET, allow_http=True).shown_url == "http://hook.example"
    with pytest.raises(ValueError, match="expected https"):
        WebhookForwarder("ftp://hook.example/", SECRET)
    with pytest.raises(ValueError, match="at least 32 bytes"):
        WebhookForwarder("https://hook.example/", b"short")


def test_every_post_carries_an_hmac_of_its_exact_body() -> None:
    fwd, hook, _ = _forwarder([200])
    fwd.deliver("k", b'{"a": 1}')
    expected = "sha256=" + hmac.new(SECRET, b'{"a": 1}', hashlib.sha256).hexdigest()
    assert hook.calls[0]["X-Radstream-Signature"] == expected


def test_gateway_load_reports_latency_percentiles() -> None:
    report = gateway_load(n_clients=4, events=40, rate_hz=400)
    assert report.delivered == 160 and report.cut_off == 0
    assert 0 <= report.p50_ms <= report.p99_ms <= report.max_ms and math.isfinite(report.p99_ms)
    assert report.as_dict()["clients"] == 4
