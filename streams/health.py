"""Per-process HTTP endpoint (/healthz, /metrics) and the local run registry.

A small threaded stdlib server: the stage loop is synchronous, so the endpoint
must answer while a batch is being processed. Each process also writes a JSON
file into the run directory so that `radstream status` can find it.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from radstream.streams.metrics import exposition


class HealthServer:
    """Serves `health()` as JSON on /healthz (503 when it says unhealthy) and metrics on /metrics."""

    def __init__(self, health: Callable[[], dict[str, Any]], host: str = "127.0.0.1", port: int = 0) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (stdlib name)
                if self.path.startswith("/healthz"):
                    body = outer.health()
                    data = json.dumps(body).encode()
                    self._send(200 if body.get("healthy", True) else 503, "application/json", data)
                elif self.path.startswith("/metrics"):
                    data, ctype = exposition()
                    self._send(200, ctype, data)
                else:
                    self._send(404, "text/plain", b"not found\n")

            def _send(self, code: int, ctype: str, data: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # quiet: probes hit this often
                return

        self.health = health
        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.url = f"http://{host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="health", daemon=True)

    def start(self) -> "HealthServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def run_dir() -> Path:
    return Path(os.environ.get("RADSTREAM_RUN_DIR", Path(os.environ.get("RADSTREAM_HOME", ".radstream")) / "run"))


def register_process(stage: str, url: str, extra: dict[str, Any] | None = None) -> Path:
    """Write `<run dir>/<stage>-<pid>.json`; `radstream status` reads these."""
    folder = run_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stage}-{os.getpid()}.json"
    path.write_text(json.dumps({"stage": stage, "pid": os.getpid(), "health_url": url, **(extra or {})}))
    return path
