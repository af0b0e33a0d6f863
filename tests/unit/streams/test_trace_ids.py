"""Trace ids are a keyed HMAC of the Study UID (issue 17: an unsalted sha256 let anyone who sees a trace
id test known Study UIDs against it), with one key per deployment so every sender agrees."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from radstream.domain.signatures import KeyFileError
from radstream.streams.config import TRACE_KEY_PATH, trace_key
from radstream.streams.telemetry import study_context, trace_id_hex

STUDY = "1.2.826.0.1.3680043.8.498.12345678901234567890"


def test_the_trace_id_is_keyed_and_not_the_bare_hash() -> None:
    a, b = trace_id_hex(study_context(STUDY, b"key-a")), trace_id_hex(study_context(STUDY, b"key-b"))
    assert a == trace_id_hex(study_context(STUDY, b"key-a"))  # one key: one study, one trace
    assert a != b
    assert hashlib.sha256(STUDY.encode()).hexdigest()[:32] not in (a, b)


def test_the_key_comes_from_the_environment_else_from_the_install(tmp_path: Path) -> None:
    assert trace_key({"RADSTREAM_TRACE_KEY": "from-a-secret", "RADSTREAM_HOME": str(tmp_path)}) == b"from-a-secret"
    assert not (tmp_path / TRACE_KEY_PATH).exists()
    made = trace_key({"RADSTREAM_HOME": str(tmp_path)})
    path = tmp_path / TRACE_KEY_PATH
    assert len(made) == 64 and path.read_text().strip() == made.decode()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert trace_key({"RADSTREAM_HOME": str(tmp_path)}) == made  # made once, then reused
    assert trace_key({"RADSTREAM_HOME": str(tmp_path / "other")}) != made  # another install, another key
    with pytest.raises(KeyFileError, match="RADSTREAM_TRACE_KEY"):
        trace_key({"RADSTREAM_ENV": "prod", "RADSTREAM_HOME": str(tmp_path)})


def test_processes_of_one_install_started_together_agree(tmp_path: Path) -> None:
    code = ("from radstream.streams.telemetry import study_context, trace_id_hex;"
            f"print(trace_id_hex(study_context({STUDY!r})))")
    env = {k: v for k, v in os.environ.items() if k != "RADSTREAM_TRACE_KEY"} | {"RADSTREAM_HOME": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(4)]
    ids = {p.communicate(timeout=120)[0].strip() for p in procs}
    assert len(ids) == 1 and len(next(iter(ids))) == 32
    key = (tmp_path / TRACE_KEY_PATH).read_text().strip().encode()
    assert ids == {trace_id_hex(study_context(STUDY, key))}
    assert list((tmp_path / TRACE_KEY_PATH).parent.iterdir()) == [tmp_path / TRACE_KEY_PATH]  # no temporaries


def test_a_home_where_no_key_can_be_made_is_one_clear_error(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.write_text("a file, not a folder")  # fails for root too, unlike a read-only folder
    with pytest.raises(KeyFileError, match="set RADSTREAM_TRACE_KEY"):
        trace_key({"RADSTREAM_HOME": str(home)})
