"""Revoking a signing key takes effect in a running stage, without a restart: the trusted-keys
file is replaced as a ConfigMap update replaces it (a rename), and the real decode stage on the
real broker rebuilds its thresholds from config.thresholds under the new keys, so the revoked
key's version stops counting and its next push is ignored, while a key still trusted pushes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from radstream.services.status import stage_statuses
from radstream.streams.kafka.topics import create_topics

pytestmark = pytest.mark.integration
STRICT = ("- scope: rule:nodule-detected\n  values: {rule:nodule-detected/min_score: 0.999}\n")


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "radstream.services.cli", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def _health(run_dir: Path) -> dict:
    rows = stage_statuses(run_dir)
    return rows[0]["health"] if rows else {}


def _wait(run_dir: Path, what: str, check, proc: subprocess.Popen, log: Path, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        health = _health(run_dir)
        if check(health):
            return health
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}: {_health(run_dir)}\n{log.read_text()[-3000:]}")


def test_a_revoked_key_stops_counting_in_a_running_stage(pipeline_env, pipeline_config, tmp_path: Path) -> None:
    env = {**os.environ, **pipeline_env}
    pubs = []
    for name in ("alice", "bob"):
        made = _cli(env, "keys", "new", name, "--out", str(tmp_path / "keys"))
        assert made.returncode == 0, made.stderr
        pubs.append(made.stdout.strip().splitlines()[-1])
    trusted = tmp_path / "trusted-keys"
    trusted.write_text("\n".join(pubs) + "\n")
    env["RADSTREAM_TRUSTED_KEYS"] = str(trusted)
    create_topics(pipeline_config.kafka, 1)
    (tmp_path / "strict.yaml").write_text(STRICT)

    run_dir = Path(pipeline_env["RADSTREAM_HOME"]) / "run"
    log = tmp_path / "decode.log"
    with log.open("wb") as out:
        stage = subprocess.Popen([sys.executable, "-m", "radstream.services.cli", "stage", "decode"], env=env,
                                 stdout=out, stderr=subprocess.STDOUT)
    try:
        pushed = _cli(env, "thresholds", "push", str(tmp_path / "strict.yaml"), "--key",
                      str(tmp_path / "keys" / "alice.key"), "--reason", "before the revocation")
        assert pushed.returncode == 0 and "pushed version 1" in pushed.stdout, pushed.stderr
        _wait(run_dir, "alice's version in force", lambda h: h.get("config_version") == 1, stage, log)

        # revoke alice: the file is replaced by a rename, as kubelet swaps a ConfigMap mount
        (tmp_path / "trusted-keys.new").write_text(f"# alice revoked\n{pubs[1]}\n")
        os.replace(tmp_path / "trusted-keys.new", trusted)
        health = _wait(run_dir, "alice's version dropped", lambda h: h.get("config_version") == 0, stage, log, 30)
        assert health["config_untrusted"] >= 1
        assert "trusted keys changed: thresholds rebuilt" in log.read_text()

        again = _cli(env, "thresholds", "push", str(tmp_path / "strict.yaml"), "--key",
                     str(tmp_path / "keys" / "alice.key"), "--reason", "after the revocation")
        assert again.returncode == 0, again.stderr  # produced: the bus takes it, no reader applies it
        by_bob = _cli(env, "thresholds", "push", str(tmp_path / "strict.yaml"), "--key",
                      str(tmp_path / "keys" / "bob.key"), "--reason", "still trusted")
        assert by_bob.returncode == 0, by_bob.stderr
        version = int(by_bob.stdout.split("pushed version ")[1].split()[0])
        health = _wait(run_dir, "bob's version in force", lambda h: h.get("config_version") == version, stage, log)
        assert health["config_untrusted"] >= 2  # alice's second push was ignored too
    finally:
        stage.terminate()
        stage.wait(30)
