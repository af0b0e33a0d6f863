"""The CLI as an outside check would drive it: `up`, `publish`, `results`, `status`, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from radstream.services.demo import real_radiographs
from radstream.streams.config import Config
from radstream.streams.stages.registry import models_in_force

pytestmark = pytest.mark.integration


def _cli(env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "radstream.services.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_up_publish_results_status_and_sigterm(pipeline_env, tmp_path) -> None:
    env = {**os.environ, **pipeline_env}
    from radstream.services.broker import free_port

    peers = tmp_path / "peers.txt"
    peers.write_text("PACS SITE_A 127.0.0.1/32\n")
    up = subprocess.Popen([sys.executable, "-m", "radstream.services.cli", "up", "--receiver-port", str(free_port()),
                           "--ae-title", "TESTRCV", "--peers", str(peers)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert "radstream up on" in up.stdout.readline()  # printed once the topics exist
        pub = _cli(env, "publish", *map(str, real_radiographs()[:2]))
        assert pub.returncode == 0, pub.stderr
        study = pub.stdout.strip().splitlines()[-1]
        deadline = time.monotonic() + 120
        lines: list[str] = []
        while time.monotonic() < deadline and not lines:
            res = _cli(env, "results", "--json", "--study", study)
            assert res.returncode == 0, res.stderr
            lines = [line for line in res.stdout.splitlines() if line.strip()]
            time.sleep(1)
        assert len(lines) == 1, "exactly one result after dedupe"
        result = json.loads(lines[0])
        assert result["study_uid"] == study and result["final"]

        # docs/results.md's minimal consumer (confluent-kafka + the .avsc only) sees the same result.
        example = subprocess.run([sys.executable, "examples/results_consumer.py", "--bootstrap",
                                  env["RADSTREAM_BOOTSTRAP"], "--topic", env["RADSTREAM_TOPIC_PREFIX"] + "study.results",
                                  "--max", "1"], capture_output=True, text=True, timeout=90,
                                 cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
        assert example.returncode == 0, example.stderr
        assert json.loads(example.stdout.splitlines()[0])["study_uid"] == study

        # A radiologist rejects one finding; the others are untouched.
        findings = [f for img in result["images"] for f in img["findings"]]
        assert len(findings) >= 2 and all(f["finding_id"] for f in findings)
        target = findings[0]["finding_id"]
        # Her key (`keys new`), trusted by adding its line to the trusted-keys file `up` wrote;
        # a verdict signed by a key nobody trusts is produced but shown by no reader.
        home = pipeline_env["RADSTREAM_HOME"]
        for name in ("dr.who", "dr.evil"):
            assert _cli(env, "keys", "new", name, "--out", str(tmp_path)).returncode == 0
        with open(f"{home}/keys/trusted-keys", "a") as trusted:
            trusted.write((tmp_path / "dr.who.pub").read_text())
        res = _cli(env, "override", target, "--study", study, "--verdict", "rejected",
                   "--key", str(tmp_path / "dr.who.key"), "--reason", "overlapping rib")
        assert res.returncode == 0 and "rejected by dr.who" in res.stdout, res.stderr
        res = _cli(env, "override", target, "--study", study, "--verdict", "confirmed",
                   "--key", str(tmp_path / "dr.evil.key"))
        assert res.returncode == 0, res.stderr
        res = _cli(env, "override", "nope", "--study", study, "--verdict", "rejected")  # the dev key `up` made
        assert res.returncode == 1 and "has no finding nope" in res.stderr
        shown = _cli(env, "results", "--json", "--study", study)
        assert "ignored override" in shown.stderr and "unknown key 'dr.evil'" in shown.stderr
        after = json.loads(shown.stdout.splitlines()[0])
        seen = {f["finding_id"]: f for img in after["images"] for f in img["findings"]}
        assert seen[target]["override"]["verdict"] == "rejected" and seen[target]["override"]["by"] == "dr.who"
        assert sum("override" in f for f in seen.values()) == 1
        assert after["idempotency_key"] == result["idempotency_key"]  # the result itself is not rewritten

        status = json.loads(_cli(env, "status", "--json").stdout)
        stages = sorted(r["stage"] for r in status)
        n_models = len(models_in_force(Config.from_env(env={**os.environ, **env})))
        deadline = time.monotonic() + 60  # the receiver registers once it listens
        while "receiver" not in stages and time.monotonic() < deadline:
            time.sleep(0.5)
            status = json.loads(_cli(env, "status", "--json").stdout)
            stages = sorted(r["stage"] for r in status)
        # `up` runs the monitor stage too (without --no-monitor)
        assert stages == sorted(["decode", "preprocess", "fuse", "qc", "monitor", "receiver"] + ["infer"] * n_models)
        receiver = next(r for r in status if r["stage"] == "receiver")
        assert receiver["health"]["ae_title"] == "TESTRCV" and receiver["health"]["healthy"]
        assert all(r["health"]["healthy"] and r["health"]["partitions"] for r in status if r["stage"] != "receiver")
    finally:
        up.send_signal(signal.SIGTERM)
        out, _ = up.communicate(timeout=60)
    assert up.returncode == 0, out
    assert _cli(env, "status").stdout.startswith("no radstream stage is running")


def test_errors_are_one_line_without_traceback(pipeline_env, tmp_path) -> None:
    env = {k: v for k, v in {**os.environ, **pipeline_env}.items() if k != "RADSTREAM_BOOTSTRAP"}
    res = _cli(env, "results")
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0 and "bootstrap" in res.stderr
    env = {**os.environ, **pipeline_env}
    res = _cli(env, "publish", str(tmp_path / "missing.dcm"))
    assert res.returncode == 1 and "no such file" in res.stderr and "Traceback" not in res.stderr
    res = _cli(env, "stage", "nonsense")
    assert res.returncode == 1 and "unknown stage" in res.stderr and "Traceback" not in res.stderr
