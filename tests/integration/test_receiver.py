"""The DICOM receiver as a real process against the embedded broker, driven by dcmtk.

Every instance storescu sends lands on `dicom.arrived` with a blob of exactly the
received bytes; and after kill -9 mid-association, every instance storescu saw
acknowledged is on the topic (the receiver acks only after the broker did).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import signal
import subprocess
import time
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from tests.fixtures.instances import instance_dataset
from tests.arrivals import blob_bytes, read_arrivals

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("storescu") is None or shutil.which("echoscu") is None,
                       reason="dcmtk's storescu/echoscu are not installed (apt-get install dcmtk)"),
]
AE_TITLE = "RADSTREAM"


@pytest.fixture
def receiver(receiver_factory):
    """`radstream receiver` as a process (tests/conftest.py `receiver_factory`)."""
    return receiver_factory(ae_title=AE_TITLE)


def storescu(port: int, files: list[Path]) -> list[str]:
    return ["storescu", "-v", "-xv", "-aet", "PACS", "-aec", AE_TITLE, "127.0.0.1", str(port), *map(str, files)]


def acknowledged_files(log_text: str) -> list[str]:
    """Files whose Store Request got a Success response (storescu -v sends in argument order)."""
    acked, current = [], None
    for line in log_text.splitlines():
        if match := re.search(r"Sending file: (.+)$", line):
            current = match.group(1).strip()
        elif "Received Store Response (Success)" in line and current is not None:
            acked.append(current)
            current = None
    return acked


def same_data_set(received: pydicom.Dataset, original: pydicom.Dataset) -> bool:
    """Same transfer syntax, pixel data and element values. Not the same bytes: storescu re-encodes
    sequences with explicit lengths and drops group lengths and padding; the receiver stores exactly
    what arrived (the blob's sha256 is checked separately)."""
    def elements(ds: pydicom.Dataset) -> dict:
        return {e.tag: e.value for e in ds if e.tag.element != 0 and e.tag != 0xFFFCFFFC}

    return (received.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
            and received.PixelData == original.PixelData and elements(received) == elements(original))


def test_echo_store_a_study_and_stop_on_sigterm(receiver, pipeline_config, tmp_path: Path) -> None:
    echo = subprocess.run(["echoscu", "-aet", "PACS", "-aec", AE_TITLE, "127.0.0.1", str(receiver.port)],
                          capture_output=True, timeout=30)
    assert echo.returncode == 0, echo.stderr

    files = [Path(p) for name in ("RG1_UNCR.dcm", "RG1_J2KR.dcm") if (p := get_testdata_file(name))]
    try:
        from radstream.services.synthetic.studies import write_synthetic_study
    except ImportError:
        pass  # synthetic studies are optional here
    else:
        files += [p for p in write_synthetic_study(tmp_path / "syn", n_images=3, seed=11) if p.suffix == ".dcm"]
    if not files:
        pytest.skip("neither pydicom-data nor synthetic studies are available")

    sent = subprocess.run(storescu(receiver.port, files), capture_output=True, text=True, timeout=120)
    log = sent.stdout + sent.stderr
    assert sent.returncode == 0, log
    assert len(acknowledged_files(log)) == len(files), log

    originals = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID): f for f in files}
    events = read_arrivals(pipeline_config, set(originals), 60)
    assert set(originals) <= set(events), f"missing events for {set(originals) - set(events)}"
    for sop_uid, path in originals.items():
        event = events[sop_uid]
        data = blob_bytes(event)
        assert hashlib.sha256(data).hexdigest() == event["blob"]["sha256"]
        assert same_data_set(pydicom.dcmread(BytesIO(data)), pydicom.dcmread(path))
        assert event["site"] == "SITE_PACS" and event["expected_instances"] is None  # the peers file's site

    receiver.proc.send_signal(signal.SIGTERM)
    assert receiver.proc.wait(40) == 0, receiver.log.read_text()


def test_kill_9_mid_association_loses_no_acknowledged_instance(receiver, pipeline_config,
                                                                tmp_path: Path) -> None:
    study = tmp_path / "many"
    study.mkdir()
    files, uids = [], {}
    for n in range(1000):
        ds = instance_dataset(study_uid="1.2.826.0.1.3680043.8.498.777", size=32)
        path = study / f"{n:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
        uids[str(path)] = str(ds.SOPInstanceUID)

    log_path = tmp_path / "storescu.log"
    with log_path.open("w") as out:
        sender = subprocess.Popen(storescu(receiver.port, files), stdout=out, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while log_path.read_text().count("(Success)") < 50:
        assert sender.poll() is None, "storescu ended before the kill: " + log_path.read_text()[-2000:]
        assert time.monotonic() < deadline, "storescu made no progress"
        time.sleep(0.005)
    receiver.proc.send_signal(signal.SIGKILL)
    receiver.proc.wait(10)
    sender.wait(60)

    acked = acknowledged_files(log_path.read_text())
    assert 50 <= len(acked) < len(files), f"{len(acked)} acknowledged: the kill did not land mid-association"
    acked_uids = {uids[f] for f in acked}
    events = read_arrivals(pipeline_config, acked_uids, 60)
    lost = acked_uids - set(events)
    assert not lost, f"{len(lost)} acknowledged instance(s) have no event"
