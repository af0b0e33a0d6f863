"""The HL7 shell against a real MLLP listener (tests/hl7_listener.py): how each answer is classified."""

from __future__ import annotations

import socket
import threading

import pytest
from radstream.domain.dicom.patient import PatientContext
from radstream.domain.errors import PermanentError, TransientError
from radstream.services.export.hl7 import Hl7Export, parse_ack
from radstream.services.export.hl7_oru import message_control_id
from radstream.services.export.mllp import frame, unframe
from radstream.streams.blobstore import FileBlobStore

from tests.hl7_listener import AE_TEXT, ack, start_listener
from tests.unit.services.gateway.gateway_records import fused_box, study_result

RESULT = study_result(boxes=[fused_box([10, 20, 30, 40])])
CONTEXT = PatientContext(study_uid=RESULT["study_uid"], patient_id="P1", patient_name="Doe^Jane")


@pytest.fixture
def listener():
    running = start_listener()
    yield running
    running.stop()


def _stage(tmp_path, port: int, timeout_s: float = 5.0) -> Hl7Export:
    return Hl7Export(FileBlobStore(tmp_path), "127.0.0.1", port, timeout_s=timeout_s)


def test_aa_returns_and_the_listener_validated_the_message(tmp_path, listener) -> None:
    _stage(tmp_path, listener.port).send(RESULT, CONTEXT)
    assert listener.invalid == [] and len(listener.received) == 1
    assert listener.received[0].message.msh.msh_10.to_er7() == message_control_id(RESULT)


def test_ae_is_a_refusal_with_the_acks_text(tmp_path, listener) -> None:
    listener.answer = "AE"
    with pytest.raises(PermanentError) as err:
        _stage(tmp_path, listener.port).send(RESULT, CONTEXT)
    assert err.value.code == "hl7_rejected" and not err.value.transient
    assert "AE (application error)" in err.value.reason and AE_TEXT in err.value.reason
    assert "Unknown key identifier" in err.value.reason


def test_a_listener_that_never_answers_is_no_answer(tmp_path, listener) -> None:
    listener.answer = "silent"
    with pytest.raises(TransientError, match="without an answer") as err:
        _stage(tmp_path, listener.port).send(RESULT, CONTEXT)
    assert err.value.code == "hl7_no_answer"


def test_nobody_listening_is_no_answer(tmp_path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connection refused
        with pytest.raises(TransientError, match="cannot reach"):
            _stage(tmp_path, port).send(RESULT, CONTEXT)


def _one_shot_server(answer: bytes | None, delay_close: float = 0.0) -> int:
    """A raw socket peer that reads one frame and answers `answer` verbatim (None: keeps silent)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            data = b""
            while not data.endswith(b"\x1c\x0d"):
                data += conn.recv(4096)
            if answer is not None:
                conn.sendall(answer)
            threading.Event().wait(delay_close)
        server.close()

    threading.Thread(target=serve, daemon=True).start()
    return server.getsockname()[1]


def test_an_ack_for_another_message_is_no_answer(tmp_path) -> None:
    other = {**RESULT, "idempotency_key": "another"}
    from radstream.services.export.hl7_oru import oru_r01

    port = _one_shot_server(frame(ack(oru_r01(other, CONTEXT), "AA")))
    with pytest.raises(TransientError, match="acknowledged another message"):
        _stage(tmp_path, port).send(RESULT, CONTEXT)


def test_a_silent_open_connection_times_out_as_no_answer(tmp_path) -> None:
    port = _one_shot_server(None, delay_close=3.0)
    with pytest.raises(TransientError, match="no answer .* within 0.5 s"):
        _stage(tmp_path, port, timeout_s=0.5).send(RESULT, CONTEXT)


def test_garbage_instead_of_an_ack_is_no_answer(tmp_path) -> None:
    port = _one_shot_server(frame("HELLO"))
    with pytest.raises(TransientError, match="unparseable acknowledgment"):
        _stage(tmp_path, port).send(RESULT, CONTEXT)


def test_parse_ack_reads_msa_and_err_of_older_versions_too() -> None:
    er7 = "MSH|^~\\&|RIS||RADSTREAM||20261203||ACK|9|P|2.3\rMSA|AR|abc|bad \\S\\ field\rERR|PID^1^3^101"
    parsed = parse_ack(er7)
    assert (parsed.code, parsed.control_id) == ("AR", "abc")
    assert parsed.text.startswith("bad ^ field; PID^1^3^101")


def test_frames_round_trip() -> None:
    assert unframe(frame("MSH|x\rPID|1")) == "MSH|x\rPID|1"
    with pytest.raises(ValueError):
        unframe(b"MSH|x")
