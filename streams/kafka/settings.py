"""The one place that renders librdkafka settings. Nothing else builds client dicts."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace


class SettingsError(ValueError):
    """A configuration value that cannot work (e.g. no bootstrap servers)."""


@dataclass(frozen=True)
class KafkaSettings:
    """Connection and client tuning, read from RADSTREAM_* environment variables.

    Group timeouts default lower than librdkafka's so that restarts and rebalances
    converge in seconds; SREs can raise them per environment.
    """

    bootstrap: str = ""
    topic_prefix: str = ""
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_ca_location: str | None = None
    schema_registry_url: str | None = None
    session_timeout_ms: int = 10000
    heartbeat_interval_ms: int = 1000
    max_poll_interval_ms: int = 300000
    fetch_wait_max_ms: int = 50
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, bootstrap: str | None = None, env: dict[str, str] | None = None) -> "KafkaSettings":
        e = os.environ if env is None else env
        extra = {
            k[len("RADSTREAM_KAFKA_X_"):].lower().replace("_", "."): v
            for k, v in e.items()
            if k.startswith("RADSTREAM_KAFKA_X_")
        }
        return cls(
            bootstrap=bootstrap or e.get("RADSTREAM_BOOTSTRAP", ""),
            topic_prefix=e.get("RADSTREAM_TOPIC_PREFIX", ""),
            security_protocol=e.get("RADSTREAM_SECURITY_PROTOCOL", "PLAINTEXT"),
            sasl_mechanism=e.get("RADSTREAM_SASL_MECHANISM"),
            sasl_username=e.get("RADSTREAM_SASL_USERNAME"),
            sasl_password=e.get("RADSTREAM_SASL_PASSWORD"),
            ssl_ca_location=e.get("RADSTREAM_SSL_CA_LOCATION"),
            schema_registry_url=e.get("RADSTREAM_SCHEMA_REGISTRY_URL"),
            session_timeout_ms=int(e.get("RADSTREAM_KAFKA_SESSION_TIMEOUT_MS", 10000)),
            heartbeat_interval_ms=int(e.get("RADSTREAM_KAFKA_HEARTBEAT_INTERVAL_MS", 1000)),
            max_poll_interval_ms=int(e.get("RADSTREAM_KAFKA_MAX_POLL_INTERVAL_MS", 300000)),
            fetch_wait_max_ms=int(e.get("RADSTREAM_KAFKA_FETCH_WAIT_MAX_MS", 50)),
            extra=extra,
        )

    def with_bootstrap(self, bootstrap: str) -> "KafkaSettings":
        return replace(self, bootstrap=bootstrap)

    def topic(self, name: str) -> str:
        """Physical topic name for a logical one (`dicom.arrived` -> `<prefix>dicom.arrived`)."""
        return f"{self.topic_prefix}{name}"

    def group(self, name: str) -> str:
        """Physical consumer group id: prefixed like topics, so a shadow or test pipeline
        with its own prefix never joins the live pipeline's groups."""
        return f"{self.topic_prefix}{name}"

    def _common(self) -> dict[str, object]:
        if not self.bootstrap:
            raise SettingsError("no Kafka bootstrap servers: pass --bootstrap HOST:PORT or set RADSTREAM_BOOTSTRAP")
        conf: dict[str, object] = {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": self.security_protocol,
        }
        for key, value in (
            ("sasl.mechanism", self.sasl_mechanism),
            ("sasl.username", self.sasl_username),
            ("sasl.password", self.sasl_password),
            ("ssl.ca.location", self.ssl_ca_location),
        ):
            if value:
                conf[key] = value
        conf.update(self.extra)
        return conf

    def admin_config(self) -> dict[str, object]:
        return self._common()

    def producer_config(self) -> dict[str, object]:
        conf = self._common()
        conf.update({
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 2,
            "compression.type": "lz4",
        })
        return conf

    def consumer_config(self, group_id: str | None, auto_offset_reset: str = "earliest") -> dict[str, object]:
        conf = self._common()
        conf.update({
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": auto_offset_reset,
            "session.timeout.ms": self.session_timeout_ms,
            "heartbeat.interval.ms": self.heartbeat_interval_ms,
            "max.poll.interval.ms": self.max_poll_interval_ms,
            "fetch.wait.max.ms": self.fetch_wait_max_ms,
            "isolation.level": "read_committed",
        })
        if group_id:
            conf["group.id"] = group_id
        else:
            conf["group.id"] = "radstream-unassigned"  # librdkafka requires one even for assign()
        return conf
