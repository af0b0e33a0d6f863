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
