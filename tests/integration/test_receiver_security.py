"""The receiver's edge against hostile peers, as a real process (issue 17's probes, docs/security.md).

- an unknown calling AE title, a known one from outside its network, and a wrong called AE title
  get A-ASSOCIATE-RJ, and nothing lands on the bus; without a peers file the receiver will not start;
- the site on an event is the peers file's, whatever AE title the sender claims;
- a Deflated C-STORE of about 1 MB that inflates to 1 GiB is refused (0xA701) while the receiver
  stays under 300 MB (its own VmHWM, and its header workers'), and it keeps serving;
- a dataset over RADSTREAM_RECEIVER_MAX_MB on the wire aborts its association;
- DICOM TLS: dcmtk's storescu +tls with a client certificate from our CA stores; plain TCP, or a
  certificate from another CA, does not.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian, SecondaryCaptureImageStorage

from tests.arrivals import arrivals_on_topic, read_arrivals
from tests.fixtures.instances import instance_dataset

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("storescu") is None or shutil.which("echoscu") is None,
                       reason="dcmtk's storescu/echoscu are not installed (apt-get install dcmtk)"),
]
AE_TITLE = "RADSTREAM"
GIB = 1 << 30


def echo(port: int, calling: str, called: str = AE_TITLE, *tls: str) -> subprocess.CompletedProcess:
    return subprocess.run(["echoscu", *tls, "-aet", calling, "-aec", called, "127.0.0.1", str(port)],
                          capture_output=True, text=True, timeout=30)


def storescu(port: int, files: list[Path], calling: str = "PACS", *tls: str) -> subprocess.CompletedProcess:
    return subprocess.run(["storescu", *tls, "-aet", calling, "-aec", AE_TITLE, "127.0.0.1", str(port),
                           *map(str, files)], capture_output=True, text=True, timeout=120)


def write_instance(folder: Path, name: str, size: int = 16) -> tuple[Path, str]:
    ds = instance_dataset(size=size)
    path = folder / name
    ds.save_as(path, enforce_file_format=True)
    return path, str(ds.SOPInstanceUID)


def vm_hwm_kb(pid: int) -> int:
    """The process's peak resident set (VmHWM), in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM for {pid}")


