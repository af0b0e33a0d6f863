"""The one config reader. Every setting a stage or command uses is read here: RADSTREAM_*
environment variables (see README), and the thresholds on the compacted
`config.thresholds` topic. No other module reads thresholds (a test enforces it).
What a threshold document may say, and how scopes combine, is domain/thresholds.py.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radstream.domain.fusion import DEFAULT_IOU_THR
from radstream.domain.fusion_methods import DEFAULT_FUSION_METHOD, FUSION_METHODS
from radstream.domain.signatures import KeyFileError, parse_trusted_keys, rejection
from radstream.domain.thresholds import ThresholdBook
from radstream.streams.container import decode_memory_default_mb
from radstream.streams.kafka.settings import KafkaSettings

log = logging.getLogger(__name__)

DEFAULT_ENGINE_CACHE = "~/.cache/radstream/engines"
# The dev key pair `radstream up` (services/stack.py) makes under RADSTREAM_HOME, and the
# trusted-keys file it trusts: what a reader trusts when RADSTREAM_TRUSTED_KEYS is unset,
# outside RADSTREAM_ENV=prod (docs/security.md, Signed pushes).
DEV_KEY_NAME = "dev"
DEV_KEY_PATH = Path("keys") / "dev.key"
DEV_TRUSTED_KEYS_PATH = Path("keys") / "trusted-keys"
# The gateway's delegate key (D-042): it signs the viewer's overrides for the identity each
# request authenticated; `up` makes a dev one, trusted as `delegate` in the dev file.
DEV_GATEWAY_KEY_NAME = "gateway"
DEV_GATEWAY_KEY_PATH = Path("keys") / "gateway.key"
# The key of the trace ids (streams/telemetry.py): RADSTREAM_TRACE_KEY, else a random key made
# once under RADSTREAM_HOME, shared by every process of that install (docs/security.md, D-026).
TRACE_KEY_ENV = "RADSTREAM_TRACE_KEY"
TRACE_KEY_PATH = Path("keys") / "trace.key"


def _env_list(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _yaml_file(path: str | None) -> Any:
    """A YAML/JSON configuration document, or None when no path is set."""
    if not path:
        return None
    import yaml

    try:
        return yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None


def trace_key(env: Mapping[str, str] | None = None) -> bytes:
    """The HMAC key of the trace ids: RADSTREAM_TRACE_KEY, or outside prod the install's own key.

    The install's key is 32 random bytes (hex) in $RADSTREAM_HOME/keys/trace.key, made on first
    use with mode 0600 and linked into place atomically, so stages starting together agree. Every
    sender of one deployment (publish, the receivers) must see the same key; on k8s, where pods do
    not share a home, set RADSTREAM_TRACE_KEY from one Secret. RADSTREAM_ENV=prod requires it.
    """
    e = os.environ if env is None else env
    if e.get(TRACE_KEY_ENV):
        return e[TRACE_KEY_ENV].encode()
    if e.get("RADSTREAM_ENV") == "prod":
        raise KeyFileError(f"RADSTREAM_ENV=prod needs {TRACE_KEY_ENV} (the same secret for every sender)")
    return _install_key(Path(e.get("RADSTREAM_HOME", ".radstream")) / TRACE_KEY_PATH)


def _install_key(path: Path) -> bytes:
    """Read the key at `path`, or make it: written to a private temporary file, then linked (never overwritten)."""
    if not path.is_file():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32) + "\n")
            try:
                os.link(temporary, path)
            except FileExistsError:
                pass  # another process made it first: use theirs
            finally:
                temporary.unlink()
        except OSError as exc:
            raise KeyFileError(f"cannot make the trace key {path} ({exc.strerror}): set {TRACE_KEY_ENV}") from None
    try:
        key = path.read_text().strip()
    except OSError as exc:
        raise KeyFileError(f"cannot read the trace key {path}: {exc.strerror}") from None
    if not key:
        raise KeyFileError(f"the trace key {path} is empty")
    return key.encode()


def _jwt_settings(e: Mapping[str, str], service: str) -> dict[str, Any]:
    """`<service>_jwt_*` fields from `RADSTREAM_<SERVICE>_JWT_*` (D-024)."""
    prefix = f"RADSTREAM_{service.upper()}_JWT_"
    try:
        lifetime = float(e.get(prefix + "MAX_LIFETIME_S") or 12 * 3600)
    except ValueError:
        raise ValueError(f"{prefix}MAX_LIFETIME_S must be a number of seconds") from None
    return {f"{service}_jwt_jwks": e.get(prefix + "JWKS") or None,
            f"{service}_jwt_audience": e.get(prefix + "AUDIENCE") or None,
            f"{service}_jwt_issuer": e.get(prefix + "ISSUER") or None,
            f"{service}_jwt_max_lifetime_s": lifetime}


def _topic_partitions(e: Mapping[str, str]) -> dict[str, int]:
    from radstream.streams.kafka.topics import parse_topic_partitions  # confluent_kafka only when read

    return parse_topic_partitions(e.get("RADSTREAM_TOPIC_PARTITIONS", ""))


def _choice(env: Any, name: str, allowed: tuple[str, ...]) -> str:
    value = env.get(name, allowed[0])
    if value not in allowed:
        raise ValueError(f"{name}={value!r}: expected one of {', '.join(allowed)}")
    return value


TrustedKeys = dict[str, Any]  # key name -> Ed25519PublicKey, or a DelegateKey (domain/signatures.py)
Rejected = Callable[[dict[str, Any], str], None]


class RejectionAudit:
    """`(record, reason) -> None`: a signed-config record a reader ignored, onto its audit topic
    marked with the reason and the reader: a threshold record onto `config.thresholds.audit`
    (each stage; `thresholds history` folds the copies into one line), a verdict onto
    `findings.overrides.audit` (the gateway; `radstream override audit`). A failed write is
    logged and never stops the reader: the record is ignored either way."""

    def __init__(self, settings: KafkaSettings, codec: Any, stage: str, topic: str = "",
                 key_field: str = "scope") -> None:
        from radstream.streams.kafka.topics import CONFIG_AUDIT

        self._settings = settings
        self._codec = codec
        self._stage = stage
        self._topic = topic or CONFIG_AUDIT
        self._key_field = key_field
        self._publisher: Any = None  # made at the first rejection: most readers never need one

    def __call__(self, record: dict[str, Any], reason: str) -> None:
        from radstream.streams.kafka.producer import DeliveryFailed, EventPublisher

        marked = {**record, "rejected": reason or "rejected", "rejected_by": self._stage}
        try:
            if self._publisher is None:
                self._publisher = EventPublisher(self._settings, self._codec)
            self._publisher.send(self._topic, str(record.get(self._key_field) or ""), marked)
            self._publisher.flush(10.0)
        except (DeliveryFailed, ValueError, TypeError) as exc:
            log.error("could not write the ignored record to %s: %s", self._topic, exc)


class ConfigWatcher:
    """Follows `config.thresholds`: read to the end at startup, then apply updates live.

    It updates `book` in place: a stage given that book at construction sees every update.
    A record not signed by one of `trusted` (empty: nobody) is ignored, logged at ERROR,
    counted in `untrusted` and `book.rejections`, and handed to `on_rejected` with the
    reason (the runtime writes it to the audit topic), like a record that fails validation."""

    def __init__(self, settings: KafkaSettings, codec: Any = None, book: ThresholdBook | None = None,
                 trusted: TrustedKeys | None = None, on_rejected: Rejected | None = None) -> None:
        from radstream.streams.codec import Codec
        from radstream.streams.kafka.consumer import standalone_consumer
        from radstream.streams.kafka.topics import CONFIG_THRESHOLDS, schema_of

        self.book = book if book is not None else ThresholdBook()
        self.topic = settings.topic(CONFIG_THRESHOLDS)
        self.schema = schema_of(CONFIG_THRESHOLDS)
        self._codec = codec or Codec(settings.schema_registry_config())
        self._consumer = standalone_consumer(settings)
        self._settings = settings
        self.trusted: TrustedKeys = trusted if trusted is not None else {}
        self._trust_generation = getattr(self.trusted, "generation", 0)
        self.untrusted = 0
        self._on_rejected = on_rejected

    def load(self, timeout_s: float = 60.0) -> ThresholdBook:
        from radstream.streams.kafka.reader import partitions_of, read_to_end

        for msg in read_to_end(self._consumer, self.topic, partitions_of(self._consumer, self.topic, timeout_s),
                               timeout_s):
            self._apply(msg.value())
        log.info("config loaded: version %d from %s", self.book.version, self.topic)
        return self.book

    def poll(self) -> bool:
        """Apply whatever arrived since the last call; True when the book changed. When the
        trusted keys changed (a key revoked or added), the book is rebuilt from the whole topic
        under the new keys first, as a restart would: a revoked key's versions stop counting."""
        changed = self._retrust()
        for msg in self._consumer.consume(100, 0):
            if not msg.error():
                changed |= self._apply(msg.value())
        return changed

    def _apply(self, data: bytes | None, book: ThresholdBook | None = None) -> bool:
        book = self.book if book is None else book  # a rebuild applies to a fresh book, out of sight
        if data is None:
            return False  # a tombstone: scopes are never deleted, only overridden
        try:
            _, record = self._codec.decode(data, expect=self.schema)
        except Exception as exc:  # a foreign or corrupt record: counted and shown, never fatal
            book.rejections += 1
            book.last_error = f"undecodable threshold record: {exc}"
            log.error("rejected threshold record, keeping the last good version: %s", exc)
            return False
        why = rejection("ThresholdSet", record, self.trusted)
        if why is not None:
            self.untrusted += 1
            book.rejections += 1
            book.last_error = f"{record.get('scope')} v{record.get('version')}: {why}"
            log.error("ignored threshold record %s v%s: %s (keeping the last good version)",
                      record.get("scope"), record.get("version"), why)
        elif book.apply(record):
            return True
        else:
            why = book.last_error or "invalid"
        if self._on_rejected is not None:
            self._on_rejected(record, why)
        return False

    def _retrust(self) -> bool:
        generation = getattr(self.trusted, "generation", 0)
        if generation == self._trust_generation:
            return False
        self._trust_generation = generation
        from radstream.streams.kafka.consumer import standalone_consumer
        from radstream.streams.kafka.reader import partitions_of, read_to_end

        live, fresh = self.book, ThresholdBook()
        consumer = standalone_consumer(self._settings)
        try:
            for msg in read_to_end(consumer, self.topic, partitions_of(consumer, self.topic, 30.0), 30.0):
                self._apply(msg.value(), fresh)
        except (LookupError, TimeoutError, RuntimeError) as exc:
            log.error("trusted keys changed but %s could not be reread (%s): keeping the book", self.topic, exc)
            return False
        finally:
            consumer.close()
        before = dict(live.records)
        live.records = fresh.records  # one assignment: a stage reading the book sees old or new, never half
        live.rejections += fresh.rejections
        live.last_error = fresh.last_error or live.last_error
        log.warning("trusted keys changed: thresholds rebuilt from %s, version %d", self.topic, live.version)
        return live.records != before

    def close(self) -> None:
        self._consumer.close()


