"""Short-lived, HMAC-signed tickets for what cannot send an Authorization header (EventSource, <img>).

`POST /session/ticket` with the bearer token returns a ticket naming the same principal (its
identity and sites), a path prefix it is good for (default: every read path) and an expiry
(default 5 minutes). The viewer puts the ticket, never the long-lived token, in `?ticket=`, so
what lands in URLs, proxy logs and browser history is worth minutes, for reads only. A ticket
is accepted only in `?ticket=` on a GET, and never to mint another, so it cannot be stretched.

Format: `v1.<base64url(JSON payload)>.<base64url(HMAC-SHA256(key, "v1." + payload))>`. The key is
`RADSTREAM_GATEWAY_TICKET_KEY` (shared by every replica behind one address), else random per
process (one gateway; a restart invalidates open tickets, and the viewer asks again).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable

from radstream.services.gateway.auth import AuthError, Principal

TICKET_TTL_S = 300.0
MAX_TTL_S = 3600.0
MIN_KEY_BYTES = 32


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TicketIssuer:
    """Issues and checks tickets under one key."""

    def __init__(self, key: bytes | None = None, ttl_s: float = TICKET_TTL_S,
                 clock: Callable[[], float] = time.time) -> None:
        if key is not None and len(key) < MIN_KEY_BYTES:
            raise ValueError(f"the ticket key must be at least {MIN_KEY_BYTES} bytes")
        if not 0 < ttl_s <= MAX_TTL_S:
            raise ValueError(f"the ticket lifetime must be between 0 and {MAX_TTL_S:g} s")
        self._key = key or secrets.token_bytes(32)
        self.ttl_s = ttl_s
        self._clock = clock

    def issue(self, principal: Principal, path: str = "/") -> tuple[str, float]:
        """A ticket for `principal`, good for GETs under `path`, and its expiry (epoch seconds)."""
        if not path.startswith("/") or "?" in path or "#" in path:
            raise ValueError("a ticket's path is an absolute path without a query")
        expires = self._clock() + self.ttl_s
        payload = {"sub": principal.subject, "sites": None if principal.sites is None else sorted(principal.sites),
                   "path": path, "exp": round(expires, 3)}
        body = "v1." + _b64(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode())
        return f"{body}.{_b64(self._mac(body))}", expires

    def check(self, ticket: str, path: str) -> Principal:
        """The ticket's principal, if it is ours, unexpired and good for `path`; AuthError otherwise."""
        version, _, rest = ticket.partition(".")
        payload_b64, _, mac_b64 = rest.partition(".")
        if version != "v1" or not payload_b64 or not mac_b64:
            raise AuthError("malformed ticket")
        try:
            mac = _unb64(mac_b64)
        except ValueError:
            raise AuthError("malformed ticket") from None
        if not hmac.compare_digest(mac, self._mac(f"v1.{payload_b64}")):
            raise AuthError("bad ticket signature")
        try:
            payload = json.loads(_unb64(payload_b64))
            subject, sites, prefix, expires = payload["sub"], payload["sites"], payload["path"], float(payload["exp"])
        except (ValueError, KeyError, TypeError):
            raise AuthError("malformed ticket") from None
        if self._clock() >= expires:
            raise AuthError("ticket expired: ask POST /session/ticket for a new one")
        if not (path == prefix or path.startswith(prefix.rstrip("/") + "/")):
            raise AuthError("this ticket is not for this path")
        return Principal(str(subject), None if sites is None else frozenset(sites))

    def _mac(self, body: str) -> bytes:
        return hmac.new(self._key, body.encode(), hashlib.sha256).digest()
