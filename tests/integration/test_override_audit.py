"""An override the gateway ignores is written to findings.overrides.audit as rejected, like an
ignored threshold push, and `radstream override --audit` shows it: the real gateway process on
the real broker, verdicts produced straight onto findings.overrides."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from radstream.domain.signatures import new_signing_key, sign
from radstream.services.broker import free_port
from radstream.streams.kafka.producer import EventPublisher
from radstream.streams.kafka.topics import FINDINGS_OVERRIDES, create_topics

pytestmark = pytest.mark.integration


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "radstream.services.cli", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)


def _verdict(finding: str, by: str) -> dict:
    return {"finding_id": finding, "study_uid": "1.2.826.0.1.3680043.8.498.9", "verdict": "CONFIRMED", "by": by,
            "reason": "", "created_at": 1_700_000_000_000}


def test_ignored_verdicts_are_audited_by_the_gateway_and_listed(pipeline_env, pipeline_config, tmp_path: Path) -> None:
    create_topics(pipeline_config.kafka, 1)
    trusted_key, stranger = new_signing_key("dr.who"), new_signing_key("mallory")
    (tmp_path / "trusted-keys").write_text(trusted_key.public_line() + "\n")
    env = {**pipeline_env, "RADSTREAM_TRUSTED_KEYS": str(tmp_path / "trusted-keys")}
    publisher = EventPublisher(pipeline_config.kafka)
    publisher.send(FINDINGS_OVERRIDES, "f-unsigned", _verdict("f-unsigned", "dr-it"))
    publisher.send(FINDINGS_OVERRIDES, "f-stranger", sign("FindingOverride", _verdict("f-stranger", "mallory"), stranger))
    publisher.send(FINDINGS_OVERRIDES, "f-good", sign("FindingOverride", _verdict("f-good", "dr.who"), trusted_key))
    publisher.flush()

    port = free_port()
    log = tmp_path / "gateway.log"
    with log.open("wb") as out:
        gateway = subprocess.Popen([sys.executable, "-m", "radstream.services.cli", "gateway", "--port", str(port),
                                    "--no-auth"], env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        skipped = 0
        while skipped < 2:
            assert gateway.poll() is None and time.monotonic() < deadline, log.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                    skipped = json.loads(response.read()).get("untrusted_overrides_skipped", 0)
            except OSError:
                pass
            time.sleep(0.2)
        lines: list[str] = []
        while len(lines) < 2 and time.monotonic() < deadline + 30:  # the audit writes follow the skips
            listed = _cli(env, "override", "--audit")
            assert listed.returncode == 0, listed.stderr
            lines = listed.stdout.splitlines()
    finally:
        gateway.terminate()
        gateway.wait(15)
    assert sorted(lines) == [
        "REJECTED by gateway (signed by unknown key 'mallory'): finding f-stranger of study "
        "1.2.826.0.1.3680043.8.498.9 confirmed by 'mallory'",
        "REJECTED by gateway (unsigned): finding f-unsigned of study 1.2.826.0.1.3680043.8.498.9 confirmed by 'dr-it'",
    ], lines
