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


_UNITS_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_since(text: str, now_ms: int) -> int:
    """Epoch milliseconds from a relative time back from `now_ms` (`30m`, `1h`, `2d`, `45s`) or
    anything `parse_time` takes; a ValueError (one line) otherwise."""
    text = text.strip()
    number, unit = text[:-1], text[-1:].lower()
    if unit in _UNITS_MS and number.isdigit():
        return now_ms - int(number) * _UNITS_MS[unit]
    try:
        return parse_time(text)
    except ValueError:
        raise ValueError(f"not a time: {text!r} (ISO 8601, e.g. 2026-11-27T10:00:00Z, epoch milliseconds, "
                         "or back from now: 30m, 1h, 2d)") from None
