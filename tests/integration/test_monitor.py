"""The monitor stage on the real broker, downstream of every real stage (lean models): site A's
exposure scale halves between two batches of phantom studies while site B (another manufacturer)
stays as it was. The alarm fires for site A and its device only, as a MonitorAlarm on
monitor.alarms, the Prometheus gauge and a post to the webhook; a signed verdict reaches the
stage through its second input topic, an unsigned one is ignored; `monitor report` draws it.

Kept small for two shared cores (12 + 12 studies per site, windows of 12); the 60 + 60 run and
the PPV hand computation are the unit tests' (tests/unit/services/monitor/).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pydicom
import pytest

from radstream.services.overrides import record_override, rejected_overrides
from radstream.services.publish import publish
from radstream.services.results import study_results
from radstream.services.signing import signing_key
from radstream.services.stack import Stack
from radstream.services.status import stage_statuses
from radstream.services.synthetic.studies import write_synthetic_study
from radstream.streams.blobstore import open_blob_store
from radstream.streams.config import Config
from radstream.streams.kafka.producer import EventPublisher
from radstream.streams.kafka.topics import FINDINGS_OVERRIDES, MONITOR_ALARMS
from tests.plain_reader import PlainReader

pytestmark = pytest.mark.integration
WINDOW = 12


class Webhook:
    """A Slack-compatible webhook that keeps what it is sent."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.signatures: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                outer.texts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"])))["text"])
                outer.signatures.append(self.headers.get("X-Radstream-Signature", ""))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _studies(folder: Path, first_seed: int, n: int, scale: float = 1.0, manufacturer: str | None = None) -> list[Path]:
    """`n` one-image phantom studies; pixels times `scale` (an exposure scale), another Manufacturer."""
    paths = []
    for k in range(n):
        for path in write_synthetic_study(folder / f"{first_seed + k}", n_images=1, seed=first_seed + k):
            if path.suffix != ".dcm":
                continue
            ds = pydicom.dcmread(path)
            if scale != 1.0:
                ds.PixelData = np.round(ds.pixel_array * scale).astype(np.uint16).tobytes()
            if manufacturer:
                ds.Manufacturer, ds.ManufacturerModelName = manufacturer, "DR-9"
            ds.save_as(path)
            paths.append(path)
    return paths


def _monitor(config: Config) -> tuple[dict, str]:
    """The monitor stage's /healthz document and its health URL (the run registry)."""
    rows = [r for r in stage_statuses(config.home / "run") if r["stage"] == "monitor"]
    return (rows[0]["health"], rows[0]["health_url"]) if rows else ({}, "")


def _wait(stack: Stack, config: Config, what: str, done, timeout_s: float = 300) -> dict:
    """Until `done(health)` holds for the monitor's /healthz, looked at once a second."""
    deadline = time.monotonic() + timeout_s
    health: dict = {}
    while time.monotonic() < deadline:
        stack.poll()
        health, _ = _monitor(config)
        if health and done(health):
            return health
        time.sleep(1.0)
    raise AssertionError(f"{what}: the monitor says {health}")


def _a_finding(settings) -> tuple[str, str] | None:
    for result in study_results(settings):
        for image in result["images"]:
            for finding in image["findings"]:
                return result["study_uid"], finding["finding_id"]
    return None


