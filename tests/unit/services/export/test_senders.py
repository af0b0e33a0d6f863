"""How the C-STORE and STOW-RS senders classify a peer's answer: stored, refused (permanent, with the
status and its meaning) or no answer (transient). Orthanc (tests/integration/test_export_pacs.py)
always says yes to a well-formed object, so the refusing peers here are a pynetdicom Storage SCP
answering the status under test and a small HTTP server answering STOW-RS statuses and bodies (PS3.18
10.5.3); both are real network peers, only their answers are chosen by the test."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pydicom
import pytest
from pynetdicom import AE, AllStoragePresentationContexts, evt
from radstream.domain.errors import PermanentError, TransientError
from radstream.services.broker import free_port
from radstream.services.demo import real_radiographs
from radstream.services.export.c_store import CStoreSender, Peer
from radstream.services.export.stow_rs import StowSender


@pytest.fixture(scope="module")
def rg1() -> pydicom.Dataset:
    return pydicom.dcmread(real_radiographs()[0])


@pytest.fixture
def scp() -> Iterator[dict]:
    """A Storage SCP (AE SCP) answering `answer["status"]` to every C-STORE; `answer["got"]` counts them."""
    answer = {"status": 0x0000, "got": 0}

    def on_store(event) -> int:
        answer["got"] += 1
        return answer["status"]

    ae = AE(ae_title="SCP")
    ae.supported_contexts = AllStoragePresentationContexts
    ae.require_called_aet = True  # as a PACS does: an association to another AE title is rejected
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    answer["port"] = port
    yield answer
    server.shutdown()


@pytest.mark.parametrize("status", [0x0000, 0xB000, 0xB006, 0xB007])
def test_success_and_warnings_are_stored(scp: dict, rg1, status: int) -> None:
    scp["status"] = status
    statuses = CStoreSender(Peer("SCP", "127.0.0.1", scp["port"])).store([rg1, rg1])
    assert [s.code for s in statuses] == [status, status] and scp["got"] == 2


@pytest.mark.parametrize(("status", "meaning"), [(0xA700, "Refused: Out of Resources"),
                                                 (0xA900, "Error: Data Set does not match SOP Class"),
                                                 (0xC000, "Error: Cannot understand"),
                                                 (0x0122, "Refused: SOP Class not supported")])
def test_a_refusal_is_permanent_with_the_status_in_hex(scp: dict, rg1, status: int, meaning: str) -> None:
    scp["status"] = status
    with pytest.raises(PermanentError) as refused:
        CStoreSender(Peer("SCP", "127.0.0.1", scp["port"])).store([rg1])
    assert refused.value.code == "dimse_refused"
    assert f"0x{status:04X} {meaning}" in refused.value.reason and rg1.SOPInstanceUID in refused.value.reason


def test_a_rejected_association_is_permanent_and_no_peer_is_transient(scp: dict, rg1) -> None:
    with pytest.raises(PermanentError) as rejected:
        CStoreSender(Peer("NOT-SCP", "127.0.0.1", scp["port"])).store([rg1])
    assert rejected.value.code == "association_rejected" and "Called AE title not recognised" in rejected.value.reason
    with pytest.raises(TransientError) as down:
        CStoreSender(Peer("SCP", "127.0.0.1", free_port()), timeout_s=3).store([rg1])
    assert down.value.code == "pacs_unreachable" and "unreachable" in down.value.reason


@pytest.mark.parametrize(("text", "ok"), [("ORTHANC@pacs:4242", True), ("A@[::1]:104", True), ("pacs:4242", False),
                                          ("ORTHANC@pacs", False), ("WAY-TOO-LONG-AE-TITLE@h:1", False),
                                          ("A@h:0", False)])
def test_peer_parsing(text: str, ok: bool) -> None:
    if ok:
        assert str(Peer.parse(text)).startswith(text.split("@")[0])
    else:
        with pytest.raises(ValueError, match="--to"):
            Peer.parse(text)


class _Stow(BaseHTTPRequestHandler):
    answers: ClassVar[list[tuple[int, dict | str, dict]]] = []
    requests: ClassVar[list[tuple[str, dict, bytes]]] = []

    def do_POST(self) -> None:  # http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.requests.append((self.path, dict(self.headers), body))
        status, answer, headers = self.answers.pop(0)
        data = json.dumps(answer).encode() if isinstance(answer, dict) else answer.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/dicom+json" if isinstance(answer, dict) else "text/plain")
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def stow_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Stow.answers, _Stow.requests = [], []
    yield f"http://127.0.0.1:{server.server_port}/dicom-web"
    server.shutdown()


def _part(sop: str, reason: int | None = None, tag: str = "00081199") -> dict:
    item = {"00081155": {"vr": "UI", "Value": [sop]}}
    if reason is not None:
        item["00081197" if tag == "00081198" else "00081196"] = {"vr": "US", "Value": [reason]}
    return {tag: {"vr": "SQ", "Value": [item]}}


def test_stow_statuses(stow_server: str, rg1) -> None:
    sop, study = str(rg1.SOPInstanceUID), str(rg1.StudyInstanceUID)
    sender = StowSender(stow_server, token="t0k")
    _Stow.answers = [
        (200, _part(sop), {}),
        (202, _part(sop, 0xB000), {}),  # stored with a warning
        (202, _part(sop, 0xA900, tag="00081198"), {}),
        (409, _part(sop, 0xC000, tag="00081198"), {}),
        (400, "bad multipart", {"Warning": "299 pacs: missing boundary"}),
        (503, "busy", {}),
        (200, {"00081199": {"vr": "SQ", "Value": []}}, {}),  # says stored, names nothing
    ]
    sender.store(study, [rg1])
    path, headers, body = _Stow.requests[0]
    assert path == f"/dicom-web/studies/{study}" and headers["Authorization"] == "Bearer t0k"
    assert headers["Content-Type"].startswith('multipart/related; type="application/dicom"; boundary=')
    assert b"Content-Type: application/dicom\r\n\r\n" in body and rg1.SOPInstanceUID.encode() in body
    sender.store(study, [rg1])
    for expected in ("HTTP 202, 1 of 1 instance(s) refused: " + sop + ": 0xA900 Error: Data Set does not match SOP Class",
                     "HTTP 409, 1 of 1 instance(s) refused: " + sop + ": 0xC000 Error: Cannot understand",
                     "HTTP 400 Bad Request (299 pacs: missing boundary)"):
        with pytest.raises(PermanentError, match="stow|STOW") as refused:
            sender.store(study, [rg1])
        assert refused.value.code == "stow_refused" and expected in refused.value.reason
    with pytest.raises(TransientError, match="HTTP 503"):
        sender.store(study, [rg1])
    with pytest.raises(PermanentError, match="references neither as stored nor as failed"):
        sender.store(study, [rg1])
    with pytest.raises(TransientError, match="unreachable"):
        StowSender(f"http://127.0.0.1:{free_port()}/dicom-web", timeout_s=(2, 2)).store(study, [rg1])
