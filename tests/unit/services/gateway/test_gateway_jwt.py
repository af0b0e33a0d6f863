"""JWTs through PyJWT (D-024): the JWT cases of issue 17 refused, aud/iss/lifetime checked, the 32-byte
HS256 floor, RS256 and ES256 against a JWKS file, and the settings shared by the gateway and STOW-RS."""

from __future__ import annotations

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from radstream.services.commands.auth_flags import bearer_auth, jwt_settings
from radstream.services.commands.errors import CliError
from radstream.services.gateway.auth import (
    Authenticator,
    AuthError,
    JwtSettings,
    JwtVerifier,
)
from radstream.streams.config import Config

SECRET = "a-shared-secret-of-at-least-32-bytes"
NOW = time.time()  # the parametrized claims are written against this instant (at collection)...


def fresh(claims: dict) -> dict:
    """...and moved to the time the test runs: a whole suite can take longer than a token lives."""
    shift = time.time() - NOW
    return {k: v + shift if k in ("exp", "nbf", "iat") and type(v) in (int, float) else v
            for k, v in claims.items()}


def hs256(claims: dict) -> str:
    return jwt.encode(fresh(claims), SECRET, algorithm="HS256")


@pytest.mark.parametrize(("claims", "why"), [
    ({"sub": "x"}, "no `exp`"),  # no exp at all
    ({"exp": str(int(NOW) - 3600)}, "`exp` must be a number"),  # a string exp in the past
    ({"exp": str(int(NOW) + 3600)}, "`exp` must be a number"),  # and in the future
    ({"exp": None}, "`exp` must be a number"),  # exp: null
    ({"exp": True}, "`exp` must be a number"),
    ({"exp": NOW + 60, "nbf": str(int(NOW) + 3600)}, "`nbf` must be a number"),  # a string nbf in the future
    ({"exp": NOW + 60, "nbf": NOW + 3600}, "not valid yet"),
    ({"exp": NOW + 60, "aud": "another-service"}, "audience"),  # aud given, none configured
    ({"exp": NOW + 60, "iat": "yesterday"}, "`iat` must be a number"),
    ({"exp": NOW - 120}, "expired"),
    ({"exp": NOW + 30 * 24 * 3600}, "lifetime exceeds"),
    ({"exp": NOW + 60, "iat": NOW - 24 * 3600}, "lifetime exceeds"),
])
def test_issue_17_jwt_cases_are_refused(claims: dict, why: str) -> None:
    with pytest.raises(AuthError, match=why):
        JwtVerifier(JwtSettings(secret=SECRET)).verify(hs256(claims))


def test_audience_and_issuer_are_checked_against_the_settings() -> None:
    verifier = JwtVerifier(JwtSettings(secret=SECRET, audience="radstream-gateway", issuer="https://idp.example"))
    good = {"exp": NOW + 60, "aud": "radstream-gateway", "iss": "https://idp.example", "sub": "rad1"}
    assert verifier.verify(hs256(good))["sub"] == "rad1"
    for change, why in [({"aud": "radstream-stow"}, "audience"), ({"iss": "https://evil.example"}, "issuer"),
                        ({"aud": None}, "no `aud`"), ({"iss": None}, "no `iss`")]:
        claims = {k: v for k, v in {**good, **change}.items() if v is not None}
        with pytest.raises(AuthError, match=why):
            verifier.verify(hs256(claims))


def test_hs256_secrets_shorter_than_32_bytes_are_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match=r"^the JWT secret is 6 bytes; HS256 needs at least 32") as exc:
        JwtVerifier(JwtSettings(secret="s3cret"))
    assert "\n" not in str(exc.value)


def _jwks(tmp_path, *keys: tuple[str, object, str]) -> str:
    doc = {"keys": [{**json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key.public_key())),
                     "kid": kid, "alg": alg, "use": "sig"} for alg, key, kid in keys]}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(doc))
    return str(path)


