"""`radstream export fhir` as a user runs it (a subprocess) on the real broker, against a small
recording FHIR server in the test (tests/fhir_server.py): no FHIR server package can be installed
here. The server validates every Bundle and resource with fhir.resources and applies conditional
create as the spec has it, so a duplicate delivery shows up as "nothing new stored".

1. the server is down (503): nothing is committed; once it is up, the held result arrives;
2. that result (its patient read from the real RG1 original in the blob store) is one valid
   transaction, its subject the conditional reference to RG1's Patient ID;
3. the same record delivered again sends the same conditional creates; nothing new is stored;
4. a 422 with an OperationOutcome puts the next result in the DLQ with that text.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from urllib.parse import unquote

import pytest
from radstream.services.demo import real_radiographs
from radstream.streams.kafka.producer import EventPublisher
from radstream.streams.kafka.topics import STUDY_RESULTS, create_topics

from tests.export_stage import committed_offset, wait_until
from tests.fhir_server import REJECT_TEXT, start_fhir_server
from tests.plain_reader import PlainReader
from tests.real_results import result_with_original

pytestmark = pytest.mark.integration


def test_export_fhir_conditional_creates_and_refusals(pipeline_config, pipeline_env) -> None:
    settings = pipeline_config.kafka
    create_topics(settings, partitions=1)
    rg1 = next(p for p in real_radiographs() if p.name == "RG1_UNCR.dcm")
    first = result_with_original(pipeline_config, rg1, key="res-rg1-v1")
    second = result_with_original(pipeline_config, rg1, key="res-rg1-v2", boxes=[[10, 10, 50, 50]])
    publisher = EventPublisher(settings)
    publisher.send(STUDY_RESULTS, first["study_uid"], first)
    publisher.flush()

    server = start_fhir_server()
    server.answer = "down"
    stage = subprocess.Popen(
        [sys.executable, "-m", "radstream.services.cli", "export", "fhir", "--url", server.url, "--allow-http"],
        env={**os.environ, **pipeline_env, "RADSTREAM_FHIR_TOKEN": "s3cret"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err = ""
    try:
        # 1. down: held and retried (backoff 1 s, 2 s, ...), nothing committed; then up: delivered
        wait_until("two refusals while down", lambda: server.refused_while_down >= 2)
        assert committed_offset(settings, "fhir") < 1 and server.requests == []
        server.answer = "ok"
        wait_until("the first transaction", lambda: server.requests)
        wait_until("the commit", lambda: committed_offset(settings, "fhir") == 1)

        # 2. one valid transaction, the patient from the original
        assert server.invalid == []
        request = server.requests[0]
        assert request["headers"]["Authorization"] == "Bearer s3cret"
        report = request["bundle"]["entry"][0]["resource"]
        assert report["resourceType"] == "DiagnosticReport" and report["status"] == "final"
        assert unquote(report["subject"]["reference"]) == "Patient?identifier=9RG1", "RG1's Patient ID, no issuer"
        assert report["imagingStudy"][0]["identifier"]["value"] == f"urn:oid:{first['study_uid']}"
        assert report["basedOn"][0]["identifier"]["value"] == "exam Number"
        assert report["effectiveDateTime"] == "2004-08-26"
        assert "NOT FOR CLINICAL USE" in report["conclusion"], "detector-a/-b are in no manifest"
        observation = request["bundle"]["entry"][1]["resource"]
        assert observation["code"]["coding"][0]["code"] == "27925004"
        stored = dict(server.stored)
        assert sorted(stored) == ["DiagnosticReport/1", "Observation/2"]

        # 3. the same record again: the same conditional creates, nothing new stored
        publisher.send(STUDY_RESULTS, first["study_uid"], first)
        publisher.flush()
        wait_until("the redelivery", lambda: len(server.requests) == 2)
        assert server.requests[1]["bundle"] == request["bundle"]
        assert server.stored == stored

        # 4. a refusal: the next result goes to the DLQ with the OperationOutcome's text
        server.answer = "reject"
        publisher.send(STUDY_RESULTS, second["study_uid"], second)
        publisher.flush()
        dlq = settings.topic(STUDY_RESULTS + ".dlq")
        reader = PlainReader(settings.bootstrap, [dlq])
        assert reader.poll_until(lambda r: r[dlq], timeout_s=60)
        record = reader.records[dlq][0]
        assert record["stage"] == "export-fhir" and record["error_code"] == "fhir_rejected"
        assert "HTTP 422" in record["error_message"] and REJECT_TEXT in record["error_message"]
        assert "s3cret" not in record["error_message"]
        assert len(server.requests) == 3, "a refusal is not retried"
    finally:
        stage.send_signal(signal.SIGTERM)
        try:
            _, err = stage.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            stage.kill()
            _, err = stage.communicate()
        print(err[-3000:], file=sys.stderr)  # shown when the test fails
        server.stop()
    assert stage.returncode == 0, err[-2000:]
    assert "Traceback" not in err and "s3cret" not in err
