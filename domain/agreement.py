"""Agreement from overrides: how often a radiologist confirms what a rule, a model, a site's
findings said, with Wilson 95 % intervals (Wilson, 1927), which stay inside [0, 1] and are
honest at the small counts a new site or rule starts with (the normal interval is not).

PPV = confirmed / (confirmed + rejected): a finding nobody judged counts in neither.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

Z95 = 1.959963984540054  # the standard normal's 97.5th percentile

# The dimensions a judged finding is counted under; a finding from several models counts once for each.
DIMENSIONS = ("rule", "model", "site", "week")


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion; (0, 1) without trials."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def iso_week(epoch_ms: int) -> str:
    """`YYYY-Www` of a Unix time in milliseconds (UTC), the ISO 8601 week."""
    year, week, _ = dt.datetime.fromtimestamp(epoch_ms / 1000, dt.timezone.utc).isocalendar()
    return f"{year}-W{week:02d}"


@dataclass(frozen=True)
class JudgedFinding:
    """One finding as the monitor knows it: what produced it, and the verdict on it, if any."""

    finding_id: str
    rule: str
    models: tuple[str, ...]
    site: str
    week: str
    verdict: str | None = None  # "CONFIRMED", "REJECTED" or None (not judged)
    reason: str = ""


@dataclass
class Tally:
    confirmed: int = 0
    rejected: int = 0
    findings: int = 0  # judged or not: the denominator of the override rate
    reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        judged = self.confirmed + self.rejected
        low, high = wilson_interval(self.confirmed, judged)
        return {"confirmed": self.confirmed, "rejected": self.rejected, "judged": judged, "findings": self.findings,
                "ppv": self.confirmed / judged if judged else None, "ppv_ci95": [low, high] if judged else None,
                "override_rate": judged / self.findings if self.findings else None,
                "rejection_reasons": dict(sorted(self.reasons.items()))}


def _keys(finding: JudgedFinding, dimension: str) -> Iterable[str]:
    if dimension == "model":
        return finding.models or ("(none)",)
    return (getattr(finding, dimension),)


def agreement(findings: Iterable[JudgedFinding]) -> dict[str, Any]:
    """PPV, its Wilson interval, the override rate and the rejection reasons, overall and per
    rule, model, site and ISO week."""
    overall = Tally()
    tables: dict[str, dict[str, Tally]] = {d: {} for d in DIMENSIONS}
    for finding in findings:
        tallies = [overall] + [tables[d].setdefault(k, Tally()) for d in DIMENSIONS for k in _keys(finding, d)]
        for tally in tallies:
            tally.findings += 1
            if finding.verdict == "CONFIRMED":
                tally.confirmed += 1
            elif finding.verdict == "REJECTED":
                tally.rejected += 1
                reason = finding.reason.strip() or "(no reason given)"
                tally.reasons[reason] = tally.reasons.get(reason, 0) + 1
    return {"overall": overall.as_dict(),
            **{d: {k: t.as_dict() for k, t in sorted(tables[d].items())} for d in DIMENSIONS}}
