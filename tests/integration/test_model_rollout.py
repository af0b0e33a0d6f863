"""Model versions rolled out safely, end to end on a real broker with the demo classifier's two
trained artifacts (v1: models/registry/versions/demo-classifier/1.json, v2: the default manifest).

Live v1 (put in force by a promotion) and a shadow v2 (`stage infer --shadow`) read the same
images; fuse never sees the shadow; `models compare` reports their agreement; promoting v2 switches
the live stage without a restart (same PIDs) and results are stamped v2; a rollback brings v1 back.
One stack for the module: the decode, preprocess, infer, fuse and qc processes, plus the shadow."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from radstream.services.publish import publish
from radstream.services.status import stage_statuses
from radstream.services.synthetic.studies import write_synthetic_study
from radstream.streams.blobstore import open_blob_store
from radstream.streams.kafka.producer import EventPublisher
from tests.plain_reader import PlainReader

pytestmark = pytest.mark.integration

NAME = "demo-classifier"


@pytest.fixture
def pipeline_env(pipeline_env: dict) -> dict:
    return {**pipeline_env, "RADSTREAM_MODELS": NAME}  # one model: the stages that matter, on two cores


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "radstream.services.cli", *args], env=env, capture_output=True,
                          text=True, timeout=180)


def _infer_healths(home: Path) -> dict[str, dict]:
    """group -> /healthz of each infer process (live and shadow)."""
    return {r["health"]["group"]: r["health"] for r in stage_statuses(home / "run")
            if r["health"].get("stage") == "infer"}


def _wait_serving(stack, group_suffix: str, version: str, timeout_s: float = 90) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stack.poll()
        found = [h for g, h in _infer_healths(stack.config.home).items() if g.endswith(group_suffix)]
        if found and found[0]["models"][0]["version"] == version and found[0]["partitions"] \
                and "opening_version" not in found[0]["models"][0]:
            return found[0]
        time.sleep(0.3)
    raise AssertionError(f"{group_suffix} not serving v{version}: {_infer_healths(stack.config.home)}")


def _publish(stack, tmp_path: Path, seed: int, studies: int = 2, priority: str | None = None) -> set[str]:
    files = [f for k in range(studies) for f in write_synthetic_study(tmp_path / f"s{seed}-{k}", 2, seed + k)]
    uids, errors = publish(EventPublisher(stack.config.kafka), open_blob_store(stack.config.blob_url), files,
                           log=lambda m: None, priority=priority)
    assert not errors
    return set(uids)


def _now_ms() -> int:
    return int(time.time() * 1000)


def test_shadow_compare_promote_and_rollback_without_a_restart(stack, pipeline_env, tmp_path) -> None:
    env = {**os.environ, **pipeline_env}
    stack.wait_ready()
    config = stack.config
    kafka = config.kafka
    pids = {c.proc.pid for c in stack.supervisor.children}

    # v1 live: a promotion (the stack's dev key signs it; its stages trust that key)
    res = _cli(env, "models", "promote", NAME, "--version", "1")
    assert res.returncode == 0 and f"{NAME} version 1 in force" in res.stdout, res.stderr
    _wait_serving(stack, f"infer-{NAME}", "1")
    res = _cli(env, "models", "promote", NAME, "--version", "7")
    assert res.returncode != 0 and "has no version '7'" in res.stderr and "Traceback" not in res.stderr

    # v2 beside it, as a shadow in its own group
    shadow_log = (tmp_path / "shadow.log").open("w")
    shadow = subprocess.Popen([sys.executable, "-m", "radstream.services.cli", "stage", "infer", "--model", NAME,
                               "--shadow", "--version", "2"], env=env, stdout=shadow_log, stderr=subprocess.STDOUT)
    try:
        _wait_serving(stack, f"infer-{NAME}-shadow", "2")
        topics = {t: kafka.topic(t) for t in ("inference.results", "inference.results.stat", "inference.shadow",
                                              "findings.fused", "findings.fused.stat", "study.results")}
        reader = PlainReader(kafka.bootstrap, list(topics.values()))

        def finals(r) -> set[str]:
            return {x["study_uid"] for x in r[topics["study.results"]] if x["final"]}

        # one urgent study: its live results and fused findings take the STAT twins (D-057), its shadow
        # results inference.shadow like the rest
        first = _publish(stack, tmp_path, 101, studies=2) | _publish(stack, tmp_path, 111, studies=1, priority="stat")
        def count(r, *names: str) -> int:
            return sum(len(r[topics[n]]) for n in names)

        # every topic to its count: one reader's fetches across topics come in no set order
        assert reader.poll_until(lambda r: finals(r) >= first and count(r, "inference.shadow") >= 6
                                 and count(r, "inference.results", "inference.results.stat") >= 6
                                 and count(r, "findings.fused", "findings.fused.stat") >= 6, 180, stack.poll), \
            {n: len(v) for n, v in reader.records.items()}
        live = {x["sop_uid"]: x for t in ("inference.results", "inference.results.stat")
                for x in reader.records[topics[t]]}
        assert len(reader.records[topics["inference.results.stat"]]) == 2
        shadowed = {x["sop_uid"]: x for x in reader.records[topics["inference.shadow"]]}
        assert {x["model"]["version"] for x in live.values()} == {"1"}
        assert {x["model"]["version"] for x in shadowed.values()} == {"2"} and set(shadowed) == set(live)
        # fuse never read the shadow: every fused result is v1's, with v1's own probability
        fused = reader.records[topics["findings.fused"]] + reader.records[topics["findings.fused.stat"]]
        assert len(fused) == 6 and all(f["model_versions"] == {NAME: "1"} for f in fused)
        for f in fused:
            [out] = f["classifier_outputs"]
            assert out["raw_probability"] == pytest.approx(live[f["sop_uid"]]["classifications"]["nodule"])
        assert any(abs(live[s]["classifications"]["nodule"] - shadowed[s]["classifications"]["nodule"]) > 1e-3
                   for s in live)  # two really different artifacts
        assert all(r["model_versions"] == {NAME: "1"} for r in reader.records[topics["study.results"]])

        res = _cli(env, "models", "compare", NAME, "--since", "1h", "--json")
        assert res.returncode == 0, res.stderr
        report = json.loads(res.stdout)
        assert (report["matched"], report["only_live"], report["only_shadow"]) == (6, 0, 0)
        assert (report["live_versions"], report["shadow_versions"]) == (["1"], ["2"])
        [row] = report["labels"]
        assert row["label"] == "nodule" and row["images"] == 6 and row["threshold"] == 0.5
        assert row["pearson"] is not None and -1 <= row["pearson"] < 0.99999
        flips = row["live_positive_shadow_negative"] + row["live_negative_shadow_positive"]
        expected = sum((live[s]["classifications"]["nodule"] >= 0.5) != (shadowed[s]["classifications"]["nodule"] >= 0.5)
                       for s in live)
        assert flips == expected and report["boxes"] is None
        table = _cli(env, "models", "compare", NAME, "--since", "30m")
        print(table.stdout)  # the figures, in the test log
        assert table.returncode == 0 and "live 1 vs shadow 2" in table.stdout and "6 images matched" in table.stdout
        for bad, message in (("yesterday", "not a time"),
                             ((dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).isoformat(), "no image has both")):
            res = _cli(env, "models", "compare", NAME, "--since", bad)
            assert res.returncode != 0 and message in res.stderr and "Traceback" not in res.stderr
            assert len(res.stderr.strip().splitlines()) == 1, res.stderr

        # promote v2: the live stage switches in place; the shadow says it is now the live version
        res = _cli(env, "models", "promote", NAME, "--version", "2")
        assert res.returncode == 0, res.stderr
        _wait_serving(stack, f"infer-{NAME}", "2")
        promoted_at = _now_ms()
        second = _publish(stack, tmp_path, 201)
        assert reader.poll_until(lambda r: finals(r) >= first | second and len(r[topics["inference.shadow"]]) >= 10,
                                 180, stack.poll)
        newer = [r for r in reader.records[topics["study.results"]] if r["study_uid"] in second]
        assert newer and all(r["model_versions"] == {NAME: "2"} for r in newer)
        assert all(r["config_version"] == 0 for r in newer)  # the model set is not a threshold version
        res = _cli(env, "models", "compare", NAME, "--since", str(promoted_at), "--json")
        assert res.returncode == 0, res.stderr
        same = json.loads(res.stdout)
        assert same["live_versions"] == same["shadow_versions"] == ["2"] and same["matched"] == 4
        [row] = same["labels"]
        assert row["pearson"] == pytest.approx(1.0, abs=1e-6)
        assert row["live_positive_shadow_negative"] == row["live_negative_shadow_positive"] == 0
        assert "is the live version now" in (tmp_path / "shadow.log").read_text()

        # roll back: v1 again, the same push
        res = _cli(env, "models", "rollback", NAME)
        assert res.returncode == 0 and "back from version 2 to 1" in res.stdout, res.stderr
        _wait_serving(stack, f"infer-{NAME}", "1")
        third = _publish(stack, tmp_path, 301, studies=1)
        assert reader.poll_until(lambda r: finals(r) >= first | second | third, 180, stack.poll)
        rolled = [r for r in reader.records[topics["study.results"]] if r["study_uid"] in third]
        assert rolled and all(r["model_versions"] == {NAME: "1"} for r in rolled)
        reader.close()
        versions = _cli(env, "models", "versions", NAME)
        assert versions.returncode == 0 and "1  in force" in versions.stdout
        assert {c.proc.pid for c in stack.supervisor.children} == pids  # no stage restarted
        assert all(c.restarts == 0 for c in stack.supervisor.children)
        assert shadow.poll() is None
    finally:
        shadow.terminate()
        shadow.wait(30)
        shadow_log.close()
