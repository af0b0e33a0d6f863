"""`radstream up`: every stage as its own child process, restarted when it dies.

Each child is `radstream stage NAME [--model M]`, exactly what a Kubernetes
Deployment runs, so local runs and production share one code path.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

# A child that ran this long before exiting restarts without backoff. A crash loop dies within
# seconds of its start; a stage killed from outside (OOM, a node drain, chaos) after a few
# seconds of work comes back at once, so its partitions are not idle for a backoff (D-043).
STABLE_AFTER_S = 10.0


@dataclass
class Child:
    stage: str
    model: str | None = None
    proc: subprocess.Popen | None = None
    restarts: int = 0
    restarts_in_a_row: int = 0
    started_at: float = 0.0
    exited_at: float | None = None
    log_path: Path | None = None

    @property
    def ran_s(self) -> float:
        """How long the last run lasted (up to its exit, or until now)."""
        return (self.exited_at or time.monotonic()) - self.started_at

    @property
    def label(self) -> str:
        return f"{self.stage}:{self.model}" if self.model else self.stage

    command: list[str] | None = None  # another radstream command (e.g. the receiver) instead of a stage

    def argv(self) -> list[str]:
        if self.command:
            return [sys.executable, "-m", "radstream.services.cli", *self.command]
        args = [sys.executable, "-m", "radstream.services.cli", "stage", self.stage]
        return args + (["--model", self.model] if self.model else [])


@dataclass
class Supervisor:
    """Starts children, restarts any that exit unexpectedly (with backoff), stops all on request."""

    children: list[Child]
    env: dict[str, str]
    log_dir: Path | None = None
    restart: bool = True
    _stopping: bool = field(default=False, init=False)

    def start(self) -> None:
        for child in self.children:
            self._spawn(child)

    def _spawn(self, child: Child) -> None:
        out = subprocess.DEVNULL
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            child.log_path = self.log_dir / f"{child.label.replace(':', '-')}.log"
            out = open(child.log_path, "ab")
        env = {**self.env, "RADSTREAM_GROUP_INSTANCE_ID": self.instance_id(child)}
        child.proc = subprocess.Popen(child.argv(), env=env, stdout=out, stderr=subprocess.STDOUT)
        child.started_at = time.monotonic()
        child.exited_at = None
        log.info("started %s (pid %d)", child.label, child.proc.pid)

    def poll(self) -> None:
        """Restart children that exited; call regularly."""
        for child in self.children:
            if child.proc is None or child.proc.poll() is None or self._stopping or not self.restart:
                continue
            code = child.proc.returncode
            if child.exited_at is None:
                child.exited_at = time.monotonic()
                if child.ran_s >= STABLE_AFTER_S:
                    child.restarts_in_a_row = 0  # it had been running fine: restart at once again
            n = child.restarts_in_a_row
            backoff = 0.0 if n == 0 else min(30.0, 0.5 * 2 ** min(n - 1, 6))
            if time.monotonic() - child.exited_at < backoff:
                continue
            child.restarts += 1
            child.restarts_in_a_row += 1
            log.warning("%s exited with code %s; restart #%d", child.label, code, child.restarts)
            self._spawn(child)

    def instance_id(self, child: Child) -> str:
        """The child's static group membership (KIP-345), the same for every restart of its slot:
        host, this stack (its log folder, or the environment's RADSTREAM_GROUP_INSTANCE_ID as a
        prefix) and the child's label. A restart then takes the slot's partitions back at once,
        without a rebalance and without waiting out the dead process's session."""
        prefix = self.env.get("RADSTREAM_GROUP_INSTANCE_ID")
        if not prefix:
            stack = str(self.log_dir.resolve()) if self.log_dir else os.getcwd()
            prefix = f"{socket.gethostname()}-{hashlib.sha256(stack.encode()).hexdigest()[:8]}"
        return f"{prefix}-{child.label.replace(':', '-')}"

    def find(self, label: str) -> Child:
        return next(c for c in self.children if c.label == label)

    def stop(self, timeout_s: float = 20.0) -> None:
        self._stopping = True
        for child in self.children:
            if child.proc and child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for child in self.children:
            if child.proc is None:
                continue
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", child.label)
                child.proc.kill()
                child.proc.wait()


def stage_children(models: list[str], monitor: bool = False) -> list[Child]:
    """The pipeline's processes: one per stage, and one infer process per model; with `monitor`,
    the monitor stage too (it only watches results, so the pipeline runs without it)."""
    return (
        [Child("decode"), Child("preprocess")]
        + [Child("infer", m) for m in models]
        + [Child("fuse"), Child("qc")]
        + ([Child("monitor")] if monitor else [])
    )


def child_env(bootstrap: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["RADSTREAM_BOOTSTRAP"] = bootstrap
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra or {})
    return env
