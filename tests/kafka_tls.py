"""TLS in front of the embedded broker for tests: a throwaway CA made with `cryptography`, and
stunnel (Debian `stunnel4`) terminating TLS, or mutual TLS, in front of Tansu.

Tansu 0.6.0 accepts `--cert` but its listener still speaks plaintext (D-028), so stunnel is
the TLS server here; the clients' TLS settings (`RADSTREAM_KAFKA_SSL_*`) are exercised for
real against it. Tansu advertises the stunnel port, so every connection a client opens after
bootstrap goes through TLS too.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from radstream.services.broker import EmbeddedBroker, free_port


def stunnel_missing() -> str | None:
    return None if shutil.which("stunnel4") or shutil.which("stunnel") else "stunnel4 is not installed (apt-get install stunnel4)"


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here: trusting it must fail
    other_client_cert: Path  # a client certificate the other CA signed: mTLS must refuse it
    other_client_key: Path


def _pem_key(k: ec.EllipticCurvePrivateKey) -> bytes:
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None, signer: ec.EllipticCurvePrivateKey,
          ca: bool = False, server: bool = False) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return b.sign(signer, hashes.SHA256())


def make_pki(folder: Path) -> Pki:
    """A CA, a server certificate for 127.0.0.1, a client certificate, and an unrelated CA with a
    client certificate of its own (same name as the real client's: only the signature differs)."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {}
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("radstream test CA", ca_key, None, ca_key, ca=True)
    files["ca.pem"] = ca.public_bytes(serialization.Encoding.PEM)
    for who, server in (("server", True), ("client", False)):
        key = ec.generate_private_key(ec.SECP256R1())
        files[f"{who}.pem"] = _cert("127.0.0.1" if server else "radstream-decode", key, ca.subject, ca_key,
                                    server=server).public_bytes(serialization.Encoding.PEM)
        files[f"{who}.key"] = _pem_key(key)
    other_key = ec.generate_private_key(ec.SECP256R1())
    other_ca = _cert("another CA", other_key, None, other_key, ca=True)
    files["other-ca.pem"] = other_ca.public_bytes(serialization.Encoding.PEM)
    intruder_key = ec.generate_private_key(ec.SECP256R1())
    files["other-client.pem"] = _cert("radstream-decode", intruder_key, other_ca.subject,
                                      other_key).public_bytes(serialization.Encoding.PEM)
    files["other-client.key"] = _pem_key(intruder_key)
    for name, data in files.items():
        (folder / name).write_bytes(data)
        (folder / name).chmod(0o600)
    return Pki(*(folder / n for n in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key", "other-ca.pem",
                                      "other-client.pem", "other-client.key")))


class TlsBroker:
    """Tansu on a private port, stunnel on the advertised one: TLS, or mTLS with `require_client_cert`."""

    def __init__(self, folder: Path, pki: Pki, require_client_cert: bool, authentication: bool = False) -> None:
        self.folder = folder
        self.pki = pki
        self.require_client_cert = require_client_cert
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.broker = EmbeddedBroker(log_path=folder / "tansu.log", advertised_port=self.port,
                                     authentication=authentication)
        self._proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 20.0) -> TlsBroker:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.broker.start()
        conf = self.folder / "stunnel.conf"
        lines = ["foreground = yes", "pid =", f"output = {self.folder / 'stunnel.log'}", "debug = 5", "",
                 "[kafka]", f"accept = 127.0.0.1:{self.port}", f"connect = {self.broker.bootstrap}",
                 f"cert = {self.pki.server_cert}", f"key = {self.pki.server_key}"]
        if self.require_client_cert:
            lines += [f"CAfile = {self.pki.ca}", "verifyChain = yes"]
        conf.write_text("\n".join(lines) + "\n")
        binary = shutil.which("stunnel4") or shutil.which("stunnel")
        assert binary, stunnel_missing()
        self._proc = subprocess.Popen([binary, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"stunnel exited {self._proc.returncode}: {(self.folder / 'stunnel.log').read_text()}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"stunnel did not listen on {self.bootstrap} within {timeout_s:.0f}s")

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(10)
        self.broker.stop()
