"""`radstream export fhir --url URL`: final results as FHIR R4 transaction Bundles (services/export/fhir.py)."""

from __future__ import annotations

import argparse
from urllib.parse import urlsplit

from radstream.services.commands.errors import EXIT_USAGE, CliError
from radstream.services.commands.export import (
    add_export_flags,
    clinical_use_check,
    run_export,
)
from radstream.services.commands.token_flags import add_token_flags, bearer_token

TOKEN_ENV = "RADSTREAM_FHIR_TOKEN"


def register(targets: argparse._SubParsersAction) -> None:
    sp = targets.add_parser("fhir", help="send each final result as a FHIR R4 transaction Bundle; commit on 2xx")
    sp.add_argument("--url", required=True, metavar="URL", help="the FHIR server's base URL, e.g. https://ehr/fhir")
    add_token_flags(sp, TOKEN_ENV)
    sp.add_argument("--patient-system", metavar="URI",
                    help="the system of the hospital's patient identifiers (default: the Issuer of Patient ID "
                         "when it is an OID or a URI, else the Patient ID under any system)")
    sp.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                    help="wait this long for the server before retrying (default 30)")
    sp.add_argument("--allow-http", action="store_true",
                    help="allow a plain http:// URL (a local test server); results carry the patient")
    add_export_flags(sp)
    sp.set_defaults(func=cmd_export_fhir)


def cmd_export_fhir(args: argparse.Namespace) -> int:
    parts = urlsplit(args.url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise CliError(f"--url takes the FHIR server's http(s) base URL, not {args.url!r}", EXIT_USAGE)
    if parts.scheme == "http" and not args.allow_http:
        raise CliError("--url is plain http: the bundles carry the patient; use https, or --allow-http "
                       "for a local test server", EXIT_USAGE)

    def build(store, config, args):
        from radstream.services.export.fhir import FhirExport

        return FhirExport(store, args.url, bearer_token(args, TOKEN_ENV), timeout_s=args.timeout,
                          not_for_clinical_use=clinical_use_check(config), patient_system=args.patient_system)

    return run_export(args, build)
