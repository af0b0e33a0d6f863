"""`radstream export hl7` as a user runs it (a subprocess) on the real broker, against a real MLLP
listener (hl7apy's MLLPServer in the test, parsing STRICT and validating 2.5.1; no RIS can be
installed here, tests/hl7_listener.py).

One stage process goes through the three answers a RIS can give, in order:
1. nobody listens: the result is held, nothing committed, nothing dead-lettered, /healthz
   turns unhealthy with the reason;
2. the listener comes up (AA): the held ORU arrives, validated, PID read from the real
   original (RG1, from pydicom-data) in the blob store, then it is committed;
3. the listener answers AE: the next result lands in the DLQ with the ACK's text.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from radstream.services.broker import free_port
from radstream.services.demo import real_radiographs
from radstream.services.export.hl7_oru import message_control_id
from radstream.streams.kafka.producer import EventPublisher
from radstream.streams.kafka.topics import STUDY_RESULTS, create_topics

from tests.export_stage import committed_offset, wait_until
from tests.hl7_listener import AE_TEXT, start_listener
from tests.plain_reader import PlainReader
from tests.real_results import result_with_original

pytestmark = pytest.mark.integration


def _health(port: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:  # 503: unhealthy, same document
        return json.loads(exc.read())
    except OSError:
        return {}


def test_export_hl7_holds_delivers_and_dead_letters(pipeline_config, pipeline_env) -> None:
    settings = pipeline_config.kafka
    create_topics(settings, partitions=1)
    rg1 = next(p for p in real_radiographs() if p.name == "RG1_UNCR.dcm")
    first = result_with_original(pipeline_config, rg1, key="res-rg1-v1")
    second = result_with_original(pipeline_config, rg1, key="res-rg1-v2", boxes=[[10, 10, 50, 50]])
    publisher = EventPublisher(settings)
    publisher.send(STUDY_RESULTS, first["study_uid"], first)
    publisher.flush()

    mllp_port, health_port = free_port(), free_port()
    stage = subprocess.Popen(
        [sys.executable, "-m", "radstream.services.cli", "export", "hl7", "--to", f"127.0.0.1:{mllp_port}",
         "--sending-facility", "RADSITE", "--receiving-application", "RIS", "--timeout", "2",
         "--health-port", str(health_port), "--unhealthy-after", "1"],
        env={**os.environ, **pipeline_env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    listener = None
    try:
        # 1. nobody listens: held, unhealthy with the reason, nothing committed
        silent = wait_until("unhealthy /healthz", lambda: (h := _health(health_port)) and h.get("healthy") is False and h)
        assert "cannot reach" in silent["unanswered_reason"] and silent["stage"] == "export-hl7"
        assert committed_offset(settings, "hl7") < 1

        # 2. the listener comes up: the held result is delivered and validated
        listener = start_listener(port=mllp_port)
        received = wait_until("the ORU", lambda: listener.received)
        assert listener.invalid == []
        message = received[0].message
        assert message.msh.msh_10.to_er7() == message_control_id(first)
        assert (message.msh.msh_4.to_er7(), message.msh.msh_5.to_er7()) == ("RADSITE", "RIS")
        pid = message.oru_r01_patient_result.oru_r01_patient.pid
        assert pid.pid_3.cx_1.to_er7() == "9RG1", "PID-3 from the original instance, not from the bus"
        assert pid.pid_5.to_er7() == "CompressedSamples^RG1"
        assert (pid.pid_7.to_er7(), pid.pid_8.to_er7()) == ("19400305", "F")
        order = message.oru_r01_patient_result.oru_r01_order_observation
        assert order.obr.obr_2.to_er7() == "exam Number"
        assert order.obr.obr_3.to_er7().startswith(first["study_uid"] + "^")
        assert order.obr.obr_7.to_er7() == "20040826185059"
        notes = [s.nte_3.to_er7() for s in order.children if s.name == "NTE"]
        # detector-a and detector-b are in no manifest: unknown provenance is treated as not for clinical use
        assert notes == ["NOT FOR CLINICAL USE: demo models trained on synthetic phantoms"]
        finding = order.oru_r01_observation[1].obx
        assert finding.obx_3.to_er7() == "27925004^Nodule^SCT" and finding.obx_5.to_er7() == "0.8000"
        wait_until("the commit", lambda: committed_offset(settings, "hl7") == 1)
        assert _health(health_port)["healthy"] is True

        # 3. an AE: the next result goes to the DLQ with the ACK's text, and is committed
        listener.answer = "AE"
        publisher.send(STUDY_RESULTS, second["study_uid"], second)
        publisher.flush()
        dlq = settings.topic(STUDY_RESULTS + ".dlq")
        reader = PlainReader(settings.bootstrap, [dlq])
        assert reader.poll_until(lambda r: r[dlq], timeout_s=60)
        record = reader.records[dlq][0]
        assert record["stage"] == "export-hl7" and record["error_code"] == "hl7_rejected"
        assert record["error_class"] == "PERMANENT"
        assert "AE (application error)" in record["error_message"] and AE_TEXT in record["error_message"]
        assert message_control_id(second) in record["error_message"]
        wait_until("the commit past the refusal", lambda: committed_offset(settings, "hl7") == 2)
        assert len(listener.received) == 2, "the refused result was sent once, not retried"
    finally:
        stage.send_signal(signal.SIGTERM)
        try:
            _, err = stage.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            stage.kill()
            _, err = stage.communicate()
        print(err[-3000:], file=sys.stderr)  # shown when the test fails
        if listener is not None:
            listener.stop()
    assert stage.returncode == 0, err[-2000:]
    assert "Traceback" not in err
