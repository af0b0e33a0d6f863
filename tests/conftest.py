"""Fixtures shared by every test that needs the broker or running stages (one place).

The broker is the embedded Tansu binary; each test gets its own topic prefix and
RADSTREAM_HOME, so tests share one broker without seeing each other's data.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from radstream.services.broker import EmbeddedBroker
from radstream.services.stack import Stack
from radstream.streams.config import Config

# Group joins on the embedded broker take ~20 s with librdkafka's defaults; these make them ~3 s.
FAST_GROUP_ENV = {
    "RADSTREAM_KAFKA_SESSION_TIMEOUT_MS": "6000",
    "RADSTREAM_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
    "RADSTREAM_KAFKA_MAX_POLL_INTERVAL_MS": "60000",
    "RADSTREAM_STUDY_QUIET_PERIOD_S": "3",
    "RADSTREAM_JOIN_DEADLINE_S": "20",
    "RADSTREAM_PARTITIONS": "3",
}


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with EmbeddedBroker(log_path=log) as b:
        yield b


# The models in force for pipeline tests about streaming mechanics (restarts, DLQ, thresholds,
# tracing, the gateway): one detector, the classifier and the QC model, so every kind of model
# and every stage runs, in 3 infer processes instead of 5 on a 2-core machine. Tests about the
# ensemble itself are marked `whole_ensemble` and run every model in the registry.
LEAN_MODELS = "demo-classifier,demo-frcnn,demo-qc"


@pytest.fixture
def pipeline_env(broker: EmbeddedBroker, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """Environment of one isolated pipeline: own topic prefix, own home, fast group settings."""
    env = dict(FAST_GROUP_ENV)
    if request.node.get_closest_marker("whole_ensemble") is None:
        env["RADSTREAM_MODELS"] = LEAN_MODELS
    env.update({
        "RADSTREAM_BOOTSTRAP": broker.bootstrap,
        "RADSTREAM_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:8]}.",
        "RADSTREAM_HOME": str(tmp_path / "home"),
    })
    return env


@pytest.fixture
def pipeline_config(pipeline_env: dict[str, str]) -> Config:
    return Config.from_env(env={**os.environ, **pipeline_env})


@pytest.fixture
def stack(pipeline_config: Config, pipeline_env: dict[str, str]) -> Iterator[Stack]:
    """Every stage as its own OS process against the shared broker."""
    s = Stack(pipeline_config, pipeline_config.kafka.bootstrap, env=pipeline_env).start()
    try:
        yield s
    finally:
        s.stop()
