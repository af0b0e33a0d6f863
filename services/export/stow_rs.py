"""The STOW-RS client of `radstream export stow`: one Store Instances request per result (PS3.18 10.5).

`POST {url}/studies/{study}` with `multipart/related; type="application/dicom"`, one part
per object. The answer is classified here and nowhere else:
- 200, or 202 whose FailedSOPSequence is empty (warnings only): stored;
- 202 or 409 with failed parts, and the other 4xx (400, 401, 403, 404, 413, 415): a refusal,
  `PermanentError` code `stow_refused` with the HTTP status and each part's FailureReason
  and its meaning, or the server's own words (Warning header, error body);
- 408, 429, 5xx, no connection, no answer in time: `TransientError` code `pacs_unreachable`,
  retried until the server answers (streams/holds.py).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from io import BytesIO

import pydicom
import requests
from pydicom.dataset import Dataset
from radstream.domain.dicom.store_status import StoreStatus
from radstream.domain.dicom.stow import failed_parts, referenced_parts
from radstream.domain.errors import PermanentError, TransientError
from radstream.services.pull import dicomweb_session

RETRYABLE_STATUS = {408, 425, 429}  # and every 5xx
TIMEOUT_S = (10.0, 120.0)  # connect, read


class StowRefused(PermanentError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason, code="stow_refused")


class StowUnreachable(TransientError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason, code="pacs_unreachable")


def part10(ds: Dataset) -> bytes:
    """The dataset as a DICOM file (Part 10, with its file meta), the body of one part."""
    buffer = BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def multipart_related(parts: Sequence[bytes]) -> tuple[bytes, str]:
    """The request body and its Content-Type: one `application/dicom` part per file (PS3.18 8.6.1.2)."""
    boundary = f"radstream-{uuid.uuid4().hex}"
    body = BytesIO()
    for data in parts:
        body.write(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode())
        body.write(data)
        body.write(b"\r\n")
    body.write(f"--{boundary}--\r\n".encode())
    return body.getvalue(), f'multipart/related; type="application/dicom"; boundary={boundary}'


class StowSender:
    """Stores the objects of one study on a DICOMweb server and classifies the answer."""

    def __init__(self, url: str, token: str | None = None, timeout_s: float | tuple[float, float] = TIMEOUT_S) -> None:
        self.session, self.root = dicomweb_session(url, token, flag="--url")
        self.timeout_s = timeout_s

    def store(self, study_uid: str, datasets: Sequence[Dataset]) -> None:
        """One STOW-RS request for the study; returns when every part is stored, else raises."""
        body, content_type = multipart_related([part10(ds) for ds in datasets])
        target = f"{self.root}/studies/{study_uid}"
        try:
            response = self.session.post(target, data=body, timeout=self.timeout_s,
                                         headers={"Content-Type": content_type, "Accept": "application/dicom+json"})
        except requests.Timeout:
            raise StowUnreachable(f"STOW-RS {target}: no answer in time") from None
        except requests.RequestException as exc:
            raise StowUnreachable(f"STOW-RS {target}: server unreachable ({_root_cause(exc)})") from None
        self._classify(target, response, [str(ds.SOPInstanceUID) for ds in datasets])

    def _classify(self, target: str, response: requests.Response, sent: list[str]) -> None:
        status = response.status_code
        if status >= 500 or status in RETRYABLE_STATUS:
            raise StowUnreachable(f"STOW-RS {target}: HTTP {status} {response.reason} ({_said(response)})")
        if status not in (200, 202, 409):
            raise StowRefused(f"STOW-RS {target}: HTTP {status} {response.reason} ({_said(response)})")
        answer = _json(response)
        failed = failed_parts(answer)
        if failed or status == 409:
            details = "; ".join(f"{p.sop_instance_uid or '?'}: "
                                f"{StoreStatus(p.code) if p.code is not None else 'no FailureReason'}"
                                for p in failed) or _said(response)
            raise StowRefused(f"STOW-RS {target}: HTTP {status}, {len(failed) or len(sent)} of {len(sent)} "
                              f"instance(s) refused: {details}")
        if answer:
            referenced = {p.sop_instance_uid for p in referenced_parts(answer)}
            missing = [sop for sop in sent if sop not in referenced]
            if missing:
                raise StowRefused(f"STOW-RS {target}: HTTP {status}, but the response references neither as "
                                  f"stored nor as failed {len(missing)} of {len(sent)} instance(s): {missing[0]}")


def _json(response: requests.Response) -> dict:
    if not response.content or "json" not in response.headers.get("Content-Type", ""):
        return {}
    try:
        answer = response.json()
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def _said(response: requests.Response) -> str:
    """What the server said besides the status: its Warning header, its error message, or its body."""
    if warning := response.headers.get("Warning"):
        return warning
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        words = [str(body[k]) for k in ("Message", "Details", "error", "message") if body.get(k)]
        if words:
            return ": ".join(words)[:300]
        return json.dumps(body)[:300]
    text = response.text.strip().replace("\n", " ")
    return text[:300] or "no body"


def _root_cause(exc: BaseException) -> str:
    while exc.__context__ is not None and exc.__context__ is not exc:
        exc = exc.__context__
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
