"""The memory this process may use, as its container sees it (cgroup v2, else v1), and what follows from it.

The decode stage decodes in a worker under RLIMIT_AS (streams/isolation.py). A fixed
4 GiB limit in a 2 GiB pod means the kernel's OOM killer ends the whole stage before
the worker's limit ever turns a bomb into a MemoryError and a DLQ record. So, unless
RADSTREAM_DECODE_MEMORY_MB says otherwise, the worker gets half of the container's limit
(the stage process and the page cache keep the rest), never less than FLOOR_MB (what a
large radiograph's decode needs: about 340 MiB of address space measured for pydicom-data's
RG1, 2140 x 1760) and never more than CEILING_MB.
"""

from __future__ import annotations

from pathlib import Path

CGROUP_V2 = Path("/sys/fs/cgroup/memory.max")
CGROUP_V1 = Path("/sys/fs/cgroup/memory/memory.limit_in_bytes")
UNLIMITED_V1 = 1 << 60  # v1 reports "no limit" as a huge page-aligned number near 2**63
CEILING_MB = 4096
FLOOR_MB = 512


def parse_limit(text: str) -> int | None:
    """Bytes from a cgroup memory file's content; None for no limit ("max", or v1's huge value)."""
    value = text.strip()
    if not value or value == "max":
        return None
    try:
        limit = int(value)
    except ValueError:
        return None
    return limit if 0 < limit < UNLIMITED_V1 else None


def container_memory_limit(v2: Path = CGROUP_V2, v1: Path = CGROUP_V1) -> int | None:
    """The container's memory limit in bytes, or None when there is none (or no cgroup to read)."""
    for path in (v2, v1):
        try:
            return parse_limit(path.read_text())
        except OSError:
            continue
    return None


def decode_memory_default_mb(limit_bytes: int | None = None, read: bool = True) -> int:
    """The decode worker's memory limit when RADSTREAM_DECODE_MEMORY_MB is unset (see the module doc)."""
    limit = limit_bytes if limit_bytes is not None or not read else container_memory_limit()
    if limit is None:
        return CEILING_MB
    return max(FLOOR_MB, min(CEILING_MB, (limit >> 20) // 2))
