"""`radstream dicom decode`: exit 0 with a summary when decoded, 3 with one line when refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file

CLI = [sys.executable, "-m", "radstream.services.cli", "dicom", "decode"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "RADSTREAM_LOG_LEVEL": "WARNING"})


def sample(name: str) -> str:
    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} is not in pydicom's test data (install pydicom-data)")
    return str(path)


def assert_one_line_refusal(result: subprocess.CompletedProcess, code: str) -> None:
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"({code})" in lines[0], result.stderr


def test_decodes_a_real_radiograph_to_npy(tmp_path: Path) -> None:
    out = tmp_path / "rg1.npy"
    result = run(sample("RG1_UNCR.dcm"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "1 frame(s) of 1955x1841 float32" in result.stdout and "Modality: CR" in result.stdout
    frames = np.load(out)
    assert frames.shape == (1955, 1841) and frames.dtype == np.float32


def test_json_and_png(tmp_path: Path) -> None:
    out = tmp_path / "rg1.png"
    result = run(sample("RG1_J2KR.dcm"), "--json", "--out", str(out))
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["outcome"] == "decoded" and outcome["shape"] == [1955, 1841]
    assert outcome["metadata"]["PhotometricInterpretation"] == "MONOCHROME1"
    assert "PatientName" not in outcome["metadata"]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_random_bytes_are_rejected(tmp_path: Path) -> None:
    noise = tmp_path / "noise.dcm"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    assert_one_line_refusal(run(str(noise)), "not_dicom")


def test_structured_report_is_not_an_image() -> None:
    result = run(sample("test-SR.dcm"), "--json")
    assert_one_line_refusal(result, "not_an_image")
    assert json.loads(result.stdout)["outcome"] == "not_an_image"


def test_a_truncated_image_is_rejected() -> None:
    assert_one_line_refusal(run(sample("MR_truncated.dcm")), "truncated")


def test_the_wall_clock_limit_kills_a_slow_decode() -> None:
    assert_one_line_refusal(run(sample("RG1_J2KR.dcm"), "--timeout", "0.01"), "timeout")


def test_a_missing_file_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    result = run(str(tmp_path / "absent.dcm"))
    assert result.returncode not in (0, 3) and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def run_at_info(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "RADSTREAM_LOG_LEVEL": "INFO"})


def test_12_bit_jpeg_extended_decodes_with_nothing_on_stderr() -> None:
    from tests.jpeg_extended import JPEG_LOSSY

    result = run_at_info(str(JPEG_LOSSY))
    assert result.returncode == 0 and "1 frame(s) of 1024x256" in result.stdout
    assert result.stderr == ""  # neither pydicom's failed plugins nor GDCM's libjpeg notes


def test_an_undecodable_file_is_one_line_at_info(tmp_path: Path) -> None:
    from tests.jpeg_extended import broken_scan

    broken = tmp_path / "broken.dcm"
    broken.write_bytes(broken_scan())
    assert_one_line_refusal(run_at_info(str(broken)), "undecodable")
