"""`radstream override`: a radiologist confirms or rejects one finding."""

from __future__ import annotations

import argparse

from radstream.services.commands.bootstrap import require_bootstrap
from radstream.services.commands.errors import CliError


def _override(args: argparse.Namespace) -> int:
    from radstream.services.overrides import record_override

    settings = require_bootstrap(args).kafka
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
