"""`GET /monitoring`: the monitor's report, live, scoped by the token's sites.

The gateway already follows study.results and findings.overrides (unsigned verdicts dropped by
its source), so it keeps its own MonitorState, in memory, fed by the hub as records arrive:
the same logic and the same page as `radstream monitor report`, without asking the monitor
stage. A token sees its sites' findings and drift, and a device group only when every study in
it came from its sites. `?format=json` (or `Accept: application/json`) gives the snapshot.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from radstream.services.gateway.auth import Principal
from radstream.services.gateway.responses import REPORT_CSP
from radstream.services.monitor.report import alarm_histograms, render_html
from radstream.streams.monitoring import MonitorSettings, MonitorState
from radstream.streams.kafka.topics import FINDINGS_OVERRIDES, STUDY_RESULTS
from radstream.streams.state import MemoryStore

CACHE_S = 5.0  # a page is drawn at most this often per scope: matplotlib is not free


class MonitoringView:
    def __init__(self, settings: MonitorSettings | None = None) -> None:
        self.state = MonitorState(MemoryStore(), settings)
        self._pages: dict[tuple[frozenset[str] | None, str], tuple[float, Any]] = {}

    def observe(self, kind: str, record: dict[str, Any]) -> None:
        """The hub's observer (the loop thread): results and verdicts into the state."""
        if kind == STUDY_RESULTS:
            self.state.add_result(record)
        elif kind == FINDINGS_OVERRIDES:
            self.state.add_override(record)

    async def page(self, sites: frozenset[str] | None, as_json: bool) -> Any:
        key = (sites, "json" if as_json else "html")
        cached = self._pages.get(key)
        if cached and time.monotonic() - cached[0] < CACHE_S:
            return cached[1]
        snapshot = self.state.snapshot(sites)  # here, on the loop thread that feeds the state
        if as_json:
            body: Any = snapshot
        else:
            histograms = alarm_histograms(snapshot, self.state)
            scope = "every site" if sites is None else "sites " + ", ".join(sorted(sites))
            body = await asyncio.get_running_loop().run_in_executor(None, render_html, snapshot, histograms, scope)
        self._pages[key] = (time.monotonic(), body)
        return body


MONITORING = web.AppKey("monitoring", MonitoringView)


def add_monitoring(app: web.Application, observers: list, principal_of: Callable[[web.Request], Principal],
                   settings: MonitorSettings | None = None) -> MonitoringView:
    """Register the route, and the view as an observer of the hub's records."""
    view = app[MONITORING] = MonitoringView(settings)
    observers.append(view.observe)

    async def monitoring(request: web.Request) -> web.StreamResponse:
        principal = principal_of(request)
        as_json = request.query.get("format") == "json" or "application/json" in request.headers.get("Accept", "")
        body = await view.page(principal.sites, as_json)
        if as_json:
            return web.json_response(body, headers={"Cache-Control": "no-store"})
        return web.Response(text=body, content_type="text/html",
                            headers={"Cache-Control": "no-store", "Content-Security-Policy": REPORT_CSP})

    app.router.add_get("/monitoring", monitoring)
    return view
