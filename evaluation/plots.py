"""The report's figures as PNG bytes (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def roc_pr_figure(label: str, sweep: dict, metrics: dict) -> bytes:
    fig, (roc, pr) = plt.subplots(1, 2, figsize=(9, 4))
    roc.plot(sweep["roc"]["fpr"], sweep["roc"]["tpr"], drawstyle="steps-post", color="#1f5f8b")
    roc.plot([0, 1], [0, 1], ":", color="grey")
    if metrics.get("sensitivity") is not None and metrics.get("specificity") is not None:
        roc.plot([1 - metrics["specificity"]], [metrics["sensitivity"]], "o", color="#c0392b", label="deployed rule")
        roc.legend(loc="lower right")
    auc = sweep.get("roc_auc")
    roc.set(title=f"{label}: ROC (AUC {auc:.3f})" if auc is not None else f"{label}: ROC",
            xlabel="1 - specificity", ylabel="sensitivity", xlim=(0, 1), ylim=(0, 1.02))
    pr.plot(sweep["pr"]["recall"], sweep["pr"]["precision"], drawstyle="steps-post", color="#1f5f8b")
    ap = sweep.get("average_precision")
    pr.set(title=f"{label}: precision-recall (AP {ap:.3f})" if ap is not None else f"{label}: precision-recall",
           xlabel="recall (sensitivity)", ylabel="precision (PPV)", xlim=(0, 1), ylim=(0, 1.02))
    return _png(fig)


def confusion_figure(label: str, m: dict) -> bytes:
    fig, ax = plt.subplots(figsize=(3.4, 3.0))
    cells = [[m["tn"], m["fp"]], [m["fn"], m["tp"]]]
    ax.imshow(cells, cmap="Blues")
    for i in range(2):
        for j in range(2):
            ax.text(j, i, str(cells[i][j]), ha="center", va="center", fontsize=14,
                    color="white" if cells[i][j] > max(max(r) for r in cells) / 2 else "black")
    ax.set_xticks([0, 1], ["called negative", "called positive"])
    ax.set_yticks([0, 1], ["truly negative", "truly positive"])
    ax.set_title(f"{label}: confusion matrix")
    return _png(fig)


def reliability_figure(label: str, rel: dict) -> bytes:
    fig, ax = plt.subplots(figsize=(4, 4))
    xs = [m for m, c in zip(rel["mean_score"], rel["count"]) if c]
    ys = [o for o, c in zip(rel["observed"], rel["count"]) if c]
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
    ax.plot(xs, ys, "o-", color="#1f5f8b", label="studies")
    ax.set(title=f"{label}: reliability (ECE {rel['ece']:.3f})", xlabel="mean study score in bin",
           ylabel="observed fraction positive", xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left")
    return _png(fig)


def froc_figure(label: str, f: dict) -> bytes:
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.plot(f["curve"]["fp_per_image"], f["curve"]["sensitivity"], drawstyle="steps-post", color="#1f5f8b")
    ax.set_xscale("symlog", linthresh=0.125)
    rates = [float(r) for r in f["sensitivity_at_fp_per_image"]]
    ax.set_xlim(0, max(rates + f["curve"]["fp_per_image"]))
    ax.set_xticks(rates, [f"{r:g}" for r in rates])
    ax.set(title=f"{label}: FROC (IoU >= {f['min_iou']:g})", xlabel="false positives per image",
           ylabel="lesion sensitivity", ylim=(0, 1.02))
    return _png(fig)
