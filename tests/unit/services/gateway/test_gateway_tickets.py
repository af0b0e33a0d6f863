"""Tickets for EventSource and <img>: the long-lived token stays in the Authorization header, and
what goes in a URL is short-lived, signed, scoped to a path, and good for reads only. A real
gateway on an ephemeral port (gateway_harness), real HTTP."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from gateway_harness import ALL, ingest, make_gateway, read_messages, serve
from gateway_records import STUDY, decoded
from radstream.services.gateway.auth import AuthError, Principal
from radstream.services.gateway.tickets import TicketIssuer


def _ticket(session: aiohttp.ClientSession, base: str, token: str, path: str | None = None):
    return session.post(f"{base}/session/ticket", headers={"Authorization": f"Bearer {token}"},
                        json={"path": path} if path else None)


def test_a_ticket_opens_the_streams_and_images_of_its_principal_only(tmp_path) -> None:
    gateway = make_gateway()
    ingest(gateway, "ImageDecoded", decoded(site="SITE_A"))

    async def scenario() -> None:
        async with serve(gateway) as base, aiohttp.ClientSession() as session:
            async with session.post(f"{base}/session/ticket") as resp:
                assert resp.status == 401  # minting needs the bearer header
            async with _ticket(session, base, "tok-a") as resp:
                assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
                body = await resp.json()
            ticket = body["ticket"]
            assert "tok-a" not in ticket and body["path"] == "/"
            async with session.get(f"{base}/events", params={"ticket": ticket}) as resp:
                assert resp.status == 200
                (first,) = await read_messages(resp, 1)
                assert STUDY in first.data
            async with session.get(f"{base}/studies/{STUDY}", params={"ticket": ticket}) as resp:
                assert resp.status == 200
            async with _ticket(session, base, "tok-b") as resp:
                other = (await resp.json())["ticket"]
            async with session.get(f"{base}/studies/{STUDY}", params={"ticket": other}) as resp:
                assert resp.status == 404  # SITE_B's ticket: not yours, like its token
            # scoped: a ticket for one study is refused elsewhere
            async with _ticket(session, base, "tok-a", f"/studies/{STUDY}") as resp:
                scoped = (await resp.json())["ticket"]
            async with session.get(f"{base}/studies/{STUDY}/events", params={"ticket": scoped}) as resp:
                assert resp.status == 200
            async with session.get(f"{base}/events", params={"ticket": scoped}) as resp:
                assert resp.status == 401 and "not for this path" in (await resp.json())["error"]
            # a ticket is no token: not as a bearer header, not to mint another, not tampered with
            async with session.get(f"{base}/studies", headers={"Authorization": f"Bearer {ticket}"}) as resp:
                assert resp.status == 401
            async with session.post(f"{base}/session/ticket", params={"ticket": ticket}) as resp:
                assert resp.status == 401
            forged = ticket[:-4] + ("AAAA" if not ticket.endswith("AAAA") else "BBBB")
            async with session.get(f"{base}/events", params={"ticket": forged}) as resp:
                assert resp.status == 401
            async with _ticket(session, base, "tok-all", "relative/path") as resp:
                assert resp.status == 400
            async with session.post(f"{base}/session/ticket", headers=ALL, data=b"not json") as resp:
                assert resp.status == 400

    asyncio.run(scenario())


def test_a_ticket_expires_and_another_gateway_key_refuses_it() -> None:
    now = [1000.0]
    issuer = TicketIssuer(b"k" * 32, ttl_s=300, clock=lambda: now[0])
    ticket, expires = issuer.issue(Principal("dr.who", frozenset({"SITE_A"})), "/studies/1.2")
    assert expires == 1300.0
    assert issuer.check(ticket, "/studies/1.2/images/3.png") == Principal("dr.who", frozenset({"SITE_A"}))
    with pytest.raises(AuthError, match="not for this path"):
        issuer.check(ticket, "/studies/1.23")  # a prefix of the UID is not the study
    now[0] = 1300.0
    with pytest.raises(AuthError, match="expired"):
        issuer.check(ticket, "/studies/1.2")
    now[0] = 1000.0
    with pytest.raises(AuthError, match="bad ticket signature"):
        TicketIssuer(b"x" * 32, clock=lambda: now[0]).check(ticket, "/studies/1.2")
    with pytest.raises(ValueError, match="at least 32 bytes"):
        TicketIssuer(b"short")
