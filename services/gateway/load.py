"""Load check for the gateway's fan-out: N concurrent SSE clients, delivery latency percentiles.

Self-contained: an in-process gateway on an ephemeral port, synthetic events
injected into its hub at a fixed rate, and N real HTTP clients on `/events`.
Latency is from `hub.ingest` to the client parsing the event. `radstream bench`
calls `gateway_load(...)`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass

import aiohttp
from aiohttp import web
from radstream.services.gateway.app import Gateway, create_app
from radstream.services.gateway.auth import Authenticator
from radstream.services.gateway.events import Position
from radstream.services.gateway.hub import EventHub, HubLimits
from radstream.services.gateway.sse import SseMessage, iter_sse
from radstream.services.percentiles import percentile
from radstream.streams.kafka.topics import IMAGE_DECODED


@dataclass(frozen=True)
class GatewayLoadReport:
    clients: int
    events: int
    delivered: int
    cut_off: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    wall_s: float

    def as_dict(self) -> dict:
        return asdict(self)


def synthetic_record(i: int, payload_bytes: int = 0) -> dict:
    return {"idempotency_key": f"load-{i}", "study_uid": f"load.study.{i // 4}", "series_uid": "load.series",
            "sop_uid": f"load.sop.{i}", "frame": 0, "site": "LOAD", "arrived_at": int(time.time() * 1000),
            "metadata": {"modality": "CR"}, "trace_id": "x" * payload_bytes}


def gateway_load(n_clients: int, events: int = 200, rate_hz: float = 500.0, payload_bytes: int = 256,
                 queue_size: int = 1000, timeout_s: float = 60.0) -> GatewayLoadReport:
    """Run the load check and return its report (blocking; starts and stops its own loop)."""
    return asyncio.run(_run(n_clients, events, rate_hz, payload_bytes, queue_size, timeout_s))


async def _run(n_clients: int, events: int, rate_hz: float, payload_bytes: int, queue_size: int,
               timeout_s: float) -> GatewayLoadReport:
    hub = EventHub(HubLimits(max_recent=max(events, 1), queue_size=queue_size))
    app = create_app(Gateway(hub, Authenticator({"load": None}), None))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    ingested: dict[str, float] = {}
    latencies: list[float] = []
    delivered, cut_off = 0, 0
    connected = asyncio.Semaphore(0)

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal delivered, cut_off
        async with session.get(f"http://127.0.0.1:{port}/events", headers={"Authorization": "Bearer load"}) as resp:
            seen = 0
            async for msg in iter_sse(resp.content):
                if msg == f"radstream gateway epoch {hub.epoch}":
                    connected.release()
                if not isinstance(msg, SseMessage):
                    continue
                if msg.event == "overflow":
                    cut_off += 1
                    return
                latencies.append((time.perf_counter() - ingested[msg.id]) * 1000)
                delivered += 1
                seen += 1
                if seen == events:
                    return

    started = time.perf_counter()
    try:
        # limit=0: aiohttp caps a session at 100 connections by default, which would queue clients
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s),
                                         connector=aiohttp.TCPConnector(limit=0)) as session:
            tasks = [asyncio.create_task(client(session)) for _ in range(n_clients)]
            for _ in range(n_clients):
                await asyncio.wait_for(connected.acquire(), timeout_s)
            interval = 1.0 / rate_hz if rate_hz > 0 else 0.0
            for i in range(events):
                ingested[hub.event_id(hub.seq + 1)] = time.perf_counter()
                hub.ingest(IMAGE_DECODED, synthetic_record(i, payload_bytes), Position(IMAGE_DECODED, 0, i))
                await asyncio.sleep(interval)
            await asyncio.wait_for(asyncio.gather(*tasks), timeout_s)
    finally:
        await runner.cleanup()
    return GatewayLoadReport(n_clients, events, delivered, cut_off, percentile(latencies, 50),
                             percentile(latencies, 99), max(latencies, default=float("nan")),
                             time.perf_counter() - started)
