"""The one place that renders librdkafka settings. Nothing else builds client dicts."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace


class SettingsError(ValueError):
    """A configuration value that cannot work (e.g. no bootstrap servers)."""


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_SSL", "SASL_PLAINTEXT")
# What RADSTREAM_ENV=prod accepts: the bus carries thresholds, overrides and blob references, so
# production never runs it unencrypted (SASL_PLAINTEXT sends the SCRAM exchange and every record in clear).
PROD_PROTOCOLS = ("SSL", "SASL_SSL")
SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
# The keys check_security guards. RADSTREAM_KAFKA_X_* is applied last, so it may not set them: it
# would turn a checked SASL_SSL back into PLAINTEXT, or put a password in the environment.
SECURITY_KEYS = frozenset({"security.protocol", "sasl.mechanism", "sasl.mechanisms", "sasl.username",
                           "sasl.password", "ssl.ca.location", "ssl.certificate.location", "ssl.key.location",
                           "ssl.key.password"})
# The names before D-028. Ignoring one would leave a bus its operator meant to secure in plaintext,
# so a set old name is refused with its replacement.
RENAMED = {
    "RADSTREAM_SECURITY_PROTOCOL": "RADSTREAM_KAFKA_SECURITY_PROTOCOL",
    "RADSTREAM_SASL_MECHANISM": "RADSTREAM_KAFKA_SASL_MECHANISM",
    "RADSTREAM_SASL_USERNAME": "RADSTREAM_KAFKA_SASL_USERNAME",
    "RADSTREAM_SASL_PASSWORD": "RADSTREAM_KAFKA_SASL_PASSWORD_FILE",
    "RADSTREAM_SSL_CA_LOCATION": "RADSTREAM_KAFKA_SSL_CA",
}


def _secret_from(env: Mapping[str, str], name: str) -> str | None:
    """`NAME` itself, or the first line of the file named by `NAME_FILE` (a mounted Secret)."""
    if value := env.get(name):
        return value
    if path := env.get(f"{name}_FILE"):
        try:
            return open(path, encoding="utf-8").read().strip()
        except OSError as exc:
            raise SettingsError(f"{name}_FILE: cannot read {path}: {exc.strerror}") from None
    return None


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
    sasl_password: str | None = field(default=None, repr=False)
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_key_password: str | None = field(default=None, repr=False)
    schema_registry_url: str | None = None
    schema_registry_ca: str | None = None
    schema_registry_cert: str | None = None
    schema_registry_key: str | None = None
    schema_registry_username: str | None = None
    schema_registry_password: str | None = field(default=None, repr=False)
    production: bool = False
    session_timeout_ms: int = 10000
    heartbeat_interval_ms: int = 1000
    max_poll_interval_ms: int = 300000
    fetch_wait_max_ms: int = 50
    # Static membership (KIP-345): the stage runner's consumer joins as this member, so a restarted
    # process takes its partitions back without a rebalance or the session timeout. One per
    # supervised slot: `radstream up` sets it per child, k8s to the pod's name (D-043).
    group_instance_id: str | None = None
    # Incremental rebalancing (KIP-429): only moved partitions are revoked, the rest keep working.
    assignor: str = "cooperative-sticky"
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, bootstrap: str | None = None, env: dict[str, str] | None = None) -> "KafkaSettings":
        e = os.environ if env is None else env
        for old, new in RENAMED.items():
            if e.get(old):
                raise SettingsError(f"{old} is no longer read: set {new} instead (docs/security.md, The bus)")
        extra = {
            k[len("RADSTREAM_KAFKA_X_"):].lower().replace("_", "."): v
            for k, v in e.items()
            if k.startswith("RADSTREAM_KAFKA_X_")
        }
        if guarded := sorted(set(extra) & SECURITY_KEYS):
            raise SettingsError(f"{guarded[0]} cannot be set through RADSTREAM_KAFKA_X_*: use the checked "
                                "RADSTREAM_KAFKA_SECURITY_PROTOCOL / _SASL_* / _SSL_* variables")
        protocol = e.get("RADSTREAM_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").strip().upper() or "PLAINTEXT"
        sasl = protocol.startswith("SASL_")
        settings = cls(
            bootstrap=bootstrap or e.get("RADSTREAM_BOOTSTRAP", ""),
            topic_prefix=e.get("RADSTREAM_TOPIC_PREFIX", ""),
            security_protocol=protocol,
            sasl_mechanism=(e.get("RADSTREAM_KAFKA_SASL_MECHANISM") or "SCRAM-SHA-512").upper() if sasl else None,
            sasl_username=e.get("RADSTREAM_KAFKA_SASL_USERNAME") or None,
            sasl_password=_secret_from(e, "RADSTREAM_KAFKA_SASL_PASSWORD"),
            ssl_ca_location=e.get("RADSTREAM_KAFKA_SSL_CA") or None,
            ssl_certificate_location=e.get("RADSTREAM_KAFKA_SSL_CERT") or None,
            ssl_key_location=e.get("RADSTREAM_KAFKA_SSL_KEY") or None,
            ssl_key_password=_secret_from(e, "RADSTREAM_KAFKA_SSL_KEY_PASSWORD"),
            schema_registry_url=e.get("RADSTREAM_SCHEMA_REGISTRY_URL") or None,
            # the registry sits beside the brokers: it trusts the bus's CA unless told otherwise
            schema_registry_ca=e.get("RADSTREAM_SCHEMA_REGISTRY_SSL_CA") or e.get("RADSTREAM_KAFKA_SSL_CA") or None,
            schema_registry_cert=e.get("RADSTREAM_SCHEMA_REGISTRY_SSL_CERT") or None,
            schema_registry_key=e.get("RADSTREAM_SCHEMA_REGISTRY_SSL_KEY") or None,
            schema_registry_username=e.get("RADSTREAM_SCHEMA_REGISTRY_USERNAME") or None,
            schema_registry_password=_secret_from(e, "RADSTREAM_SCHEMA_REGISTRY_PASSWORD"),
            production=e.get("RADSTREAM_ENV") == "prod",
            session_timeout_ms=int(e.get("RADSTREAM_KAFKA_SESSION_TIMEOUT_MS", 10000)),
            heartbeat_interval_ms=int(e.get("RADSTREAM_KAFKA_HEARTBEAT_INTERVAL_MS", 1000)),
            max_poll_interval_ms=int(e.get("RADSTREAM_KAFKA_MAX_POLL_INTERVAL_MS", 300000)),
            fetch_wait_max_ms=int(e.get("RADSTREAM_KAFKA_FETCH_WAIT_MAX_MS", 50)),
            group_instance_id=e.get("RADSTREAM_GROUP_INSTANCE_ID") or None,
            assignor=e.get("RADSTREAM_KAFKA_ASSIGNOR", "cooperative-sticky").strip() or "cooperative-sticky",
            extra=extra,
        )
        settings.check_security()
        return settings

    def check_security(self) -> None:
        """Refuse a security setting that librdkafka would accept but that cannot authenticate:
        caught at start-up with the variable's name, not as a connection loop later."""
        if self.security_protocol not in SECURITY_PROTOCOLS:
            raise SettingsError(f"RADSTREAM_KAFKA_SECURITY_PROTOCOL: {self.security_protocol!r} is not one of "
                                f"{', '.join(SECURITY_PROTOCOLS)}")
        if self.security_protocol.startswith("SASL_"):
            if self.sasl_mechanism not in SASL_MECHANISMS:
                raise SettingsError(f"RADSTREAM_KAFKA_SASL_MECHANISM: {self.sasl_mechanism!r} is not one of "
                                    f"{', '.join(SASL_MECHANISMS)}")
            if not self.sasl_username or not self.sasl_password:
                raise SettingsError(f"{self.security_protocol} needs RADSTREAM_KAFKA_SASL_USERNAME and "
                                    "RADSTREAM_KAFKA_SASL_PASSWORD (or RADSTREAM_KAFKA_SASL_PASSWORD_FILE)")
        if self.production and self.security_protocol not in PROD_PROTOCOLS:
            raise SettingsError(f"RADSTREAM_ENV=prod refuses RADSTREAM_KAFKA_SECURITY_PROTOCOL={self.security_protocol}: "
                                f"set {' or '.join(PROD_PROTOCOLS)} (docs/security.md, The bus)")
        tls = self.security_protocol in ("SSL", "SASL_SSL")
        if not tls and (self.ssl_ca_location or self.ssl_certificate_location or self.ssl_key_location):
            raise SettingsError(f"RADSTREAM_KAFKA_SSL_* is set but RADSTREAM_KAFKA_SECURITY_PROTOCOL is "
                                f"{self.security_protocol}: the certificates would be ignored")
        if bool(self.ssl_certificate_location) != bool(self.ssl_key_location):
            raise SettingsError("mutual TLS needs both RADSTREAM_KAFKA_SSL_CERT and RADSTREAM_KAFKA_SSL_KEY")
        for name, path in (("RADSTREAM_KAFKA_SSL_CA", self.ssl_ca_location),
                           ("RADSTREAM_KAFKA_SSL_CERT", self.ssl_certificate_location),
                           ("RADSTREAM_KAFKA_SSL_KEY", self.ssl_key_location)):
            if path and not os.access(path, os.R_OK):
                raise SettingsError(f"{name}: cannot read {path}")
        self._check_schema_registry()

    def _check_schema_registry(self) -> None:
        """The registry client's TLS and basic auth: https wherever a credential or prod is involved."""
        url = self.schema_registry_url
        if not url:
            return
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme not in ("http", "https"):
            raise SettingsError("RADSTREAM_SCHEMA_REGISTRY_URL must start with https:// (or http:// outside prod)")
        if scheme == "http" and self.production:
            raise SettingsError("RADSTREAM_ENV=prod refuses an http:// RADSTREAM_SCHEMA_REGISTRY_URL: use https://")
        if scheme == "http" and (self.schema_registry_password or self.schema_registry_cert):
            raise SettingsError("RADSTREAM_SCHEMA_REGISTRY_URL is http://: its credentials would travel in clear (use https://)")
        if "@" in url.split("://", 1)[1].split("/", 1)[0]:
            raise SettingsError("RADSTREAM_SCHEMA_REGISTRY_URL holds user:password@: set "
                                "RADSTREAM_SCHEMA_REGISTRY_USERNAME and _PASSWORD(_FILE) instead")
        if bool(self.schema_registry_username) != bool(self.schema_registry_password):
            raise SettingsError("schema registry basic auth needs both RADSTREAM_SCHEMA_REGISTRY_USERNAME and "
                                "RADSTREAM_SCHEMA_REGISTRY_PASSWORD (or _PASSWORD_FILE)")
        if bool(self.schema_registry_cert) != bool(self.schema_registry_key):
            raise SettingsError("the schema registry's client certificate needs both RADSTREAM_SCHEMA_REGISTRY_SSL_CERT "
                                "and RADSTREAM_SCHEMA_REGISTRY_SSL_KEY")
        for name, path in (("RADSTREAM_SCHEMA_REGISTRY_SSL_CA", self.schema_registry_ca),
                           ("RADSTREAM_SCHEMA_REGISTRY_SSL_CERT", self.schema_registry_cert),
                           ("RADSTREAM_SCHEMA_REGISTRY_SSL_KEY", self.schema_registry_key)):
            if path and not os.access(path, os.R_OK):
                raise SettingsError(f"{name}: cannot read {path}")

    def schema_registry_config(self) -> dict[str, str] | None:
        """The confluent-kafka SchemaRegistryClient's settings, or None without a registry URL.
        The one place they are built, beside the broker's: same CA by default, its own login."""
        if not self.schema_registry_url:
            return None
        conf = {"url": self.schema_registry_url}
        if self.schema_registry_url.lower().startswith("https://"):
            for key, value in (("ssl.ca.location", self.schema_registry_ca),
                               ("ssl.certificate.location", self.schema_registry_cert),
                               ("ssl.key.location", self.schema_registry_key)):
                if value:
                    conf[key] = value
        if self.schema_registry_username and self.schema_registry_password:
            conf["basic.auth.user.info"] = f"{self.schema_registry_username}:{self.schema_registry_password}"
        return conf

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
            ("ssl.certificate.location", self.ssl_certificate_location),
            ("ssl.key.location", self.ssl_key_location),
            ("ssl.key.password", self.ssl_key_password),
        ):
            if value:
                conf[key] = value
        conf.update(self.extra)
        return conf

    def admin_config(self) -> dict[str, object]:
        return self._common()

    def producer_config(self, linger_ms: int | None = None) -> dict[str, object]:
        """`linger_ms`: instead of 2 (a flush sends at once whatever lingers)."""
        conf = self._common()
        conf.update({
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 2 if linger_ms is None else linger_ms,
            "compression.type": "lz4",
        })
        return conf

    def consumer_config(self, group_id: str | None, auto_offset_reset: str = "earliest",
                        static_member: bool = False, assignor: str | None = None) -> dict[str, object]:
        """`static_member`: join as `group_instance_id` (the stage runner's consumer only: a
        process has one, and an instance id must be unique in its group). `assignor`: instead of
        `self.assignor` (a stateful stage with co-partitioned input topics needs "range", which
        gives partition p of every topic to one member; cooperative-sticky does not)."""
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
            conf["partition.assignment.strategy"] = assignor or self.assignor
            if static_member and self.group_instance_id:
                conf["group.instance.id"] = self.group_instance_id
        else:
            conf["group.id"] = "radstream-unassigned"  # librdkafka requires one even for assign()
        return conf
