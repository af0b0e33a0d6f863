"""`radstream override`: a radiologist confirms or rejects one finding."""

from __future__ import annotations

import argparse


def _override(args: argparse.Namespace) -> int:
    from radstream.services.cli import CliError
    from radstream.services.overrides import record_override
    from radstream.streams.config import Config

    settings = Config.from_env(args.bootstrap).kafka
    if not settings.bootstrap:
        raise CliError("no Kafka bootstrap servers: pass --bootstrap HOST:PORT or set RADSTREAM_BOOTSTRAP", 2)
    try:
        record_override(settings, args.study, args.finding, args.verdict, args.by, args.reason)
    except (LookupError, ValueError) as exc:
        raise CliError(str(exc)) from None
    print(f"finding {args.finding} of study {args.study}: {args.verdict} by {args.by}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("override", help="confirm or reject one finding (the others are untouched)")
    sp.add_argument("finding", help="finding_id, as shown by `radstream results --json`")
    sp.add_argument("--study", required=True)
    sp.add_argument("--verdict", required=True, choices=["confirmed", "rejected"])
    sp.add_argument("--by", required=True, help="who decided")
    sp.add_argument("--reason", default="")
    sp.add_argument("--bootstrap", metavar="HOST:PORT")
    sp.set_defaults(func=_override)
