"""SSE framing, replay then live, Last-Event-ID resume, heartbeats, filters and slow clients (no Kafka)."""

from __future__ import annotations

import asyncio
import json
import socket

import aiohttp
from gateway_harness import ALL, ingest, make_gateway, read_messages, serve
from gateway_records import STUDY, decoded, fused, fused_box, inferred, study_result
from radstream.services.gateway import HubLimits
from radstream.services.gateway.sse import format_comment, format_event

OTHER = STUDY + ".2"


def test_format_event_splits_lines_and_ends_with_a_blank_line() -> None:
    assert format_event("a\nb", "study.results", "e-7") == b"id: e-7\nevent: study.results\ndata: a\ndata: b\n\n"
    assert format_event("{}") == b"data: {}\n\n"
    assert format_comment("ping") == b": ping\n\n"


def _one_study(gw, study: str = STUDY) -> None:
    ingest(gw, "ImageDecoded", decoded(study=study, sop=study + ".1"))
    ingest(gw, "InferenceResult", inferred(study=study, sop=study + ".1", boxes=[[10, 10, 40, 40]]))
    ingest(gw, "FindingsFused", fused(study=study, sop=study + ".1", boxes=[fused_box([10, 10, 40, 40])]))


def test_new_connection_replays_the_study_then_follows_live() -> None:
    async def scenario() -> None:
        gw = make_gateway()
        _one_study(gw)
        _one_study(gw, OTHER)
        async with serve(gw) as base, aiohttp.ClientSession(headers=ALL) as session:
            async with session.get(f"{base}/studies/{STUDY}/events") as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"].startswith("text/event-stream")
                replay = await read_messages(resp, 3)
                assert [m.event for m in replay] == ["image.decoded", "inference.results", "findings.fused"]
                assert [m.id for m in replay] == [f"{gw.hub.epoch}-{n}" for n in (1, 2, 3)]
                ingest(gw, "StudyResult", study_result(sops=[STUDY + ".1"], boxes=[fused_box([10, 10, 40, 40])]))
                ingest(gw, "StudyResult", study_result(study=OTHER, sops=[OTHER + ".1"]))
                (live,) = await read_messages(resp, 1)
                payload = json.loads(live.data)
                assert live.event == "study.results" and live.id == f"{gw.hub.epoch}-7"
                assert payload["id"] == live.id and payload["study_uid"] == STUDY
                assert payload["study"]["status"] == "final" and payload["study"]["labels"] == ["nodule"]
                assert payload["record"]["images"][0]["findings"][0]["rule_id"] == "nodule-detected"
                first = json.loads(replay[0].data)
                assert "uri" not in first["record"]["pixels"]  # server paths never leave the gateway
                assert first["position"] == {"topic": "image.decoded", "partition": 0, "offset": 0}

    asyncio.run(scenario())


def test_last_event_id_resumes_with_no_gap_and_no_duplicate() -> None:
    async def scenario() -> None:
        gw = make_gateway()
        _one_study(gw)
        async with serve(gw) as base, aiohttp.ClientSession(headers=ALL) as session:
            for path in (f"/studies/{STUDY}/events", "/events"):
                async with session.get(base + path) as resp:
                    seen = await read_messages(resp, 2)
                # disconnected: more events arrive, including a redelivery (same idempotency key) that is dropped
                before = gw.hub.seq
                ingest(gw, "StudyResult", study_result(sops=[STUDY + ".1"], key=f"r{before}"))
                ingest(gw, "StudyResult", study_result(sops=[STUDY + ".1"], key=f"r{before}"))
                async with session.get(base + path, headers={"Last-Event-ID": seen[-1].id}) as resp:
                    rest = await read_messages(resp, gw.hub.seq - 2)
                ids = [m.id for m in seen + rest]
                assert ids == [f"{gw.hub.epoch}-{n}" for n in range(1, gw.hub.seq + 1)]
                assert all(m.event != "reset" for m in rest)
        assert gw.hub.duplicates == 2

    asyncio.run(scenario())


def test_an_id_from_another_run_or_no_longer_retained_starts_with_a_reset() -> None:
    async def scenario() -> None:
        gw = make_gateway(HubLimits(max_events_per_study=1))
        _one_study(gw)  # 3 events, only the last one retained
        async with serve(gw) as base, aiohttp.ClientSession(headers=ALL) as session:
            for last_id in ("deadbeef-2", f"{gw.hub.epoch}-1"):
                async with session.get(f"{base}/studies/{STUDY}/events", headers={"Last-Event-ID": last_id}) as resp:
                    msgs = await read_messages(resp, 2)
                assert msgs[0].event == "reset" and "reason" in json.loads(msgs[0].data)
                assert [m.id for m in msgs[1:]] == [f"{gw.hub.epoch}-3"]

    asyncio.run(scenario())


