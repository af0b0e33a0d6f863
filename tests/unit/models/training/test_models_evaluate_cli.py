"""`radstream models evaluate`: the shipped detectors and their fusion, scored from the CLI."""

import re
import subprocess
import sys

from radstream.models.registry import default_registry_dir, load_manifests


def test_evaluate_prints_every_detector_and_the_ensemble_gain() -> None:
    res = subprocess.run([sys.executable, "-m", "radstream.services.cli", "models", "evaluate", "--images", "24"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    detectors = [n for n, m in load_manifests(default_registry_dir()).items() if m.task == "detector"]
    for name in detectors:
        assert re.search(rf"^{name} +recall \d\.\d{{3}} +precision \d\.\d{{3}}", res.stdout, re.M), res.stdout
        assert re.search(rf"^AP@IoU0\.3 {name} +\d\.\d{{4}}$", res.stdout, re.M), res.stdout
    assert re.search(r"^AP@IoU0\.3 ensemble +\d\.\d{4}$", res.stdout, re.M), res.stdout
    assert re.search(r"^ensemble - best member \(demo-\w+\): [+-]\d\.\d{4} \(95% CI [+-]\d\.\d{4} to [+-]\d\.\d{4}\)$",
                     res.stdout, re.M), res.stdout


def test_evaluate_refuses_a_registry_without_detectors(tmp_path) -> None:
    res = subprocess.run([sys.executable, "-m", "radstream.services.cli", "models", "evaluate",
                          "--registry", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    assert res.stderr.strip().splitlines()[-1].endswith("no detector manifests"), res.stderr
