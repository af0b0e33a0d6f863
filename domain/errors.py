"""Errors as values with a class: transient ones are retried, permanent ones go to the DLQ.

Every stage raises one of these (or lets the runtime classify a foreign exception),
so that the runtime can decide retry-or-dead-letter in one place.
"""

from __future__ import annotations


class StageError(Exception):
    """Base class. `reason` is one line a human understands; `code` is a stable slug for metrics."""

    transient: bool = False

    def __init__(self, reason: str, code: str = "error") -> None:
        super().__init__(reason)
        self.reason = reason.replace("\n", " ").strip()
        self.code = code

    @property
    def error_class(self) -> str:
        return "transient" if self.transient else "permanent"

    def __reduce__(self) -> tuple:
        # Errors cross process boundaries (streams/isolation.py): keep the code, whatever __init__ takes.
        return _rebuild, (type(self), self.reason, self.code)


def _rebuild(cls: type, reason: str, code: str) -> "StageError":
    err = StageError.__new__(cls)
    StageError.__init__(err, reason, code)
    return err


class PermanentError(StageError):
    """Retrying cannot help: bad input, unsupported data, a contract violation."""


class TransientError(StageError):
    """Retrying may help: a blob store hiccup, a broker timeout, an exhausted resource."""

    transient = True


class BlobStoreUnavailable(TransientError):
    """The blob store does not answer (an object store that is down, refuses our credentials, or
    lacks its bucket). No stage can work without it, so nothing is dead-lettered for it: the
    runtime holds the partition, commits nothing, and /healthz says why (streams/holds.py)."""

    def __init__(self, reason: str, code: str = "blob_store_unavailable") -> None:
        super().__init__(reason, code=code)


class NotAnImage(PermanentError):
    """The instance is a valid DICOM object that carries no image (SR, PR, KO, ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, code="not_an_image")


class Rejected(PermanentError):
    """The input is an image we refuse by policy or cannot decode, with the reason."""

    def __init__(self, reason: str, code: str = "rejected") -> None:
        super().__init__(reason, code=code)


class Skipped(StageError):
    """Not a failure: the input is deliberately not processed (e.g. an SR object under the
    `skip` non-image policy). The runtime counts and logs it; it is never dead-lettered."""


def classify(exc: BaseException) -> StageError:
    """Map any exception to a StageError. Unknown exceptions are permanent: a bug or
    bad data that a retry would only repeat. OSError and timeouts are transient."""
    if isinstance(exc, StageError):
        return exc
    if isinstance(exc, (TimeoutError, ConnectionError, MemoryError)):
        return TransientError(f"{type(exc).__name__}: {exc}", code="transient_io")
    if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError):
        return TransientError(f"{type(exc).__name__}: {exc}", code="transient_io")
    return PermanentError(f"{type(exc).__name__}: {exc}", code=type(exc).__name__.lower())
