"""Picking an operating point from a sweep, and writing it as a threshold file for `radstream thresholds push`.

A pick is `LABEL:OBJECTIVE[@METRIC>=VALUE]` (or `<=`), e.g.
`nodule:max_specificity@sensitivity>=0.95`. Candidates are the distinct study scores
(a study is positive when score >= threshold). Among candidates that meet the
constraint the one with the best objective wins; ties go to the larger Youden index
(sensitivity + specificity - 1), then to the lower threshold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from radstream.domain.rules import default_rule_threshold
from radstream.evaluation.curves import operating_points
from radstream.evaluation.inputs import EvaluationInputError
from radstream.evaluation.metrics import metrics_from_counts

OBJECTIVES = ("sensitivity", "specificity", "ppv", "npv", "f1", "youden")
_PICK = re.compile(r"^(?P<label>[^:]+):max_(?P<objective>\w+)(?:@(?P<metric>\w+)(?P<op>>=|<=)(?P<value>[-+0-9.eE]+))?$")


@dataclass(frozen=True)
class Pick:
    label: str
    objective: str
    constraint: tuple[str, str, float] | None  # (metric, ">=" or "<=", value)

    def __str__(self) -> str:
        text = f"{self.label}:max_{self.objective}"
        if self.constraint:
            text += f"@{self.constraint[0]}{self.constraint[1]}{self.constraint[2]:g}"
        return text


def parse_pick(text: str) -> Pick:
    m = _PICK.match(text.replace(" ", ""))
    if not m or m["objective"] not in OBJECTIVES or (m["metric"] and m["metric"] not in OBJECTIVES):
        raise EvaluationInputError(
            f"--pick {text!r}: expected LABEL:max_OBJECTIVE[@METRIC>=VALUE] with OBJECTIVE and METRIC among "
            + ", ".join(OBJECTIVES))
    constraint = None
    if m["metric"]:
        try:
            constraint = (m["metric"], m["op"], float(m["value"]))
        except ValueError:
            raise EvaluationInputError(f"--pick {text!r}: {m['value']!r} is not a number") from None
    return Pick(m["label"].strip(), m["objective"], constraint)


def _metric_table(truth: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    op = operating_points(truth, scores)
    table = metrics_from_counts(op.tp, op.fp, op.tn, op.fn)
    table["youden"] = table["sensitivity"] + table["specificity"] - 1
    for name in ("tp", "fp", "tn", "fn"):
        table[name] = getattr(op, name).astype(float)
    return op.thresholds, table


def pick_operating_point(pick: Pick, truth: np.ndarray, scores: np.ndarray) -> dict | None:
    """The chosen threshold and the metrics there; None when no candidate meets the constraint."""
    thresholds, table = _metric_table(truth, scores)
    feasible = np.ones(thresholds.size, dtype=bool)
    if pick.constraint:
        metric, op, value = pick.constraint
        column = table[metric]
        with np.errstate(invalid="ignore"):
            feasible &= (column >= value - 1e-12) if op == ">=" else (column <= value + 1e-12)
    objective = np.nan_to_num(table[pick.objective], nan=-np.inf)
    youden = np.nan_to_num(table["youden"], nan=-np.inf)
    candidates = np.flatnonzero(feasible)
    if candidates.size == 0:
        return None
    # lexicographic: best objective, then best Youden, then lowest threshold
    best = min(candidates, key=lambda i: (-objective[i], -youden[i], thresholds[i]))
    point = {"pick": str(pick), "threshold": float(thresholds[best])}
    for name in ("sensitivity", "specificity", "ppv", "npv", "f1"):
        value = table[name][best]
        point[name] = None if np.isnan(value) else float(value)
    point.update({name: int(table[name][best]) for name in ("tp", "fp", "tn", "fn")})
    return point


def threshold_key(label: str, rule_kind: str) -> str:
    """The ThresholdSet key that domain/rules.py reads for a label's default rule."""
    return str(default_rule_threshold(label, "detected" if rule_kind == "detected" else "suspected"))


def write_threshold_file(path: Path, values: dict[str, float], notes: list[str]) -> None:
    """`{scope: global, values: {key: threshold}}`, with the picks and their metrics as comments."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "".join(f"# {line}\n" for line in notes)
    path.write_text(header + yaml.safe_dump({"scope": "global", "values": values}, sort_keys=True), encoding="utf-8")
