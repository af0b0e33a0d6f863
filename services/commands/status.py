"""`radstream status`: the running stages on this host and their health (services/status.py)."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    sp = subparsers.add_parser("status", help="running stages on this host and their health")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    from radstream.services.status import format_table, stage_statuses

    rows = stage_statuses()
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    return 0
