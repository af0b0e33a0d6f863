"""The gateway's HTTP surface (aiohttp): thin handlers over the hub, the auth and the blob store.

Public: `/` (the viewer), `/static/*`, `/healthz`, `/metrics` (Prometheus). Everything else needs a bearer
token (`Authorization: Bearer ...`), or for a GET from what cannot send headers (EventSource,
<img>) a short-lived ticket in `?ticket=` from `POST /session/ticket` (tickets.py).
`?access_token=` is still read, for older clients; the viewer no longer sends it.
The one write, a verdict on a finding, takes the header only.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry
from radstream.domain.errors import StageError
from radstream.services.gateway.auth import Authenticator, AuthError, Principal
from radstream.services.gateway.events import EventFilter
from radstream.services.gateway.hub import EventHub
from radstream.services.gateway.metrics import gateway_registry
from radstream.services.gateway.monitoring import add_monitoring
from radstream.services.gateway.responses import add_security_headers, is_png
from radstream.services.gateway.source import KafkaEventSource
from radstream.services.gateway.sse import StreamQuota, StreamSettings, stream_events
from radstream.services.gateway.state import StudyState
from radstream.services.gateway.tickets import TicketIssuer
from radstream.streams.monitoring import MonitorSettings
from radstream.services.gateway.verdicts import MAX_BODY_BYTES, OverrideWriter, VerdictError, parse_verdict
from radstream.services.gateway.window import (
    PixelCache,
    WindowError,
    load_pixels,
    parse_window,
    pixel_range,
    windowed_png,
)
from radstream.services.overrides import REJECTION_REASONS, override_view
from radstream.streams.blobstore import DERIVED, BlobStore
from radstream.streams.metrics import exposition

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


@dataclass
class Gateway:
    hub: EventHub
    auth: Authenticator
    blobs: BlobStore | None
    source: KafkaEventSource | None = None
    stream: StreamSettings = field(default_factory=StreamSettings)
    tickets: TicketIssuer = field(default_factory=TicketIssuer)
    monitor: MonitorSettings | None = None  # /monitoring's windows and threshold (default MonitorSettings())
    writer: OverrideWriter | None = None  # signs and writes the viewer's verdicts; None: overrides are off
    pixels: PixelCache = field(default_factory=PixelCache)
    quota: StreamQuota = field(init=False)

    def __post_init__(self) -> None:
        self.quota = StreamQuota(self.stream.max_streams_per_identity)


GATEWAY = web.AppKey("gateway", Gateway)
METRICS = web.AppKey("metrics", CollectorRegistry)


def create_app(gateway: Gateway) -> web.Application:
    app = web.Application(middlewares=[_errors_as_json])
    app[GATEWAY] = gateway
    app[METRICS] = gateway_registry(gateway)
    app.on_response_prepare.append(add_security_headers)
    app.router.add_get("/", _index)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_post("/session/ticket", _ticket)
    app.router.add_get("/me", _me)
    app.router.add_get("/events", _all_events)
    app.router.add_get("/studies", _studies)
    app.router.add_get("/studies/{study_uid}", _study)
    app.router.add_get("/studies/{study_uid}/events", _study_events)
    app.router.add_get("/studies/{study_uid}/images/{sop_uid}.png", _image)
    app.router.add_get("/studies/{study_uid}/images/{sop_uid}/pixel-range", _pixel_range)
    app.router.add_post("/studies/{study_uid}/findings/{finding_id}/override", _override)
    app.router.add_static("/static/", STATIC, name="static")
    add_monitoring(app, gateway.hub.observers, _principal, gateway.monitor)  # GET /monitoring
    app.on_startup.append(_start_source)
    app.on_shutdown.append(_close_streams)
    app.on_cleanup.append(_stop_source)
    return app


async def _start_source(app: web.Application) -> None:
    gw = app[GATEWAY]
    if gw.source is not None:
        gw.source.start(asyncio.get_running_loop(), gw.hub)


async def _close_streams(app: web.Application) -> None:
    app[GATEWAY].hub.close()


async def _stop_source(app: web.Application) -> None:
    gw = app[GATEWAY]
    if gw.source is not None:
        await asyncio.get_running_loop().run_in_executor(None, gw.source.stop)


@web.middleware
async def _errors_as_json(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "www-authenticate"}
        text = exc.text or ""
        message = exc.reason if not text or text.startswith(f"{exc.status}: ") else text
        return web.json_response({"error": message}, status=exc.status, headers=headers)


# -- auth ---------------------------------------------------------------------------
def _principal(request: web.Request, header_only: bool = False) -> Principal:
    """The bearer header's principal; else, on a GET, a ticket's (`?ticket=`), else a legacy
    `?access_token=`. `header_only`: the header alone (minting a ticket needs the real token)."""
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else None
    gw = request.app[GATEWAY]
    try:
        if token or header_only:
            return gw.auth.authenticate(token)
        if request.method == "GET" and (ticket := request.query.get("ticket")):
            return gw.tickets.check(ticket, request.path)
        return gw.auth.authenticate(request.query.get("access_token"))
    except AuthError as exc:
        raise web.HTTPUnauthorized(text=str(exc), headers={"WWW-Authenticate": 'Bearer realm="radstream"'}) from None


def _visible_study(request: web.Request, principal: Principal) -> StudyState:
    """The study, if this token may see it. "Not yours" and "no such study" are the same 404,
    so a token cannot probe which Study UIDs another site has."""
    study_uid = request.match_info["study_uid"]
    state = request.app[GATEWAY].hub.study(study_uid)
    if state is None or not principal.may_see(state.site):
        raise web.HTTPNotFound(text=f"no events for study {study_uid} that this token may see")
    return state


# -- handlers -----------------------------------------------------------------------
async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


async def _healthz(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    stats = {**gw.hub.stats(), "streams_refused": gw.quota.refused}
    if gw.writer is not None:
        stats["overrides_written"] = gw.writer.written
    if gw.source is not None:
        stats["undecodable_skipped"] = gw.source.undecodable
        stats["untrusted_overrides_skipped"] = gw.source.untrusted
    return web.json_response({"status": "ok", **stats})


async def _metrics(request: web.Request) -> web.Response:
    """Prometheus text format, like every stage's /metrics; open like /healthz (the pods'
    NetworkPolicy admits only Prometheus and the ingress controller to the port)."""
    data, ctype = exposition(request.app[METRICS])
    return web.Response(body=data, headers={"Content-Type": ctype})


async def _ticket(request: web.Request) -> web.Response:
    """`POST /session/ticket` (bearer header): a short-lived ticket for `?ticket=` on GETs under
    `path` (JSON body, optional; default every read path)."""
    principal = _principal(request, header_only=True)
    path = "/"
    if request.can_read_body:
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text="the body must be JSON: {\"path\": \"/studies/UID\"}") from None
        path = body.get("path", "/") if isinstance(body, dict) else None
        if not isinstance(path, str):
            raise web.HTTPBadRequest(text="`path` must be a string")
    try:
        ticket, expires = request.app[GATEWAY].tickets.issue(principal, path)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    return web.json_response({"ticket": ticket, "expires_at": expires, "path": path},
                             headers={"Cache-Control": "no-store"})


async def _me(request: web.Request) -> web.Response:
    """Who the token is (the identity a verdict will name), what it may see, whether it may override."""
    gw, principal = request.app[GATEWAY], _principal(request)
    return web.json_response({"identity": principal.subject,
                              "sites": "*" if principal.sites is None else sorted(principal.sites),
                              "overrides": gw.writer is not None and not gw.auth.open_access,
                              "rejection_reasons": list(REJECTION_REASONS)})


async def _studies(request: web.Request) -> web.Response:
    principal = _principal(request)
    event_filter = EventFilter.from_query(request.query)
    hub = request.app[GATEWAY].hub
    out = []
    for entry in reversed(hub.studies.values()):  # most recently updated first
        state = entry.state
        if not principal.may_see(state.site) or not entry.events or not event_filter.matches(entry.events[-1]):
            continue
        out.append(state.summary())
    return web.json_response({"studies": out, "last_event_id": hub.event_id(hub.seq) if hub.seq else None})


async def _study(request: web.Request) -> web.Response:
    return web.json_response(_visible_study(request, _principal(request)).as_json())


async def _study_events(request: web.Request) -> web.StreamResponse:
    # No existence check: the subscription is scoped by the token's sites, so a study that is
    # not yours streams exactly like one that has no events yet (nothing).
    return await _stream(request, _principal(request), request.match_info["study_uid"], EventFilter())


async def _all_events(request: web.Request) -> web.StreamResponse:
    return await _stream(request, _principal(request), None, EventFilter.from_query(request.query))


async def _stream(request: web.Request, principal: Principal, study_uid: str | None,
                  event_filter: EventFilter) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    if not gw.quota.acquire(principal.subject):
        raise web.HTTPTooManyRequests(
            text=f"this identity already has {gw.quota.limit} open event streams: close one first")
    try:
        last_id = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
        sub, replay = gw.hub.subscribe(study_uid, principal.sites, event_filter, last_id)
        return await stream_events(request, gw.hub, sub, replay, gw.stream)
    finally:
        gw.quota.release(principal.subject)


def _frame(request: web.Request) -> int:
    try:
        return int(request.query.get("frame", "0"))
    except ValueError:
        raise web.HTTPBadRequest(text="frame must be an integer") from None


async def _derived_blob(gw: Gateway, ref: dict[str, Any], what: str) -> bytes:
    """A blob by its digest from the derived area, never by the record's uri: a raw DICOM blob
    is not reachable at all (D-024)."""
    try:
        return await asyncio.get_running_loop().run_in_executor(
            None, gw.blobs.get_by_digest, ref.get("sha256"), DERIVED)
    except StageError as exc:
        status = 503 if exc.transient else 404 if exc.code in ("blob_missing", "blob_uri") else 502
        raise _http_error(status, exc.reason if status != 404 else f"no {what}") from None


async def _pixels(request: web.Request, state: StudyState, sop_uid: str, frame: int) -> Any:
    """decode's full-range pixel array of one image (cached by digest); 404 unless it is one."""
    gw = request.app[GATEWAY]
    found = state.pixels_ref(sop_uid, frame)
    if found is None or gw.blobs is None:
        raise web.HTTPNotFound(text=f"no pixels for {sop_uid} frame {frame}")
    ref, transform = found
    key = gw.pixels.key(str(ref.get("sha256")), transform)
    cached = gw.pixels.get(key)
    if cached is not None:
        return cached
    data = await _derived_blob(gw, ref, "pixels")
    try:
        arr = await asyncio.get_running_loop().run_in_executor(
            None, load_pixels, data, ref.get("shape") or [], transform)
    except ValueError as exc:
        log.warning("refused a pixel blob (study %s): %s", state.study_uid, exc)
        raise web.HTTPNotFound(text=f"no pixels for {sop_uid} frame {frame}") from None
    gw.pixels.put(key, arr)
    return arr


