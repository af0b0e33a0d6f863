"""Rewrite tests/fixtures/decode_corpus.json: the decode outcome of every file in the corpus.

Run after a deliberate change of decode policy, then review the diff:
    .venv/bin/python scripts/make_decode_corpus.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.decode_corpus import TABLE, corpus_files, decode_outcome  # noqa: E402


def main() -> int:
    table = {}
    for name, path in corpus_files().items():
        row, _, seconds = decode_outcome(path)
        table[name] = row
        print(f"{seconds:6.2f}s {row['outcome']:13} {row['code'] or '':28} {name}", file=sys.stderr)
    TABLE.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(table)} outcomes to {TABLE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
