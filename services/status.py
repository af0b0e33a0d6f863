"""`radstream status`: every running stage process on this host, from the run registry."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

from radstream.streams.health import run_dir


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def stage_statuses(folder: Path | None = None, timeout_s: float = 2.0) -> list[dict]:
    rows = []
    for path in sorted((folder or run_dir()).glob("*.json")):
        entry = json.loads(path.read_text())
        if not _alive(entry["pid"]):
            path.unlink(missing_ok=True)  # stale: the process died without cleaning up
            continue
        try:
            with urllib.request.urlopen(entry["health_url"] + "/healthz", timeout=timeout_s) as resp:
                entry["health"] = json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # 503 = unhealthy: its body still says why
            entry["health"] = _unhealthy_body(exc)
        except OSError as exc:
            entry["health"] = {"healthy": False, "error": str(exc)}
        rows.append(entry)
    return rows


def _unhealthy_body(exc: "urllib.error.HTTPError") -> dict:
    try:
        body = json.loads(exc.read())
    except (OSError, ValueError):
        body = None
    if not isinstance(body, dict):
        return {"healthy": False, "error": str(exc)}
    return {**body, "healthy": False}


def format_table(rows: list[dict]) -> str:
    if not rows:
        return "no radstream stage is running on this host"
    lines = [f"{'STAGE':<28} {'PID':>7} {'HEALTHY':<8} {'CONFIG':>6} {'PARTITIONS':<12} {'IDLE_S':>7}  HEALTH_URL"]
    for r in rows:
        h = r["health"]
        label = r["stage"] + (f":{h['models'][0]['name']}" if h.get("models") else "")
        lines.append(
            f"{label:<28} {r['pid']:>7} {str(h.get('healthy')):<8} {h.get('config_version', '?'):>6} "
            f"{','.join(map(str, h.get('partitions', []))):<12} {h.get('last_progress_age_s', '?'):>7}  {r['health_url']}"
        )
    return "\n".join(lines)