async def _image(request: web.Request) -> web.Response:
    """The display PNG decode made, or with `?center=&width=` a PNG the gateway windows from
    decode's full-range pixels (services/gateway/window.py). Always image/png, always made here."""
    state = _visible_study(request, _principal(request))
    gw = request.app[GATEWAY]
    sop_uid, frame = request.match_info["sop_uid"], _frame(request)
    try:
        window = parse_window(request.query)
    except WindowError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    if window is not None:
        return await _windowed(request, state, sop_uid, frame, window)
    ref = state.display_ref(sop_uid, frame)
    if ref is None or gw.blobs is None:
        raise web.HTTPNotFound(text=f"no display image for {sop_uid} frame {frame}")
    etag = f'"{ref["sha256"]}"'
    cache = {"Cache-Control": "private, max-age=86400, immutable", "ETag": etag}
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers=cache)
    data = await _derived_blob(gw, ref, "display image")
    if not is_png(data):  # served as PNG only if it is one (D-024)
        log.warning("refused to serve a display blob that is not a PNG (study %s)", state.study_uid)
        raise web.HTTPNotFound(text=f"no display image for {sop_uid} frame {frame}")
    return web.Response(body=data, content_type="image/png", headers=cache)


async def _windowed(request: web.Request, state: StudyState, sop_uid: str, frame: int,
                    window: tuple[float, float]) -> web.Response:
    found = state.pixels_ref(sop_uid, frame)
    center, width = window
    etag = f'"{found[0].get("sha256") if found else ""}-{center:g}-{width:g}"'
    cache = {"Cache-Control": "private, max-age=86400, immutable", "ETag": etag}
    if found is not None and request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers=cache)
    pixels = await _pixels(request, state, sop_uid, frame)
    png = await asyncio.get_running_loop().run_in_executor(None, windowed_png, pixels, center, width)
    return web.Response(body=png, content_type="image/png", headers=cache)


