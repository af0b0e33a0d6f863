"""A small recording FHIR server for tests. No FHIR server package (HAPI, a Python FHIR server)
can be installed here, so this stands in for one, and says what it checks:

- every POSTed transaction Bundle is validated with fhir.resources (R4B models), the Bundle and
  each entry's resource by its own class; an invalid one is answered 400 with an
  OperationOutcome and recorded in `invalid`;
- conditional create (`request.ifNoneExist`) as the FHIR spec has it: when a resource of that
  type was already created with that query, the entry is answered `200 OK` with the existing
  id and nothing is stored; otherwise it is stored under a new id, `201 Created`;
- `answer` can make it refuse ("reject": 422 with an OperationOutcome) or be down ("down": 503).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

REJECT_TEXT = "Patient?identifier did not match any Patient"


@dataclass
class FhirServer:
    answer: str = "ok"
    requests: list[dict[str, Any]] = field(default_factory=list)  # {"headers", "bundle"}
    invalid: list[str] = field(default_factory=list)
    refused_while_down: int = 0
    stored: dict[str, dict] = field(default_factory=dict)  # "Type/id" -> resource
    _created: dict[tuple[str, str], str] = field(default_factory=dict)  # (type, ifNoneExist) -> id
    httpd: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/fhir"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def transaction(self, bundle: dict) -> dict:
        """Apply one validated transaction (conditional creates) and return the transaction-response."""
        entries = []
        for entry in bundle["entry"]:
            kind, query = entry["request"]["url"], entry["request"].get("ifNoneExist", "")
            existing = self._created.get((kind, query)) if query else None
            if existing:
                entries.append({"response": {"status": "200 OK", "location": f"{kind}/{existing}"}})
                continue
            new_id = str(len(self.stored) + 1)
            self.stored[f"{kind}/{new_id}"] = entry["resource"]
            if query:
                self._created[(kind, query)] = new_id
            entries.append({"response": {"status": "201 Created", "location": f"{kind}/{new_id}/_history/1"}})
        return {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}


def _outcome(code: str, text: str) -> dict:
    return {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": text}]}


def validate_bundle(bundle: dict) -> None:
    """Raise (pydantic's ValidationError, or KeyError) unless the Bundle and every resource in it validate."""
    Bundle.model_validate(bundle)
    for entry in bundle["entry"]:
        resource = entry["resource"]
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def start_fhir_server() -> FhirServer:
    server = FhirServer()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if server.answer == "down":
                server.refused_while_down += 1
                return self._send(503, _outcome("transient", "the server is restarting"))
            try:
                bundle = json.loads(body)
                validate_bundle(bundle)
            except Exception as exc:  # noqa: BLE001 - whatever the validator raises is recorded
                server.invalid.append(f"{type(exc).__name__}: {exc}")
                return self._send(400, _outcome("invalid", str(exc)[:500]))
            server.requests.append({"headers": dict(self.headers), "bundle": bundle})
            if server.answer == "reject":
                return self._send(422, _outcome("processing", REJECT_TEXT))
            self._send(200, server.transaction(bundle))

        def _send(self, status: int, doc: dict) -> None:
            data = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.httpd.serve_forever, daemon=True).start()
    return server
