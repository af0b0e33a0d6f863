"""`radstream replay`: recorded arrivals through a candidate config, beside the live results."""

from __future__ import annotations

import argparse
from pathlib import Path

from radstream.services.commands.bootstrap import require_bootstrap
from radstream.services.commands.errors import CliError


def _replay(args: argparse.Namespace) -> int:
    from radstream.services import replay
    from radstream.services.times import parse_time
    from radstream.domain.thresholds import ThresholdError

    config = require_bootstrap(args)
    try:
        start, end = parse_time(args.start), parse_time(args.end)
        report = replay.run_replay(config, args.source, start, end, Path(args.config),
                                   models=args.models.split(",") if args.models else None, name=args.name,
                                   timeout_s=args.timeout)
        metrics = replay.compare_metrics(report, Path(args.labels)) if args.labels else None
    except (ValueError, LookupError, TimeoutError, ThresholdError) as exc:
        raise CliError(str(exc)) from None
    print("\n".join(replay.side_by_side(report)))
    if metrics:
        for label in sorted(metrics["live"]):
            live, shadow = metrics["live"][label], metrics["shadow"].get(label, {})
            print(f"{label}: " + ", ".join(f"{k} {live.get(k)} -> {shadow.get(k)}"
                                            for k in ("tp", "fp", "tn", "fn", "sensitivity", "specificity")))
    if args.out:
        replay.write_outputs(report, Path(args.out), metrics)
        print(f"wrote {args.out}/live.jsonl, shadow.jsonl" + (", comparison.json" if metrics else ""))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("replay", help="shadow replay: recorded arrivals through a candidate config, no live impact")
    sp.add_argument("--from", dest="source", default="dicom.arrived", help="live topic of recorded arrivals")
    sp.add_argument("--start", required=True, help="ISO 8601 time or epoch ms (arrived_at)")
    sp.add_argument("--end", required=True, help="ISO 8601 time or epoch ms (arrived_at)")
    sp.add_argument("--config", required=True, help="candidate threshold document (YAML/JSON, as `thresholds push`)")
    sp.add_argument("--models", help="candidate model set, comma-separated (default: the set in force)")
    sp.add_argument("--labels", help="LABELS.csv: evaluate live and shadow side by side")
    sp.add_argument("--out", help="write live.jsonl, shadow.jsonl and comparison.json here")
    sp.add_argument("--name", help="shadow run id (default random); topics are <prefix>shadow-<id>.*")
    sp.add_argument("--timeout", type=float, default=300.0)
    sp.add_argument("--bootstrap", metavar="HOST:PORT")
    sp.set_defaults(func=_replay)
