"""The bus over TLS, mutual TLS and SASL_SSL, for real: radstream's own clients, configured only
through RADSTREAM_KAFKA_* variables, against the embedded broker behind stunnel (tests/kafka_tls.py).

What cannot be tested here, and why, is recorded in D-028: Tansu 0.6.0 cannot hold a SCRAM
user while requiring authentication, so the SASL test proves the SCRAM-SHA-512 exchange runs
over TLS and that an unknown identity is refused, not a full authenticated session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from radstream.services.demo import real_radiographs
from radstream.streams.kafka.admin import admin_client
from radstream.streams.kafka.reader import read_events
from radstream.streams.kafka.settings import KafkaSettings

from tests.kafka_tls import Pki, TlsBroker, make_pki, stunnel_missing

pytestmark = pytest.mark.skipif(stunnel_missing() is not None, reason=stunnel_missing() or "")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def mtls_broker(tmp_path_factory: pytest.TempPathFactory, pki: Pki):
    b = TlsBroker(tmp_path_factory.mktemp("mtls"), pki, require_client_cert=True).start()
    yield b
    b.stop()


def _env(bootstrap: str, tmp_path: Path, **security: str) -> dict[str, str]:
    return {**os.environ, "RADSTREAM_BOOTSTRAP": bootstrap, "RADSTREAM_HOME": str(tmp_path / "home"),
            "RADSTREAM_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:8]}.",
            **{f"RADSTREAM_KAFKA_{k.upper()}": v for k, v in security.items()}}


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "radstream.services.cli", *args], env=env, check=False,
                          capture_output=True, text=True, timeout=120)


def _refusal(env: dict[str, str]) -> str:
    """The connection errors a client gets from the bus, or '' when it was served."""
    admin = admin_client(KafkaSettings.from_env(env=env))
    try:
        admin.list_topics(timeout=6)
    except KafkaException as exc:
        return str(exc)
    return ""


def test_mutual_tls_round_trip_through_the_cli(mtls_broker: TlsBroker, pki: Pki, tmp_path: Path) -> None:
    """topics create (admin), publish (producer), then a consumer: all over mTLS only."""
    env = _env(mtls_broker.bootstrap, tmp_path, security_protocol="SSL", ssl_ca=str(pki.ca),
               ssl_cert=str(pki.client_cert), ssl_key=str(pki.client_key))
    created = _cli(env, "topics", "create", "--partitions", "1")
    assert created.returncode == 0, created.stderr
    rg1 = real_radiographs()[0]
    published = _cli(env, "publish", str(rg1))
    assert published.returncode == 0, published.stderr
    study_uid = published.stdout.split()[0]
    got = [r for _, r in read_events(KafkaSettings.from_env(env=env), "dicom.arrived", timeout_s=20)]
    assert [r["study_uid"] for r in got] == [study_uid]
    log = (mtls_broker.folder / "stunnel.log").read_text()
    assert "Certificate accepted at depth=0: CN=radstream-decode" in log  # stunnel checked the client's certificate


def test_mutual_tls_refuses_a_client_without_a_certificate(mtls_broker: TlsBroker, pki: Pki, tmp_path: Path) -> None:
    env = _env(mtls_broker.bootstrap, tmp_path, security_protocol="SSL", ssl_ca=str(pki.ca))
    assert _refusal(env), "a client with no certificate was served"


def test_mutual_tls_refuses_a_certificate_another_ca_signed(mtls_broker: TlsBroker, pki: Pki, tmp_path: Path) -> None:
    """The same CN from another CA: librdkafka does not even offer it (its issuer is not among the
    server's acceptable CAs), and stunnel ends the handshake before a byte reaches the broker."""
    env = _env(mtls_broker.bootstrap, tmp_path, security_protocol="SSL", ssl_ca=str(pki.ca),
               ssl_cert=str(pki.other_client_cert), ssl_key=str(pki.other_client_key))
    assert _refusal(env), "a client certificate from another CA was accepted"


def test_a_client_that_trusts_another_ca_refuses_the_broker(mtls_broker: TlsBroker, pki: Pki, tmp_path: Path) -> None:
    env = _env(mtls_broker.bootstrap, tmp_path, security_protocol="SSL", ssl_ca=str(pki.other_ca),
               ssl_cert=str(pki.client_cert), ssl_key=str(pki.client_key))
    assert _refusal(env), "a client trusting another CA accepted the broker's certificate"


def test_plaintext_client_is_not_served_by_the_tls_port(mtls_broker: TlsBroker, tmp_path: Path) -> None:
    assert _refusal(_env(mtls_broker.bootstrap, tmp_path)), "a plaintext client was served on the TLS port"


def test_server_only_tls_round_trip(tmp_path: Path, pki: Pki) -> None:
    """TLS without client certificates: the client verifies the broker against the CA."""
    b = TlsBroker(tmp_path / "tls", pki, require_client_cert=False).start()
    try:
        env = _env(b.bootstrap, tmp_path, security_protocol="SSL", ssl_ca=str(pki.ca))
        assert _cli(env, "topics", "create", "--partitions", "1").returncode == 0
        published = _cli(env, "publish", str(real_radiographs()[0]))
        assert published.returncode == 0, published.stderr
        got = [r for _, r in read_events(KafkaSettings.from_env(env=env), "dicom.arrived", timeout_s=20)]
        assert len(got) == 1
    finally:
        b.stop()


def test_sasl_ssl_runs_scram_sha_512_over_tls_and_an_unknown_identity_is_refused(tmp_path: Path, pki: Pki) -> None:
    b = TlsBroker(tmp_path / "sasl", pki, require_client_cert=False, authentication=True).start()
    try:
        env = _env(b.bootstrap, tmp_path, security_protocol="SASL_SSL", ssl_ca=str(pki.ca),
                   sasl_username="radstream-decode", sasl_password="not-a-user")
        # librdkafka logs the broker's SCRAM answer on stderr; run in a child to read it
        res = subprocess.run(
            [sys.executable, "-c",
             "import os; from tests.integration.test_kafka_tls import _refusal; print(_refusal(dict(os.environ)))"],
            env=env, check=False, capture_output=True, text=True, timeout=60)
        assert "Broker transport failure" in res.stdout, res.stdout + res.stderr
        assert "SASL SCRAM authentication failed: broker responded with unknown-user" in res.stderr, res.stderr[-2000:]
        assert "sasl_ssl://" in res.stderr  # over TLS
    finally:
        b.stop()


def test_the_integrators_example_consumer_reads_results_over_mutual_tls(mtls_broker: TlsBroker, pki: Pki,
                                                                        tmp_path: Path) -> None:
    """examples/results_consumer.py (confluent-kafka and the .avsc only) takes the same RADSTREAM_KAFKA_*
    variables: a final result produced over mTLS is printed; without its certificate it reads nothing."""
    from radstream.streams.kafka.producer import EventPublisher
    from radstream.streams.kafka.topics import STUDY_RESULTS

    from tests.unit.services.gateway.gateway_records import study_result

    env = _env(mtls_broker.bootstrap, tmp_path, security_protocol="SSL", ssl_ca=str(pki.ca),
               ssl_cert=str(pki.client_cert), ssl_key=str(pki.client_key))
    assert _cli(env, "topics", "create", "--partitions", "1").returncode == 0
    settings = KafkaSettings.from_env(env=env)
    result = study_result(study="1.2.826.0.1.3680043.8.498.7", sops=["1.2.826.0.1.3680043.8.498.7.1"], key="k-tls")
    publisher = EventPublisher(settings)
    publisher.send(STUDY_RESULTS, result["study_uid"], result)
    publisher.flush()
    repo = Path(__file__).resolve().parents[2]
    argv = [sys.executable, "examples/results_consumer.py", "--bootstrap", mtls_broker.bootstrap,
            "--topic", settings.topic(STUDY_RESULTS), "--max", "1"]
    example = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=90, cwd=repo)
    assert example.returncode == 0, example.stderr
    assert json.loads(example.stdout.splitlines()[0])["study_uid"] == result["study_uid"]
    no_cert = {k: v for k, v in env.items() if k not in ("RADSTREAM_KAFKA_SSL_CERT", "RADSTREAM_KAFKA_SSL_KEY")}
    with pytest.raises(subprocess.TimeoutExpired):  # refused by stunnel at every connect: it never gets a record
        subprocess.run(argv, env=no_cert, capture_output=True, text=True, timeout=5, cwd=repo)
