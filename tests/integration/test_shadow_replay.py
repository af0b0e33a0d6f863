"""Shadow replay runs recorded arrivals through a candidate config in separate topics and
groups, reports beside the live results, and leaves every live topic byte-identical."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from confluent_kafka import Consumer

from radstream.services.synthetic.studies import write_synthetic_study
from radstream.services.demo import real_radiographs
from radstream.services.publish import publish
from radstream.streams.blobstore import open_blob_store
from radstream.streams.kafka.producer import EventPublisher
from tests.plain_reader import PlainReader, raw_records

pytestmark = pytest.mark.integration


def _snapshot(bootstrap: str, prefix: str) -> dict:
    """Every record of every live topic (shadow topics excluded), as bytes."""
    lister = Consumer({"bootstrap.servers": bootstrap, "group.id": "snapshot"})
    topics = sorted(t for t in lister.list_topics(timeout=10).topics
                    if t.startswith(prefix) and not t.startswith(prefix + "shadow-"))
    lister.close()
    records, _ = raw_records(bootstrap, topics)
    return {"topics": topics, "records": sorted(records)}


def test_replay_through_a_candidate_config_touches_no_live_topic(stack, pipeline_config, pipeline_env, tmp_path) -> None:
    settings = pipeline_config.kafka
    start = int(time.time() * 1000) - 1000
    files = real_radiographs()[:2] + write_synthetic_study(tmp_path / "s", n_images=2, seed=31)
    studies, _ = publish(EventPublisher(settings), open_blob_store(pipeline_config.blob_url), files, log=lambda m: None)
    topic = settings.topic("study.results")
    reader = PlainReader(settings.bootstrap, [topic])
    assert reader.poll_until(lambda r: {x["study_uid"] for x in r[topic] if x["final"]} >= set(studies), 180, stack.poll)
    reader.close()
    live_findings = sum(len(i["findings"]) for r in reader.records[topic] if r["final"] for i in r["images"])
    assert live_findings > 0, "the candidate must have something to change"
    end = int(time.time() * 1000)
    before = _snapshot(settings.bootstrap, settings.topic_prefix)

    candidate = tmp_path / "candidate.yaml"
    candidate.write_text("- scope: rule:nodule-detected\n  values: {rule:nodule-detected/min_score: 1.0}\n"
                         "- scope: rule:nodule-suspected\n  values: {rule:nodule-suspected/min_probability: 1.0}\n")
    labels = tmp_path / "labels.csv"
    labels.write_text("study_uid,label,value\n" + "".join(f"{s},nodule,{i % 2}\n" for i, s in enumerate(studies)))
    env = {**os.environ, **pipeline_env}
    res = subprocess.run([sys.executable, "-m", "radstream.services.cli", "replay", "--start", str(start),
                          "--end", str(end), "--config", str(candidate), "--labels", str(labels),
                          "--out", str(tmp_path / "out"), "--name", "t1", "--timeout", "180"],
                         env=env, capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "v1: 0 finding(s)" in res.stdout and "nodule:" in res.stdout
    shadow = [line for line in (tmp_path / "out" / "shadow.jsonl").read_text().splitlines() if line]
    assert len(shadow) == len(studies)
    assert (tmp_path / "out" / "comparison.json").exists()

    # The evaluation reads the live results straight from the topic.
    ev = subprocess.run([sys.executable, "-m", "radstream.services.cli", "evaluate", "--labels", str(labels),
                         "--from-kafka", "--json", "--resamples", "200"], env=env, capture_output=True, text=True,
                        timeout=120)
    assert ev.returncode == 0, ev.stderr
    import json

    nodule = json.loads(ev.stdout)["labels"]["nodule"]
    assert nodule["tp"] + nodule["fp"] + nodule["tn"] + nodule["fn"] == len(studies)

    after = _snapshot(settings.bootstrap, settings.topic_prefix)
    assert after == before, "shadow replay changed a live topic"
    bad = subprocess.run([sys.executable, "-m", "radstream.services.cli", "replay", "--start", "0", "--end", "1",
                          "--config", str(candidate)], env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "no arrivals" in bad.stderr
