"""services/deidentify_table.py is exactly what scripts/generate_deid_table.py renders from the installed
idiscore, and that idiscore is the version pyproject pins: the table cannot drift from its source."""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

from radstream.services import deidentify_table

ROOT = Path(__file__).resolve().parents[3]


def _generator():
    spec = importlib.util.spec_from_file_location("generate_deid_table", ROOT / "scripts" / "generate_deid_table.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_checked_in_table_equals_the_librarys() -> None:
    generator = _generator()
    installed, scraped, sets = generator.read_idiscore_table()
    assert (ROOT / "services" / "deidentify_table.py").read_text(encoding="utf-8") == generator.render_module(
        installed, scraped, sets)
    library = {s.short_name: {key: action for key, action, _ in s.rules} for s in sets}
    ours = {name: {f"{tag:08x}": action for tag, action in rows.items()} for name, rows in
            deidentify_table.TAG_ACTIONS.items()}
    for name, patterns in deidentify_table.PATTERN_ACTIONS.items():
        ours[name].update(dict(patterns))
    assert ours == library
    assert len(library["basic_profile"]) > 600


def test_the_installed_idiscore_is_the_pinned_one() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pin = next(req for req in extras["deid-table"] if req.startswith("idiscore=="))
    assert version("idiscore") == pin.split("==")[1]
    assert deidentify_table.SOURCE == f"idiscore {version('idiscore')}"
