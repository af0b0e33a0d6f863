"""Untrusted work in a separate worker process with a wall-clock and a memory limit.

A hostile or broken file can hang a codec inside C code, where no Python timeout reaches,
or make it allocate without bound. The decode stage therefore decodes in a long-lived
worker process (spawned clean, so no Kafka client threads are inherited) under
RLIMIT_AS. Past the time limit the worker is killed and replaced, and the message is
rejected with the reason, while the stage itself stays up and keeps consuming.
"""

from __future__ import annotations

import multiprocessing
import resource
from collections.abc import Callable
from typing import Any

from radstream.domain.errors import Rejected, StageError, classify


def _serve(conn: Any, memory_bytes: int) -> None:
    """The worker loop: (fn, args) in, ("ok", result) or ("error", StageError) out."""
    if memory_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    while True:
        try:
            fn, args = conn.recv()
        except EOFError:
            return
        try:
            reply: tuple[str, Any] = ("ok", fn(*args))
        except MemoryError:
            reply = ("error", Rejected(f"the work needed more than {memory_bytes >> 20} MiB", code="memory_limit"))
        except Exception as exc:  # classified here, re-raised in the caller's process
            reply = ("error", classify(exc))
        conn.send(reply)


class BoundedWorker:
    """Calls module-level functions in the worker; restarts it after a timeout or a crash."""

    def __init__(self, timeout_s: float, memory_bytes: int = 0) -> None:
        self.timeout_s = timeout_s
        self.memory_bytes = memory_bytes
        self._context = multiprocessing.get_context("spawn")
        self._proc: Any = None
        self._conn: Any = None

    def _start(self) -> None:
        self._conn, child_conn = self._context.Pipe()
        self._proc = self._context.Process(target=_serve, args=(child_conn, self.memory_bytes), daemon=True,
                                           name="radstream-bounded-worker")
        self._proc.start()
        child_conn.close()

    def _discard(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(5)
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._proc is None or not self._proc.is_alive():
            self._discard()
            self._start()
        self._conn.send((fn, args))
        if not self._conn.poll(self.timeout_s):
            self._discard()
            raise Rejected(f"the work took longer than {self.timeout_s:g} s", code="timeout")
        try:
            status, value = self._conn.recv()
        except EOFError:
            code = self._proc.exitcode if self._proc else None
            self._discard()
            raise Rejected(f"the worker died (exit code {code}): a memory limit or a crash in a codec",
                           code="decoder_crash") from None
        if status == "error":
            raise value if isinstance(value, StageError) else classify(value)
        return value

    def close(self) -> None:
        self._discard()
