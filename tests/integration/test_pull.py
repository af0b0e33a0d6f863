"""`radstream pull` against a real Orthanc's DICOMweb (`/dicom-web`: QIDO-RS, WADO-RS) and the real broker.

Orthanc checks the bearer token itself, with a Lua `IncomingHttpRequestFilter` (written below):
a request to `/dicom-web` without `Authorization: Bearer <TOKEN>` is refused 403, and so is the
WADO-RS retrieve of one chosen instance (a server refusing one instance: the bad-instance case).
Every command runs as a subprocess, as a user would run it, so the assertions are on what
reaches the terminal. The token reaches Orthanc by each of its ways: `--token` (which warns that
it is in the process list), `--token-file`, and `$RADSTREAM_PULL_TOKEN`.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid
from radstream.services.broker import free_port
from radstream.services.demo import real_radiographs
from radstream.streams.kafka.topics import create_topics

from tests.arrivals import arrivals_on_topic, blob_bytes, read_arrivals

pytestmark = pytest.mark.integration
TOKEN = "pull-s3cret"
REFUSED_SOP = generate_uid()  # the instance Orthanc refuses to retrieve (a copy of RG1 under this SOP UID)

BEARER_FILTER = """
function IncomingHttpRequestFilter(method, uri, ip, username, httpHeaders)
  if string.sub(uri, 1, 10) ~= '/dicom-web' then return true end      -- the test's own REST calls
  if httpHeaders['authorization'] ~= 'Bearer %(token)s' then return false end
  if string.find(uri, '%(refused)s', 1, true) then return false end
  return true
