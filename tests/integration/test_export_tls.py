"""Outbound TLS of the export edges, against real TLS peers on loopback.

- `export dicom`'s C-STORE SCU over DICOM TLS (PS3.15 Annex B) into dcmtk's `storescp +tls`, which
  requires a client certificate from the test CA: a real RG1 is stored with the client
  certificate, and refused without it, or when we trust another CA (the PACS unproven).
- `export hl7`'s MLLP over TLS into the tests' MLLP listener (hl7apy's MLLPServer) behind the
  standard library's TLS server, which requires a client certificate: the ORU arrives and is
  acknowledged; without our certificate, or trusting another CA, it is not sent.
- The CLI refuses unreadable TLS files in one line, before it connects.
The PKI is made per module with `cryptography` (tests/kafka_tls.py).
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from radstream.services.broker import free_port
from radstream.services.demo import real_radiographs
from radstream.services.export.c_store import CStoreSender, PacsUnreachable, Peer
from radstream.domain.dicom.patient import PatientContext
from radstream.domain.errors import TransientError
from radstream.services.export.hl7 import Hl7Export
from radstream.streams.blobstore import FileBlobStore
from radstream.services.tls import ClientTls, TlsFiles, client_tls_context, server_tls_context

from tests.hl7_listener import Listener, start_listener
from tests.kafka_tls import Pki, make_pki
from tests.unit.services.gateway.gateway_records import fused_box, study_result

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _client(pki: Pki, cert: bool = True, ca: Path | None = None) -> ssl.SSLContext:
    return client_tls_context(ClientTls(str(ca or pki.ca), str(pki.client_cert) if cert else None,
                                        str(pki.client_key) if cert else None))


@pytest.fixture(scope="module")
def storescp(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    if shutil.which("storescp") is None:
        pytest.skip("dcmtk's storescp is not installed (apt-get install dcmtk)")
    out = tmp_path_factory.mktemp("pacs")
    port = free_port()
    proc = subprocess.Popen(["storescp", "+tls", str(pki.server_key), str(pki.server_cert), "+cf", str(pki.ca),
                             "--require-peer-cert", "-aet", "TLSPACS", "-od", str(out), str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    import socket

    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    yield port, out
    proc.terminate()
    proc.wait(10)


def test_c_store_over_dicom_tls_with_a_client_certificate(storescp: tuple[int, Path], pki: Pki) -> None:
    port, out = storescp
    rg1 = pydicom.dcmread(next(p for p in real_radiographs() if p.name == "RG1_UNCR.dcm"))
    peer = Peer("TLSPACS", "127.0.0.1", port)
    statuses = CStoreSender(peer, timeout_s=10, tls=_client(pki)).store([rg1])
    assert [s.code for s in statuses] == [0x0000]
    stored = list(out.iterdir())
    assert len(stored) == 1 and pydicom.dcmread(stored[0]).SOPInstanceUID == rg1.SOPInstanceUID

    for tls in (_client(pki, cert=False), _client(pki, ca=pki.other_ca), None):  # no cert, PACS unproven, plain
        with pytest.raises(PacsUnreachable):
            CStoreSender(peer, timeout_s=5, tls=tls).store([rg1])
    assert len(list(out.iterdir())) == 1  # nothing else reached the PACS


@pytest.fixture(scope="module")
def mllp_tls(pki: Pki) -> Iterator[Listener]:
    server = server_tls_context(TlsFiles(str(pki.server_cert), str(pki.server_key), str(pki.ca)))
    listener = start_listener(tls=server)
    yield listener
    listener.stop()


def test_mllp_over_tls_delivers_and_an_unproven_peer_or_client_gets_nothing(mllp_tls: Listener, pki: Pki,
                                                                           tmp_path: Path) -> None:
    result = study_result(boxes=[fused_box([10, 20, 30, 40])])
    context = PatientContext(study_uid=result["study_uid"], patient_id="P1", patient_name="Doe^Jane")

    def stage(tls: ssl.SSLContext | None) -> Hl7Export:
        return Hl7Export(FileBlobStore(tmp_path), mllp_tls.host, mllp_tls.port, timeout_s=5, tls=tls)

    stage(_client(pki)).send(result, context)  # AA: returns
    assert len(mllp_tls.received) == 1  # parsed STRICT and validated by the listener
    assert any(seg.startswith("PID|") and "P1" in seg for seg in mllp_tls.received[0].er7.split("\r"))
    with pytest.raises(TransientError, match="certificate was refused") as refused:
        stage(_client(pki, ca=pki.other_ca)).send(result, context)
    assert refused.value.code == "hl7_no_answer"
    for tls in (_client(pki, cert=False), None):  # no client certificate; plain MLLP to the TLS port
        with pytest.raises(TransientError):
            stage(tls).send(result, context)
    assert len(mllp_tls.received) == 1


@pytest.mark.parametrize("target", [["dicom", "--to", "PACS@127.0.0.1:104"], ["hl7", "--to", "127.0.0.1:2575"]])
def test_unreadable_tls_files_are_one_line_before_any_connection(target: list[str], tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "radstream.services.cli", "export", *target, "--tls-ca",
                           "/nonexistent/ca.pem", "--bootstrap", "127.0.0.1:9"], capture_output=True, text=True,
                          timeout=60, env={"RADSTREAM_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "radstream: error: cannot load the TLS CA, certificate or key: No such file or directory"]
