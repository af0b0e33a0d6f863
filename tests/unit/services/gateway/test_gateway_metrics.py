"""The gateway's /metrics over real HTTP (no Kafka): Prometheus text that prometheus_client's own
parser reads, with the SSE clients open now, the events delivered to them, and the streams refused,
moving as clients connect, receive and leave."""

from __future__ import annotations

import asyncio

import aiohttp
from gateway_harness import ALL, ingest, make_gateway, read_messages, serve
from gateway_records import STUDY, decoded, fused, fused_box, inferred
from prometheus_client.parser import text_string_to_metric_families


async def _scrape(session: aiohttp.ClientSession, base: str) -> dict[str, float]:
    async with session.get(f"{base}/metrics") as resp:  # no token: open like /healthz
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_count_sse_clients_events_delivered_and_refused_streams() -> None:
    async def scenario() -> None:
        gw = make_gateway(max_streams_per_identity=1)
        ingest(gw, "ImageDecoded", decoded(study=STUDY, sop=STUDY + ".1"))
        ingest(gw, "InferenceResult", inferred(study=STUDY, sop=STUDY + ".1", boxes=[[10, 10, 40, 40]]))
        async with serve(gw) as base, aiohttp.ClientSession() as plain, aiohttp.ClientSession(headers=ALL) as session:
            before = await _scrape(plain, base)
            assert before["radstream_gateway_sse_clients"] == 0
            assert before["radstream_gateway_events_received_total"] == 2
            assert before["radstream_gateway_events_delivered_total"] == 0
            async with session.get(f"{base}/studies/{STUDY}/events") as resp:
                assert len(await read_messages(resp, 2)) == 2  # the replay
                ingest(gw, "FindingsFused", fused(study=STUDY, sop=STUDY + ".1", boxes=[fused_box([10, 10, 40, 40])]))
                assert len(await read_messages(resp, 1)) == 1  # live
                async with session.get(f"{base}/events") as second:  # over this identity's one stream
                    assert second.status == 429
                during = await _scrape(plain, base)
                assert during["radstream_gateway_sse_clients"] == 1
                assert during["radstream_gateway_events_delivered_total"] == 3
                assert during["radstream_gateway_events_received_total"] == 3
                assert during["radstream_gateway_streams_refused_total"] == 1
            for _ in range(50):  # the server notices the closed stream on its next write or read
                after = await _scrape(plain, base)
                if after["radstream_gateway_sse_clients"] == 0:
                    break
                await asyncio.sleep(0.05)
            assert after["radstream_gateway_sse_clients"] == 0
            assert after["radstream_gateway_studies"] == 1

    asyncio.run(scenario())


def test_two_gateways_in_one_process_keep_their_own_numbers() -> None:
    async def scenario() -> None:
        busy, idle = make_gateway(), make_gateway()
        ingest(busy, "ImageDecoded", decoded(study=STUDY, sop=STUDY + ".1"))
        async with serve(busy) as b, serve(idle) as i, aiohttp.ClientSession() as plain:
            assert (await _scrape(plain, b))["radstream_gateway_events_received_total"] == 1
            assert (await _scrape(plain, i))["radstream_gateway_events_received_total"] == 0

    asyncio.run(scenario())
