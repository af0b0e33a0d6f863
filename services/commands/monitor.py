"""`radstream monitor report`: the monitor's HTML report (services/monitor/); the stage itself is
`radstream stage monitor` (streams/stages/monitor.py)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from radstream.services.commands.bootstrap import add_bootstrap, require_bootstrap, trusted_keys_or_fail
from radstream.services.commands.errors import EXIT_USAGE, CliError


def register(subparsers: argparse._SubParsersAction) -> None:
    monitor = subparsers.add_parser("monitor", help="agreement from overrides and drift of inputs and outputs")
    sub = monitor.add_subparsers(dest="action", required=True)
    report = add_bootstrap(sub.add_parser("report", help="HTML report with plots: PPV per rule, model, site and "
                                                         "week with Wilson intervals; drift per site and device"))
    report.add_argument("--since", metavar="T", help="only results and verdicts from T on (ISO 8601 or epoch ms); "
                                                     "the reference window then starts at T unless pinned")
    report.add_argument("--out", type=Path, default=Path("monitor-report"), metavar="DIR",
                        help="folder for report.html, monitoring.json and reference.json (default monitor-report)")
    report.set_defaults(func=cmd_report)


def _settings(config):
    from radstream.streams.monitoring import ReferenceFileError, monitor_settings

    try:
        return monitor_settings(config)
    except ReferenceFileError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def cmd_report(args: argparse.Namespace) -> int:
    from radstream.services.monitor.rebuild import state_from_topics
    from radstream.services.monitor.report import alarm_histograms, render_html
    from radstream.services.times import parse_time

    config = require_bootstrap(args)
    try:
        since = parse_time(args.since) if args.since else 0
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    state, counts = state_from_topics(config.kafka, _settings(config), trusted_keys_or_fail(config), since)
    snapshot = state.snapshot(since_ms=since)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "report.html").write_text(render_html(snapshot, alarm_histograms(snapshot, state), since_ms=since))
        (args.out / "monitoring.json").write_text(json.dumps(snapshot, indent=1, sort_keys=True))
        (args.out / "reference.json").write_text(json.dumps({"groups": state.reference_windows()}))
    except OSError as exc:
        raise CliError(f"cannot write the report to {args.out}: {exc.strerror}") from None
    overall = snapshot["agreement"]["overall"]
    alarms = sum(len(g["alarms"]) for g in snapshot["drift"].values())
    print(f"{counts['results']} results, {counts['overrides']} verdicts ({counts['untrusted_overrides']} unsigned or "
          f"untrusted, ignored); PPV {overall['ppv'] if overall['ppv'] is None else round(overall['ppv'], 3)} over "
          f"{overall['judged']} judged findings; {len(snapshot['drift'])} drift groups, {alarms} alarms; "
          f"{args.out / 'report.html'}")
    return 0
