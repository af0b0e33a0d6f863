"""The HTML report renders in a real browser (headless chromium) to a non-blank page."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from study_fixtures import image_result, study_result
from radstream.evaluation.evaluate import EvaluationOptions, evaluate
from radstream.evaluation.html_report import write_report
from radstream.evaluation.inputs import LabelRow
from radstream.evaluation.study_scores import calls_from_results, study_strata

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _doc() -> dict:
    rng = np.random.default_rng(0)
    results, labels = [], []
    for i in range(40):
        y = i % 4 == 0
        p = float(np.clip(rng.normal(0.7 if y else 0.3, 0.2), 0, 1))
        results.append(study_result(f"s{i}", [image_result(f"s{i}.1", probability=p)]))
        labels.append(LabelRow(f"s{i}", "nodule", int(y), "acute" if y else ""))
    return evaluate(labels, calls_from_results(results, {"nodule"}), EvaluationOptions(n_resamples=100, sweep=True),
                    strata=study_strata(results, labels), results=results)


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")
def test_report_screenshot_is_not_blank(tmp_path: Path) -> None:
    from PIL import Image

    _, html = write_report(_doc(), tmp_path / "out")
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    f"--screenshot={shot}", "--window-size=1200,1600", html.resolve().as_uri()],
                   capture_output=True, timeout=60, check=True)
    assert shot.exists() and shot.stat().st_size > 10_000
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (1600, 1200)
    assert pixels.std() > 20  # text, tables and plots, not a blank page
    assert (pixels < 100).mean() > 0.01  # enough dark ink (axes, text)


def test_report_is_self_contained(tmp_path: Path) -> None:
    metrics, html = write_report(_doc(), tmp_path / "out")
    text = html.read_text()
    assert "http://" not in text and "https://" not in text and "<script" not in text
    assert text.count("data:image/png;base64,") == 3  # ROC+PR, confusion matrix, reliability
    assert metrics.exists()
