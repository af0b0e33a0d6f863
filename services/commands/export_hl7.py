"""`radstream export hl7 --to HOST:PORT`: final results as HL7 v2.5.1 ORU^R01 over MLLP (services/export/hl7.py)."""

from __future__ import annotations

import argparse

from radstream.services.commands.export import (
    add_export_flags,
    clinical_use_check,
    host_port,
    run_export,
)
from radstream.services.commands.tls_flags import add_client_tls_flags, client_tls


def register(targets: argparse._SubParsersAction) -> None:
    sp = targets.add_parser("hl7", help="send each final result as an HL7 v2.5.1 ORU^R01 over MLLP; commit on AA")
    sp.add_argument("--to", required=True, metavar="HOST:PORT", help="the MLLP listener of the RIS or interface engine")
    sp.add_argument("--sending-application", default="RADSTREAM", metavar="A", help="MSH-3 (default RADSTREAM)")
    sp.add_argument("--sending-facility", default="", metavar="F", help="MSH-4 (default: the result's site)")
    sp.add_argument("--receiving-application", default="", metavar="A", help="MSH-5")
    sp.add_argument("--receiving-facility", default="", metavar="F", help="MSH-6")
    sp.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                    help="wait this long for the ACK before retrying (default 30)")
    add_client_tls_flags(sp, "MLLP")
    add_export_flags(sp)
    sp.set_defaults(func=cmd_export_hl7)


def cmd_export_hl7(args: argparse.Namespace) -> int:
    from radstream.services.commands.errors import EXIT_USAGE, CliError
    from radstream.services.export.hl7_oru import Hl7Parties, OruError, check_parties

    host, port = host_port(args.to, "--to")
    tls = client_tls(args)
    parties = Hl7Parties(args.sending_application, args.sending_facility, args.receiving_application,
                         args.receiving_facility)
    try:
        check_parties(parties)
    except OruError as exc:
        raise CliError(exc.reason, EXIT_USAGE) from None

    def build(store, config, args):
        from radstream.services.export.hl7 import Hl7Export

        return Hl7Export(store, host, port, parties, timeout_s=args.timeout,
                         not_for_clinical_use=clinical_use_check(config), tls=tls)

    return run_export(args, build)
