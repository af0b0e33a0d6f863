"""`radstream publish PATH...`: store DICOM files and publish their arrival events (services/publish.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from radstream.services.commands.bootstrap import add_bootstrap, require_bootstrap
from radstream.services.commands.errors import EXIT_ERROR, CliError


def register(subparsers: argparse._SubParsersAction) -> None:
    sp = add_bootstrap(subparsers.add_parser("publish", help="store DICOM files and publish their arrival events"))
    sp.add_argument("paths", nargs="+", metavar="PATH")
    sp.add_argument("--site", default="", help="site / AE title recorded on the events")
    sp.set_defaults(func=cmd_publish)


def cmd_publish(args: argparse.Namespace) -> int:
    from radstream.services.publish import PublishError, publish
    from radstream.streams.blobstore import open_blob_store
    from radstream.streams.kafka.producer import EventPublisher

    config = require_bootstrap(args)
    producer = EventPublisher(config.kafka)
    try:
        studies, errors = publish(producer, open_blob_store(config.blob_url), [Path(p) for p in args.paths],
                                  site=args.site, log=lambda m: print(m, file=sys.stderr))
    except PublishError as exc:
        raise CliError(str(exc)) from None
    for study in studies:
        print(study)
    for line in errors:
        print(f"radstream: skipped {line}", file=sys.stderr)
    return EXIT_ERROR if errors else 0
