"""The monitoring report's figures as PNG bytes (matplotlib, Agg backend, as `evaluate`'s)."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def ppv_figure(title: str, table: dict[str, dict[str, Any]]) -> bytes | None:
    """PPV with its Wilson 95 % interval for each key (a rule, a week ...) that has verdicts."""
    rows = [(k, t) for k, t in table.items() if t["ppv"] is not None]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(max(4.0, 0.7 * len(rows) + 2), 3.2))
    xs = range(len(rows))
    ppv = [t["ppv"] for _, t in rows]
    low = [t["ppv"] - t["ppv_ci95"][0] for _, t in rows]
    high = [t["ppv_ci95"][1] - t["ppv"] for _, t in rows]
    ax.errorbar(list(xs), ppv, yerr=[low, high], fmt="o", color="#1f5f8b", capsize=4)
    ax.set_xticks(list(xs), [f"{k}\n{t['confirmed']}/{t['judged']}" for k, t in rows], fontsize=8)
    ax.set(title=title, ylabel="PPV (Wilson 95% CI)", ylim=(0, 1.05))
    return _png(fig)


def psi_figure(group: str, drift: dict[str, dict[str, Any]], threshold: float) -> bytes | None:
    """PSI per feature of one group, alarmed features in red, the threshold dashed."""
    if not drift:
        return None
    names = list(drift)
    fig, ax = plt.subplots(figsize=(6.5, max(2.0, 0.28 * len(names) + 0.8)))
    colours = ["#c0392b" if drift[n]["alarm"] else "#1f5f8b" for n in names]
    ax.barh(names, [drift[n]["psi"] for n in names], color=colours)
    ax.axvline(threshold, linestyle="--", color="grey")
    ax.tick_params(axis="y", labelsize=7)
    ax.set(title=f"{group}: PSI, current vs reference", xlabel="PSI")
    return _png(fig)


def histogram_figure(group: str, feature: str, reference: list[float], current: list[float]) -> bytes | None:
    if not reference or not current:
        return None
    fig, ax = plt.subplots(figsize=(4.6, 2.8))
    ax.hist(reference, bins=20, alpha=0.6, density=True, label=f"reference ({len(reference)})", color="#1f5f8b")
    ax.hist(current, bins=20, alpha=0.6, density=True, label=f"current ({len(current)})", color="#c0392b")
    ax.legend(fontsize=7)
    ax.set(title=f"{group}: {feature}")
    return _png(fig)
