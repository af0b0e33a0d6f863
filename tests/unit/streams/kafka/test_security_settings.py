"""The one settings object renders broker security for every client, and refuses settings that cannot authenticate."""

from __future__ import annotations

from pathlib import Path

import pytest
from radstream.streams.kafka.settings import KafkaSettings, SettingsError


def _files(tmp_path: Path) -> dict[str, str]:
    paths = {}
    for name in ("ca.pem", "client.pem", "client.key"):
        (tmp_path / name).write_text("-----BEGIN-----\n")
        paths[name] = str(tmp_path / name)
    return paths


def test_sasl_ssl_with_mutual_tls_reaches_producer_consumer_and_admin(tmp_path: Path) -> None:
    f = _files(tmp_path)
    (tmp_path / "pw").write_text("s3cret-password\n")
    s = KafkaSettings.from_env(env={
        "RADSTREAM_BOOTSTRAP": "kafka:9093",
        "RADSTREAM_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
        "RADSTREAM_KAFKA_SASL_USERNAME": "radstream-decode",
        "RADSTREAM_KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "pw"),
        "RADSTREAM_KAFKA_SSL_CA": f["ca.pem"],
        "RADSTREAM_KAFKA_SSL_CERT": f["client.pem"],
        "RADSTREAM_KAFKA_SSL_KEY": f["client.key"],
    })
    for conf in (s.admin_config(), s.producer_config(), s.consumer_config("g")):
        assert conf["security.protocol"] == "SASL_SSL"
        assert conf["sasl.mechanism"] == "SCRAM-SHA-512"  # the default mechanism for SASL_*
        assert conf["sasl.username"] == "radstream-decode"
        assert conf["sasl.password"] == "s3cret-password"  # the file's line, newline stripped
        assert conf["ssl.ca.location"] == f["ca.pem"]
        assert conf["ssl.certificate.location"] == f["client.pem"]
        assert conf["ssl.key.location"] == f["client.key"]
    assert "s3cret" not in repr(s)


def test_plaintext_default_sets_no_security_keys() -> None:
    conf = KafkaSettings.from_env(env={"RADSTREAM_BOOTSTRAP": "b:9092"}).producer_config()
    assert conf["security.protocol"] == "PLAINTEXT"
    assert not [k for k in conf if k.startswith(("sasl.", "ssl."))]


