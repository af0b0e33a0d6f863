"""A whole local pipeline: the embedded broker (unless a bootstrap is given), the topics,
and every stage as a supervised child process. Used by `up`, `demo`, `bench` and tests.
Without RADSTREAM_TRUSTED_KEYS (and outside RADSTREAM_ENV=prod) it makes the dev signing key
under RADSTREAM_HOME, which its stages then trust, so a local push needs no setup.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from radstream.services.broker import FETCH_WAIT_MAX_MS, EmbeddedBroker
from radstream.services.durable_broker import DurableStorage, open_durable_storage
from radstream.services.signing import ensure_dev_keys
from radstream.services.supervisor import Child, Supervisor, child_env, stage_children
from radstream.streams.config import Config
from radstream.streams.kafka.topics import create_topics
from radstream.streams.stages.registry import models_in_force

log = logging.getLogger(__name__)


def embedded_fetch_wait(environ: dict[str, str]) -> dict[str, str]:
    """The stages' fetch wait on the embedded broker (D-061), unless the environment sets one."""
    key = "RADSTREAM_KAFKA_FETCH_WAIT_MAX_MS"
    return {} if key in environ else {key: str(FETCH_WAIT_MAX_MS)}


class Stack:
    def __init__(self, config: Config, bootstrap: str | None = None, env: dict[str, str] | None = None,
                 broker_port: int | None = None, receiver: list[str] | None = None, monitor: bool = False,
                 durable: str | None = None) -> None:
        self._receiver = receiver  # `radstream receiver`'s arguments (--port, --ae-title, --peers ...): also run it
        self._monitor = monitor  # also run the monitor stage (`up` does; the pipeline does not need it)
        self._durable = durable  # the embedded broker's topics kept in a folder or s3://BUCKET/ (D-051)
        self.storage: DurableStorage | None = None
        self.config = config
        self._bootstrap = bootstrap
        self._broker_port = broker_port
        self._env = env or {}
        self.broker: EmbeddedBroker | None = None
        self.supervisor: Supervisor | None = None
        self.bootstrap = bootstrap or ""

    def start(self) -> "Stack":
        home = self.config.home
        home.mkdir(parents=True, exist_ok=True)
        if self.config.trusted_keys_file is None and not self.config.production \
                and "RADSTREAM_TRUSTED_KEYS" not in self._env:
            # Local runs need no setup: a dev key pair under home, trusted by these stages only.
            log.info("no RADSTREAM_TRUSTED_KEYS: stages trust the dev key %s", ensure_dev_keys(home))
        if not self._bootstrap:
            if self._durable:
                self.storage = open_durable_storage(self._durable)
                log.info("embedded broker: %s", self.storage.describe())
            try:
                self.broker = EmbeddedBroker(self._broker_port, log_path=home / "broker.log",
                                             **({"storage": self.storage.url, "storage_env": self.storage.env}
                                                if self.storage else {})).start()
            except BaseException:
                if self.storage:
                    self.storage.stop()
                raise
            self.bootstrap = self.broker.bootstrap
            log.info("embedded broker on %s", self.bootstrap)
        settings = self.config.kafka.with_bootstrap(self.bootstrap)
        created = create_topics(settings, self.config.partitions, per_topic=self.config.topic_partitions)
        log.info("topics ready (%d created)", len(created))
        models = sorted(models_in_force(self.config))
        children = stage_children(models, monitor=self._monitor)
        if self._receiver:
            children.append(Child("receiver", command=["receiver", *self._receiver]))
        extra = {"RADSTREAM_HOME": str(home)}
        if self.broker is not None:
            extra.update(embedded_fetch_wait({**os.environ, **self._env}))
        if (os.cpu_count() or 1) < len(children):  # more processes than cores: one thread each
            extra["RADSTREAM_COMPUTE_THREADS"] = "1"
        env = child_env(self.bootstrap, {**extra, **self._env})
        self.supervisor = Supervisor(children, env, log_dir=home / "logs")
        self.supervisor.start()
        return self

    def poll(self) -> None:
        if self.supervisor:
            self.supervisor.poll()

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Until every child has registered its health endpoint and holds partitions."""
        from radstream.services.status import stage_statuses

        assert self.supervisor is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.poll()
            rows = {r["pid"]: r for r in stage_statuses(self.config.home / "run")}
            ready = [c for c in self.supervisor.children if c.proc and c.proc.pid in rows
                     and (c.command or rows[c.proc.pid]["health"].get("partitions"))]  # the receiver has none
            if len(ready) == len(self.supervisor.children):
                return
            time.sleep(0.2)
        raise TimeoutError(f"stages not ready within {timeout_s:.0f}s; see {self.logs}")

    def run_forever(self, stop: "callable[[], bool]") -> None:
        while not stop():
            self.poll()
            time.sleep(0.5)

    def stop(self) -> None:
        if self.supervisor:
            self.supervisor.stop()
        if self.broker:
            self.broker.stop()
        if self.storage:
            self.storage.stop()

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def logs(self) -> Path:
        return self.config.home / "logs"
