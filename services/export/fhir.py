"""`radstream export fhir`: each final result as a FHIR R4 transaction Bundle, committed on a 2xx.

The Bundle is the pure mapping's (fhir_bundle.py); this shell POSTs it to the server's base
URL and classifies the answer: 2xx commits; 408, 425, 429 and 5xx, a refused connection or a
timeout are no answer, retried until the server answers; any other 4xx (and a 3xx, never
followed) is a refusal, dead-lettered with the status and the OperationOutcome's text.
Errors name the server by scheme, host and path only.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from radstream.domain.dicom.patient import PatientContext
from radstream.domain.errors import PermanentError, TransientError
from radstream.services.export.fhir_bundle import transaction_bundle
from radstream.services.export.stage import ExportStage
from radstream.streams.blobstore import BlobStore

FHIR_JSON = "application/fhir+json"
RETRYABLE_STATUS = {408, 425, 429}
MAX_ERROR_BODY = 64 * 1024


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A POST is never re-sent elsewhere: the 3xx comes back as an HTTPError."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def shown_url(url: str) -> str:
    """The URL without credentials or query, for messages and /healthz."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"


def operation_outcome_text(body: bytes) -> str:
    """The issues of an OperationOutcome (severity, code, details or diagnostics), else the body's start."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body[:300].decode("utf-8", "replace").strip()
    if not isinstance(doc, dict) or doc.get("resourceType") != "OperationOutcome":
        return json.dumps(doc)[:300]
    texts = []
    for issue in doc.get("issue") or []:
        detail = (issue.get("details") or {}).get("text") or issue.get("diagnostics") or ""
        texts.append(f"{issue.get('severity', '?')} {issue.get('code', '?')}: {detail}".strip())
    return "; ".join(texts) or "an OperationOutcome without issues"


class FhirExport(ExportStage):
    """study.results -> a FHIR R4 server (an EHR), one transaction per result."""

    name = "export-fhir"
    target = "fhir"

    def __init__(self, store: BlobStore, url: str, token: str | None = None, timeout_s: float = 30.0,
                 not_for_clinical_use: Any = None, patient_system: str | None = None,
                 unhealthy_after_s: float = 300.0) -> None:
        super().__init__(store, unhealthy_after_s)
        self.url = url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s
        self.patient_system = patient_system
        self.not_for_clinical_use = not_for_clinical_use or (lambda versions: False)

    def send(self, result: dict[str, Any], context: PatientContext) -> None:
        bundle = transaction_bundle(result, context, self.not_for_clinical_use(result["model_versions"]),
                                    self.patient_system)
        headers = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url, data=json.dumps(bundle).encode(), headers=headers, method="POST")
        what = f"transaction of study {result['study_uid']} (result {result['idempotency_key']})"
        server = shown_url(self.url)
        try:
            with _OPENER.open(request, timeout=self.timeout_s) as response:
                response.read()
                return
        except urllib.error.HTTPError as exc:
            status, text = exc.code, operation_outcome_text(exc.read(MAX_ERROR_BODY))
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise TransientError(f"{what}: {server} did not answer ({reason})", code="fhir_no_answer") from None
        message = f"{server} answered HTTP {status} to the {what}: {text or 'no body'}"
        if status in RETRYABLE_STATUS or status >= 500:
            raise TransientError(message, code="fhir_no_answer")
        if 300 <= status < 400:
            raise PermanentError(message + " (a redirect is never followed)", code="fhir_rejected")
        raise PermanentError(message, code="fhir_rejected")

    def health(self) -> dict[str, Any]:
        return {**super().health(), "peer": shown_url(self.url)}
