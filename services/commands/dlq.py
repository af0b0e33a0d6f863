"""`radstream dlq list|replay --stage S`: inspect and replay a stage's dead letters (services/dlq.py)."""

from __future__ import annotations

import argparse

from radstream.services.commands.bootstrap import add_bootstrap, require_bootstrap
from radstream.services.commands.errors import EXIT_USAGE, CliError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("dlq", help="list or replay a stage's dead-letter topic")
    cmds = parser.add_subparsers(dest="dlq_command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        sp = cmds.add_parser(name, help=help_text)
        sp.add_argument("--stage", required=True, metavar="S",
                        help="decode, preprocess, infer, fuse, qc, forward or export-<target> "
                             "(export-dicom, ...): reads <its input topic>.dlq")
        sp.add_argument("--since", metavar="T", help="failed at or after T (ISO 8601 or epoch ms)")
        sp.add_argument("--until", metavar="T", help="failed at or before T (ISO 8601 or epoch ms)")
        return add_bootstrap(sp)

    add("list", "one line per dead letter: failed at, partition:offset, code, key, attempts, message") \
        .set_defaults(func=cmd_list)
    sp = add("replay", "re-produce each dead letter's original message onto its source topic")
    sp.add_argument("--dry-run", action="store_true", help="print what would be replayed, produce nothing")
    sp.set_defaults(func=cmd_replay)


def _letters(args: argparse.Namespace):
    from radstream.services.commands.export import TARGETS
    from radstream.services.dlq import dead_letters, input_topic
    from radstream.services.times import parse_time

    try:
        input_topic(args.stage)
    except LookupError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    if args.stage.startswith("export-") and args.stage[len("export-"):] not in TARGETS:
        raise CliError(f"unknown export stage {args.stage!r}; export stages: "
                       f"{', '.join('export-' + t for t in TARGETS)}", EXIT_USAGE)
    settings = require_bootstrap(args).kafka
    try:
        since = parse_time(args.since) if args.since else None
        until = parse_time(args.until) if args.until else None
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    try:
        return settings, list(dead_letters(settings, args.stage, since, until))
    except (LookupError, TimeoutError) as exc:
        raise CliError(str(exc)) from None


def cmd_list(args: argparse.Namespace) -> int:
    _, letters = _letters(args)
    for letter in letters:
        print(letter.summary())
    if not letters:
        print(f"no dead letters for {args.stage}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from radstream.services.dlq import replay

    settings, letters = _letters(args)
    verb = "would replay" if args.dry_run else "replayed"
    for letter, target in replay(settings, letters, dry_run=args.dry_run):
        r = letter.record
        key = r["key"].decode("utf-8", "replace") if r["key"] is not None else "-"
        print(f"{verb} {letter.origin} -> {target} key={key} ({r['error_code']}, failed {letter.summary().split()[0]})")
    print(f"{verb} {len(letters)} dead letter(s) of {args.stage}"
          + ("" if args.dry_run or not letters else "; downstream idempotency keys drop any duplicates"))
    return 0