def test_rs256_and_es256_verify_against_a_jwks_file(tmp_path) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = _jwks(tmp_path, ("RS256", rsa_key, "idp-rsa"), ("ES256", ec_key, "idp-ec"))
    auth = Authenticator(jwt_settings=JwtSettings(jwks_file=path, audience="radstream-gateway"))
    claims = {"sub": "dr.who", "sites": ["SITE_A"], "exp": NOW + 300, "aud": "radstream-gateway"}
    for alg, key, kid in (("RS256", rsa_key, "idp-rsa"), ("ES256", ec_key, "idp-ec")):
        principal = auth.authenticate(jwt.encode(fresh(claims), key, algorithm=alg, headers={"kid": kid}))
        assert principal.subject == "dr.who" and principal.sites == frozenset({"SITE_A"})
    for token, why in [
        (jwt.encode(fresh(claims), stranger, algorithm="RS256", headers={"kid": "idp-rsa"}), "bad JWT signature"),
        (jwt.encode(fresh(claims), rsa_key, algorithm="RS256", headers={"kid": "unknown"}), "no key in the JWKS"),
        (jwt.encode(fresh(claims), ec_key, algorithm="ES256", headers={"kid": "idp-rsa"}), "no key in the JWKS"),
        (hs256(claims), "only RS256, ES256"),  # no shared secret configured: HS256 is not an option
        (jwt.encode(fresh({**claims, "exp": None}), rsa_key, algorithm="RS256", headers={"kid": "idp-rsa"}), "`exp`"),
    ]:
        with pytest.raises(AuthError, match=why):
            auth.authenticate(token)
    (tmp_path / "bad.json").write_text('{"keys": [{"kty": "oct", "k": "AAAA"}]}')
    with pytest.raises(ValueError, match="not a usable JWKS file|no RS256 or ES256"):
        JwtVerifier(JwtSettings(jwks_file=str(tmp_path / "bad.json")))


@pytest.mark.parametrize(("service", "prefix"), [("gateway", "RADSTREAM_GATEWAY"), ("dicomweb", "RADSTREAM_DICOMWEB")])
def test_settings_come_from_the_environment_for_the_gateway_and_stow(service: str, prefix: str, tmp_path) -> None:
    env = {f"{prefix}_JWT_SECRET": SECRET, f"{prefix}_JWT_AUDIENCE": f"radstream-{service}",
           f"{prefix}_JWT_ISSUER": "https://idp.example", f"{prefix}_JWT_MAX_LIFETIME_S": "600"}
    config = Config.from_env("127.0.0.1:9092", env=env)
    auth = bearer_auth(None, jwt_settings(config, service), False, tokens_flag="--tokens", env_prefix=prefix,
                       no_auth_flag="--no-auth")
    claims = {"sub": "svc", "exp": NOW + 300, "aud": f"radstream-{service}", "iss": "https://idp.example"}
    assert auth.authenticate(hs256(claims)).subject == "svc"
    with pytest.raises(AuthError, match="lifetime exceeds the allowed 600 s"):
        auth.authenticate(hs256({**claims, "exp": NOW + 3600}))
    short = Config.from_env("127.0.0.1:9092", env={f"{prefix}_JWT_SECRET": "short"})
    with pytest.raises(CliError, match=f"^{'STOW-RS ' if service == 'dicomweb' else ''}JWT settings "
                                       f"\\({prefix}_JWT_\\*\\): the JWT secret is 5 bytes"):
        bearer_auth(None, jwt_settings(short, service), False, service="STOW-RS " if service == "dicomweb" else "",
                    tokens_flag="--tokens", env_prefix=prefix, no_auth_flag="--no-auth")
    with pytest.raises(ValueError, match=f"^{prefix}_JWT_MAX_LIFETIME_S must be a number of seconds$"):
        Config.from_env("127.0.0.1:9092", env={f"{prefix}_JWT_MAX_LIFETIME_S": "12h"})


def test_a_key_rotated_into_or_out_of_the_jwks_file_counts_without_a_restart(tmp_path, monkeypatch) -> None:
    """The JWKS file is re-read when it changes (streams/watched_file.py): the old key, removed,
    is refused; the new one is accepted; a broken edit keeps the last good set."""
    import os

    from radstream.streams import watched_file

    monkeypatch.setattr(watched_file, "RECHECK_S", 0.0)
    old, new = rsa.generate_private_key(public_exponent=65537, key_size=2048), ec.generate_private_key(ec.SECP256R1())
    path = _jwks(tmp_path, ("RS256", old, "k1"))
    auth = Authenticator(jwt_settings=JwtSettings(jwks_file=path, audience="radstream-gateway"))
    claims = {"sub": "dr.who", "sites": ["SITE_A"], "exp": NOW + 300, "aud": "radstream-gateway"}
    by_old = jwt.encode(fresh(claims), old, algorithm="RS256", headers={"kid": "k1"})
    assert auth.authenticate(by_old).subject == "dr.who"
    (tmp_path / "next").mkdir()
    os.replace(_jwks(tmp_path / "next", ("ES256", new, "k2")), path)  # a rename, as a mounted Secret changes
    with pytest.raises(AuthError, match="no key in the JWKS"):
        auth.authenticate(jwt.encode(fresh(claims), old, algorithm="RS256", headers={"kid": "k1"}))
    assert auth.authenticate(jwt.encode(fresh(claims), new, algorithm="ES256", headers={"kid": "k2"})).subject == "dr.who"
    (tmp_path / "jwks.json").write_text("{not json")
    assert auth.authenticate(jwt.encode(fresh(claims), new, algorithm="ES256", headers={"kid": "k2"})).subject == "dr.who"
