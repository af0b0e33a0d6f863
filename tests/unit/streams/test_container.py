"""The decode worker's default memory limit follows the container's (cgroup v2, else v1)."""

from __future__ import annotations

from pathlib import Path

from radstream.streams.container import container_memory_limit, decode_memory_default_mb, parse_limit


def test_cgroup_files_are_read_v2_first(tmp_path: Path) -> None:
    v2, v1 = tmp_path / "memory.max", tmp_path / "memory.limit_in_bytes"
    v1.write_text("1073741824\n")
    assert container_memory_limit(v2, v1) == 1 << 30  # no v2 file: v1's
    v2.write_text("2147483648\n")
    assert container_memory_limit(v2, v1) == 2 << 30
    v2.write_text("max\n")
    assert container_memory_limit(v2, v1) is None  # v2 says unlimited
    assert parse_limit("9223372036854771712") is None  # v1's "unlimited"


def test_the_worker_gets_half_the_container_between_floor_and_ceiling() -> None:
    assert decode_memory_default_mb(None, read=False) == 4096  # no limit: the old default
    assert decode_memory_default_mb(2 << 30) == 1024
    assert decode_memory_default_mb(16 << 30) == 4096
    assert decode_memory_default_mb(512 << 20) == 512
