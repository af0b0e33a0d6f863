"""Bearer tokens scoped to sites: a static token file and/or JWTs verified by PyJWT (D-024).

Token file: one token per line, `TOKEN [SITES [NAME]]`: SITES is a comma-separated list
(`*` or no list: every site), NAME the identity recorded for that token. `#` starts a comment.
JWT: HS256 with a shared secret (at least 32 bytes), or RS256/ES256 against a JWKS file
(Keycloak or any OIDC provider). A numeric `exp` is required and may lie at most
`max_lifetime_s` ahead; `nbf` and `iat`, when present, must be numeric; `aud` and `iss`
are checked against the settings (a token carrying an `aud` is refused when none is
configured). Claim `sites` is a list (or comma string) of sites, `"*"` means every site,
no claim means none. The identity is `sub`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

ALL_SITES = None
MIN_SECRET_BYTES = 32  # RFC 7518 section 3.2: an HS256 key at least as long as the hash
ASYMMETRIC = ("RS256", "ES256")


class AuthError(Exception):
    """Why a request is not authenticated (401)."""


@dataclass(frozen=True)
class Principal:
    """Who is asking (the identity recorded as the actor), and which sites they may see (`None`: every site)."""

    subject: str
    sites: frozenset[str] | None

    def may_see(self, site: str) -> bool:
        return self.sites is None or site in self.sites


@dataclass(frozen=True)
class TokenGrant:
    """One token file line: the sites it may see and, when given, the identity it names."""

    sites: frozenset[str] | None
    name: str | None = None


def _sites(value: Any) -> frozenset[str] | None:
    if value == "*" or (isinstance(value, list) and "*" in value):
        return ALL_SITES
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list):
        return frozenset()
    return frozenset(str(v).strip() for v in value if str(v).strip())


def load_token_file(path: str | Path) -> dict[str, TokenGrant]:
    """`token -> grant` from a token file; a malformed line raises ValueError with its number."""
    tokens: dict[str, TokenGrant] = {}
    for n, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) > 3:
            raise ValueError(f"{path}:{n}: expected `TOKEN [SITE,SITE... [NAME]]`")
        sites = _sites(parts[1]) if len(parts) >= 2 else ALL_SITES
        tokens[parts[0]] = TokenGrant(sites, parts[2] if len(parts) == 3 else None)
    return tokens


@dataclass(frozen=True)
class JwtSettings:
    """How JWTs are verified. `secret`: HS256; `jwks_file`: RS256/ES256 (both may be set)."""

    secret: str | None = None
    jwks_file: str | None = None
    audience: str | None = None
    issuer: str | None = None
    max_lifetime_s: float = 12 * 3600.0
    leeway_s: float = 30.0

    @property
    def enabled(self) -> bool:
        return bool(self.secret or self.jwks_file)


class JwtVerifier:
    """Verifies JWTs with PyJWT under `JwtSettings`; every refusal is an AuthError with one line."""

    def __init__(self, settings: JwtSettings) -> None:
        self.settings = settings
        if settings.secret is not None and len(settings.secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"the JWT secret is {len(settings.secret.encode())} bytes; HS256 needs at least "
                             f"{MIN_SECRET_BYTES} (e.g. `openssl rand -hex 32`)")
        if settings.max_lifetime_s <= 0:
            raise ValueError("the JWT maximum lifetime must be positive")
        # a live view of the JWKS file: a key rotated in or revoked counts from the next check on
        self.keys: Mapping[str | None, jwt.PyJWK] = _live_jwks(settings.jwks_file) if settings.jwks_file else {}
        self.algorithms = (["HS256"] if settings.secret else []) + (list(ASYMMETRIC) if self.keys else [])

    def verify(self, token: str, now: float | None = None) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("malformed JWT") from None
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise AuthError(f"only {', '.join(self.algorithms)} JWTs are accepted")
        key = self._key(alg, header.get("kid"))
        try:
            # Signature first, with no claim checks: PyJWT turns a string `exp` into a number with
            # int() and fails on `null` with a TypeError, so the types are checked between the passes.
            claims = jwt.decode(token, key, algorithms=[alg], options={
                "verify_exp": False, "verify_nbf": False, "verify_iat": False, "verify_aud": False,
                "verify_iss": False})
            _require_numeric(claims)
            s = self.settings
            jwt.decode(token, key, algorithms=[alg], audience=s.audience, issuer=s.issuer, leeway=s.leeway_s,
                       options={"require": ["exp"]})
        except jwt.InvalidSignatureError:
            raise AuthError("bad JWT signature") from None
        except jwt.ExpiredSignatureError:
            raise AuthError("JWT expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("JWT not valid yet") from None
        except jwt.InvalidAudienceError:
            raise AuthError("JWT audience is not this service") from None
        except jwt.InvalidIssuerError:
            raise AuthError("JWT issuer is not trusted here") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"JWT has no `{exc.claim}` claim") from None
        except jwt.PyJWTError:
            raise AuthError("malformed JWT") from None
        now = time.time() if now is None else now
        start = claims["iat"] if isinstance(claims.get("iat"), (int, float)) else now
        if claims["exp"] - min(start, now) > self.settings.max_lifetime_s + self.settings.leeway_s:
            raise AuthError(f"JWT lifetime exceeds the allowed {self.settings.max_lifetime_s:g} s")
        return claims

    def _key(self, alg: str, kid: str | None) -> Any:
        if alg == "HS256":
            return self.settings.secret
        candidates = [k for k in self.keys.values() if k.algorithm_name == alg] if kid is None else \
            [self.keys[kid]] if kid in self.keys and self.keys[kid].algorithm_name == alg else []
        if len(candidates) != 1:
            raise AuthError("no key in the JWKS file matches this JWT's kid and alg")
        return candidates[0]


def _require_numeric(claims: Any) -> None:
    if not isinstance(claims, dict):
        raise AuthError("malformed JWT")
    if "exp" not in claims:
        raise AuthError("JWT has no `exp` claim")
    for name in ("exp", "nbf", "iat"):
        if name in claims and (isinstance(claims[name], bool) or not isinstance(claims[name], (int, float))):
            raise AuthError(f"JWT `{name}` must be a number (seconds since the epoch)")


def _live_jwks(path: str) -> Mapping[str | None, jwt.PyJWK]:
    """The JWKS file's keys, re-read when the file changes (streams/watched_file.py)."""
    from radstream.streams.watched_file import LiveMapping, WatchedFile

    try:
        return LiveMapping(WatchedFile(path, lambda text: _parse_jwks(text, path)))
    except OSError as exc:
        raise ValueError(f"cannot read the JWKS file {path}: {exc.strerror}") from None


