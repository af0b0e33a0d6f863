"""`radstream forward`: post each final study result to a webhook, once per idempotency key.

A Stage with no outputs, run by the shared runtime (consumer group
`radstream-forward`): offsets are committed only after the webhook acknowledged
(2xx), so a restart re-posts at most the last batch, and every POST carries an
`Idempotency-Key` header for the receiver to drop repeats. Retries use bounded
exponential backoff; a 4xx other than 408/429 is permanent. Either way a result the
webhook would not take goes to `study.results.dlq` with the reason.

Security (docs/security.md): the controls of services/webhooks.py, shared with the watchdog's
alerts: https unless `allow_http`, a 3xx never followed (here a permanent failure), every
body signed (HMAC-SHA256, `X-Radstream-Signature`), the URL shown as scheme and host only.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable

from radstream.domain.errors import PermanentError, TransientError
from radstream.domain.retry import RetryPolicy
from radstream.services.dlq import replayed_for_another
from radstream.services.webhooks import check_secret, check_webhook_url, post_json, redact_url, signed_headers
from radstream.streams.kafka.topics import STUDY_RESULTS
from radstream.streams.stage import Inbound, Output, Stage

RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}
DEFAULT_RETRY = RetryPolicy(max_attempts=6, base_s=0.5, cap_s=10.0)


class WebhookForwarder(Stage):
    name = "forward"
    input_topic = STUDY_RESULTS

    def __init__(self, url: str, secret: bytes, policy: RetryPolicy | None = None, timeout_s: float = 10.0,
                 final_only: bool = True, remember: int = 100_000, allow_http: bool = False,
                 post: Callable[[str, bytes, dict[str, str], float], int] = post_json,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        check_webhook_url(url, allow_http)
        check_secret(secret)
        self.url = url
        self.shown_url = redact_url(url)
        self._secret = secret
        self.policy = policy or DEFAULT_RETRY
        self.timeout_s = timeout_s
        self.final_only = final_only
        self._remember = remember
        self._posted: OrderedDict[str, None] = OrderedDict()
        self._post = post
        self._sleep = sleep
        self.delivered = 0

    def process(self, event: Inbound) -> list[Output]:
        result = event.value
        key = result["idempotency_key"]
        if (self.final_only and not result["final"]) or key in self._posted \
                or replayed_for_another(event.headers, self.name):  # a dead letter replayed for an export stage
            return []
        self.deliver(key, json.dumps(result, sort_keys=True).encode("utf-8"))
        self._posted[key] = None
        if len(self._posted) > self._remember:
            self._posted.popitem(last=False)
        return []

    def deliver(self, key: str, body: bytes) -> None:
        headers = {**signed_headers(self._secret, body, "radstream-forward/1"), "Idempotency-Key": key}
        last = ""
        for attempt in self.policy.attempts():
            try:
                status = self._post(self.url, body, headers, self.timeout_s)
            except OSError as exc:  # refused, reset, DNS, timeout: the webhook may come back
                status, last = 0, f"{type(exc).__name__}: {exc}".replace(self.url, self.shown_url)
            if 200 <= status < 300:
                self.delivered += 1
                return
            if 300 <= status < 400:
                raise PermanentError(f"webhook {self.shown_url} answered HTTP {status} (a redirect, not followed: "
                                     "configure the final URL)", code="webhook_redirected")
            if status and status not in RETRYABLE_STATUS:
                raise PermanentError(f"webhook {self.shown_url} refused the result with HTTP {status}",
                                     code="webhook_rejected")
            last = last if not status else f"HTTP {status}"
            if self.policy.retries_after(attempt):
                self._sleep(self.policy.delay(attempt))
        raise TransientError(f"webhook {self.shown_url} failed {self.policy.max_attempts} times (last: {last})",
                             code="webhook_unavailable")

    @property
    def group_id(self) -> str:
        return "radstream-forward"

    def health(self) -> dict:
        return {"webhook": self.shown_url, "delivered": self.delivered}
