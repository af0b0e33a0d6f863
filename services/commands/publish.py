"""`radstream publish PATH...`: store DICOM files and publish their arrival events (services/publish.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from radstream.services.commands.bootstrap import add_bootstrap, require_bootstrap
from radstream.services.commands.errors import EXIT_ERROR, EXIT_USAGE, CliError


def register(subparsers: argparse._SubParsersAction) -> None:
    sp = add_bootstrap(subparsers.add_parser("publish", help="store DICOM files and publish their arrival events"))
    sp.add_argument("paths", nargs="+", metavar="PATH")
    sp.add_argument("--site", default="", help="site / AE title recorded on the events")
    sp.add_argument("--key", metavar="FILE", help="sign each arrival with this key (default $RADSTREAM_SIGNING_KEY); "
                    "required where decode accepts only signed arrivals (RADSTREAM_ENV=prod): the key's "
                    "trusted-keys line must list --site")
    sp.add_argument("--priority", choices=("routine", "stat"), default=None,
                    help="stat: every study takes the STAT lane (default: each header's Requested Procedure "
                         "Priority and RADSTREAM_STAT_SITES decide)")
    sp.set_defaults(func=cmd_publish)


def cmd_publish(args: argparse.Namespace) -> int:
    from radstream.services.publish import PublishError, publish
    from radstream.streams.blobstore import open_blob_store
    from radstream.streams.kafka.producer import EventPublisher

    from radstream.services.signing import arrival_signer

    config = require_bootstrap(args)
    try:  # KeyFileError is a ValueError
        signer = arrival_signer(config, args.key, "publish")
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    producer = EventPublisher(config.kafka)
    try:
        studies, errors = publish(producer, open_blob_store(config.blob_url), [Path(p) for p in args.paths],
                                  site=args.site, log=lambda m: print(m, file=sys.stderr), signer=signer,
                                  priority=args.priority, urgent_sites=config.stat_sites)
    except PublishError as exc:
        raise CliError(str(exc)) from None
    for study in studies:
        print(study)
    for line in errors:
        print(f"radstream: skipped {line}", file=sys.stderr)
    return EXIT_ERROR if errors else 0
