"""`radstream override`: a radiologist confirms or rejects one finding."""

from __future__ import annotations

import argparse

from radstream.services.commands.bootstrap import require_bootstrap
from radstream.services.commands.errors import EXIT_USAGE, CliError


def _override(args: argparse.Namespace) -> int:
    from radstream.services.overrides import record_override
    from radstream.services.signing import signing_key

    if args.audit:
        return _audit(args)
    if not (args.finding and args.study and args.verdict):
        raise CliError("override needs FINDING, --study and --verdict (or --audit)", EXIT_USAGE)
    config = require_bootstrap(args)
    try:  # KeyFileError is a ValueError
        key = signing_key(config, args.key)
        record_override(config.kafka, args.study, args.finding, args.verdict, key, args.reason)
    except (LookupError, ValueError) as exc:
        raise CliError(str(exc)) from None
    print(f"finding {args.finding} of study {args.study}: {args.verdict} by {key.name} (signed)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("override", help="confirm or reject one finding (the others are untouched)")
    sp.add_argument("finding", nargs="?", help="finding_id, as shown by `radstream results --json`")
    sp.add_argument("--study")
    sp.add_argument("--verdict", choices=["confirmed", "rejected"])
    sp.add_argument("--audit", action="store_true",
                    help="list the verdicts readers ignored (unsigned, unknown key), from findings.overrides.audit")
    sp.add_argument("--key", metavar="FILE", help="the radiologist's private key; its name is who decided "
                    "(`radstream keys new NAME`; default $RADSTREAM_SIGNING_KEY, else the dev key)")
    sp.add_argument("--reason", default="")
    sp.add_argument("--bootstrap", metavar="HOST:PORT")
    sp.set_defaults(func=_override)


def _audit(args: argparse.Namespace) -> int:
    """One line per ignored verdict, the readers' copies folded: who ignored it and why."""
    from radstream.services.overrides import rejected_overrides

    config = require_bootstrap(args)
    try:
        rejected = rejected_overrides(config.kafka)
    except LookupError as exc:
        raise CliError(str(exc)) from None
    for r in rejected:
        print(f"REJECTED by {', '.join(r['rejected_by'])} ({r['rejected']}): finding {r['finding_id']} of study "
              f"{r['study_uid']} {r['verdict'].lower()} by {r['by']!r}")
    return 0
