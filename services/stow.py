"""STOW-RS ingest (PS3.18 10.5): `POST /dicom-web/studies[/{study}]` into the receiver's InstanceSink.

The C-STORE guarantee holds per part: a part is in the ReferencedSOPSequence only
after `InstanceSink.accept` stored its blob and the broker acknowledged its
DicomArrived event (the one publish path, shared with the C-STORE SCP). A bad part
fails alone, with its FailureReason in the FailedSOPSequence and a human reason in
a `Warning: 299` header; the others are stored.

Parts are read one at a time, so memory is bounded by the per-part limit. A request
over the per-request limit is answered 413: when it is refused from its
Content-Length nothing is stored; when a chunked body passes the limit midway, the
parts before stay stored (a retry of the whole request repeats their events, with
the same idempotency keys, which downstream drops).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from io import BytesIO

import pydicom
from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.helpers import parse_mimetype
from pydicom.errors import InvalidDicomError

from radstream.domain.dicom.stow import (
    CANNOT_UNDERSTAND,
    OUT_OF_RESOURCES,
    STUDY_UID_MISMATCH,
    TRANSFER_SYNTAX_NOT_SUPPORTED,
    PartOutcome,
    store_instances_response,
    store_instances_status,
)
from radstream.services.gateway.auth import AuthError, Authenticator, Principal
from radstream.services.receiver import DATASET_TOO_LARGE, SUCCESS, TRANSFER_SYNTAXES, InstanceSink

log = logging.getLogger("radstream.stow")

DICOM_JSON = "application/dicom+json"
DEFAULT_SITE = "DICOMWEB"  # the events' site when the token is not scoped to exactly one site
MB = 1024 * 1024


@dataclass(frozen=True)
class StowLimits:
    max_request_bytes: int = 2048 * MB
    max_part_bytes: int = 512 * MB


class RequestTooLarge(Exception):
    pass


class StowMultipartReader(MultipartReader):
    """aiohttp's reader, taking boundaries longer than RFC 2046's 70 characters: Orthanc's DICOMweb
    client (1.10, plugin 1.7) sends a 73-character one, and refusing the PACS helps nobody."""

    MAX_BOUNDARY = 200

    def _get_boundary(self) -> str:
        boundary = self._mimetype.parameters.get("boundary", "")
        if not boundary or len(boundary) > self.MAX_BOUNDARY:
            raise ValueError(f"multipart boundary missing or over {self.MAX_BOUNDARY} characters")
        return boundary


@dataclass(frozen=True)
class PartHeader:
    study_uid: str
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax: str


def read_part_header(encoded: bytes) -> PartHeader:
    """The UIDs a response and the checks need; ValueError when this is not a PS3.10 DICOM file."""
    try:
        ds = pydicom.dcmread(BytesIO(encoded), stop_before_pixels=True,
                             specific_tags=["StudyInstanceUID", "SOPClassUID", "SOPInstanceUID"])
        header = PartHeader(str(ds.get("StudyInstanceUID", "")), str(ds.get("SOPClassUID", "")),
                            str(ds.get("SOPInstanceUID", "")), str(ds.file_meta.get("TransferSyntaxUID", "")))
    except (InvalidDicomError, AttributeError, EOFError, OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not a DICOM PS3.10 file ({type(exc).__name__})") from None
    return header


def site_of(principal: Principal) -> str:
    """The site recorded on the events: the token's site when it is scoped to exactly one."""
    if principal.sites is not None and len(principal.sites) == 1:
        return next(iter(principal.sites))
    return DEFAULT_SITE


