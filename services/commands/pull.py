"""`radstream pull --dicomweb URL --study UID`: a study (or series) from a DICOMweb server into the
pipeline, by QIDO-RS and WADO-RS, through the receiver's publish path (services/pull.py)."""

from __future__ import annotations

import argparse
import logging
import sys

from radstream.services.commands.bootstrap import add_bootstrap, require_bootstrap
from radstream.services.commands.errors import EXIT_ERROR, EXIT_USAGE, CliError
from radstream.services.commands.token_flags import add_token_flags, bearer_token, warn_if_password_in_url

TOKEN_ENV = "RADSTREAM_PULL_TOKEN"


def register(subparsers: argparse._SubParsersAction) -> None:
    sp = subparsers.add_parser("pull", help="retrieve a study from a DICOMweb server (QIDO-RS + WADO-RS) and publish it")
    sp.add_argument("--dicomweb", required=True, metavar="URL",
                    help="the server's DICOMweb root, e.g. http://pacs:8042/dicom-web (user:password@ for HTTP Basic)")
    sp.add_argument("--study", required=True, metavar="UID", help="Study Instance UID")
    sp.add_argument("--series", metavar="UID", help="only this Series Instance UID of the study")
    add_token_flags(sp, TOKEN_ENV)
    sp.add_argument("--site", help="site recorded on the events (default: DICOMWEB)")
    sp.add_argument("--key", metavar="FILE", help="sign each arrival with this key (default $RADSTREAM_SIGNING_KEY); "
                    "required where decode accepts only signed arrivals (RADSTREAM_ENV=prod)")
    add_bootstrap(sp)
    sp.set_defaults(func=cmd_pull)


def cmd_pull(args: argparse.Namespace) -> int:
    from radstream.services.pull import (
        DEFAULT_SITE,
        PullError,
        check_uid,
        find_instances,
        open_client,
        pull,
    )
    from radstream.services.instance_header import MB, HeaderReader
    from radstream.services.receiver import InstanceSink
    from radstream.streams.blobstore import open_blob_store
    from radstream.streams.kafka.producer import EventPublisher

    from radstream.services.signing import arrival_signer

    config = require_bootstrap(args)
    try:
        signer = arrival_signer(config, args.key, "pull")
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    try:
        study = check_uid(args.study, "--study")
        series = check_uid(args.series, "--series") if args.series else None
        warn_if_password_in_url(args.dicomweb, "--dicomweb")
        client = open_client(args.dicomweb, bearer_token(args, TOKEN_ENV))
    except PullError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    # dicomweb-client logs every request at INFO; the progress lines below say the same, once.
    logging.getLogger("dicomweb_client").setLevel(max(logging.WARNING, logging.getLogger().level))

    def progress(what: str, n: int, total: int, instance, reason: str | None) -> None:
        if reason is None:
            print(f"{what} {n}/{total} {instance.sop_uid} (series {instance.series_uid})", flush=True)
        else:
            print(f"{what} {n}/{total} {instance.sop_uid}: {reason}", file=sys.stderr, flush=True)

    try:
        instances = find_instances(client, study, series)
    except PullError as exc:
        raise CliError(str(exc)) from None
    sink = InstanceSink(open_blob_store(config.blob_url), lambda: EventPublisher(config.kafka),
                        config.receiver_ack_timeout_s, headers=HeaderReader(int(config.receiver_max_mb * MB), workers=1),
                        signer=signer, urgent_sites=config.stat_sites)
    try:
        report = pull(client, sink, instances, site=args.site or DEFAULT_SITE, progress=progress)
    except PullError as exc:
        raise CliError(str(exc)) from None
    finally:
        sink.close()
    print(f"pulled {len(report.stored)} of {report.listed} instance(s) of study {study} from {client.base_url} "
          f"onto {config.kafka.topic('dicom.arrived')} ({len(report.failed)} failed)", flush=True)
    if report.failed:
        raise CliError(f"{len(report.failed)} of {report.listed} instance(s) not pulled (reasons above)", EXIT_ERROR)
    return 0