async def _pixel_range(request: web.Request) -> web.Response:
    """The values of one image's full-range pixels, for the viewer's window/level controls."""
    state = _visible_study(request, _principal(request))
    sop_uid, frame = request.match_info["sop_uid"], _frame(request)
    pixels = await _pixels(request, state, sop_uid, frame)
    values = await asyncio.get_running_loop().run_in_executor(None, pixel_range, pixels)
    return web.json_response(values)


async def _override(request: web.Request) -> web.Response:
    """A radiologist's verdict on one finding, as the identity the request authenticated (D-042)."""
    gw = request.app[GATEWAY]
    if not request.headers.get("Authorization"):
        # a write never takes the token from the URL (it would land in logs and history)
        raise web.HTTPUnauthorized(text="a verdict needs the Authorization header",
                                   headers={"WWW-Authenticate": 'Bearer realm="radstream"'})
    principal = _principal(request, header_only=True)
    state = _visible_study(request, principal)
    finding_id = request.match_info["finding_id"]
    if not state.has_finding(finding_id):
        raise web.HTTPNotFound(text=f"study {state.study_uid} has no finding {finding_id[:200]}")
    if gw.writer is None or gw.auth.open_access:
        raise web.HTTPServiceUnavailable(text="overrides are off on this gateway: it has no signing key "
                                              "(--signing-key), or it runs --no-auth and knows nobody")
    if request.content_type != "application/json":
        raise web.HTTPBadRequest(text="the body must be application/json")
    try:
        verdict = parse_verdict(await _bounded_body(request, MAX_BODY_BYTES))
    except VerdictError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    try:
        record = await asyncio.get_running_loop().run_in_executor(
            None, gw.writer.write, state.study_uid, finding_id, verdict, principal.subject)
    except RuntimeError as exc:  # DeliveryFailed: the broker did not acknowledge it
        log.error("override of finding %s not written: %s", finding_id, exc)
        raise web.HTTPServiceUnavailable(text="the verdict was not written (the bus did not acknowledge it); "
                                              "try again") from None
    log.info("override of finding %s in study %s: %s by %s", finding_id, state.study_uid, verdict.verdict,
             principal.subject)
    return web.json_response({"study_uid": state.study_uid, "finding_id": finding_id,
                              "override": override_view(record)}, status=201)


async def _bounded_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length,
                                            text=f"the body is over {limit} bytes")
    body = bytearray()
    async for chunk in request.content.iter_chunked(1024):
        body += chunk
        if len(body) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body),
                                                text=f"the body is over {limit} bytes")
    return bytes(body)


def _http_error(status: int, text: str) -> web.HTTPException:
    cls = {404: web.HTTPNotFound, 502: web.HTTPBadGateway, 503: web.HTTPServiceUnavailable}[status]
    return cls(text=text)
