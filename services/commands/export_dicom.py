"""`radstream export dicom --to AET@HOST:PORT`: final results into a PACS by C-STORE (services/export/pacs.py)."""

from __future__ import annotations

import argparse
import logging

from radstream.services.commands.errors import EXIT_USAGE, CliError
from radstream.services.commands.export import add_export_flags, run_export
from radstream.services.commands.pacs_flags import add_pacs_flags, pacs_options
from radstream.services.commands.tls_flags import add_client_tls_flags, client_tls


def register(targets: argparse._SubParsersAction) -> None:
    sp = targets.add_parser("dicom", help="store each final result's SR and GSPS objects in a PACS by C-STORE")
    sp.add_argument("--to", required=True, metavar="AET@HOST:PORT", help="the PACS's AE title, host and DICOM port")
    sp.add_argument("--calling-ae", default="RADSTREAM", metavar="T", help="our AE title (default RADSTREAM)")
    add_client_tls_flags(sp, "DICOM (PS3.15 Annex B)")
    add_pacs_flags(add_export_flags(sp))
    sp.set_defaults(func=cmd_export_dicom)


def cmd_export_dicom(args: argparse.Namespace) -> int:
    from radstream.services.export.c_store import CStoreSender, Peer, check_ae_title

    try:
        peer = Peer.parse(args.to)
        calling = check_ae_title(args.calling_ae, "--calling-ae")
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    tls = client_tls(args)
    # pynetdicom logs every association at INFO and each failure at ERROR; the stage logs one line instead.
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)

    def build(store, config, args):
        from radstream.services.export.pacs import CStoreExport

        sender = CStoreSender(peer, calling, timeout_s=args.timeout, tls=tls)
        print(f"exporting final results to {peer} as {calling} by C-STORE{' over DICOM TLS' if tls else ''} "
              "(SIGTERM stops)", flush=True)
        return CStoreExport(store, sender, **pacs_options(config, args))

    return run_export(args, build)