@dataclass(frozen=True)
class Config:
    home: Path
    kafka: KafkaSettings
    blob_url: str
    model_registry: Path | None
    models: list[str] | None
    join_deadline_s: float
    quiet_period_s: float
    health_port: int
    health_host: str
    partitions: int
    stall_after_s: float
    compute_threads: int
    non_image_policy: str
    # Sites whose studies are all urgent: the STAT lane's site rule (RADSTREAM_STAT_SITES, D-044).
    stat_sites: frozenset[str] = frozenset()
    # RADSTREAM_TOPIC_PARTITIONS: partitions per pipeline topic over `partitions` (`radstream plan` sizes them)
    topic_partitions: Mapping[str, int] = field(default_factory=dict)
    blob_unhealthy_after_s: float = 10.0  # /healthz turns 503 once the blob store has not answered this long
    receiver_host: str = "127.0.0.1"
    receiver_max_associations: int = 10
    receiver_ack_timeout_s: float = 30.0  # wait this long for the broker before answering a failure status
    receiver_drain_s: float = 30.0  # on SIGTERM, how long open associations may finish
    receiver_peers_file: str | None = None  # `AE_TITLE SITE [CIDR]` per line (domain/dicom/peers.py)
    receiver_max_mb: float = 512.0
    study_owner_retention_days: float = 30.0  # qc keeps a final study's site this long (site_conflict)  # a dataset's cap, on the wire and inflated (services/instance_header.py)
    gateway_tokens_file: str | None = None
    gateway_jwt_secret: str | None = None
    # JWT checks (D-024), per service: `<PREFIX>_JWT_JWKS`, `_AUDIENCE`, `_ISSUER`, `_MAX_LIFETIME_S`
    gateway_jwt_jwks: str | None = None
    gateway_jwt_audience: str | None = None
    gateway_jwt_issuer: str | None = None
    gateway_jwt_max_lifetime_s: float = 12 * 3600.0
    # STOW-RS ingest (`receiver --dicomweb-port`): its bearer tokens and size limits
    dicomweb_tokens_file: str | None = None
    dicomweb_jwt_secret: str | None = None
    dicomweb_jwt_jwks: str | None = None
    dicomweb_jwt_audience: str | None = None
    dicomweb_jwt_issuer: str | None = None
    dicomweb_jwt_max_lifetime_s: float = 12 * 3600.0
    stow_max_request_mb: float = 2048.0
    stow_max_part_mb: float = 512.0
    device: str = "auto"  # torch device for infer: auto (cuda when available), cpu, cuda, cuda:N
    # infer's backend: auto (TensorRT, then ONNX Runtime, then torch), or one forced (models/backends/select.py)
    backend: str = "auto"
    torch_precision: str = "fp16"  # torch on CUDA: autocast fp16, bf16, or fp32
    cuda_graphs: bool = False  # torch on CUDA: capture static-shape models as CUDA graphs (opt-in, unverified)
    decode_timeout_s: float = 60.0
    decode_memory_mb: int = 4096
    rules: Any = None  # the parsed RADSTREAM_RULES document (validated against the models by the registry)
    # compiled TensorRT engines and the shared timing cache (models/backends/engine_cache.py)
    engine_cache: Path = field(default_factory=lambda: Path(DEFAULT_ENGINE_CACHE).expanduser())
    fusion_iou: float = DEFAULT_IOU_THR  # WBF, NMW: IoU above which a box joins a cluster
    fusion_method: str = DEFAULT_FUSION_METHOD  # wbf, nmw or soft-nms; a rules file's `fusion:` map wins per label
    # "prod" turns the dev fallbacks off: trusted keys must be configured, the dev model key and
    # unencrypted weights are refused (docs/security.md)
    env_name: str = "dev"
    trusted_keys_file: Path | None = None  # RADSTREAM_TRUSTED_KEYS; None: the dev file under home
    signing_key_file: Path | None = None  # RADSTREAM_SIGNING_KEY: the CLI's default for --key
    signed_arrivals_env: bool = False  # RADSTREAM_REQUIRE_SIGNED_ARRIVALS=1 (prod: always)
    gateway_signing_key_file: Path | None = None  # RADSTREAM_GATEWAY_SIGNING_KEY: the gateway's delegate key
    # `radstream forward`: the HMAC-SHA256 secret for X-Radstream-Signature, or a file holding it
    # `radstream export fhir`: the bearer token for the FHIR server, or a file holding it
    # the monitor stage and `monitor report` (streams/monitoring.py): drift windows, alarm threshold, a
    # pinned reference file, how long findings are remembered; the webhook its alarms go to, signed
    # with RADSTREAM_MONITOR_SECRET(_FILE), plain http only with RADSTREAM_MONITOR_WEBHOOK_ALLOW_HTTP=1
    monitor_window_studies: int = 200
    monitor_psi_threshold: float = 0.25
    monitor_reference_file: str | None = None
    monitor_retention_days: float = 180.0
    monitor_webhook: str | None = None
    monitor_webhook_allow_http: bool = False

    @property
    def production(self) -> bool:
        return self.env_name == "prod"

    def trusted_keys_path(self) -> Path | None:
        """RADSTREAM_TRUSTED_KEYS; outside prod, else the dev file `radstream up` writes, if present."""
        if self.trusted_keys_file is not None:
            return self.trusted_keys_file
        if self.production:
            raise KeyFileError("RADSTREAM_ENV=prod needs RADSTREAM_TRUSTED_KEYS (a file of `NAME PUBKEY` lines)")
        dev = self.home / DEV_TRUSTED_KEYS_PATH
        return dev if dev.is_file() else None

    def trusted_keys(self) -> TrustedKeys:
        """The keys whose pushes readers apply; empty (nothing is trusted) when no file is configured.
        A live view of the file: an edit (a key added or revoked) is taken within RECHECK_S seconds,
        without a restart (streams/watched_file.py)."""
        path = self.trusted_keys_path()
        if path is None:
            log.warning("no trusted keys (RADSTREAM_TRUSTED_KEYS unset, no %s): every threshold push "
                        "and override will be ignored", self.home / DEV_TRUSTED_KEYS_PATH)
            return {}
        from radstream.streams.watched_file import LiveMapping, WatchedFile

        try:
            return LiveMapping(WatchedFile(path, lambda text: parse_trusted_keys(text, str(path))))
        except OSError as exc:
            raise KeyFileError(f"cannot read trusted keys {path}: {exc.strerror}") from None

    @property
    def require_signed_arrivals(self) -> bool:
        """Decode refuses an arrival no trusted key signed for its site (D-038): always in prod."""
        return self.production or self.signed_arrivals_env

    def trusted_sites(self) -> Any:
        """Key name -> the sites it may sign arrivals for (the trusted-keys file's SITES column), live."""
        from radstream.domain.signatures import parse_key_sites
        from radstream.streams.watched_file import LiveMapping, WatchedFile

        path = self.trusted_keys_path()
        if path is None:
            return {}
        try:
            return LiveMapping(WatchedFile(path, lambda text: parse_key_sites(text, str(path))))
        except OSError as exc:
            raise KeyFileError(f"cannot read trusted keys {path}: {exc.strerror}") from None

    def signing_key_path(self) -> Path | None:
        """RADSTREAM_SIGNING_KEY; outside prod, else the dev key `radstream up` made, if present."""
        if self.signing_key_file is not None:
            return self.signing_key_file
        dev = self.home / DEV_KEY_PATH
        return dev if not self.production and dev.is_file() else None

    def gateway_signing_key_path(self) -> Path | None:
        """RADSTREAM_GATEWAY_SIGNING_KEY; outside prod, else the dev gateway key `radstream up` made, if present."""
        if self.gateway_signing_key_file is not None:
            return self.gateway_signing_key_file
        dev = self.home / DEV_GATEWAY_KEY_PATH
        return dev if not self.production and dev.is_file() else None

    @classmethod
    def from_env(cls, bootstrap: str | None = None, env: dict[str, str] | None = None) -> "Config":
        e = os.environ if env is None else env
        home = Path(e.get("RADSTREAM_HOME", ".radstream")).resolve()
        registry = e.get("RADSTREAM_MODEL_REGISTRY")
        return cls(
            home=home,
            kafka=KafkaSettings.from_env(bootstrap, e),
            blob_url=e.get("RADSTREAM_BLOB_URL", str(home / "blobs")),
            blob_unhealthy_after_s=float(e.get("RADSTREAM_BLOB_UNHEALTHY_AFTER_S", 10)),
            model_registry=Path(registry) if registry else None,
            models=_env_list(e.get("RADSTREAM_MODELS")),
            join_deadline_s=float(e.get("RADSTREAM_JOIN_DEADLINE_S", 30)),
            fusion_iou=float(e.get("RADSTREAM_FUSION_IOU", DEFAULT_IOU_THR)),
            fusion_method=_choice(e, "RADSTREAM_FUSION_METHOD", FUSION_METHODS),
            quiet_period_s=float(e.get("RADSTREAM_STUDY_QUIET_PERIOD_S", 10)),
            health_port=int(e.get("RADSTREAM_HEALTH_PORT", 0)),
            health_host=e.get("RADSTREAM_HEALTH_HOST", "127.0.0.1"),
            partitions=int(e.get("RADSTREAM_PARTITIONS", 3)),
            topic_partitions=_topic_partitions(e),
            stall_after_s=float(e.get("RADSTREAM_STALL_AFTER_S", 600)),
            compute_threads=int(e.get("RADSTREAM_COMPUTE_THREADS", 0)),
            non_image_policy=_choice(e, "RADSTREAM_NON_IMAGE_POLICY", ("skip", "dlq")),
            stat_sites=frozenset(_env_list(e.get("RADSTREAM_STAT_SITES")) or ()),
            rules=_yaml_file(e.get("RADSTREAM_RULES")),
            decode_timeout_s=float(e.get("RADSTREAM_DECODE_TIMEOUT_S", 60)),
            device=e.get("RADSTREAM_DEVICE", "auto"),
            backend=_choice(e, "RADSTREAM_BACKEND", ("auto", "tensorrt", "onnxruntime", "torch")),
            torch_precision=_choice(e, "RADSTREAM_TORCH_PRECISION", ("fp16", "bf16", "fp32")),
            cuda_graphs=_choice(e, "RADSTREAM_CUDA_GRAPHS", ("0", "1")) == "1",
            receiver_host=e.get("RADSTREAM_RECEIVER_HOST", "127.0.0.1"),
            receiver_max_associations=int(e.get("RADSTREAM_RECEIVER_MAX_ASSOCIATIONS", 10)),
            receiver_ack_timeout_s=float(e.get("RADSTREAM_RECEIVER_ACK_TIMEOUT_S", 30)),
            receiver_drain_s=float(e.get("RADSTREAM_RECEIVER_DRAIN_S", 30)),
            receiver_peers_file=e.get("RADSTREAM_RECEIVER_PEERS") or None,
            receiver_max_mb=float(e.get("RADSTREAM_RECEIVER_MAX_MB", 512)),
            study_owner_retention_days=float(e.get("RADSTREAM_STUDY_OWNER_RETENTION_DAYS", 30)),
            gateway_tokens_file=e.get("RADSTREAM_GATEWAY_TOKENS") or None,
            gateway_jwt_secret=e.get("RADSTREAM_GATEWAY_JWT_SECRET") or None,
            dicomweb_tokens_file=e.get("RADSTREAM_DICOMWEB_TOKENS") or None,
            dicomweb_jwt_secret=e.get("RADSTREAM_DICOMWEB_JWT_SECRET") or None,
            **_jwt_settings(e, "gateway"), **_jwt_settings(e, "dicomweb"),
            stow_max_request_mb=float(e.get("RADSTREAM_STOW_MAX_REQUEST_MB", 2048)),
            stow_max_part_mb=float(e.get("RADSTREAM_STOW_MAX_PART_MB", 512)),
            decode_memory_mb=int(e.get("RADSTREAM_DECODE_MEMORY_MB") or decode_memory_default_mb()),
            engine_cache=Path(e.get("RADSTREAM_ENGINE_CACHE") or DEFAULT_ENGINE_CACHE).expanduser(),
            env_name=_choice(e, "RADSTREAM_ENV", ("dev", "prod")),
            trusted_keys_file=Path(e["RADSTREAM_TRUSTED_KEYS"]) if e.get("RADSTREAM_TRUSTED_KEYS") else None,
            signing_key_file=Path(e["RADSTREAM_SIGNING_KEY"]) if e.get("RADSTREAM_SIGNING_KEY") else None,
            signed_arrivals_env=_choice(e, "RADSTREAM_REQUIRE_SIGNED_ARRIVALS", ("0", "1")) == "1",
            monitor_window_studies=int(e.get("RADSTREAM_MONITOR_WINDOW_STUDIES", 200)),
            monitor_psi_threshold=float(e.get("RADSTREAM_MONITOR_PSI", 0.25)),
            monitor_reference_file=e.get("RADSTREAM_MONITOR_REFERENCE") or None,
            monitor_retention_days=float(e.get("RADSTREAM_MONITOR_RETENTION_DAYS", 180)),
            monitor_webhook=e.get("RADSTREAM_MONITOR_WEBHOOK") or None,
            monitor_webhook_allow_http=_choice(e, "RADSTREAM_MONITOR_WEBHOOK_ALLOW_HTTP", ("0", "1")) == "1",
            gateway_signing_key_file=(Path(e["RADSTREAM_GATEWAY_SIGNING_KEY"])
                                      if e.get("RADSTREAM_GATEWAY_SIGNING_KEY") else None),
        )