end
"""


@pytest.fixture
def pacs(orthanc_factory, tmp_path: Path):
    """An Orthanc that wants the bearer token on /dicom-web, holding RG1 (uncompressed and JPEG 2000)
    and RG3, another study."""
    script = tmp_path / "bearer-filter.lua"
    script.write_text(BEARER_FILTER % {"token": TOKEN, "refused": REFUSED_SOP})
    orthanc = orthanc_factory(lua_scripts=[script])
    for path in real_radiographs():
        orthanc.upload(path.read_bytes())
    return orthanc


def radstream(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "radstream.services.cli", *args], env={**os.environ, **env}, check=False,
                          capture_output=True, text=True, timeout=120)


def one_error_line(res: subprocess.CompletedProcess) -> str:
    """The error line, which must be the only one besides a warning that a secret is in the process list."""
    """The command failed with exactly one line on stderr, and no traceback."""
    assert res.returncode != 0, res.stdout
    assert "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines()
             if line.strip() and not (line.startswith("radstream: warning: ") and "process list" in line)]
    assert len(lines) == 1 and lines[0].startswith("radstream: error: "), res.stderr
    return lines[0]


def test_pull_a_study_from_orthanc(pacs, pipeline_env, pipeline_config) -> None:
    create_topics(pipeline_config.kafka, 1)
    rg1 = [pydicom.dcmread(p, stop_before_pixels=True) for p in real_radiographs()[:2]]  # RG1_UNCR, RG1_J2KR
    study = str(rg1[0].StudyInstanceUID)
    sops = {str(ds.SOPInstanceUID) for ds in rg1}

    res = radstream(pipeline_env, "pull", "--dicomweb", pacs.dicomweb_url, "--study", study, "--token", TOKEN)

    assert res.returncode == 0, res.stderr
    assert res.stderr.count("radstream: warning: --token is visible in the process list (ps)") == 1, res.stderr
    out = res.stdout.splitlines()
    assert [line.split()[:2] for line in out[:2]] == [["pulled", "1/2"], ["pulled", "2/2"]], res.stdout
    assert {line.split()[2] for line in out[:2]} == sops
    assert out[2].startswith(f"pulled 2 of 2 instance(s) of study {study} from {pacs.dicomweb_url}"), res.stdout
    assert out[2].endswith("(0 failed)")
    events = read_arrivals(pipeline_config, sops, 30)
    assert set(events) == sops  # RG3, the other study, was not pulled
    for sop, event in events.items():
        assert event["study_uid"] == study and event["expected_instances"] == 2 and event["site"] == "DICOMWEB"
        data = blob_bytes(event)
        assert data == pacs.instance_file(sop)  # byte for byte what Orthanc holds, not a re-encoding
        assert hashlib.sha256(data).hexdigest() == event["blob"]["sha256"]

    # One series of it, under another site name: listed by series, the same bytes again; the
    # token from a file this time, which nothing warns about.
    series = str(rg1[0].SeriesInstanceUID)
    token_file = Path(pipeline_env["RADSTREAM_HOME"]) / "pull-token"
    token_file.write_text(TOKEN + "\n")
    again = radstream(pipeline_env, "pull", "--dicomweb", pacs.dicomweb_url + "/", "--study", study,
                      "--series", series, "--token-file", str(token_file), "--site", "PRIORS")
    assert again.returncode == 0 and "warning" not in again.stderr, again.stderr
    assert "pulled 2 of 2" in again.stdout
    repeats = [e for e in arrivals_on_topic(pipeline_config, settle_s=1) if e["site"] == "PRIORS"]
    assert sorted(e["sop_uid"] for e in repeats) == sorted(sops)
    assert {e["idempotency_key"] for e in repeats} == {e["idempotency_key"] for e in events.values()}  # dropped downstream


def test_a_refused_instance_is_reported_and_the_others_go(pacs, pipeline_env, pipeline_config) -> None:
    create_topics(pipeline_config.kafka, 1)
    copy = pydicom.dcmread(real_radiographs()[0])
    copy.SOPInstanceUID = copy.file_meta.MediaStorageSOPInstanceUID = REFUSED_SOP
    buffer = pydicom.filebase.DicomBytesIO()
    copy.save_as(buffer, enforce_file_format=True)
    pacs.upload(buffer.getvalue())  # RG1's study now has 3 instances; Orthanc refuses to send this one
    study = str(copy.StudyInstanceUID)

    res = radstream({**pipeline_env, "RADSTREAM_PULL_TOKEN": TOKEN}, "pull", "--dicomweb", pacs.dicomweb_url,
                    "--study", study)

    assert res.returncode == 1 and "Traceback" not in res.stderr and "warning" not in res.stderr
    errors = res.stderr.splitlines()
    failed = [line for line in errors if line.startswith("failed ")]
    assert len(failed) == 1 and f"/3 {REFUSED_SOP}: WADO-RS: HTTP 403 forbidden: the token may not read this instance" in failed[0], res.stderr
    assert errors[-1] == "radstream: error: 1 of 3 instance(s) not pulled (reasons above)"
    assert sum(line.startswith("pulled ") and "/3 " in line for line in res.stdout.splitlines()) == 2
    assert "pulled 2 of 3 instance(s)" in res.stdout and "(1 failed)" in res.stdout
    others = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in real_radiographs()[:2]}
    events = read_arrivals(pipeline_config, others, 30)
    assert set(events) == others and {e["expected_instances"] for e in events.values()} == {3}


def test_pull_errors_are_one_line(pacs, orthanc_factory, pipeline_env) -> None:
    study = str(pydicom.dcmread(real_radiographs()[0], stop_before_pixels=True).StudyInstanceUID)
    url = pacs.dicomweb_url
    by_env = {**pipeline_env, "RADSTREAM_PULL_TOKEN": TOKEN}

    unknown = generate_uid()
    line = one_error_line(radstream(by_env, "pull", "--dicomweb", url, "--study", unknown))
    assert line == f"radstream: error: study {unknown} not found on {url} (QIDO-RS listed 0 instances)"

    line = one_error_line(radstream(by_env, "pull", "--dicomweb", url, "--study", study, "--series", unknown))
    assert line == f"radstream: error: series {unknown} of study {study} not found on {url} (QIDO-RS listed 0 instances)"

    nowhere = f"http://127.0.0.1:{free_port()}/dicom-web"
    line = one_error_line(radstream(pipeline_env, "pull", "--dicomweb", nowhere, "--study", study))
    assert line == f"radstream: error: QIDO-RS {nowhere}: server unreachable (Connection refused)"

    line = one_error_line(radstream(pipeline_env, "pull", "--dicomweb", url, "--study", study, "--token", "wrong"))
    assert line == f"radstream: error: QIDO-RS {url}: HTTP 403 forbidden: the token may not read this study"

    basic = orthanc_factory(users={"alice": "pw"})  # HTTP Basic only: a bearer token is not a login there
    line = one_error_line(radstream(by_env, "pull", "--dicomweb", basic.dicomweb_url, "--study", study))
    assert line == f"radstream: error: QIDO-RS {basic.dicomweb_url}: HTTP 401 unauthorized: pass a valid --token"
    # Orthanc's own login as user:password@ in the URL: accepted there (an empty Orthanc: not found),
    # and the password is in no message.
    with_login = basic.dicomweb_url.replace("http://", "http://alice:pw@")
    res = radstream(pipeline_env, "pull", "--dicomweb", with_login, "--study", study)
    line = one_error_line(res)
    assert "radstream: warning: the password in --dicomweb (user:password@) is visible in the process list" in res.stderr
    assert "pw" not in res.stderr.replace("the password in", "")
    assert line == f"radstream: error: study {study} not found on {basic.dicomweb_url} (QIDO-RS listed 0 instances)"

    res = radstream(pipeline_env, "pull", "--dicomweb", url, "--study", "not-a-uid")
    assert one_error_line(res) == "radstream: error: --study 'not-a-uid' is not a DICOM UID" and res.returncode == 2
    res = radstream(pipeline_env, "pull", "--dicomweb", "pacs:8042", "--study", study)
    assert "must be an http(s) URL" in one_error_line(res) and res.returncode == 2
    line = one_error_line(radstream(pipeline_env, "pull", "--dicomweb", url, "--study", study, "--token-file",
                                    "/nonexistent/token"))
    assert line == "radstream: error: cannot read the token file /nonexistent/token: No such file or directory"