@pytest.mark.parametrize("env, message", [
    ({"RADSTREAM_KAFKA_SECURITY_PROTOCOL": "TLS"}, "is not one of"),
    ({"RADSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "needs RADSTREAM_KAFKA_SASL_USERNAME"),
    ({"RADSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "RADSTREAM_KAFKA_SASL_USERNAME": "u",
      "RADSTREAM_KAFKA_SASL_PASSWORD": "p", "RADSTREAM_KAFKA_SASL_MECHANISM": "GSSAPI"}, "MECHANISM"),
    ({"RADSTREAM_KAFKA_SECURITY_PROTOCOL": "SSL", "RADSTREAM_KAFKA_SSL_CERT": "@client.pem"}, "both"),
    ({"RADSTREAM_KAFKA_SSL_CA": "@ca.pem"}, "would be ignored"),
    ({"RADSTREAM_KAFKA_SECURITY_PROTOCOL": "SSL", "RADSTREAM_KAFKA_SSL_CA": "/nonexistent/ca.pem"}, "cannot read"),
    ({"RADSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "RADSTREAM_KAFKA_SASL_USERNAME": "u",
      "RADSTREAM_KAFKA_SASL_PASSWORD_FILE": "/nonexistent/pw"}, "RADSTREAM_KAFKA_SASL_PASSWORD_FILE"),
])
def test_settings_that_cannot_authenticate_are_refused_by_name(tmp_path: Path, env: dict[str, str], message: str) -> None:
    f = _files(tmp_path)
    env = {k: f.get(v[1:], v) if v.startswith("@") else v for k, v in env.items()}
    with pytest.raises(SettingsError, match=message):
        KafkaSettings.from_env(env={"RADSTREAM_BOOTSTRAP": "b:9092", **env})


def test_the_passthrough_cannot_override_a_checked_security_key() -> None:
    """RADSTREAM_KAFKA_X_* is applied last: it must not turn SASL_SSL back into PLAINTEXT."""
    with pytest.raises(SettingsError, match="security.protocol cannot be set through RADSTREAM_KAFKA_X_"):
        KafkaSettings.from_env(env={"RADSTREAM_BOOTSTRAP": "b:9092", "RADSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                                    "RADSTREAM_KAFKA_SASL_USERNAME": "u", "RADSTREAM_KAFKA_SASL_PASSWORD": "p",
                                    "RADSTREAM_KAFKA_X_SECURITY_PROTOCOL": "PLAINTEXT"})
    with pytest.raises(SettingsError, match="sasl.password cannot be set"):
        KafkaSettings.from_env(env={"RADSTREAM_BOOTSTRAP": "b:9092", "RADSTREAM_KAFKA_X_SASL_PASSWORD": "p"})
    other = KafkaSettings.from_env(env={"RADSTREAM_BOOTSTRAP": "b:9092", "RADSTREAM_KAFKA_X_SSL_CRL_LOCATION": "/crl"})
    assert other.admin_config()["ssl.crl.location"] == "/crl"  # other librdkafka keys still pass


def test_an_old_variable_name_is_refused_not_silently_ignored() -> None:
    """RADSTREAM_SECURITY_PROTOCOL=SASL_SSL read as nothing would run the bus in plaintext."""
    with pytest.raises(SettingsError, match="RADSTREAM_SECURITY_PROTOCOL is no longer read: set "
                                            "RADSTREAM_KAFKA_SECURITY_PROTOCOL instead"):
        KafkaSettings.from_env(env={"RADSTREAM_BOOTSTRAP": "b:9092", "RADSTREAM_SECURITY_PROTOCOL": "SASL_SSL"})


def test_the_k8s_config_map_renders_valid_settings() -> None:
    """k8s/base/config.env is every pod's environment: a refused name there stops every stage."""
    root = Path(__file__).resolve().parents[4]
    lines = (root / "k8s/base/config.env").read_text().splitlines()
    env = dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))
    assert KafkaSettings.from_env(env=env).consumer_config("g")["security.protocol"] == "PLAINTEXT"


