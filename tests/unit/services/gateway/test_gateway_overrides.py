"""A radiologist's verdicts (findings.overrides) in the gateway: folded onto their finding, streamed live."""

from __future__ import annotations

import asyncio
import json

import aiohttp
from gateway_harness import ALL, ingest, make_gateway, read_messages, serve
from gateway_records import STUDY, finding_id, fused, fused_box, override, study_result
from radstream.services.gateway.events import KIND_BY_SCHEMA

BOX, OTHER_BOX = fused_box([10, 20, 60, 80]), fused_box([100, 100, 140, 150], score=0.7)


def _findings(gw) -> dict[str, dict]:
    (img,) = gw.hub.study(STUDY).as_json()["images"]
    return {f["finding_id"]: f for f in img["findings"]}


def test_the_gateway_follows_the_overrides_topic() -> None:
    assert KIND_BY_SCHEMA["FindingOverride"] == "findings.overrides"


def test_an_override_is_attached_to_its_finding_only() -> None:
    gw = make_gateway()
    ingest(gw, "StudyResult", study_result(boxes=[BOX, OTHER_BOX]))
    event = ingest(gw, "FindingOverride", override(BOX, by="dr-lee", reason="artefact", created_at=1000))
    assert event is not None and event.kind == "findings.overrides"
    assert event.summary["overridden"] == 1 and event.summary["findings"] == 2
    findings = _findings(gw)
    assert findings[finding_id(BOX)]["override"] == {"verdict": "rejected", "by": "dr-lee", "reason": "artefact",
                                                     "at": 1000}
    assert "override" not in findings[finding_id(OTHER_BOX)]
    assert "override" not in gw.hub.study(STUDY).result["images"][0]["findings"][0]  # the result is not rewritten


def test_an_override_that_arrives_before_its_finding_is_shown_once_the_finding_is() -> None:
    gw = make_gateway()
    ingest(gw, "FindingOverride", override(BOX, verdict="CONFIRMED", created_at=5))
    assert gw.hub.study(STUDY).summary()["overridden"] == 0  # nothing to attach it to yet
    ingest(gw, "FindingsFused", fused(boxes=[BOX]))
    assert _findings(gw)[finding_id(BOX)]["override"]["verdict"] == "confirmed"


def test_the_latest_verdict_wins_and_a_redelivery_is_dropped() -> None:
    gw = make_gateway()
    ingest(gw, "StudyResult", study_result(boxes=[BOX]))
    ingest(gw, "FindingOverride", override(BOX, verdict="REJECTED", by="dr-a", created_at=2000))
    ingest(gw, "FindingOverride", override(BOX, verdict="CONFIRMED", by="dr-b", created_at=1000))  # older
    assert _findings(gw)[finding_id(BOX)]["override"]["by"] == "dr-a"
    ingest(gw, "FindingOverride", override(BOX, verdict="CONFIRMED", by="dr-b", created_at=3000))
    assert _findings(gw)[finding_id(BOX)]["override"] == {"verdict": "confirmed", "by": "dr-b", "reason": "",
                                                          "at": 3000}
    assert ingest(gw, "FindingOverride", override(BOX, verdict="CONFIRMED", by="dr-b", created_at=3000)) is None
    assert gw.hub.duplicates == 1


def test_an_override_streams_live_to_the_study_subscribers() -> None:
    async def scenario() -> None:
        gw = make_gateway()
        ingest(gw, "StudyResult", study_result(boxes=[BOX]))
        async with serve(gw) as base, aiohttp.ClientSession(headers=ALL) as session:
            async with session.get(f"{base}/studies/{STUDY}/events") as resp:
                (replayed,) = await read_messages(resp, 1)
                assert replayed.event == "study.results"
                ingest(gw, "FindingOverride", override(BOX, by="dr-lee", reason="old scar", created_at=42))
                (live,) = await read_messages(resp, 1)
                payload = json.loads(live.data)
                assert live.event == "findings.overrides"
                assert payload["record"]["finding_id"] == finding_id(BOX) and payload["record"]["verdict"] == "REJECTED"
                assert payload["study"]["overridden"] == 1
            async with session.get(f"{base}/studies/{STUDY}") as resp:
                (img,) = (await resp.json())["images"]
                assert img["findings"][0]["override"]["reason"] == "old scar"

    asyncio.run(scenario())