def test_heartbeat_comments_while_idle() -> None:
    async def scenario() -> None:
        gw = make_gateway(heartbeat_s=0.1)
        async with serve(gw) as base, aiohttp.ClientSession(headers=ALL) as session:
            async with session.get(f"{base}/events") as resp:
                comments: list[str] = []
                ingest_later = asyncio.get_running_loop().call_later(0.35, _one_study, gw)
                await read_messages(resp, 3, comments=comments)
                ingest_later.cancel()
        assert comments[0].startswith("radstream gateway epoch")
        assert comments.count("ping") >= 2

    asyncio.run(scenario())


def test_events_filters_by_modality_site_qc_flag_and_label() -> None:
    async def scenario() -> None:
        gw = make_gateway()
        _one_study(gw)  # SITE_A, CR, nodule
        ingest(gw, "ImageDecoded", decoded(study=OTHER, sop=OTHER + ".1", site="SITE_B", modality="MR"))
        ingest(gw, "StudyResult", study_result(study=OTHER, sops=[OTHER + ".1"], site="SITE_B", not_analysable=True))

        async def studies_seen(query: str, n: int) -> set[str]:
            async with session.get(f"{base}/events?{query}") as resp:
                return {json.loads(m.data)["study_uid"] for m in await read_messages(resp, n)}

        async with serve(gw) as base, aiohttp.ClientSession(headers=ALL) as session:
            assert await studies_seen("label=NODULE", 1) == {STUDY}  # from the fused event on
            assert await studies_seen("site=SITE_B", 2) == {OTHER}
            assert await studies_seen("modality=mr", 1) == {OTHER}
            assert await studies_seen("qc_flag=any", 1) == {OTHER}
            assert await studies_seen("qc_flag=outside", 1) == {OTHER}
            listing = await (await session.get(f"{base}/studies?qc_flag=any")).json()
            assert [s["study_uid"] for s in listing["studies"]] == [OTHER]
            assert listing["studies"][0]["not_analysable"] == 1

    asyncio.run(scenario())


def test_a_slow_client_is_cut_off_and_never_delays_the_others() -> None:
    """A client that stops reading fills its socket, then its bounded queue; it gets cut off.
    A fast client on the same gateway receives every event in order meanwhile."""
    n_events, padding = 240, 64 * 1024

    async def scenario() -> None:
        gw = make_gateway(HubLimits(queue_size=32, max_recent=n_events), write_timeout_s=60)
        async with serve(gw) as base, aiohttp.ClientSession(headers=ALL) as session:
            host, port = base[len("http://"):].split(":")
            slow = socket.socket()
            slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            slow.connect((host, int(port)))
            slow.sendall(f"GET /events HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer tok-all\r\n\r\n".encode())
            while len(gw.hub.subscribers) < 1:
                await asyncio.sleep(0.01)
            async with session.get(f"{base}/events") as fast:
                while len(gw.hub.subscribers) < 2:
                    await asyncio.sleep(0.01)
                reader = asyncio.create_task(read_messages(fast, n_events, timeout_s=60))
                for i in range(n_events):
                    record = decoded(sop=f"{STUDY}.{i}")
                    record["trace_id"] = "x" * padding
                    ingest(gw, "ImageDecoded", record, offset=i)  # synchronous: never waits for any client
                    await asyncio.sleep(0.002)
                got = await reader
            assert [m.id for m in got] == [f"{gw.hub.epoch}-{n}" for n in range(1, n_events + 1)]
            assert gw.hub.overflows == 1
            # once the slow client reads again, its stream ends with an overflow event naming where to resume
            slow.setblocking(False)
            received = bytearray()
            while b"event: overflow" not in received[-4096:]:
                chunk = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(slow, 1 << 20), 30)
                assert chunk, "stream closed without an overflow event"
                received += chunk
            notice = received[received.rindex(b"event: overflow"):].split(b"data: ", 1)[1].split(b"\n", 1)[0]
            assert json.loads(notice)["last_event_id"].startswith(gw.hub.epoch)
            slow.close()

    asyncio.run(scenario())
