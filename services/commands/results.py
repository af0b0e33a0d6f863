"""`radstream results`: read study results, with the radiologists' overrides applied (services/results.py)."""

from __future__ import annotations

import argparse

from radstream.services.commands.bootstrap import (
    add_bootstrap,
    require_bootstrap,
    trusted_keys_or_fail,
)
from radstream.services.commands.errors import CliError


def register(subparsers: argparse._SubParsersAction) -> None:
    sp = add_bootstrap(subparsers.add_parser("results", help="read study results"))
    sp.add_argument("--study", help="only this Study Instance UID")
    sp.add_argument("--follow", action="store_true", help="keep reading new results")
    sp.add_argument("--json", action="store_true", help="one JSON object per line")
    sp.add_argument("--updates", action="store_true", help="also the incremental (non-final) per-image updates")
    sp.set_defaults(func=cmd_results)


def cmd_results(args: argparse.Namespace) -> int:
    from radstream.services.overrides import apply_overrides, current_overrides
    from radstream.services.results import as_json, study_results, summary_line

    config = require_bootstrap(args)
    settings = config.kafka
    try:
        overrides = current_overrides(settings, trusted_keys_or_fail(config))
        for result in study_results(settings, follow=args.follow, study=args.study, final_only=not args.updates):
            result = apply_overrides(result, overrides)
            print(as_json(result) if args.json else summary_line(result), flush=True)
    except LookupError as exc:
        raise CliError(str(exc)) from None
    except KeyboardInterrupt:
        pass
    return 0
