"""`radstream evaluate`: study results (or scores) against ground-truth labels. Thin shell over radstream.evaluation."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from radstream.services.commands.bootstrap import require_bootstrap
from radstream.services.commands.errors import EXIT_ERROR, CliError

DEFAULT_THRESHOLD = 0.5  # the rules' default (domain/rules.py) for --scores labels without --threshold


def register(subparsers) -> None:
    sp = subparsers.add_parser(
        "evaluate", help="metrics with bootstrap intervals, breakdowns, sweeps and a report against labels",
        description="Compare study results (or study scores) with ground-truth labels. See docs/evaluation.md.")
    sp.add_argument("--labels", required=True, metavar="LABELS.csv", help="study_uid,label,value[,tier,site,manufacturer,view]")
    source = sp.add_mutually_exclusive_group(required=True)
    source.add_argument("--results", metavar="FILE.jsonl", help="StudyResult JSON lines (`radstream results --json`)")
    source.add_argument("--scores", metavar="SCORES.csv", help="study_uid,label,score (decision: score >= --threshold)")
    source.add_argument("--from-kafka", action="store_true", help="read study.results from Kafka (--bootstrap)")
    sp.add_argument("--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap servers for --from-kafka")
    sp.add_argument("--threshold", action="append", default=[], metavar="LABEL=T",
                    help=f"--scores decision threshold per label (default {DEFAULT_THRESHOLD})")
    sp.add_argument("--boxes", metavar="BOXES.csv", help="ground-truth boxes study_uid,sop_uid,label,x1,y1,x2,y2 for FROC")
    sp.add_argument("--iou", type=float, default=0.5, help="IoU for a FROC match (default 0.5)")
    sp.add_argument("--out", metavar="DIR", help="write report.html and metrics.json (and thresholds.yaml) here")
    sp.add_argument("--json", action="store_true", help="print the metrics document as JSON")
    sp.add_argument("--resamples", type=int, default=None, help="bootstrap resamples (default 2000)")
    sp.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    sp.add_argument("--tier-weight", action="append", default=[], metavar="TIER=W",
                    help="weight of a tier in the weighted sensitivity (defaults in docs/evaluation.md)")
    sp.add_argument("--deployment-prevalence", action="append", default=[], metavar="LABEL=P",
                    help="recompute PPV/NPV at this prevalence")
    sp.add_argument("--min-positives", type=int, default=None, help="warn below this many positives (default 10)")
    sp.add_argument("--sweep", action="store_true", help="add ROC and PR curves per label to the output")
    sp.add_argument("--pick", action="append", default=[], metavar="SPEC",
                    help='operating point, e.g. "nodule:max_specificity@sensitivity>=0.95"; writes a threshold file')
    sp.add_argument("--thresholds-out", metavar="PATH", help="threshold file for --pick (default DIR/thresholds.yaml)")
    sp.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from radstream.evaluation import inputs, study_scores
    from radstream.evaluation.bootstrap import DEFAULT_RESAMPLES
    from radstream.evaluation.evaluate import DEFAULT_MIN_POSITIVES, EvaluationOptions, evaluate
    from radstream.evaluation.metrics import DEFAULT_TIER_WEIGHTS
    from radstream.evaluation.operating_point import parse_pick, write_threshold_file

    try:
        picks = tuple(parse_pick(p) for p in args.pick)
        if picks and not (args.out or args.thresholds_out):
            raise inputs.EvaluationInputError("--pick writes a threshold file: pass --out DIR or --thresholds-out PATH")
        if args.threshold and not args.scores:
            raise inputs.EvaluationInputError("--threshold applies to --scores only (results carry their findings)")
        labels = inputs.read_labels(Path(args.labels))
        label_names = {r.label for r in labels}
        results: list[dict] = []
        if args.scores:
            thresholds = inputs.parse_assignments(args.threshold, "--threshold")
            calls = study_scores.calls_from_scores(inputs.read_scores(Path(args.scores)), thresholds, DEFAULT_THRESHOLD)
            mode = {"source": "scores", "description": f"Study decision: score >= threshold per label "
                    f"({', '.join(f'{k} {v:g}' for k, v in thresholds.items()) or 'none given'}; "
                    f"default {DEFAULT_THRESHOLD:g})."}
        else:
            results = _results_from_kafka(args) if args.from_kafka else inputs.read_results(Path(args.results))
            calls = study_scores.calls_from_results(results, label_names)
            mode = {"source": "kafka" if args.from_kafka else "results",
                    "description": "Study decision: positive when any image has a finding with the label. Study "
                    "score: max finding confidence, else max classifier probability, else max fused box score, else 0."}
        options = EvaluationOptions(
            n_resamples=DEFAULT_RESAMPLES if args.resamples is None else args.resamples, seed=args.seed,
            tier_weights={**DEFAULT_TIER_WEIGHTS, **{k.lower(): v for k, v in
                                                     inputs.parse_assignments(args.tier_weight, "--tier-weight", 0).items()}},
            deployment_prevalence=inputs.parse_assignments(args.deployment_prevalence, "--deployment-prevalence", 0, 1),
            min_positives=DEFAULT_MIN_POSITIVES if args.min_positives is None else args.min_positives,
            sweep=bool(args.sweep or args.out), picks=picks, min_iou=args.iou)
        truth_boxes = inputs.read_truth_boxes(Path(args.boxes)) if args.boxes else None
        if truth_boxes and not results:
            raise inputs.EvaluationInputError("--boxes needs --results (FROC reads fused_boxes)")
        doc = evaluate(labels, calls, options, strata=study_scores.study_strata(results, labels), results=results,
                       truth_boxes=truth_boxes, mode=mode)
    except inputs.EvaluationInputError as exc:
        raise CliError(str(exc)) from None

    shown = doc if args.sweep else {k: v for k, v in doc.items() if k != "sweep"}
    if args.out:
        from radstream.evaluation.html_report import write_report

        write_report(doc, Path(args.out), json_doc=shown)
    if picks:
        _write_thresholds(doc, Path(args.thresholds_out) if args.thresholds_out else Path(args.out) / "thresholds.yaml",
                          write_threshold_file)
    for warning in doc["warnings"]:
        print(f"radstream: warning: {warning}", file=sys.stderr)
    print(json.dumps(shown, indent=2) if args.json else _summary(doc, args))
    return 0


def _results_from_kafka(args: argparse.Namespace) -> list[dict]:
    from radstream.services.results import study_results

    settings = require_bootstrap(args, "--from-kafka needs --bootstrap HOST:PORT or RADSTREAM_BOOTSTRAP",
                                 EXIT_ERROR).kafka
    try:
        by_study = {r["study_uid"]: r for r in study_results(settings, follow=False)}
    except LookupError as exc:
        raise CliError(str(exc)) from None
    if not by_study:
        raise CliError("no study results on the topic")
    return list(by_study.values())


def _write_thresholds(doc: dict, path: Path, write) -> None:

    points = [p for p in doc["operating_points"] if p["threshold"] is not None]
    if not points:
        raise CliError("no --pick met its constraint; no threshold file written")
    notes = [f"written by radstream evaluate; push with `radstream thresholds push {path.name}`"]
    notes += [f"{p['pick']}: threshold {p['threshold']:.6g} sensitivity {p['sensitivity']} "
              f"specificity {p['specificity']}" for p in points]
    write(path, {p["threshold_key"]: p["threshold"] for p in points}, notes)


def _fmt(m: dict, name: str) -> str:
    value, (lo, hi) = m.get(name), m.get(f"{name}_ci", [None, None])
    if value is None:
        return f"{name} –"
    return f"{name} {value:.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None else "")


def _summary(doc: dict, args: argparse.Namespace) -> str:
    lines = []
    for label, m in doc["labels"].items():
        lines.append(f"{label}: n={m['n_studies']} tp={m['tp']} fp={m['fp']} tn={m['tn']} fn={m['fn']}")
        names = ["sensitivity", "specificity", "ppv", "npv", "f1", "prevalence", "roc_auc", "weighted_sensitivity"]
        lines += [f"  {_fmt(m, n)}" for n in names if n in m]
    for p in doc.get("operating_points", []):
        lines.append(f"pick {p['pick']}: threshold {p['threshold']} ({p['threshold_key']})")
    for label, f in doc.get("froc", {}).items():
        at = ", ".join(f"{k}: {v:.3f}" for k, v in f["sensitivity_at_fp_per_image"].items())
        lines.append(f"froc {label}: {f['lesions']} lesions / {f['images']} images; sensitivity at FP/image {at}")
    if args.out:
        lines.append(f"report: {Path(args.out) / 'report.html'}  metrics: {Path(args.out) / 'metrics.json'}")
    return "\n".join(lines)
