"""Bearer tokens scoped to sites: token files, HS256 JWTs, 401 on every protected route, and another
site's study answered exactly like a study that does not exist."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from gateway_harness import ingest, make_gateway, serve
from gateway_records import STUDY, decoded
from radstream.services.gateway.auth import (
    Authenticator,
    AuthError,
    TokenGrant,
    load_token_file,
    sign_jwt,
    verify_jwt,
)

SECRET = "a-shared-secret-of-at-least-32-bytes"  # HS256 needs 32 bytes (D-024)


def test_token_file_lines_comments_and_site_lists(tmp_path) -> None:
    path = tmp_path / "tokens"
    path.write_text("# ops\ntok-all\n tok-ab  SITE_A,SITE_B  # two sites\n\n")
    assert load_token_file(path) == {"tok-all": TokenGrant(None), "tok-ab": TokenGrant(frozenset({"SITE_A", "SITE_B"}))}
    path.write_text("tok-n * ops-desk\ntok-m SITE_A rad.mira\n")
    assert load_token_file(path) == {"tok-n": TokenGrant(None, "ops-desk"),
                                     "tok-m": TokenGrant(frozenset({"SITE_A"}), "rad.mira")}
    assert Authenticator(load_token_file(path)).authenticate("tok-m").subject == "rad.mira"
    path.write_text("tok a b c\n")
    with pytest.raises(ValueError, match=":1:"):
        load_token_file(path)


def test_hs256_jwt_signature_and_algorithm() -> None:
    token = sign_jwt({"sub": "rad1", "sites": ["SITE_A"], "exp": time.time() + 60}, SECRET)
    assert verify_jwt(token, SECRET)["sites"] == ["SITE_A"]
    head, body, _ = token.split(".")
    for bad, why in [(token, "bad JWT signature"), (f"{head}.{body}.", "bad JWT signature"), ("a.b", "malformed")]:
        with pytest.raises(AuthError, match=why):
            verify_jwt(bad, "another-secret-of-at-least-32-bytes" if bad == token else SECRET)
    none_alg = sign_jwt({"sites": "*", "exp": time.time() + 60}, SECRET).replace(head, "eyJhbGciOiJub25lIn0")  # {"alg":"none"}
    with pytest.raises(AuthError, match="only HS256"):
        verify_jwt(none_alg, SECRET)
    with pytest.raises(AuthError, match="expired"):
        verify_jwt(sign_jwt({"exp": time.time() - 120}, SECRET), SECRET)
    auth = Authenticator(jwt_secret=SECRET)
    soon = time.time() + 60
    assert auth.authenticate(sign_jwt({"sites": "*", "exp": soon}, SECRET)).sites is None
    assert auth.authenticate(sign_jwt({"exp": soon}, SECRET)).sites == frozenset()  # no claim: no site
    with pytest.raises(ValueError):
        Authenticator()


def test_401_without_a_valid_token_and_404_for_another_site(tmp_path) -> None:
    async def scenario() -> None:
        gw = make_gateway(jwt_secret=SECRET)
        ingest(gw, "ImageDecoded", decoded(site="SITE_A"))
        jwt_b = sign_jwt({"sub": "b", "sites": ["SITE_B"], "exp": time.time() + 300}, SECRET)
        jwt_a = sign_jwt({"sub": "a", "sites": ["SITE_A"], "exp": time.time() + 300}, SECRET)
        protected = [f"/studies/{STUDY}", f"/studies/{STUDY}/events", f"/studies/{STUDY}/images/{STUDY}.1.1.png"]
        async with serve(gw) as base, aiohttp.ClientSession() as session:
            for path in protected + ["/events", "/studies"]:
                for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic tok-all"}):
                    async with session.get(base + path, headers=headers) as resp:
                        assert resp.status == 401, (path, headers)
                        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
                        assert "error" in await resp.json()
            missing = [p.replace(STUDY, "9.9.9") for p in protected]
            for path, unknown in zip(protected, missing):
                if path.endswith("/events"):
                    continue  # a stream of nothing either way: test_not_yours_streams_like_unknown
                for token in ("tok-b", jwt_b):
                    answers = []
                    for p in (path, unknown):
                        async with session.get(base + p, headers={"Authorization": f"Bearer {token}"}) as resp:
                            answers.append((resp.status, (await resp.json())["error"].replace("9.9.9", STUDY)))
                    assert answers[0] == answers[1] and answers[0][0] == 404, (path, answers)
                    assert "SITE_A" not in answers[0][1]
                async with session.get(f"{base}{path}?access_token=tok-b") as resp:
                    assert resp.status == 404
            for token in ("tok-a", jwt_a, "tok-all"):
                async with session.get(f"{base}/studies/{STUDY}?access_token={token}") as resp:
                    assert resp.status == 200
            # a site-scoped token on /events only sees its own sites' studies
            async with session.get(f"{base}/studies?access_token=tok-b") as resp:
                assert (await resp.json())["studies"] == []
            # the viewer itself is public
            for path in ("/", "/static/viewer.js", "/static/viewer.css", "/healthz"):
                async with session.get(base + path) as resp:
                    assert resp.status == 200, path

    asyncio.run(scenario())
