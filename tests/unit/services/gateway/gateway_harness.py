"""An in-process gateway on an ephemeral port with an injected hub (no Kafka), and an SSE reader."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web
from radstream.services.gateway import (
    Authenticator,
    EventHub,
    Gateway,
    HubLimits,
    StreamSettings,
    create_app,
)
from radstream.services.gateway.events import KIND_BY_SCHEMA, Position
from radstream.services.gateway.sse import SseMessage, iter_sse

TOKENS = {"tok-all": None, "tok-a": frozenset({"SITE_A"}), "tok-b": frozenset({"SITE_B"})}
ALL = {"Authorization": "Bearer tok-all"}


def make_gateway(limits: HubLimits | None = None, heartbeat_s: float = 15.0, blobs=None,
                 jwt_secret: str | None = None, write_timeout_s: float = 10.0,
                 max_streams_per_identity: int = 16) -> Gateway:
    return Gateway(EventHub(limits or HubLimits()), Authenticator(TOKENS, jwt_secret), blobs, None,
                   StreamSettings(heartbeat_s=heartbeat_s, write_timeout_s=write_timeout_s,
                                  max_streams_per_identity=max_streams_per_identity))


def ingest(gateway: Gateway, schema: str, record: dict, offset: int = 0):
    kind = KIND_BY_SCHEMA[schema]
    return gateway.hub.ingest(kind, record, Position(kind, 0, offset))


@asynccontextmanager
async def serve(gateway: Gateway) -> AsyncIterator[str]:
    runner = web.AppRunner(create_app(gateway), handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def read_messages(resp: aiohttp.ClientResponse, n: int, timeout_s: float = 10.0,
                        comments: list[str] | None = None) -> list[SseMessage]:
    """The next `n` SSE messages (comments go to `comments` when given)."""
    out: list[SseMessage] = []

    async def read() -> None:
        async for msg in iter_sse(resp.content):
            if isinstance(msg, SseMessage):
                out.append(msg)
                if len(out) == n:
                    return
            elif comments is not None:
                comments.append(msg)

    await asyncio.wait_for(read(), timeout_s)
    return out
