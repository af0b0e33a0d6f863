"""`radstream forward`: post each final study result to a webhook, once per idempotency key.

A Stage with no outputs, run by the shared runtime (consumer group
`radstream-forward`): offsets are committed only after the webhook acknowledged
(2xx), so a restart re-posts at most the last batch, and every POST carries an
`Idempotency-Key` header for the receiver to drop repeats. Retries use bounded
exponential backoff; a 4xx other than 408/429 is permanent. Either way a result the
webhook would not take goes to `study.results.dlq` with the reason.

Security (docs/security.md): a 3xx is a permanent failure and is never followed (a redirect
would send the result somewhere nobody configured); the URL must be https unless
`allow_http`; every body is signed with HMAC-SHA256 under a shared secret, hex in
`X-Radstream-Signature: sha256=<hex>`; and the URL, whose path or query may hold a token, is
shown only as scheme and host (`redact_url`) in errors, DLQ records, logs and `/healthz`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from collections.abc import Callable

from radstream.domain.errors import PermanentError, TransientError
from radstream.domain.retry import RetryPolicy
from radstream.services.dlq import replayed_for_another
from radstream.streams.kafka.topics import STUDY_RESULTS
from radstream.streams.stage import Inbound, Output, Stage

RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}
DEFAULT_RETRY = RetryPolicy(max_attempts=6, base_s=0.5, cap_s=10.0)


SIGNATURE_HEADER = "X-Radstream-Signature"
MIN_SECRET_BYTES = 32


def redact_url(url: str) -> str:
    """Scheme and host (and port) only: no userinfo, path, query or fragment."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme or '?'}://{host}{port}"


def check_webhook_url(url: str, allow_http: bool) -> None:
    """https (or http when allowed) with a host; ValueError naming only the redacted URL."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"webhook URL {redact_url(url)}: expected https://HOST/...")
    if parts.scheme == "http" and not allow_http:
        raise ValueError(f"webhook URL {redact_url(url)} is plain http: results carry findings; use https "
                         "(or --allow-http on a trusted local network)")


def signature(secret: bytes, body: bytes) -> str:
    """The `X-Radstream-Signature` value: `sha256=` and the hex HMAC-SHA256 of the exact body."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Never follow: a 3xx comes back as an HTTPError with its status."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def post_json(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
    """POST and return the HTTP status, redirects included (never followed); connection
    failures raise OSError."""
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code


class WebhookForwarder(Stage):
    name = "forward"
    input_topic = STUDY_RESULTS

    def __init__(self, url: str, secret: bytes, policy: RetryPolicy | None = None, timeout_s: float = 10.0,
                 final_only: bool = True, remember: int = 100_000, allow_http: bool = False,
                 post: Callable[[str, bytes, dict[str, str], float], int] = post_json,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        check_webhook_url(url, allow_http)
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the webhook signing secret must be at least {MIN_SECRET_BYTES} bytes")
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
        headers = {"Content-Type": "application/json", "Idempotency-Key": key,
                   "User-Agent": "radstream-forward/1", SIGNATURE_HEADER: signature(self._secret, body)}
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
