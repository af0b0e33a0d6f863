"""`radstream blobs gc`: delete raw blobs of final (and exported) studies, then old derived blobs."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from radstream.services.commands.bootstrap import add_bootstrap, require_bootstrap
from radstream.services.commands.errors import EXIT_USAGE, CliError

if TYPE_CHECKING:
    from radstream.streams.kafka.settings import KafkaSettings

EXPORT_GROUP_PREFIX = "radstream-export-"


def register(subparsers: argparse._SubParsersAction) -> None:
    blobs = subparsers.add_parser("blobs", help="the blob store").add_subparsers(dest="blobs_command", required=True)
    sp = add_bootstrap(blobs.add_parser(
        "gc", help="retention: raw blobs of final studies past --raw-after, derived blobs past --derived-after"))
    sp.add_argument("--raw-after", default="72h", metavar="AGE",
                    help="delete a raw DICOM blob once every study naming it has been final this long (default 72h)")
    sp.add_argument("--derived-after", default="30d", metavar="AGE",
                    help="delete decoded pixels, display PNGs and tensors this old (default 30d)")
    sp.add_argument("--exported-by", action="append", default=[], metavar="TARGET",
                    help="also require the export group radstream-export-TARGET to have consumed the final result "
                         "(repeatable; e.g. dicom, stow, fhir, hl7)")
    sp.add_argument("--require-exported", action="append", default=[], metavar="GROUP",
                    help="the same by group name: radstream-export-TARGET (repeatable)")
    sp.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    sp.set_defaults(func=cmd_blobs_gc)


def cmd_blobs_gc(args: argparse.Namespace) -> int:
    from radstream.domain.retention import parse_duration
    from radstream.services.blobs_gc import collect
    from radstream.streams.blobstore import open_blob_store

    try:
        raw_after, derived_after = parse_duration(args.raw_after), parse_duration(args.derived_after)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    targets = list(args.exported_by)
    for group in args.require_exported:
        target = group.removeprefix(EXPORT_GROUP_PREFIX)
        if target == group or not target:
            raise CliError(f"--require-exported {group!r}: export groups are named "
                           f"{EXPORT_GROUP_PREFIX}TARGET (e.g. {EXPORT_GROUP_PREFIX}dicom)", EXIT_USAGE)
        targets.append(target)
    config = require_bootstrap(args)
    _require_broker(config.kafka)
    summary = collect(open_blob_store(config.blob_url), config.kafka, raw_after, derived_after,
                      sorted(set(targets)), args.dry_run)
    print(summary.line())
    return 0


def _require_broker(settings: KafkaSettings) -> None:
    """Ask the broker once, quietly, before reading: an unreachable one is a one-line error
    rather than half a minute of librdkafka connection logs and then a KafkaException."""
    from radstream.streams.kafka.admin import broker_unreachable

    reason = broker_unreachable(settings)
    if reason is not None:
        raise CliError(f"cannot reach the broker at {settings.bootstrap}: {reason}")
