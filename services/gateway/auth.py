"""Bearer tokens scoped to sites: a static token file and/or HS256 JWTs with a shared secret.

Token file: one token per line, optionally followed by a comma-separated site list
(`tok123 SITE_A,SITE_B`); no list means every site. `#` starts a comment.
JWT: HS256 only, verified with hmac; claim `sites` is a list (or comma string) of
sites, `"*"` means every site, no claim means none. `exp`/`nbf` are enforced.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ALL_SITES = None


class AuthError(Exception):
    """Why a request is not authenticated (401)."""


@dataclass(frozen=True)
class Principal:
    """Who is asking, and which sites they may see (`sites is None`: every site)."""

    subject: str
    sites: frozenset[str] | None

    def may_see(self, site: str) -> bool:
        return self.sites is None or site in self.sites


def _sites(value: Any) -> frozenset[str] | None:
    if value == "*" or (isinstance(value, list) and "*" in value):
        return ALL_SITES
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list):
        return frozenset()
    return frozenset(str(v).strip() for v in value if str(v).strip())


def load_token_file(path: str | Path) -> dict[str, frozenset[str] | None]:
    """`token -> sites` from a token file; a malformed line raises ValueError with its number."""
    tokens: dict[str, frozenset[str] | None] = {}
    for n, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) > 2:
            raise ValueError(f"{path}:{n}: expected `TOKEN [SITE,SITE...]`")
        tokens[parts[0]] = _sites(parts[1]) if len(parts) == 2 else ALL_SITES
    return tokens


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign_jwt(claims: dict[str, Any], secret: str) -> str:
    """An HS256 JWT (for tests and for operators minting tokens)."""
    header = _b64encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64encode(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64encode(sig)}"


def verify_jwt(token: str, secret: str, now: float | None = None, leeway_s: float = 30.0) -> dict[str, Any]:
    """The claims of a valid HS256 JWT; AuthError otherwise. Only HS256 is accepted (no `none`)."""
    try:
        header_b64, body_b64, sig_b64 = token.split(".")
        header = json.loads(_b64decode(header_b64))
        claims = json.loads(_b64decode(body_b64))
        sig = _b64decode(sig_b64)
    except (ValueError, json.JSONDecodeError):
        raise AuthError("malformed JWT") from None
    if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(claims, dict):
        raise AuthError("only HS256 JWTs are accepted")
    expected = hmac.new(secret.encode(), f"{header_b64}.{body_b64}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(sig, expected):
        raise AuthError("bad JWT signature")
    now = time.time() if now is None else now
    if isinstance(claims.get("exp"), (int, float)) and now > claims["exp"] + leeway_s:
        raise AuthError("JWT expired")
    if isinstance(claims.get("nbf"), (int, float)) and now < claims["nbf"] - leeway_s:
        raise AuthError("JWT not valid yet")
    return claims


class Authenticator:
    """Resolves a bearer token to a Principal. With no source configured it is `open` (every site)."""

    def __init__(self, tokens: dict[str, frozenset[str] | None] | None = None, jwt_secret: str | None = None,
                 open_access: bool = False) -> None:
        self.tokens = tokens or {}
        self.jwt_secret = jwt_secret or None
        self.open_access = open_access
        if not (self.tokens or self.jwt_secret or open_access):
            raise ValueError("no token source: give a token file, a JWT secret, or allow open access explicitly")

    def authenticate(self, token: str | None) -> Principal:
        if self.open_access:
            return Principal("anonymous", ALL_SITES)
        if not token:
            raise AuthError("missing bearer token")
        for known, sites in self.tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                # a stable name that reveals nothing of the token (until D-024's NAME column)
                return Principal(f"token:{hashlib.sha256(known.encode()).hexdigest()[:12]}", sites)
        if self.jwt_secret and token.count(".") == 2:
            claims = verify_jwt(token, self.jwt_secret)
            return Principal(str(claims.get("sub", "jwt")), _sites(claims.get("sites", [])))
        raise AuthError("unknown token")
