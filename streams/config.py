"""The one config reader. Every setting a stage or command uses is read here, from
RADSTREAM_* environment variables with documented defaults (see README).

Thresholds are part of this config: `ThresholdSet` gives the values in force and
the version that every output is stamped with. Version 0 means the defaults from
the model manifests (no push has happened yet).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from radstream.streams.kafka.settings import KafkaSettings


def _env_list(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


@dataclass(frozen=True)
class ThresholdSet:
    """Operating points in force: `values` maps `<model>/<label>` (or `rule:<id>/<name>`) to a number."""

    version: int = 0
    values: dict[str, float] = field(default_factory=dict)

    def get(self, key: str, default: float) -> float:
        return self.values.get(key, default)


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
    thresholds: ThresholdSet = field(default_factory=ThresholdSet)

    @classmethod
    def from_env(cls, bootstrap: str | None = None, env: dict[str, str] | None = None) -> "Config":
        e = os.environ if env is None else env
        home = Path(e.get("RADSTREAM_HOME", ".radstream")).resolve()
        registry = e.get("RADSTREAM_MODEL_REGISTRY")
        return cls(
            home=home,
            kafka=KafkaSettings.from_env(bootstrap, e),
            blob_url=e.get("RADSTREAM_BLOB_URL", str(home / "blobs")),
            model_registry=Path(registry) if registry else None,
            models=_env_list(e.get("RADSTREAM_MODELS")),
            join_deadline_s=float(e.get("RADSTREAM_JOIN_DEADLINE_S", 30)),
            quiet_period_s=float(e.get("RADSTREAM_STUDY_QUIET_PERIOD_S", 10)),
            health_port=int(e.get("RADSTREAM_HEALTH_PORT", 0)),
            health_host=e.get("RADSTREAM_HEALTH_HOST", "127.0.0.1"),
            partitions=int(e.get("RADSTREAM_PARTITIONS", 3)),
        )
