"""A configuration file re-read when it changes, without a restart: trusted keys, peers, a JWKS.

Kubernetes updates a mounted ConfigMap or Secret by swapping a symlink, and an operator edits a
file in place; both change the file's (mtime, size, inode), which is checked at most every
`every_s` seconds on use (no thread, no inotify). A change that does not parse keeps the
previous version, logged at ERROR once per change: a typo while revoking a key must not
leave every reader trusting nobody, or stop the stage, and the error says the edit was not taken.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
RECHECK_S = 2.0


class WatchedFile(Generic[T]):
    """`parse(text)` of a file, kept current: `current()` re-reads it once its stat changed."""

    def __init__(self, path: str | Path, parse: Callable[[str], T], every_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self._parse = parse
        self._every_s = every_s
        self._clock = clock
        self._stamp = self._stat()
        self._value = parse(self.path.read_text(encoding="utf-8"))  # at start a bad file is an error
        self._checked = clock()
        self.generation = 0  # how many times a change was taken
        self.errors = 0  # changes that could not be taken

    def current(self) -> T:
        now = self._clock()
        if now - self._checked >= (RECHECK_S if self._every_s is None else self._every_s):
            self._checked = now
            self._refresh()
        return self._value

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def _refresh(self) -> None:
        stamp = self._stat()
        if stamp == self._stamp:
            return
        self._stamp = stamp  # a failed change is reported once, not at every check
        try:
            value = self._parse(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            self.errors += 1
            log.error("%s changed but cannot be used, keeping the previous version: %s", self.path,
                      getattr(exc, "strerror", None) or exc)
            return
        self._value = value
        self.generation += 1
        log.warning("%s changed: reloaded (generation %d)", self.path, self.generation)


class LiveMapping(Mapping[str, Any]):
    """A Mapping view of a WatchedFile whose value is a dict: every lookup sees the current file
    (a revoked trusted key is unknown from the next check on)."""

    def __init__(self, watched: WatchedFile[Mapping[str, Any]]) -> None:
        self.watched = watched

    @property
    def generation(self) -> int:
        self.watched.current()
        return self.watched.generation

    def __getitem__(self, key: str) -> Any:
        return self.watched.current()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(dict(self.watched.current()))

    def __len__(self) -> int:
        return len(self.watched.current())

    def __contains__(self, key: object) -> bool:
        return key in self.watched.current()
