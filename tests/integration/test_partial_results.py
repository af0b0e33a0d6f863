"""What fuse and qc publish while one model's infer process is down (issue 18's chaos runs: studies
with a second, different final result).

Real fuse and qc processes on the embedded broker, with a 2 s join deadline. Two of the three
models in force answer for an image; the third's infer process is down, which to fuse is its
output not arriving (the infer stage itself is not run: its only part here is that output).
fuse publishes a partial result that names the missing model once the deadline passes, and qc
a final result (the expected count is reached) whose image says so; when the missing output
arrives after all, fuse publishes the complete result and qc a second final result,
`late_amendment`, under another idempotency key, which readers take as the newer version.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from radstream.domain.keys import image_key
from radstream.streams.config import Config
from radstream.streams.kafka.producer import EventPublisher
from radstream.streams.kafka.reader import read_events
from radstream.streams.kafka.topics import FINDINGS_FUSED, INFERENCE_RESULTS, STUDY_RESULTS, create_topics
from tests.export_stage import wait_until
from tests.factories import inference_result

pytestmark = pytest.mark.integration
LEAN = {"demo-classifier": "classifier", "demo-frcnn": "detector", "demo-qc": "qc"}  # conftest's LEAN_MODELS


def test_a_model_down_past_the_deadline_gives_a_partial_final_then_an_amendment(pipeline_env: dict[str, str]) -> None:
    env = {**os.environ, **pipeline_env, "RADSTREAM_JOIN_DEADLINE_S": "2"}
    settings = Config.from_env(env=env).kafka
    assert set(pipeline_env["RADSTREAM_MODELS"].split(",")) == set(LEAN)
    create_topics(settings, 3)
    producer = EventPublisher(settings)
    study, sop = "1.2.826.0.1.3680043.10.3.1", "1.2.826.0.1.3680043.10.3.1.1"

    def answer(model: str) -> None:
        producer.send(INFERENCE_RESULTS, image_key(sop, 0), inference_result(model, LEAN[model], sop=sop, study=study))
        producer.flush()

    stages = [subprocess.Popen([sys.executable, "-m", "radstream.services.cli", "stage", name],
                               env={**env, "RADSTREAM_GROUP_INSTANCE_ID": f"partial-test-{name}"},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for name in ("fuse", "qc")]
    try:
        answer("demo-classifier")
        answer("demo-frcnn")  # demo-qc's infer is down
        [(_, partial)] = wait_until("fuse's partial result", lambda: list(read_events(settings, FINDINGS_FUSED)),
                                    timeout_s=120)
        assert partial["missing_models"] == ["demo-qc"]
        [first] = wait_until("qc's first final result", lambda: [r for _, r in read_events(settings, STUDY_RESULTS)
                                                                 if r["final"]], timeout_s=60)
        assert first["completion"] == "expected_count_reached" and first["images"][0]["missing_models"] == ["demo-qc"]
        assert "demo-qc" not in first["model_versions"]

        answer("demo-qc")  # back up: its output after the deadline
        fused = wait_until("fuse's complete result", lambda: [r for _, r in read_events(settings, FINDINGS_FUSED)]
                           if len(list(read_events(settings, FINDINGS_FUSED))) >= 2 else None, timeout_s=60)
        assert [r["missing_models"] for r in fused] == [["demo-qc"], []]
        finals = wait_until("the amendment", lambda: [r for _, r in read_events(settings, STUDY_RESULTS) if r["final"]]
                            if sum(r["final"] for _, r in read_events(settings, STUDY_RESULTS)) >= 2 else None,
                            timeout_s=60)
        assert [r["completion"] for r in finals] == ["expected_count_reached", "late_amendment"]
        assert finals[1]["images"][0]["missing_models"] == [] and "demo-qc" in finals[1]["model_versions"]
        assert finals[0]["idempotency_key"] != finals[1]["idempotency_key"]  # two distinct final results
    finally:
        for stage in stages:
            stage.terminate()
        for stage in stages:
            stage.wait(60)