def _parse_jwks(text: str, path: str) -> dict[str | None, jwt.PyJWK]:
    """The usable RS256/ES256 keys of a JWKS document, by `kid`; ValueError with one line otherwise."""
    try:
        document = json.loads(text)
        keys = jwt.PyJWKSet.from_dict(document).keys
    except (json.JSONDecodeError, jwt.PyJWTError, AttributeError, TypeError) as exc:
        raise ValueError(f"{path} is not a usable JWKS file: {exc}") from None
    usable = {k.key_id: k for k in keys if k.algorithm_name in ASYMMETRIC}
    if not usable:
        raise ValueError(f"{path} holds no RS256 or ES256 key (each key needs `alg`, or a `kty` it implies)")
    return usable


def sign_jwt(claims: dict[str, Any], secret: str) -> str:
    """An HS256 JWT (for tests and for operators minting tokens)."""
    return jwt.encode(claims, secret, algorithm="HS256")


def verify_jwt(token: str, secret: str, now: float | None = None, leeway_s: float = 30.0) -> dict[str, Any]:
    """The claims of a valid HS256 JWT under the default settings; AuthError otherwise."""
    return JwtVerifier(JwtSettings(secret=secret, leeway_s=leeway_s)).verify(token, now)


class Authenticator:
    """Resolves a bearer token to a Principal. With no source configured it is `open` (every site)."""

    def __init__(self, tokens: dict[str, TokenGrant | frozenset[str] | None] | None = None,
                 jwt_secret: str | None = None, open_access: bool = False,
                 jwt_settings: JwtSettings | None = None) -> None:
        self.tokens = {t: g if isinstance(g, TokenGrant) else TokenGrant(g) for t, g in (tokens or {}).items()}
        settings = jwt_settings or JwtSettings(secret=jwt_secret or None)
        self.jwt = JwtVerifier(settings) if settings.enabled else None
        self.open_access = open_access
        if not (self.tokens or self.jwt or open_access):
            raise ValueError("no token source: give a token file, a JWT secret or JWKS, or allow open access explicitly")

    def authenticate(self, token: str | None) -> Principal:
        if self.open_access:
            return Principal("anonymous", ALL_SITES)
        if not token:
            raise AuthError("missing bearer token")
        for known, grant in self.tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                # the file's NAME, else a stable name that reveals nothing of the token
                return Principal(grant.name or f"token:{hashlib.sha256(known.encode()).hexdigest()[:12]}",
                                 grant.sites)
        if self.jwt and token.count(".") == 2:
            claims = self.jwt.verify(token)
            return Principal(str(claims.get("sub") or "jwt"), _sites(claims.get("sites", [])))
        raise AuthError("unknown token")
