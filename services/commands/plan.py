"""`radstream plan`: replicas per stage and partitions per input topic for a study volume, from
the per-replica rates a `radstream bench --json-out` file measured (services/capacity.py)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from radstream.services.commands.errors import EXIT_USAGE, CliError

# The measured reference (docs/deployment.md, "Size a deployment"), used without --bench in a checkout.
REFERENCE_BENCH = Path(__file__).resolve().parents[2] / "docs" / "evidence" / "capacity" / "bench-shared-2core.json"


def register(subparsers: argparse._SubParsersAction) -> None:
    sp = subparsers.add_parser("plan", help="replicas per stage and partitions per topic for a study volume")
    sp.add_argument("--studies-per-day", type=int, required=True, metavar="N")
    sp.add_argument("--peak-factor", type=float, default=3.0, metavar="F",
                    help="the busiest hour's rate over the day's mean (default 3)")
    sp.add_argument("--images-per-study", type=float, default=4.0, metavar="K", help="default 4")
    sp.add_argument("--utilisation", type=float, default=0.7, metavar="U",
                    help="how busy a replica may be at peak (default 0.7: headroom for bursts and rebalances)")
    sp.add_argument("--bench", metavar="FILE", help="a `radstream bench --json-out` report (default: the "
                    "reference measurement in docs/evidence/capacity/, in a source checkout)")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_plan)


def stage_input_topics() -> dict[str, str]:
    """Each stage's input topic, from its Stage class (`radstream.streams.stages.<name>`)."""
    import importlib

    from radstream.streams.stage import Stage
    from radstream.streams.stages.registry import STAGES

    found = {}
    for name in STAGES:
        module = importlib.import_module(f"radstream.streams.stages.{name}")
        for cls in vars(module).values():
            if isinstance(cls, type) and issubclass(cls, Stage) and getattr(cls, "name", None) == name:
                found[name] = cls.input_topic
    return found


def cmd_plan(args: argparse.Namespace) -> int:
    from radstream.services.capacity import format_plan, plan
    from radstream.streams.config import Config

    path = Path(args.bench) if args.bench else REFERENCE_BENCH
    if not args.bench and not path.exists():
        raise CliError("no bench report: pass --bench FILE (from `radstream bench --json-out FILE`)", EXIT_USAGE)
    try:
        bench = json.loads(path.read_text())
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}", EXIT_USAGE) from None
    except json.JSONDecodeError as exc:
        raise CliError(f"{path}: not JSON ({exc.msg}, line {exc.lineno})", EXIT_USAGE) from None
    if not isinstance(bench, dict):
        raise CliError(f"{path}: not a `radstream bench --json-out` report", EXIT_USAGE)
    try:
        result = plan(bench, stage_input_topics(), args.studies_per_day, images_per_study=args.images_per_study,
                      peak_factor=args.peak_factor, utilisation=args.utilisation,
                      default_partitions=Config.from_env().partitions)
    except ValueError as exc:
        raise CliError(f"{path}: {exc}" if "bench" in str(exc) or "report" in str(exc) else str(exc),
                       EXIT_USAGE) from None
    print(json.dumps(result.to_json(), indent=2) if args.json else format_plan(result))
    return 0
