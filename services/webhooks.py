"""The controls every outbound webhook shares: `radstream forward` (results) and `radstream watch --webhook` (alerts).

- https unless the caller allows http (a trusted local network);
- a 3xx is returned as a status and never followed (a redirect would send the body somewhere
  nobody configured); callers count it as a failure;
- every body is signed with HMAC-SHA256 under a shared secret of at least 32 bytes, hex in
  `X-Radstream-Signature: sha256=<hex>` (the GitHub/Stripe convention);
- the URL, whose path or query may hold a token (a Slack hook's path is its secret), is shown
  only as scheme and host (`redact_url`) in errors, DLQ records, logs and `/healthz`.
"""

from __future__ import annotations

import hashlib
import hmac
import urllib.error
import urllib.parse
import urllib.request

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


def check_webhook_url(url: str, allow_http: bool, carries: str = "results carry findings") -> None:
    """https (or http when allowed) with a host; ValueError naming only the redacted URL."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"webhook URL {redact_url(url)}: expected https://HOST/...")
    if parts.scheme == "http" and not allow_http:
        raise ValueError(f"webhook URL {redact_url(url)} is plain http: {carries}; use https "
                         "(or --allow-http on a trusted local network)")


def check_secret(secret: bytes) -> None:
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the webhook signing secret must be at least {MIN_SECRET_BYTES} bytes")


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


def signed_headers(secret: bytes, body: bytes, user_agent: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "User-Agent": user_agent, SIGNATURE_HEADER: signature(secret, body)}
