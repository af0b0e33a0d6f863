"""Times on the command line: relative `--since` values and one-line errors."""

from __future__ import annotations

import pytest

from radstream.services.times import parse_since


def test_relative_and_absolute_times() -> None:
    now = 1_800_000_000_000
    assert parse_since("30m", now) == now - 30 * 60_000
    assert parse_since("1h", now) == now - 3_600_000
    assert parse_since("2d", now) == now - 2 * 86_400_000
    assert parse_since("45s", now) == now - 45_000
    assert parse_since("2026-11-27T10:00:00Z", now) == 1_795_773_600_000
    assert parse_since("1795773600000", now) == 1_795_773_600_000
    for bad in ("yesterday", "1w", "h", "-3h"):
        with pytest.raises(ValueError, match="not a time") as info:
            parse_since(bad, now)
        assert "\n" not in str(info.value)
