"""The whole pipeline with its blobs on a real S3 server (SeaweedFS), one stack for the module:
results land with no blob file under RADSTREAM_HOME; the S3 server stopped for 20 s in the
middle of a run loses nothing (stages hold their partitions, report unhealthy, commit nothing,
and dead-letter nothing); `radstream blobs gc` deletes and keeps the same blobs on S3 as on files."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from radstream.services.demo import real_radiographs
from radstream.services.stack import Stack
from radstream.services.status import stage_statuses
from radstream.services.synthetic.studies import write_synthetic_study
from radstream.streams.blobstore import open_blob_store
from radstream.streams.config import Config
from radstream.streams.kafka.topics import DICOM_ARRIVED, IMAGE_DECODED, IMAGE_PREPROCESSED, INFERENCE_RESULTS, dlq
from tests.conftest import FAST_GROUP_ENV, LEAN_MODELS
from tests.plain_reader import PlainReader, raw_records

pytestmark = pytest.mark.integration


@dataclass
class S3Pipeline:
    stack: Stack
    env: dict[str, str]
    config: Config
    bucket: str
    home: Path

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "radstream.services.cli", *args], env={**os.environ, **self.env},
                              capture_output=True, text=True, timeout=180, check=False)

    def results(self, study_uids: set[str], timeout_s: float, images: int = 1) -> dict[str, dict]:
        """Wait for a final result of every study with `images` images, every model's output in each;
        those results by study. (A study quiet for the quiet period is final with what it has, and
        final again when a held image lands: the test waits for the complete one.)"""
        topic = self.config.kafka.topic("study.results")
        reader = PlainReader(self.config.kafka.bootstrap, [topic])

        def complete(r: dict) -> bool:
            return len(r["images"]) >= images and not any(i.get("missing_models") for i in r["images"])

        try:
            reader.poll_until(lambda rs: {x["study_uid"] for x in rs[topic] if x["final"] and complete(x)} >= study_uids,
                              timeout_s, self.stack.poll)
        finally:
            reader.close()
        return {x["study_uid"]: x for x in reader.records[topic]
                if x["final"] and x["study_uid"] in study_uids and complete(x)}


@pytest.fixture(scope="module")
def s3_pipeline(broker, seaweedfs, tmp_path_factory) -> Iterator[S3Pipeline]:
    home = tmp_path_factory.mktemp("s3-home")
    bucket = seaweedfs.bucket()
    env = {**FAST_GROUP_ENV, "RADSTREAM_MODELS": LEAN_MODELS, "RADSTREAM_BOOTSTRAP": broker.bootstrap,
           "RADSTREAM_TOPIC_PREFIX": f"s3{uuid.uuid4().hex[:8]}.", "RADSTREAM_HOME": str(home),
           "RADSTREAM_BLOB_UNHEALTHY_AFTER_S": "3", **seaweedfs.env(bucket, prefix="radstream"),
           # fuse waits out the outage for every model's output (its deadline would name the held ones missing)
           "RADSTREAM_JOIN_DEADLINE_S": "180"}
    config = Config.from_env(env={**os.environ, **env})
    stack = Stack(config, broker.bootstrap, env=env).start()
    try:
        stack.wait_ready(180)
        yield S3Pipeline(stack, env, config, bucket, home)
    finally:
        stack.stop()


def _blob_files(home: Path) -> list[Path]:
    return [p for p in home.rglob("*") if p.is_file() and len(p.name) == 64 and all(c in "0123456789abcdef" for c in p.name)]


def test_the_pipeline_runs_on_s3_and_writes_no_blob_file(s3_pipeline: S3Pipeline, seaweedfs) -> None:
    rg1 = real_radiographs()[0]  # RG1 uncompressed, 7 MB: a multipart upload, and so are its pixels
    published = s3_pipeline.cli("publish", str(rg1))
    assert published.returncode == 0, published.stderr
    store = open_blob_store(s3_pipeline.env["RADSTREAM_BLOB_URL"], env=s3_pipeline.env)
    arrivals = [v for _, v in _arrivals(s3_pipeline)]
    study = arrivals[0]["study_uid"]
    results = s3_pipeline.results({study}, 240)
    assert study in results, f"no final result on S3; logs in {s3_pipeline.stack.logs}"
    image = results[study]["images"][0]
    assert image["source"]["uri"].startswith(f"s3://{s3_pipeline.bucket}/radstream/raw/")
    assert store.get(image["source"]) == rg1.read_bytes()  # the original, verified by its hash
    keys = seaweedfs.keys(s3_pipeline.bucket, "radstream/")
    assert any(k.startswith("radstream/raw/") for k in keys) and any(k.startswith("radstream/derived/") for k in keys)
    assert _blob_files(s3_pipeline.home) == []  # nothing of the claim check went to RADSTREAM_HOME


def test_stopping_s3_for_20_s_mid_run_loses_nothing(s3_pipeline: S3Pipeline, seaweedfs, tmp_path) -> None:
    folders = [write_synthetic_study(tmp_path / f"s{i}", n_images=2, seed=900 + i)[0].parent for i in range(4)]
    earlier = {v["study_uid"] for _, v in _arrivals(s3_pipeline)}
    published = s3_pipeline.cli("publish", *map(str, folders))
    assert seaweedfs.process is not None
    seaweedfs.process.terminate()  # at once: decode, preprocess and infer are in the middle of these images
    assert published.returncode == 0, published.stderr
    # It stops answering S3 at once, but its process takes ~15 s to exit (requests meanwhile hang);
    # the outage counted is the 20 s after that, when every connection is refused, and longer (up to
    # 90 s) until a stage has reported it: on a loaded machine a stage may still be in its first retry.
    unhealthy: dict[str, str] = {}
    gone_at: float | None = None
    while gone_at is None or time.monotonic() - gone_at < (20 if unhealthy else 90):
        if gone_at is None and seaweedfs.process.poll() is not None:
            gone_at = time.monotonic()
        s3_pipeline.stack.poll()
        for row in stage_statuses(s3_pipeline.home / "run"):
            health = row["health"]  # what `radstream status` shows
            if not health.get("healthy", True) and "blob store" in health.get("unanswered_reason", ""):
                unhealthy[row["stage"]] = health["unanswered_reason"]
        time.sleep(1)
    seaweedfs.stop()
    seaweedfs.start()
    studies = {v["study_uid"] for _, v in _arrivals(s3_pipeline)} - earlier
    assert len(studies) == 4
    results = s3_pipeline.results(studies, 300, images=2)
    assert set(results) == studies, f"{len(results)} of {len(studies)} studies complete; logs in {s3_pipeline.stack.logs}"
    assert unhealthy, "no stage reported the blob store down while it was"
    assert all(s3_pipeline.bucket in why and "did not answer" in why for why in unhealthy.values())
    dead = [r for r in raw_records(s3_pipeline.config.kafka.bootstrap,
                                   [s3_pipeline.config.kafka.topic(dlq(t)) for t in
                                    (DICOM_ARRIVED, IMAGE_DECODED, IMAGE_PREPROCESSED, INFERENCE_RESULTS)])[0]]
    assert dead == [], f"{len(dead)} dead letters: nothing may be skipped for an outage"


def test_blobs_gc_on_s3_deletes_raw_of_final_studies_and_derived_by_age(s3_pipeline: S3Pipeline, seaweedfs) -> None:
    store = open_blob_store(s3_pipeline.env["RADSTREAM_BLOB_URL"], env=s3_pipeline.env)
    rg3 = real_radiographs()[3]  # RG3 as JPEG 2000, 0.8 MB
    published = s3_pipeline.cli("publish", str(rg3))
    assert published.returncode == 0, published.stderr
    finals = s3_pipeline.results({v["study_uid"] for _, v in _arrivals(s3_pipeline)}, 240)
    stray = store.put(f"DICM raw no arrival names {uuid.uuid4()}".encode(), "application/dicom")
    final_raw = {v["blob"]["sha256"] for _, v in _arrivals(s3_pipeline) if v["study_uid"] in finals}
    before = {b.sha256: b.area for b in store.stored()}
    assert final_raw <= set(before) and any(area == "derived" for area in before.values())

    dry = s3_pipeline.cli("blobs", "gc", "--raw-after", "0s", "--derived-after", "30d", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would delete {len(final_raw)} raw and 0 derived" in dry.stdout, dry.stdout
    assert {b.sha256 for b in store.stored()} == set(before)

    done = s3_pipeline.cli("blobs", "gc", "--raw-after", "0s", "--derived-after", "30d")
    assert done.returncode == 0 and f"deleted {len(final_raw)} raw and 0 derived" in done.stdout, done.stdout
    after = {b.sha256: b.area for b in store.stored()}
    assert not final_raw & set(after) and stray["sha256"] in after  # a raw blob no arrival names stays
    assert {s for s, a in after.items() if a == "derived"} == {s for s, a in before.items() if a == "derived"}

    aged = s3_pipeline.cli("blobs", "gc", "--raw-after", "0s", "--derived-after", "0s")
    assert aged.returncode == 0, aged.stderr
    assert {b.sha256 for b in store.stored()} == {stray["sha256"]}  # every derived blob was older than 0 s


def _arrivals(p: S3Pipeline) -> list[tuple]:
    from radstream.streams.kafka.reader import read_events

    return list(read_events(p.config.kafka, DICOM_ARRIVED))
