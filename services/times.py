"""Times on the command line: ISO 8601 or epoch milliseconds in, ISO 8601 (UTC) out."""

from __future__ import annotations

import datetime as dt


def parse_time(text: str) -> int:
    """Epoch milliseconds from epoch ms (digits) or ISO 8601 (no zone = UTC)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a time: {text!r} (ISO 8601, e.g. 2026-11-27T10:00:00Z, or epoch milliseconds)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return int(when.timestamp() * 1000)


def iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
