"""Check the import rule: pyproject's [tool.importlinter] contracts over the radstream packages.

The top-level folders (domain/, models/, streams/, ...) install as radstream.* through
setuptools' package-dir, which import-linter cannot follow: it walks the folder of
`radstream/__init__.py`. So this lays them out first as one radstream/ tree of symlinks,
then runs `lint-imports` on that tree. `make test` runs it; tests/unit/test_import_rules.py
runs it again on a tree with a forbidden import added, to show that the check can fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("domain", "models", "streams", "services", "schemas", "evaluation")


def graph_tree(dest: Path, repo: Path = REPO, replace: dict[str, Path] | None = None) -> Path:
    """dest/radstream/ with each package folder linked in (or `replace[name]` instead); returns dest."""
    root = dest / "radstream"
    root.mkdir(parents=True)
    # a copy, not a link: import-linter walks the real folder of the package's __init__.py
    (root / "__init__.py").write_text((repo / "radstream" / "__init__.py").read_text())
    for name in PACKAGES:
        (root / name).symlink_to((replace or {}).get(name, repo / name), target_is_directory=True)
    return dest


def lint(tree: Path, repo: Path = REPO) -> subprocess.CompletedProcess:
    """lint-imports with pyproject's contracts, importing radstream from `tree`; output captured."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()",
               str(repo / "pyproject.toml"), "--no-cache"]
    return subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)  # not the repo: its radstream/ would win


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="radstream-imports-") as tmp:
        result = lint(graph_tree(Path(tmp)))
    print(result.stdout.strip() or result.stderr.strip())
    if result.returncode:
        print(result.stderr.strip(), file=sys.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