def children_of(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def test_unknown_or_misplaced_peers_are_rejected_and_the_site_is_configured(receiver_factory, pipeline_config,
                                                                            tmp_path: Path) -> None:
    receiver = receiver_factory(peers={"PACS": ("SITE_A", "127.0.0.0/8"), "FARAWAY": ("SITE_B", "10.0.0.0/8")})
    unknown = echo(receiver.port, "ROGUE")
    assert unknown.returncode != 0 and "Calling AE Title Not Recognized" in unknown.stderr, unknown.stderr
    assert "Rejected Permanent, Source: Service User" in unknown.stderr
    outside = echo(receiver.port, "FARAWAY")  # known, but 127.0.0.1 is not in 10.0.0.0/8
    assert outside.returncode != 0 and "Calling AE Title Not Recognized" in outside.stderr, outside.stderr
    wrong_called = echo(receiver.port, "PACS", "NOTUS")
    assert wrong_called.returncode != 0 and "Called AE Title Not Recognized" in wrong_called.stderr
    assert echo(receiver.port, "PACS").returncode == 0

    rogue_file, rogue_sop = write_instance(tmp_path, "rogue.dcm")
    assert storescu(receiver.port, [rogue_file], calling="ROGUE").returncode != 0
    good_file, good_sop = write_instance(tmp_path, "good.dcm")
    sent = storescu(receiver.port, [good_file], calling="PACS")
    assert sent.returncode == 0, sent.stderr
    events = read_arrivals(pipeline_config, {good_sop}, 60)
    assert events[good_sop]["site"] == "SITE_A"  # the peers file's, not the AE title the sender claimed
    assert rogue_sop not in events
    log = receiver.log.read_text()
    assert "association refused: calling AE title 'ROGUE'" in log and "outside its network" in log

    # the peers file is re-read when it changes, without a restart: a new sender is admitted, a
    # removed one refused from the next association on (replaced by a rename, as kubelet does)
    peers_file = next(tmp_path.glob("peers-*.txt"))
    (tmp_path / "peers.new").write_text("NEWPACS SITE_A 127.0.0.0/8\n")
    os.replace(tmp_path / "peers.new", peers_file)
    deadline = time.monotonic() + 15
    while echo(receiver.port, "NEWPACS").returncode != 0:
        assert time.monotonic() < deadline, receiver.log.read_text()[-2000:]
        time.sleep(0.5)
    removed = echo(receiver.port, "PACS")
    assert removed.returncode != 0 and "Calling AE Title Not Recognized" in removed.stderr
    assert "changed: reloaded" in receiver.log.read_text()


def test_the_receiver_refuses_to_start_without_peers(pipeline_env) -> None:
    import os

    started = subprocess.run([sys.executable, "-m", "radstream.services.cli", "receiver", "--port", "0",
                              "--ae-title", AE_TITLE], env={**os.environ, **pipeline_env}, capture_output=True,
                             text=True, timeout=60)
    assert started.returncode == 2
    assert started.stderr.strip().splitlines() == [
        "radstream: error: no DICOM peers configured: pass --peers FILE (`AE_TITLE SITE [CIDR]` per line), set "
        "RADSTREAM_RECEIVER_PEERS, or --allow-any-peer for a local demo"]


def deflate_bomb(path: Path, inflated: int = GIB) -> str:
    """A Part 10 file in Deflated Explicit VR Little Endian whose dataset inflates to `inflated` bytes:
    the UIDs, then a PixelData OB of zeros, deflated in chunks (nothing of that size is ever held here)."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info

    ds = instance_dataset()
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    del ds.PixelData
    meta = DicomBytesIO()
    meta.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(meta, ds.file_meta)
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, ds)
    pixel_data = struct.pack("<HH2sxxI", 0x7FE0, 0x0010, b"OB", inflated)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    with path.open("wb") as out:
        out.write(meta.getvalue())
        out.write(deflater.compress(body.getvalue() + pixel_data))
        for _ in range(inflated // len(zeros)):
            out.write(deflater.compress(zeros))
        out.write(deflater.flush())
    return str(ds.SOPInstanceUID)


def send_with_pynetdicom(port: int, path: Path) -> int:
    """C-STORE from the file as it is (pynetdicom streams a path without decoding it); the status."""
    from pynetdicom import AE

    ae = AE(ae_title="PACS")
    ae.add_requested_context(SecondaryCaptureImageStorage, [DeflatedExplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", port, ae_title=AE_TITLE)
    assert assoc.is_established, "the receiver did not accept the association"
    try:
        status = assoc.send_c_store(path)
        return int(status.Status) if "Status" in status else -1
    finally:
        assoc.release()


def test_a_deflate_bomb_is_refused_within_300_mb(receiver_factory, pipeline_config, tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.dcm"
    bomb_sop = deflate_bomb(bomb)
    assert bomb.stat().st_size < 2 << 20  # about 1 MB on the wire, 1 GiB inflated
    receiver = receiver_factory()
    assert send_with_pynetdicom(receiver.port, bomb) == 0xA701
    peak_kb = vm_hwm_kb(receiver.proc.pid)
    workers = children_of(receiver.proc.pid)
    assert workers, "no header worker process under the receiver"
    worker_peaks_kb = [vm_hwm_kb(w) for w in workers]
    print(f"receiver VmHWM {peak_kb} kB, header workers {worker_peaks_kb} kB")  # the figures in docs/security.md
    assert peak_kb < 300 * 1024 and max(worker_peaks_kb) < 300 * 1024, (peak_kb, worker_peaks_kb)
    assert "inflates past the cap of 512 MiB" in receiver.log.read_text()

    good, good_sop = write_instance(tmp_path, "after.dcm")  # the receiver still serves
    assert storescu(receiver.port, [good]).returncode == 0
    events = read_arrivals(pipeline_config, {good_sop}, 60)
    assert good_sop in events and bomb_sop not in events


def test_a_dataset_over_the_cap_on_the_wire_aborts_its_association(receiver_factory, pipeline_config,
                                                                   tmp_path: Path) -> None:
    receiver = receiver_factory(env={"RADSTREAM_RECEIVER_MAX_MB": "1"})
    big, big_sop = write_instance(tmp_path, "big.dcm", size=1024)  # 2 MiB of pixels
    small, small_sop = write_instance(tmp_path, "small.dcm")
    sent = storescu(receiver.port, [big])
    assert sent.returncode != 0
    assert "passed the cap of 1 MiB on the wire" in receiver.log.read_text()
    assert storescu(receiver.port, [small]).returncode == 0
    events = read_arrivals(pipeline_config, {small_sop}, 60)
    assert small_sop in events and big_sop not in events


# --- DICOM TLS ------------------------------------------------------------------------------

def _certificate(name: str, key, issuer_name: str, issuer_key, ca: bool):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = (builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False))
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(folder: Path, ca_name: str, leaves: tuple[str, ...]) -> dict[str, Path]:
    """A CA and leaf certificates it signed, as PEM files: {name.crt, name.key, ca.crt}."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    files = {"ca.crt": folder / "ca.crt"}
    files["ca.crt"].write_bytes(_certificate(ca_name, ca_key, ca_name, ca_key, True).public_bytes(serialization.Encoding.PEM))
    for leaf in leaves:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(leaf, key, ca_name, ca_key, False)
        files[f"{leaf}.crt"], files[f"{leaf}.key"] = folder / f"{leaf}.crt", folder / f"{leaf}.key"
        files[f"{leaf}.crt"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files[f"{leaf}.key"].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                                           serialization.NoEncryption()))
    return files


