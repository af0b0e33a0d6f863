"""GET /monitoring: the monitor's report, live from what the hub indexes, scoped by the token's sites."""

from __future__ import annotations

import asyncio

import aiohttp
from gateway_harness import ALL, ingest, make_gateway, serve
from gateway_records import fused_box, override, study_result

from radstream.services.gateway.responses import REPORT_CSP

BOX_A, BOX_B = fused_box([10, 20, 60, 80]), fused_box([100, 100, 140, 150], score=0.7)


def _feed(gw) -> None:
    """After the app is made (it registers /monitoring's observer), as the source delivers in production."""
    ingest(gw, "StudyResult", study_result("1.1", site="SITE_A", boxes=[BOX_A]))
    ingest(gw, "StudyResult", study_result("2.2", site="SITE_B", boxes=[BOX_B], key="res-b"))
    ingest(gw, "FindingOverride", override(BOX_A, study="1.1", verdict="CONFIRMED", created_at=10))
    ingest(gw, "FindingOverride", override(BOX_B, study="2.2", verdict="REJECTED", reason="artefact", created_at=11))


def test_monitoring_is_live_and_scoped_by_the_tokens_sites() -> None:
    async def run() -> None:
        gw = make_gateway()
        async with serve(gw) as base, aiohttp.ClientSession() as http:
            _feed(gw)
            async with http.get(f"{base}/monitoring?format=json", headers=ALL) as resp:
                every = await resp.json()
            async with http.get(f"{base}/monitoring?format=json", headers={"Authorization": "Bearer tok-a"}) as resp:
                site_a = await resp.json()
            async with http.get(f"{base}/monitoring", headers={"Authorization": "Bearer tok-b"}) as resp:
                assert resp.status == 200 and resp.content_type == "text/html"
                # inline CSS and data: plots only, no script: the one page with its own policy
                assert resp.headers["Content-Security-Policy"] == REPORT_CSP
                page = await resp.text()
            async with http.get(f"{base}/monitoring?format=json", headers=ALL) as resp:
                assert resp.headers["Content-Security-Policy"] == "default-src 'self'; frame-ancestors 'none'"
            async with http.get(f"{base}/monitoring") as resp:
                assert resp.status == 401
        assert every["agreement"]["overall"]["judged"] == 2 and set(every["agreement"]["site"]) == {"SITE_A", "SITE_B"}
        assert set(site_a["agreement"]["site"]) == {"SITE_A"} and site_a["agreement"]["overall"]["ppv"] == 1.0
        assert set(site_a["drift"]) == {"site:SITE_A"}
        assert "site:SITE_B" not in site_a["drift"] and "site:SITE_B" in every["drift"]
        # the device group holds both sites' studies: only a token for every site sees it
        assert "device:(unknown)/(unknown)" in every["drift"] and "device:(unknown)/(unknown)" not in site_a["drift"]
        assert "radstream monitoring" in page and "SITE_B" in page and "SITE_A" not in page and "artefact" in page
    asyncio.run(run())