def test_no_module_builds_a_kafka_client_outside_streams_kafka() -> None:
    """Security reaches every client only if every client is built from KafkaSettings: the three
    builders in streams/kafka/ are the only places in the package that call a client constructor."""
    root = Path(__file__).resolve().parents[4]
    builders = {root / "streams/kafka/admin.py", root / "streams/kafka/consumer.py", root / "streams/kafka/producer.py"}
    offenders = []
    for package in ("domain", "models", "streams", "services"):
        for path in (root / package).rglob("*.py"):
            text = path.read_text()
            if path not in builders and any(c in text for c in ("Consumer(", "Producer(", "AdminClient(",
                                                                 '"bootstrap.servers"')):
                offenders.append(str(path.relative_to(root)))
    assert offenders == ["streams/kafka/settings.py"]  # it renders "bootstrap.servers" and builds no client


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SASL_PLAINTEXT", ""])
def test_prod_refuses_a_bus_in_clear(protocol: str) -> None:
    """RADSTREAM_ENV=prod: a pod started without the overlay's SASL_SSL must not run in plaintext."""
    env = {"RADSTREAM_BOOTSTRAP": "b:9092", "RADSTREAM_ENV": "prod", "RADSTREAM_KAFKA_SECURITY_PROTOCOL": protocol,
           "RADSTREAM_KAFKA_SASL_USERNAME": "u", "RADSTREAM_KAFKA_SASL_PASSWORD": "p"}
    with pytest.raises(SettingsError, match="RADSTREAM_ENV=prod refuses RADSTREAM_KAFKA_SECURITY_PROTOCOL="):
        KafkaSettings.from_env(env=env)
    assert KafkaSettings.from_env(env={**env, "RADSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}).production
    assert KafkaSettings.from_env(env={**env, "RADSTREAM_ENV": "dev"}).security_protocol == (protocol or "PLAINTEXT")


@pytest.mark.parametrize("argv", [["stage", "decode"], ["gateway", "--port", "0", "--no-auth"],
                                  ["receiver", "--port", "0", "--ae-title", "RS", "--allow-any-peer"]])
def test_every_service_stops_at_start_with_one_line_on_a_plaintext_prod_bus(tmp_path: Path, argv: list[str]) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "RADSTREAM_ENV": "prod", "RADSTREAM_BOOTSTRAP": "127.0.0.1:9",
           "RADSTREAM_HOME": str(tmp_path), "RADSTREAM_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}
    done = subprocess.run([sys.executable, "-m", "radstream.services.cli", *argv], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "RADSTREAM_ENV=prod refuses RADSTREAM_KAFKA_SECURITY_PROTOCOL=PLAINTEXT" in lines[0], lines


def test_the_schema_registry_client_gets_tls_and_basic_auth_from_the_settings(tmp_path: Path) -> None:
    f = _files(tmp_path)
    (tmp_path / "reg-pw").write_text("registry-secret\n")
    base = {"RADSTREAM_BOOTSTRAP": "b:9092", "RADSTREAM_KAFKA_SECURITY_PROTOCOL": "SSL", "RADSTREAM_KAFKA_SSL_CA": f["ca.pem"],
            "RADSTREAM_SCHEMA_REGISTRY_URL": "https://registry:8081"}
    conf = KafkaSettings.from_env(env={**base, "RADSTREAM_SCHEMA_REGISTRY_SSL_CERT": f["client.pem"],
                                       "RADSTREAM_SCHEMA_REGISTRY_SSL_KEY": f["client.key"],
                                       "RADSTREAM_SCHEMA_REGISTRY_USERNAME": "radstream",
                                       "RADSTREAM_SCHEMA_REGISTRY_PASSWORD_FILE": str(tmp_path / "reg-pw")})
    rendered = conf.schema_registry_config()
    assert rendered == {"url": "https://registry:8081", "ssl.ca.location": f["ca.pem"],  # the bus's CA by default
                        "ssl.certificate.location": f["client.pem"], "ssl.key.location": f["client.key"],
                        "basic.auth.user.info": "radstream:registry-secret"}
    assert "registry-secret" not in repr(conf)
    assert KafkaSettings.from_env(env={"RADSTREAM_BOOTSTRAP": "b:9092"}).schema_registry_config() is None


@pytest.mark.parametrize("env, message", [
    ({"RADSTREAM_SCHEMA_REGISTRY_URL": "http://r:8081", "RADSTREAM_SCHEMA_REGISTRY_USERNAME": "u",
      "RADSTREAM_SCHEMA_REGISTRY_PASSWORD": "p"}, "in clear"),
    ({"RADSTREAM_SCHEMA_REGISTRY_URL": "https://u:p@r:8081"}, "user:password@"),
    ({"RADSTREAM_SCHEMA_REGISTRY_URL": "https://r:8081", "RADSTREAM_SCHEMA_REGISTRY_USERNAME": "u"}, "needs both"),
    ({"RADSTREAM_SCHEMA_REGISTRY_URL": "https://r:8081", "RADSTREAM_SCHEMA_REGISTRY_SSL_CERT": "@client.pem"}, "needs both"),
    ({"RADSTREAM_SCHEMA_REGISTRY_URL": "https://r:8081", "RADSTREAM_SCHEMA_REGISTRY_SSL_CA": "/nonexistent"}, "cannot read"),
    ({"RADSTREAM_SCHEMA_REGISTRY_URL": "r:8081"}, "must start with https://"),
    ({"RADSTREAM_SCHEMA_REGISTRY_URL": "http://r:8081", "RADSTREAM_ENV": "prod", "RADSTREAM_KAFKA_SECURITY_PROTOCOL": "SSL"},
     "prod refuses an http://"),
])
def test_schema_registry_settings_that_would_leak_or_cannot_work_are_refused(tmp_path: Path, env: dict[str, str],
                                                                           message: str) -> None:
    f = _files(tmp_path)
    env = {k: f.get(v[1:], v) if v.startswith("@") else v for k, v in env.items()}
    with pytest.raises(SettingsError, match=message):
        KafkaSettings.from_env(env={"RADSTREAM_BOOTSTRAP": "b:9092", **env})
