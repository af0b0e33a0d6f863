"""The codec's schema registry client speaks TLS, mutual TLS and basic auth as KafkaSettings renders them.

No schema registry can run here (Confluent's and Apicurio's are JVM services that no package
registry we reach ships), so the peer is a minimal HTTPS server that answers the two calls the
codec makes (POST subjects/<s>/versions, GET schemas/ids/<id>). Everything on our side is real:
confluent-kafka's SchemaRegistryClient, the TLS handshake with a client certificate, and the
Authorization header it sends.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from radstream.streams.codec import Codec
from radstream.streams.kafka.settings import KafkaSettings
from tests.factories import arrival_event
from tests.kafka_tls import Pki, make_pki

USER, PASSWORD = "radstream", "registry-secret-123"


class _Registry(ThreadingHTTPServer):
    schemas: dict[int, str]
    seen: list[tuple[str, str, str | None, str | None]]  # method, path, Authorization, client cert CN


class _Handler(BaseHTTPRequestHandler):
    server: _Registry

    def _authorised(self) -> bool:
        peer = self.connection.getpeercert() or {}
        cn = next((v for rdn in peer.get("subject", ()) for k, v in rdn if k == "commonName"), None)
        auth = self.headers.get("Authorization")
        self.server.seen.append((self.command, self.path, auth, cn))
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if auth != expected:
            self._reply(401, {"error_code": 401, "message": "Unauthorized"})
            return False
        return True

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self._authorised():
            schema_id = len(self.server.schemas) + 1
            self.server.schemas[schema_id] = body["schema"]
            self._reply(200, {"id": schema_id})

    def do_GET(self) -> None:  # noqa: N802
        if self._authorised():
            schema_id = int(self.path.split("?")[0].rstrip("/").rsplit("/", 1)[1])
            self._reply(200, {"schema": self.server.schemas[schema_id], "schemaType": "AVRO"})

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def registry(pki: Pki) -> Iterator[_Registry]:
    """HTTPS on loopback that requires a client certificate from the test CA."""
    server = _Registry(("127.0.0.1", 0), _Handler)
    server.schemas, server.seen = {}, []
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
    ctx.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    ctx.verify_mode = ssl.CERT_REQUIRED
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def _settings(registry: _Registry, pki: Pki, tmp_path: Path, **over: str) -> KafkaSettings:
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    env = {"RADSTREAM_BOOTSTRAP": "b:9093", "RADSTREAM_KAFKA_SECURITY_PROTOCOL": "SSL",
           "RADSTREAM_KAFKA_SSL_CA": str(pki.ca),  # the registry client trusts the bus's CA by default
           "RADSTREAM_SCHEMA_REGISTRY_URL": f"https://127.0.0.1:{registry.server_address[1]}",
           "RADSTREAM_SCHEMA_REGISTRY_SSL_CERT": str(pki.client_cert),
           "RADSTREAM_SCHEMA_REGISTRY_SSL_KEY": str(pki.client_key),
           "RADSTREAM_SCHEMA_REGISTRY_USERNAME": USER,
           "RADSTREAM_SCHEMA_REGISTRY_PASSWORD_FILE": str(tmp_path / "pw"), **over}
    return KafkaSettings.from_env(env={k: v for k, v in env.items() if v})


def test_a_round_trip_through_the_registry_over_mutual_tls_with_basic_auth(registry: _Registry, pki: Pki,
                                                                          tmp_path: Path) -> None:
    settings = _settings(registry, pki, tmp_path)
    event = arrival_event()
    data = Codec(settings.schema_registry_config()).encode("DicomArrived", event, topic="dicom.arrived")
    assert data[:1] == b"\x00"  # the Confluent wire format: the registry's id, not a fingerprint
    # a second process (a fresh client, empty cache) reads it by asking the registry for the id
    assert Codec(settings.schema_registry_config()).decode(data) == ("DicomArrived", event)
    methods = [(m, p.split("?")[0]) for m, p, _, _ in registry.seen]
    assert ("POST", "/subjects/dicom.arrived-value/versions") in methods and ("GET", "/schemas/ids/1") in methods
    assert {cn for *_, cn in registry.seen} == {"radstream-decode"}  # the client certificate was presented


def test_without_the_client_certificate_or_the_password_or_the_ca_nothing_is_registered(
        registry: _Registry, pki: Pki, tmp_path: Path) -> None:
    for over in ({"RADSTREAM_SCHEMA_REGISTRY_SSL_CERT": "", "RADSTREAM_SCHEMA_REGISTRY_SSL_KEY": ""},
                 {"RADSTREAM_SCHEMA_REGISTRY_SSL_CA": str(pki.other_ca)}):
        before = len(registry.schemas)
        with pytest.raises(Exception, match="(?i)ssl|certificate|handshake|alert"):
            Codec({**_settings(registry, pki, tmp_path, **over).schema_registry_config(), "max.retries": 0}).encode(
                "DicomArrived", arrival_event(), topic="dicom.arrived")
        assert len(registry.schemas) == before
    settings = _settings(registry, pki, tmp_path)
    conf = {**settings.schema_registry_config(), "basic.auth.user.info": f"{USER}:wrong", "max.retries": 0}
    with pytest.raises(Exception, match="Unauthorized"):
        Codec(conf).encode("DicomArrived", arrival_event(), topic="dicom.arrived")
