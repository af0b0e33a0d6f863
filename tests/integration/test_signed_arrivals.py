"""The site on an arrival from `publish` comes from an authenticated identity where decode
requires it (RADSTREAM_REQUIRE_SIGNED_ARRIVALS=1, as RADSTREAM_ENV=prod always does, D-038):
the real decode stage on the real broker decodes an arrival signed by a key whose trusted-keys
line lists its site, and dead-letters one the same key signed for another site, and an
unsigned one produced straight onto dicom.arrived; `publish` without a key refuses in one line."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from radstream.services.demo import real_radiographs
from radstream.services.publish import arrival_event, read_instance
from radstream.streams.blobstore import open_blob_store
from radstream.streams.kafka.producer import EventPublisher
from radstream.streams.kafka.topics import create_topics

from tests.plain_reader import PlainReader

pytestmark = pytest.mark.integration


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "radstream.services.cli", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def test_decode_accepts_only_arrivals_a_key_signed_for_their_site(pipeline_env, pipeline_config, tmp_path: Path) -> None:
    env = {**os.environ, **pipeline_env, "RADSTREAM_REQUIRE_SIGNED_ARRIVALS": "1"}
    made = _cli(env, "keys", "new", "pacs-a", "--out", str(tmp_path / "keys"))
    assert made.returncode == 0, made.stderr
    (tmp_path / "trusted-keys").write_text(made.stdout.strip().splitlines()[-1] + " SITE_A\n")
    env["RADSTREAM_TRUSTED_KEYS"] = str(tmp_path / "trusted-keys")
    create_topics(pipeline_config.kafka, 1)
    rg1, rg3 = (next(p for p in real_radiographs() if p.name == n) for n in ("RG1_UNCR.dcm", "RG3_UNCR.dcm"))

    refused = _cli(env, "publish", str(rg1), "--site", "SITE_A")
    assert refused.returncode == 2 and refused.stderr.strip().splitlines() == [
        "radstream: error: publish: decode accepts only signed arrivals here: pass --key FILE (a key whose "
        "trusted-keys line lists the site) or set RADSTREAM_SIGNING_KEY"]
    key = str(tmp_path / "keys" / "pacs-a.key")
    assert _cli(env, "publish", str(rg1), "--site", "SITE_A", "--key", key).returncode == 0
    assert _cli(env, "publish", str(rg3), "--site", "SITE_B", "--key", key).returncode == 0  # not its site
    forged = arrival_event(read_instance(rg3), open_blob_store(pipeline_config.blob_url).put(rg3.read_bytes(),
                                                                                              "application/dicom"),
                           "SITE_A", 1, int(time.time() * 1000))  # unsigned, claiming the key's own site
    publisher = EventPublisher(pipeline_config.kafka)
    publisher.send("dicom.arrived", forged["sop_uid"], forged)
    publisher.flush()

    log = tmp_path / "decode.log"
    with log.open("wb") as out:
        stage = subprocess.Popen([sys.executable, "-m", "radstream.services.cli", "stage", "decode"], env=env,
                                 stdout=out, stderr=subprocess.STDOUT)
    prefix = pipeline_env["RADSTREAM_TOPIC_PREFIX"]
    decoded, dlq = prefix + "image.decoded", prefix + "dicom.arrived.dlq"
    reader = PlainReader(pipeline_config.kafka.bootstrap, [decoded, dlq])
    try:
        done = reader.poll_until(lambda r: len(r[dlq]) >= 2 and len(r[decoded]) >= 1, 90, lambda: None)
        assert done, f"{reader.records}\n{log.read_text()[-3000:]}"
        time.sleep(1)
        reader.poll_until(lambda r: False, 1, lambda: None)
    finally:
        reader.close()
        stage.terminate()
        stage.wait(30)
    rg1_sop = read_instance(rg1).sop_uid
    assert [r["sop_uid"] for r in reader.records[decoded]] == [rg1_sop]
    reasons = sorted(r["error_message"] for r in reader.records[dlq])
    assert {r["error_code"] for r in reader.records[dlq]} == {"arrival_untrusted"}
    assert any("key 'pacs-a' may not sign arrivals for site 'SITE_B'" in m for m in reasons), reasons
    assert any(m.endswith(": unsigned") for m in reasons), reasons
