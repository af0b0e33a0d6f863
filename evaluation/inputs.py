"""Reading the evaluation inputs. Every malformed file raises `EvaluationInputError` naming file and line."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path


class EvaluationInputError(ValueError):
    """A permanent input problem: the message says which file, which line and what is wrong."""


@dataclass(frozen=True)
class LabelRow:
    study_uid: str
    label: str
    value: int  # 0 or 1
    tier: str = ""  # clinical significance of a positive (e.g. acute, chronic); empty when not given
    site: str = ""
    manufacturer: str = ""
    view: str = ""


@dataclass(frozen=True)
class ScoreRow:
    study_uid: str
    label: str
    score: float


@dataclass(frozen=True)
class TruthBox:
    study_uid: str
    sop_uid: str
    label: str
    box: tuple[float, float, float, float]


LABEL_COLUMNS = ("study_uid", "label", "value")
OPTIONAL_LABEL_COLUMNS = ("tier", "site", "manufacturer", "view")
SCORE_COLUMNS = ("study_uid", "label", "score")
BOX_COLUMNS = ("study_uid", "sop_uid", "label", "x1", "y1", "x2", "y2")


def _rows(path: Path, required: Iterable[str]) -> Iterator[tuple[int, dict[str, str]]]:
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise EvaluationInputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in required if c not in header]
        if missing:
            raise EvaluationInputError(
                f"{path}: missing column(s) {', '.join(missing)} (header is {','.join(header) or 'empty'})")
        reader.fieldnames = header
        try:
            for row in reader:
                if None in row or any(row.get(c) is None for c in required):
                    raise EvaluationInputError(f"{path}:{reader.line_num}: expected {len(header)} fields")
                yield reader.line_num, {k: (v or "").strip() for k, v in row.items()}
        except csv.Error as exc:
            raise EvaluationInputError(f"{path}:{reader.line_num}: {exc}") from None


def _number(path: Path, line: int, column: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise EvaluationInputError(f"{path}:{line}: {column} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise EvaluationInputError(f"{path}:{line}: {column} {text!r} is not finite")
    return value


def read_labels(path: Path) -> list[LabelRow]:
    """LABELS.csv: study_uid,label,value (0/1), optional tier, site, manufacturer, view. One row per study and label."""
    rows: list[LabelRow] = []
    seen: set[tuple[str, str]] = set()
    for line, row in _rows(path, LABEL_COLUMNS):
        if not row["study_uid"] or not row["label"]:
            raise EvaluationInputError(f"{path}:{line}: empty study_uid or label")
        if row["value"] not in ("0", "1"):
            raise EvaluationInputError(f"{path}:{line}: value {row['value']!r} must be 0 or 1")
        key = (row["study_uid"], row["label"])
        if key in seen:
            raise EvaluationInputError(f"{path}:{line}: study {key[0]} has label {key[1]} twice")
        seen.add(key)
        rows.append(LabelRow(row["study_uid"], row["label"], int(row["value"]),
                             **{c: row.get(c, "") for c in OPTIONAL_LABEL_COLUMNS}))
    if not rows:
        raise EvaluationInputError(f"{path}: no label rows")
    return rows


def read_scores(path: Path) -> list[ScoreRow]:
    """SCORES.csv: study_uid,label,score, one row per study and label."""
    rows = [ScoreRow(row["study_uid"], row["label"], _number(path, line, "score", row["score"]))
            for line, row in _rows(path, SCORE_COLUMNS)]
    if not rows:
        raise EvaluationInputError(f"{path}: no score rows")
    return rows


def read_truth_boxes(path: Path) -> list[TruthBox]:
    """BOXES.csv: study_uid,sop_uid,label,x1,y1,x2,y2 in the pixel coordinates fused_boxes use."""
    boxes = []
    for line, row in _rows(path, BOX_COLUMNS):
        x1, y1, x2, y2 = (_number(path, line, c, row[c]) for c in ("x1", "y1", "x2", "y2"))
        if x2 <= x1 or y2 <= y1:
            raise EvaluationInputError(f"{path}:{line}: box needs x2 > x1 and y2 > y1")
        boxes.append(TruthBox(row["study_uid"], row["sop_uid"], row["label"], (x1, y1, x2, y2)))
    return boxes


def read_results(path: Path) -> list[dict]:
    """JSON lines as printed by `radstream results --json`: one StudyResult record per line.

    A study that appears more than once (a partial result, then the final one) keeps
    its last record, which is what a reporting system would show.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EvaluationInputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    by_study: dict[str, dict] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvaluationInputError(f"{path}:{number}: not JSON ({exc.msg})") from None
        if not isinstance(record, dict) or "study_uid" not in record or not isinstance(record.get("images"), list):
            raise EvaluationInputError(f"{path}:{number}: not a StudyResult record (needs study_uid and images)")
        by_study[record["study_uid"]] = record
    if not by_study:
        raise EvaluationInputError(f"{path}: no study results")
    return list(by_study.values())


def parse_assignments(items: Iterable[str], option: str, low: float | None = None,
                      high: float | None = None) -> dict[str, float]:
    """`LABEL=NUMBER` command-line items (e.g. --threshold nodule=0.4) as a dict."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, text = item.partition("=")
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not sep or not name.strip() or not math.isfinite(value):
            raise EvaluationInputError(f"{option} {item!r}: expected NAME=NUMBER")
        if (low is not None and value < low) or (high is not None and value > high):
            raise EvaluationInputError(f"{option} {item!r}: {value} is outside [{low}, {high}]")
        out[name.strip()] = value
    return out