class StowHandler:
    """The request handler: auth, content type, limits, then one outcome per part."""

    def __init__(self, sink: InstanceSink, auth: Authenticator, limits: StowLimits) -> None:
        self.sink, self.auth, self.limits = sink, auth, limits

    async def store(self, request: web.Request) -> web.Response:
        try:
            principal = self.auth.authenticate(_bearer(request))
        except AuthError as exc:
            return _error(401, str(exc), {"WWW-Authenticate": 'Bearer realm="radstream"'})
        media = request.content_type
        part_type = _type_parameter(request)
        if media != "multipart/related" or part_type not in ("application/dicom", None):
            return _error(415, f"expected multipart/related; type=\"application/dicom\", got {request.headers.get('Content-Type', 'none')}")
        if request.content_length is not None and request.content_length > self.limits.max_request_bytes:
            return _error(413, f"request of {request.content_length} bytes is over the limit of "
                               f"{self.limits.max_request_bytes} bytes")
        study = request.match_info.get("study")
        try:
            reader = StowMultipartReader(request.headers, request.content)
        except (ValueError, KeyError, AssertionError) as exc:
            return _error(400, f"not a multipart body: {exc}")
        outcomes: list[PartOutcome] = []
        try:
            await self._read_parts(reader, study, site_of(principal), outcomes)
        except RequestTooLarge as exc:
            return _error(413, str(exc))
        except ValueError as exc:  # a broken multipart framing: the parts read so far keep their outcome
            log.warning("STOW-RS body ended badly after %d part(s): %s", len(outcomes), exc)
            outcomes.append(PartOutcome(failure_reason=CANNOT_UNDERSTAND, reason=f"malformed multipart body: {exc}"))
        status = store_instances_status(outcomes)
        headers = [("Warning", f'299 radstream "{o.sop_instance_uid or "part"}: {o.reason}"')
                   for o in outcomes if not o.stored]
        response = web.json_response(store_instances_response(outcomes), status=status, content_type=DICOM_JSON)
        for name, value in headers:
            response.headers.add(name, value)
        return response

    async def _read_parts(self, reader: MultipartReader, study: str | None, site: str,
                          outcomes: list[PartOutcome]) -> None:
        total = 0
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):  # a nested multipart: not a DICOM part
                outcomes.append(PartOutcome(failure_reason=CANNOT_UNDERSTAND, reason="nested multipart"))
                continue
            data, size = await self._read_part(part, self.limits.max_request_bytes - total)
            total += size
            if data is None:
                outcomes.append(PartOutcome(failure_reason=OUT_OF_RESOURCES,
                                            reason=f"part of {size} bytes is over the limit of {self.limits.max_part_bytes}"))
                continue
            outcomes.append(await self._store_part(part, data, study, site))

    async def _read_part(self, part: BodyPartReader, room: int) -> tuple[bytes | None, int]:
        """(bytes, size), or (None, size) when over the per-part limit; RequestTooLarge past `room`."""
        chunks, size = [], 0
        while chunk := await part.read_chunk(1 << 20):
            size += len(chunk)
            if size > room:
                raise RequestTooLarge(f"request is over the limit of {self.limits.max_request_bytes} bytes")
            if size <= self.limits.max_part_bytes:
                chunks.append(chunk)
            else:
                chunks.clear()  # keep reading to the part's end, keeping nothing
        return (b"".join(chunks) if size <= self.limits.max_part_bytes else None), size

    async def _store_part(self, part: BodyPartReader, data: bytes, study: str | None, site: str) -> PartOutcome:
        ctype = part.headers.get("Content-Type", "application/dicom").split(";")[0].strip().lower()
        if ctype != "application/dicom":
            return PartOutcome(failure_reason=CANNOT_UNDERSTAND, reason=f"part of type {ctype}, not application/dicom")
        try:
            header = read_part_header(data)
        except ValueError as exc:
            return PartOutcome(failure_reason=CANNOT_UNDERSTAND, reason=str(exc))
        outcome = PartOutcome(header.sop_class_uid, header.sop_instance_uid)
        if study is not None and header.study_uid != study:
            return _failed(outcome, STUDY_UID_MISMATCH, f"of study {header.study_uid}, not {study}")
        if header.transfer_syntax not in TRANSFER_SYNTAXES:
            return _failed(outcome, TRANSFER_SYNTAX_NOT_SUPPORTED, f"transfer syntax {header.transfer_syntax} not supported")
        status = await asyncio.get_running_loop().run_in_executor(None, self.sink.accept, data, site)
        if status == SUCCESS:
            return outcome
        reason = {CANNOT_UNDERSTAND: "no Study/Series/SOP Instance UID",
                  DATASET_TOO_LARGE: "over the dataset cap, as sent or inflated",
                  OUT_OF_RESOURCES: "blob store or broker unavailable: retry later"}.get(status, "refused")
        return _failed(outcome, status, reason)


def _failed(outcome: PartOutcome, code: int, reason: str) -> PartOutcome:
    return PartOutcome(outcome.sop_class_uid, outcome.sop_instance_uid, code, reason)


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _type_parameter(request: web.Request) -> str | None:
    value = parse_mimetype(request.headers.get("Content-Type", "")).parameters.get("type")
    return value.strip('"').lower() if value else None


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    log.info("STOW-RS answered %d: %s", status, message)
    return web.json_response({"error": message}, status=status, headers=headers)


def create_stow_app(handler: StowHandler) -> web.Application:
    app = web.Application()  # bodies are streamed part by part (never read whole); the limits are StowLimits
    app.router.add_post("/dicom-web/studies", handler.store)
    app.router.add_post("/dicom-web/studies/{study}", handler.store)
    return app


class StowServer:
    """The STOW-RS app on its own event loop in a thread, beside the C-STORE SCP."""

    def __init__(self, handler: StowHandler, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._app = create_stow_app(handler)
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(self._app, access_log=None)
        self._thread = threading.Thread(target=self._loop.run_forever, name="stow-rs", daemon=True)

    def start(self) -> "StowServer":
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, self.host, self.port)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001 (the bound port when 0 was asked)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/dicom-web"

    def stop(self) -> None:
        """Finish the requests in flight, then stop the loop."""
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