def test_a_changed_exposure_scale_alarms_for_that_site_and_device_only(pipeline_env, tmp_path) -> None:
    hook = Webhook()
    env = {**pipeline_env, "RADSTREAM_MONITOR_WINDOW_STUDIES": str(WINDOW), "RADSTREAM_MONITOR_WEBHOOK": hook.url,
           "RADSTREAM_MONITOR_WEBHOOK_ALLOW_HTTP": "1", "RADSTREAM_MONITOR_SECRET": "s" * 32}
    config = Config.from_env(env={**os.environ, **env})
    settings = config.kafka
    store = open_blob_store(config.blob_url)
    producer = EventPublisher(settings)
    quiet = {"log": lambda *_: None}
    with Stack(config, settings.bootstrap, env=env, monitor=True) as stack:
        stack.wait_ready(180)
        publish(producer, store, _studies(tmp_path / "a1", 1000, WINDOW), site="SITE_A", **quiet)
        publish(producer, store, _studies(tmp_path / "b1", 2000, WINDOW, manufacturer="Otherco"), site="SITE_B", **quiet)
        first = _wait(stack, config, "both references full",
                      lambda h: h["windows"].get("site:SITE_A") == [WINDOW, 0]
                      and h["windows"].get("site:SITE_B") == [WINDOW, 0])
        assert first["alarms"] == {} and first["alarms_raised"] == 0
        publish(producer, store, _studies(tmp_path / "a2", 3000, WINDOW, scale=0.5), site="SITE_A", **quiet)
        publish(producer, store, _studies(tmp_path / "b2", 4000, WINDOW, manufacturer="Otherco"), site="SITE_B",
                **quiet)
        done = _wait(stack, config, "both current windows full and judged",
                     lambda h: h["windows"].get("site:SITE_A") == [WINDOW, WINDOW]
                     and h["windows"].get("site:SITE_B") == [WINDOW, WINDOW])
        alarmed = set(done["alarms"])
        assert alarmed == {"site:SITE_A", "device:radstream-synthetic/(unknown)"}, done
        assert "pixel_mean" in done["alarms"]["site:SITE_A"]
        reader = PlainReader(settings.bootstrap, [settings.topic(MONITOR_ALARMS)])
        try:
            topic = settings.topic(MONITOR_ALARMS)
            assert reader.poll_until(lambda r: len(r[topic]) >= done["alarms_raised"], 30)
            raised = {(a["group"], a["feature"]) for a in reader.records[topic] if a["state"] == "RAISED"}
        finally:
            reader.close()
        assert {g for g, _ in raised} == alarmed and ("site:SITE_A", "pixel_mean") in raised
        _, url = _monitor(config)
        metrics = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
        assert 'radstream_monitor_drift_alarm{feature="pixel_mean",group="site:SITE_A"} 1.0' in metrics
        assert 'group="site:SITE_B"' not in metrics and "Otherco" not in metrics
        _wait(stack, config, "the webhook posts", lambda h: any("site:SITE_A" in t for t in hook.texts), 30)
        assert all("[drift] monitor: drift raised" in t for t in hook.texts), hook.texts
        assert hook.signatures and all(s.startswith("sha256=") for s in hook.signatures)  # signed, as watch's
        assert not any("SITE_B" in t or "Otherco" in t for t in hook.texts)

        # the second input topic: a verdict signed by a trusted key counts, an unsigned one is ignored
        finding = _a_finding(settings)
        assert finding is not None, "the lean models give phantoms nodule findings"
        study_uid, finding_id = finding
        record_override(settings, study_uid, finding_id, "confirmed", signing_key(config, None))
        producer.send(FINDINGS_OVERRIDES, finding_id, {"finding_id": finding_id, "study_uid": study_uid,
                                                       "verdict": "REJECTED", "by": "nobody", "created_at": 1})
        producer.flush()
        _wait(stack, config, "the verdicts read", lambda h: (h["verdicts"], h["overrides_untrusted"]) == (1, 1), 60)
        audited = [r for r in rejected_overrides(settings) if r["finding_id"] == finding_id]  # as the gateway's (D-036)
        assert [(r["rejected_by"], r["rejected"]) for r in audited] == [(["monitor"], "unsigned")], audited

    out = tmp_path / "report"
    report = subprocess.run([sys.executable, "-m", "radstream.services.cli", "monitor", "report", "--out", str(out)],
                            env={**os.environ, **env}, capture_output=True, text=True, timeout=180)
    assert report.returncode == 0, report.stderr
    assert "1 verdicts (1 unsigned or untrusted, ignored)" in report.stdout, report.stdout
    snapshot = json.loads((out / "monitoring.json").read_text())
    assert {g for g, d in snapshot["drift"].items() if d["alarms"]} == alarmed
    assert snapshot["agreement"]["overall"]["confirmed"] == 1
    page = (out / "report.html").read_text()
    assert "site:SITE_A" in page and "ALARM" in page and "<img" in page
    pinned = json.loads((out / "reference.json").read_text())["groups"]
    assert len(pinned["site:SITE_A"]["pixel_mean"]) == WINDOW
