"""`radstream export stow --url URL`: final results into a PACS by STOW-RS (services/export/pacs.py)."""

from __future__ import annotations

import argparse
import logging
from urllib.parse import urlsplit

from radstream.services.commands.errors import EXIT_USAGE, CliError
from radstream.services.commands.export import add_export_flags, run_export
from radstream.services.commands.pacs_flags import add_pacs_flags, pacs_options
from radstream.services.commands.token_flags import add_token_flags, bearer_token, warn_if_password_in_url

TOKEN_ENV = "RADSTREAM_EXPORT_STOW_TOKEN"


def register(targets: argparse._SubParsersAction) -> None:
    sp = targets.add_parser("stow", help="store each final result's SR and GSPS objects in a PACS by STOW-RS")
    sp.add_argument("--url", required=True, metavar="URL",
                    help="the server's DICOMweb root, e.g. https://pacs/dicom-web (user:password@ for HTTP Basic)")
    add_token_flags(sp, TOKEN_ENV)
    sp.add_argument("--allow-http", action="store_true",
                    help="allow a plain http:// URL (a PACS on a trusted local network); the objects carry the patient")
    add_pacs_flags(add_export_flags(sp))
    sp.set_defaults(func=cmd_export_stow)


def cmd_export_stow(args: argparse.Namespace) -> int:
    from radstream.services.export.stow_rs import StowSender
    from radstream.services.pull import PullError

    if urlsplit(args.url).scheme.lower() == "http" and not args.allow_http:
        raise CliError("--url is plain http: the SR and GSPS objects carry the patient; use https, or --allow-http "
                       "for a PACS on a trusted local network", EXIT_USAGE)
    warn_if_password_in_url(args.url, "--url")
    try:
        sender = StowSender(args.url, bearer_token(args, TOKEN_ENV), timeout_s=(min(10.0, args.timeout), args.timeout))
    except PullError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    logging.getLogger("urllib3").setLevel(logging.WARNING)

    def build(store, config, args):
        from radstream.services.export.pacs import StowExport

        print(f"exporting final results to {sender.root} by STOW-RS (SIGTERM stops)", flush=True)
        return StowExport(store, sender, **pacs_options(config, args))

    return run_export(args, build)
