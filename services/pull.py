"""`radstream pull`: fetch a study (or one series) from a DICOMweb server into the pipeline.

For priors, re-runs, and a PACS that can only be queried. QIDO-RS lists the instances,
WADO-RS retrieves each one in the transfer syntax the server holds it in, and each goes
through the receiver's one publish path (`InstanceSink.accept`): blob stored, DicomArrived
acknowledged by the broker, with `expected_instances` = the QIDO-RS count, so the qc stage
finalises the study when the last one lands instead of after the quiet period.

The blob is the bytes of the WADO-RS part as the server sent them (pydicom's
`FileDataset.buffer`), not a re-encoding, so its sha256 is the server's file's.

Failures of the whole pull (server unreachable, 401/403 on the query, 401 on a retrieve,
nothing to pull, broker or blob store unavailable) raise `PullError` with one human line. A
bad instance (gone between the query and the retrieve, refused alone (403), not DICOM, or
another instance than asked) is reported and counted, and the others still go. A re-run
repeats events with the same idempotency keys (SOP UID + sha256), which downstream drops.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from io import BytesIO
from urllib.parse import ParseResult, unquote, urlparse, urlunparse

import requests
from dicomweb_client import DICOMwebClient
from pydicom.errors import InvalidDicomError
from pydicom.uid import RE_VALID_UID
from radstream.services.receiver import CANNOT_UNDERSTAND, DATASET_TOO_LARGE, SUCCESS, InstanceSink

log = logging.getLogger("radstream.pull")

DEFAULT_SITE = "DICOMWEB"  # the events' site, as for STOW-RS without a site-scoped token
TIMEOUT_S = (10.0, 120.0)  # connect, read: one instance of a large study can take a while
ATTEMPTS = 3  # dicomweb-client retries refused connections and 408/429/503/504 with backoff
BACKOFF_MS = 250

# QIDO-RS instance attributes (PS3.18 Table 6.7.1-2a), by tag as in DICOM JSON.
STUDY_UID, SERIES_UID, SOP_UID = "0020000D", "0020000E", "00080018"


class PullError(Exception):
    """The pull as a whole failed; the message is one line for a human."""


class BadInstance(Exception):
    """One instance could not be retrieved; the pull goes on."""


@dataclass(frozen=True)
class RemoteInstance:
    study_uid: str
    series_uid: str
    sop_uid: str


@dataclass
class PullReport:
    listed: int
    stored: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (SOP Instance UID, reason)


Progress = Callable[[str, int, int, RemoteInstance, str | None], None]  # ("pulled"|"failed", n, total, inst, reason)


def dicomweb_session(url: str, token: str | None = None, flag: str = "--dicomweb") -> tuple[requests.Session, str]:
    """A requests session for a DICOMweb root and the root without credentials: a bearer token when given;
    `user:password@` in the URL becomes HTTP Basic (Orthanc's own login), kept out of every message.
    Shared by `pull` and `export stow`; PullError when `url` is not an http(s) URL."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise PullError(f"{flag} must be an http(s) URL of a DICOMweb root, got {_redacted(parsed)!r}")
    session = requests.Session()
    if parsed.username is not None:
        session.auth = (unquote(parsed.username), unquote(parsed.password or ""))
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    return session, _redacted(parsed).rstrip("/")


def open_client(url: str, token: str | None = None) -> DICOMwebClient:
    """A dicomweb-client on the DICOMweb root (e.g. http://pacs:8042/dicom-web), authenticated as
    `dicomweb_session` says."""
    session, root = dicomweb_session(url, token)
    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        client = DICOMwebClient(root, session=session, headers=headers, timeout=TIMEOUT_S)
    except ValueError as exc:
        raise PullError(f"--dicomweb {root}: {exc}") from None
    client.set_http_retry_params(max_attempts=ATTEMPTS, wait_exponential_multiplier=BACKOFF_MS)
    return client


def _redacted(parsed: ParseResult) -> str:
    """The URL without its user and password."""
    host = parsed.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parsed.port is not None:
        netloc += f":{parsed.port}"
    return urlunparse(parsed._replace(netloc=netloc))


def check_uid(value: str, flag: str) -> str:
    """The UID, or PullError: dicomweb-client would raise on it, after the server was asked nothing."""
    if len(value) > 64 or not RE_VALID_UID.match(value):
        raise PullError(f"{flag} {value!r} is not a DICOM UID")
    return value


def list_instances(client: DICOMwebClient, study: str, series: str | None = None) -> list[RemoteInstance]:
    """QIDO-RS: every instance of the study (or series), once each, in the server's order."""
    try:
        found = client.search_for_instances(study_instance_uid=study, series_instance_uid=series,
                                            get_remaining=True)
    except requests.RequestException as exc:
        raise PullError(f"QIDO-RS {client.base_url}: {describe(exc)}") from None
    except ValueError as exc:  # a body that is not DICOM JSON
        raise PullError(f"QIDO-RS {client.base_url}: not a DICOM JSON answer ({exc})") from None
    instances: dict[str, RemoteInstance] = {}
    for item in found:
        sop = _value(item, SOP_UID)
        series_uid = _value(item, SERIES_UID) or series
        if sop and series_uid:
            instances.setdefault(sop, RemoteInstance(_value(item, STUDY_UID) or study, series_uid, sop))
        else:
            log.warning("QIDO-RS listed an instance without SOP/Series Instance UID: passed over")
    return list(instances.values())


def find_instances(client: DICOMwebClient, study: str, series: str | None = None) -> list[RemoteInstance]:
    """`list_instances`, or PullError when there is nothing to pull."""
    instances = list_instances(client, study, series)
    if not instances:
        what = f"series {series} of study {study}" if series else f"study {study}"
        raise PullError(f"{what} not found on {client.base_url} (QIDO-RS listed 0 instances)")
    return instances


def pull(client: DICOMwebClient, sink: InstanceSink, instances: list[RemoteInstance], site: str = DEFAULT_SITE,
         progress: Progress | None = None) -> PullReport:
    """Retrieve and publish each listed instance; PullError when the pull cannot go on."""
    report = PullReport(listed=len(instances))
    for n, instance in enumerate(instances, 1):
        try:
            encoded = retrieve(client, instance)
        except BadInstance as exc:
            report.failed.append((instance.sop_uid, str(exc)))
            _tell(progress, "failed", n, report.listed, instance, str(exc))
            continue
        status = sink.accept(encoded, site, expected_instances=report.listed)
        if status == SUCCESS:
            report.stored.append(instance.sop_uid)
            _tell(progress, "pulled", n, report.listed, instance, None)
        elif status in (CANNOT_UNDERSTAND, DATASET_TOO_LARGE):
            reason = ("not a DICOM instance with Study/Series/SOP Instance UIDs" if status == CANNOT_UNDERSTAND
                      else "over the dataset cap (RADSTREAM_RECEIVER_MAX_MB), on the wire or inflated")
            report.failed.append((instance.sop_uid, reason))
            _tell(progress, "failed", n, report.listed, instance, reason)
        else:  # OUT_OF_RESOURCES: every later instance would wait for the same broker or disk
            raise PullError(f"blob store or broker unavailable at instance {n}/{report.listed} "
                            f"({len(report.stored)} stored); run the pull again later")
    return report


def retrieve(client: DICOMwebClient, instance: RemoteInstance) -> bytes:
    """WADO-RS, any transfer syntax (as stored): the part's bytes as sent."""
    try:
        with warnings.catch_warnings():  # a server that sends a bare application/dicom body: read anyway
            warnings.simplefilter("ignore", UserWarning)
            ds = client.retrieve_instance(instance.study_uid, instance.series_uid, instance.sop_uid)
    except requests.HTTPError as exc:
        if exc.response is not None and exc.response.status_code == 401:  # the token, not this instance
            raise PullError(f"WADO-RS {client.base_url}: {describe(exc)}") from None
        raise BadInstance(f"WADO-RS: {describe(exc, 'instance')}") from None
    except requests.ConnectionError as exc:
        raise PullError(f"WADO-RS {client.base_url}: {describe(exc)}") from None
    except requests.RequestException as exc:  # a read timeout, a broken body: this instance only
        raise BadInstance(f"WADO-RS: {describe(exc)}") from None
    except (InvalidDicomError, ValueError, EOFError, OSError, IndexError, KeyError) as exc:
        raise BadInstance(f"WADO-RS answer is not a DICOM instance ({type(exc).__name__})") from None
    if str(ds.get("SOPInstanceUID", "")) != instance.sop_uid:
        raise BadInstance(f"WADO-RS returned another instance ({ds.get('SOPInstanceUID', 'no SOP Instance UID')})")
    buffer = getattr(ds, "buffer", None)
    if isinstance(buffer, BytesIO):
        return buffer.getvalue()
    out = BytesIO()  # not reached with dicomweb-client's readers; kept so a change there cannot lose data
    ds.save_as(out, enforce_file_format=False)
    return out.getvalue()


def describe(exc: requests.RequestException, what: str = "study") -> str:
    """One line for a requests failure: the HTTP status and what it means here, or why nothing answered."""
    response = getattr(exc, "response", None)
    if isinstance(exc, requests.HTTPError) and response is not None:
        status = response.status_code
        meaning = {401: "unauthorized: pass a valid --token", 403: f"forbidden: the token may not read this {what}",
                   404: "not found"}.get(status, response.reason or "error")
        return f"HTTP {status} {meaning}"
    if isinstance(exc, requests.ConnectionError):
        return f"server unreachable ({_root_cause(exc)})"
    if isinstance(exc, requests.Timeout):
        return "no answer in time"
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def _root_cause(exc: BaseException) -> str:
    """The innermost reason of a requests/urllib3 connection error (e.g. 'Connection refused')."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__
    text = str(exc)
    if "] " in text:  # "[Errno 111] Connection refused"
        text = text.split("] ", 1)[1]
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _value(item: dict, tag: str) -> str | None:
    values = item.get(tag, {}).get("Value") or [None]
    return str(values[0]) if values[0] else None


def _tell(progress: Progress | None, what: str, n: int, total: int, instance: RemoteInstance,
          reason: str | None) -> None:
    if progress is not None:
        progress(what, n, total, instance, reason)
