"""Supervisor restarts: at once the first time, with growing backoff when a child keeps dying,
and at once again after it had run stably."""

from __future__ import annotations

import sys
import time

from radstream.services import supervisor
from radstream.services.supervisor import Child, Supervisor


class Quick(Child):
    def argv(self) -> list[str]:
        return [sys.executable, "-c", "raise SystemExit(3)"]


def _wait_exit(child: Child) -> None:
    child.proc.wait(10)


def test_backoff_grows_then_resets_after_a_stable_run(monkeypatch) -> None:
    child = Quick("decode")
    sup = Supervisor([child], env={})
    sup.start()
    _wait_exit(child)
    sup.poll()
    assert child.restarts == 1  # first restart: immediately
    _wait_exit(child)
    sup.poll()
    assert child.restarts == 1  # second: waits 0.5 s
    time.sleep(0.6)
    sup.poll()
    assert child.restarts == 2
    _wait_exit(child)
    sup.poll()
    time.sleep(0.6)
    sup.poll()
    assert child.restarts == 2  # third: waits 1 s
    monkeypatch.setattr(supervisor, "STABLE_AFTER_S", 0.0)  # pretend every run was stable
    time.sleep(0.5)
    sup.poll()
    assert child.restarts == 3
    _wait_exit(child)
    sup.poll()
    assert child.restarts == 4  # after a stable run: immediately again
    sup.stop()
