"""The import rule (pyproject's [tool.importlinter]) holds on the code, and breaks when a
forbidden import is added: the check is real, not a formality.

Each probe lints a copy of one package folder with one extra module, linked in beside the
real others (scripts/lint_imports.py), so the repository itself is never touched.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("lint_imports", REPO / "scripts" / "lint_imports.py")
lint_imports = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lint_imports)


def _lint_with(tmp_path: Path, package: str, module: str, source: str):
    copy = tmp_path / "copy" / package
    shutil.copytree(REPO / package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / module).parent.mkdir(parents=True, exist_ok=True)
    (copy / module).write_text(source)
    return lint_imports.lint(lint_imports.graph_tree(tmp_path / "tree", replace={package: copy}))


def test_the_code_keeps_every_contract(tmp_path: Path) -> None:
    result = lint_imports.lint(lint_imports.graph_tree(tmp_path))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "KEPT" in result.stdout and "BROKEN" not in result.stdout


@pytest.mark.parametrize(("package", "module", "source", "contract"), [
    ("domain", "probe.py", "import torch\n", "The domain is pure"),
    ("domain", "probe.py", "from radstream.streams import runtime\n", "Layers"),
    ("models", "probe.py", "from radstream.streams import runtime\n", "Layers"),
    ("streams", "probe.py", "from radstream.services import cli\n", "Layers"),
    ("streams", "probe.py", "from radstream.models.training import loops\n", "Training is imported only"),
    ("models", "backends/probe.py", "from radstream.models.training import loops\n", "Training is imported only"),
    ("models", "probe.py", "import confluent_kafka\n", "Serving models never touch Kafka"),
])
def test_a_forbidden_import_breaks_its_contract(tmp_path: Path, package: str, module: str, source: str,
                                                contract: str) -> None:
    result = _lint_with(tmp_path, package, module, source)
    assert result.returncode != 0
    broken = result.stdout.split("Broken contracts")[-1]
    assert contract in broken and "probe" in broken, result.stdout[-3000:]