def test_dicom_tls_with_client_certificates(receiver_factory, pipeline_config, tmp_path: Path) -> None:
    pytest.importorskip("cryptography")
    ours = make_pki(tmp_path / "ours", "radstream test CA", ("receiver", "modality"))
    theirs = make_pki(tmp_path / "theirs", "someone else's CA", ("intruder",))
    receiver = receiver_factory(args=["--tls-cert", str(ours["receiver.crt"]), "--tls-key", str(ours["receiver.key"]),
                                      "--tls-ca", str(ours["ca.crt"])])
    assert "(DICOM TLS)" in receiver.log.read_text()

    def tls(who: dict[str, Path], name: str) -> tuple[str, ...]:
        return ("+tls", str(who[f"{name}.key"]), str(who[f"{name}.crt"]), "+cf", str(ours["ca.crt"]))

    good, good_sop = write_instance(tmp_path, "tls.dcm")
    sent = storescu(receiver.port, [good], "PACS", *tls(ours, "modality"))
    assert sent.returncode == 0, sent.stdout + sent.stderr
    events = read_arrivals(pipeline_config, {good_sop}, 60)
    assert events[good_sop]["site"] == "SITE_PACS"

    plain, plain_sop = write_instance(tmp_path, "plain.dcm")
    assert storescu(receiver.port, [plain]).returncode != 0  # plain TCP on a TLS port
    intruder, intruder_sop = write_instance(tmp_path, "intruder.dcm")
    assert storescu(receiver.port, [intruder], "PACS", *tls(theirs, "intruder")).returncode != 0
    time.sleep(1)
    sops = {e["sop_uid"] for e in arrivals_on_topic(pipeline_config, settle_s=2)}
    assert good_sop in sops and not {plain_sop, intruder_sop} & sops
