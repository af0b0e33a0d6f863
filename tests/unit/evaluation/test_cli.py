"""`radstream evaluate` end to end on small fixture files, through a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from study_fixtures import write_csv

PER_LABEL_KEYS = {"tp", "fp", "tn", "fn", "sensitivity", "specificity", "ppv", "npv", "f1", "prevalence",
                  "sensitivity_ci", "specificity_ci", "ppv_ci", "npv_ci", "f1_ci", "prevalence_ci"}


def run(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "radstream.services.cli", "evaluate", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_results_json_report_froc_and_pick(fixture_files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run("--labels", fixture_files["labels"], "--results", fixture_files["results"],
               "--boxes", fixture_files["boxes"], "--out", out, "--json", "--resamples", "200", "--sweep",
               "--deployment-prevalence", "nodule=0.05", "--pick", "nodule:max_specificity@sensitivity>=0.9")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    m = doc["labels"]["nodule"]
    assert PER_LABEL_KEYS <= set(m)
    assert m["tp"] + m["fn"] == 20 and m["n_studies"] == 60
    assert len(m["sensitivity_ci"]) == 2 and m["sensitivity_ci"][0] <= m["sensitivity"] <= m["sensitivity_ci"][1]
    assert "weighted_sensitivity" in m and "deployment" in m and "roc_auc" in m
    assert set(doc["breakdowns"]["site"]) == {"SITE-A", "SITE-B"}
    assert set(doc["breakdowns"]["view"]) == {"PA", "AP"}
    assert "unavailable" in doc["breakdowns"]["manufacturer"]
    assert any("deployment prevalence 0.05" in w for w in doc["warnings"])
    assert doc["froc"]["nodule"]["lesions"] == 20
    assert doc["froc"]["nodule"]["sensitivity_at_fp_per_image"]["1"] == 0.5  # every other positive has its box
    assert "roc" in doc["sweep"]["nodule"]
    point = doc["operating_points"][0]
    assert point["sensitivity"] >= 0.9
    thresholds = yaml.safe_load((out / "thresholds.yaml").read_text())
    assert thresholds == {"scope": "global", "values": {"rule:nodule-suspected/min_probability": point["threshold"]}}
    assert json.loads((out / "metrics.json").read_text())["labels"]["nodule"] == m
    assert (out / "report.html").read_text().count("data:image/png;base64,") == 4  # ROC+PR, confusion, reliability, FROC


def test_scores_mode_and_few_positives_warning(fixture_files: dict[str, Path], tmp_path: Path) -> None:
    proc = run("--labels", fixture_files["labels"], "--scores", fixture_files["scores"], "--threshold", "nodule=0.5",
               "--json", "--resamples", "100", "--min-positives", "25")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert "sweep" not in doc
    assert any("only 20 positive studies (< 25)" in w for w in doc["warnings"])
    assert "only 20 positive studies" in proc.stderr


def test_human_summary(fixture_files: dict[str, Path]) -> None:
    proc = run("--labels", fixture_files["labels"], "--results", fixture_files["results"], "--resamples", "50")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("nodule: n=60") and "sensitivity" in proc.stdout


def test_bad_csv_is_one_line_error(fixture_files: dict[str, Path], tmp_path: Path) -> None:
    bad = write_csv(tmp_path / "bad.csv", ["study_uid", "label", "value"], [["1.2.0", "nodule", "yes"]])
    proc = run("--labels", bad, "--results", fixture_files["results"])
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [f"radstream: error: {bad}:2: value 'yes' must be 0 or 1"]
    missing = write_csv(tmp_path / "cols.csv", ["study", "label", "value"], [["1.2.0", "nodule", "1"]])
    proc = run("--labels", missing, "--results", fixture_files["results"])
    assert proc.returncode != 0 and len(proc.stderr.strip().splitlines()) == 1 and "missing column(s) study_uid" in proc.stderr


def test_bad_options_are_one_line_errors(fixture_files: dict[str, Path]) -> None:
    for extra in (["--pick", "nodule:max_specificity@sensitivity>=0.9"],  # no --out
                  ["--deployment-prevalence", "nodule=2"],
                  ["--deployment-prevalence", "effusion=0.1"]):
        proc = run("--labels", fixture_files["labels"], "--results", fixture_files["results"], *extra)
        assert proc.returncode != 0 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert proc.stderr.startswith("radstream: error: ")
