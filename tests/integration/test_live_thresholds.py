"""Live threshold pushes: every running stage reports the new version, results produced
afterwards reflect it, and a bad record is rejected without a restart.

The stages trust one key (`lead`, made by `radstream keys new`): a ThresholdSet produced
straight onto config.thresholds, unsigned or signed by another key, changes no stage's
version and shows up in `thresholds history` as rejected."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

import pytest

from radstream.domain.signatures import new_signing_key, sign
from radstream.services.demo import real_radiographs
from radstream.services.publish import publish
from radstream.services.status import stage_statuses
from radstream.streams.blobstore import open_blob_store
from radstream.streams.kafka.producer import EventPublisher
from radstream.streams.kafka.topics import CONFIG_AUDIT, CONFIG_THRESHOLDS
from tests.plain_reader import PlainReader

pytestmark = pytest.mark.integration


def _cli(env: dict, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "radstream.services.cli", *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def pipeline_env(pipeline_env: dict, tmp_path) -> dict:
    """The stages (and the CLI) trust only `lead`, whose key `radstream keys new` makes."""
    import os

    res = _cli({**os.environ, **pipeline_env}, "keys", "new", "lead", "--out", str(tmp_path / "keys"))
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "keys" / "lead.key").stat().st_mode & 0o777 == 0o600
    public = res.stdout.strip().splitlines()[-1]
    assert public.startswith("lead ") and public == (tmp_path / "keys" / "lead.pub").read_text().strip()
    trusted = tmp_path / "trusted-keys"
    trusted.write_text(f"# the thresholds lead\n{public}\n")
    return {**pipeline_env, "RADSTREAM_TRUSTED_KEYS": str(trusted)}


def _healths(stack) -> list[dict]:
    rows = stage_statuses(stack.config.home / "run")
    return [r["health"] for r in rows]


def _wait_versions(stack, version: int, n_stages: int, timeout_s: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stack.poll()
        healths = _healths(stack)
        if len(healths) == n_stages and all(h.get("config_version") == version for h in healths):
            return healths
        time.sleep(0.2)
    raise AssertionError(f"stages did not all report config version {version}: {_healths(stack)}")


def test_push_reaches_every_stage_and_changes_later_results(stack, pipeline_env, tmp_path) -> None:
    import os

    env = {**os.environ, **pipeline_env}
    n_stages = len(stack.supervisor.children)
    _wait_versions(stack, 0, n_stages)
    lead = ["--key", str(tmp_path / "keys" / "lead.key")]

    # Threshold sets produced straight onto config.thresholds by anyone who can write to the bus:
    # unsigned, and signed by a key the stages do not trust. No stage takes either.
    forged = {"version": 50, "scope": "global", "author": "lead", "reason": "forged", "created_at": 1,
              "values": {"rule:nodule-detected/min_score": 0.01}}
    producer = EventPublisher(stack.config.kafka)
    producer.send(CONFIG_THRESHOLDS, "global", forged)
    producer.send(CONFIG_THRESHOLDS, "global", sign("ThresholdSet", {**forged, "version": 51},
                                                    new_signing_key("mallory")))
    producer.flush()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        healths = _healths(stack)
        if len(healths) == n_stages and all(h["config_untrusted"] >= 2 for h in healths):
            break
        time.sleep(0.2)
    assert all(h["config_untrusted"] == 2 and h["config_version"] == 0 for h in healths), healths
    with urllib.request.urlopen(stage_statuses(stack.config.home / "run")[0]["health_url"] + "/metrics") as resp:
        assert "radstream_config_untrusted" in resp.read().decode()
    # ... and each stage wrote them to the audit topic as rejected, which history shows (once each)
    audit = PlainReader(stack.config.kafka.bootstrap, [stack.config.kafka.topic(CONFIG_AUDIT)])
    assert audit.poll_until(lambda r: sum(1 for x in next(iter(r.values())) if x["rejected"]) >= 2 * n_stages, 30)
    audit.close()
    hist = _cli(env, "thresholds", "history")
    rejected = [line for line in hist.stdout.splitlines() if line.startswith("REJECTED")]
    assert len(rejected) == 2, hist.stdout
    assert "(unsigned): v50" in rejected[0] and "(signed by unknown key 'mallory'): v51" in rejected[1]
    assert all("decode" in line and "qc" in line for line in rejected)

    # A push is signed: with no key (no --key, no RADSTREAM_SIGNING_KEY, no dev key: trusted keys
    # are configured, so the stack made none) or an unreadable one, nothing is produced.
    strict = tmp_path / "strict.yaml"
    strict.write_text("- scope: rule:nodule-detected\n  values: {rule:nodule-detected/min_score: 0.999}\n"
                      "- scope: rule:nodule-suspected\n  values: {rule:nodule-suspected/min_probability: 0.999}\n")
    res = _cli(env, "thresholds", "push", str(strict), "--reason", "x")
    assert res.returncode != 0 and "pass --key FILE" in res.stderr and "Traceback" not in res.stderr
    res = _cli(env, "thresholds", "push", str(strict), "--key", str(tmp_path / "no-such.key"), "--reason", "x")
    assert res.returncode != 0 and "cannot read key" in res.stderr and "Traceback" not in res.stderr

    # A push the registry does not know is refused before anything is produced.
    bad = tmp_path / "bad.yaml"
    bad.write_text("scope: global\nvalues:\n  rule:no-such-rule/min_score: 0.5\n")
    res = _cli(env, "thresholds", "push", str(bad), *lead, "--reason", "typo")
    assert res.returncode != 0 and "unknown threshold" in res.stderr and "Traceback" not in res.stderr

    res = _cli(env, "thresholds", "push", str(strict), *lead, "--reason", "quiet the demo")
    assert res.returncode == 0, res.stderr
    assert "pushed version 1" in res.stdout and "signed by lead" in res.stdout
    _wait_versions(stack, 1, n_stages)

    config = stack.config
    studies, _ = publish(producer, open_blob_store(config.blob_url), real_radiographs()[:2], log=lambda m: None)
    topic = config.kafka.topic("study.results")
    reader = PlainReader(config.kafka.bootstrap, [topic])
    assert reader.poll_until(lambda r: {x["study_uid"] for x in r[topic] if x["final"]} >= set(studies), 120, stack.poll)
    reader.close()
    result = next(r for r in reader.records[topic] if r["final"])
    assert result["config_version"] == 1
    findings = [f for img in result["images"] for f in img["findings"]]
    assert all(f["confidence"] >= 0.999 for f in findings)
    assert all(f["thresholds"] in ({"rule:nodule-detected/min_score": 0.999},
                                   {"rule:nodule-suspected/min_probability": 0.999}) for f in findings)

    # A bad record from another producer is rejected by every stage; version 1 stays in force.
    producer.send_raw(config.kafka.topic(CONFIG_THRESHOLDS), b"global", b"not a threshold record")
    producer.flush()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        healths = _healths(stack)
        if len(healths) == n_stages and all(h["config_rejections"] >= 3 for h in healths):
            break
        time.sleep(0.2)
    assert all(h["config_rejections"] >= 3 and h["config_version"] == 1 for h in healths), healths
    with urllib.request.urlopen(stage_statuses(config.home / "run")[0]["health_url"] + "/metrics") as resp:
        assert "radstream_config_rejections" in resp.read().decode()

    # Audit trail and show round trip.
    hist = _cli(env, "thresholds", "history")
    assert hist.returncode == 0
    assert any(line.startswith("v1 ") and " lead " in line and "quiet the demo" in line for line in hist.stdout.splitlines())
    shown = _cli(env, "thresholds", "show")
    again = tmp_path / "again.yaml"
    again.write_text(shown.stdout)
    res = _cli(env, "thresholds", "push", str(again), *lead, "--reason", "round trip")
    assert res.returncode == 0 and "pushed version 2" in res.stdout, res.stderr
    res = _cli(env, "thresholds", "diff", "1", "2")
    assert res.returncode == 0 and "no difference" in res.stdout
    res = _cli(env, "thresholds", "rollback", "1", *lead)
    assert res.returncode == 0 and "pushed version 3" in res.stdout
    status = json.loads(_cli(env, "status", "--json").stdout)
    assert status and all("health" in r for r in status)
