"""`--tls`, `--tls-ca`, `--tls-cert`, `--tls-key` for the edges that connect out over TLS (export dicom, export hl7)."""

from __future__ import annotations

import argparse
import ssl

from radstream.services.commands.errors import EXIT_USAGE, CliError


def add_client_tls_flags(sp: argparse.ArgumentParser, what: str) -> None:
    sp.add_argument("--tls", action="store_true",
                    help=f"{what} over TLS 1.2+, the peer's certificate checked against the system's CAs "
                         "(implied by --tls-ca, --tls-cert)")
    sp.add_argument("--tls-ca", metavar="PEM", help="TLS: the CA that signed the peer's certificate")
    sp.add_argument("--tls-cert", metavar="PEM", help="TLS: our client certificate, for a peer that wants one")
    sp.add_argument("--tls-key", metavar="PEM", help="TLS: the client certificate's private key")


def client_tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The client context the flags ask for, or None for plain TCP; bad files are a one-line usage error."""
    from radstream.services.tls import ClientTls, client_tls_context

    if not (args.tls or args.tls_ca or args.tls_cert or args.tls_key):
        return None
    try:
        return client_tls_context(ClientTls(args.tls_ca, args.tls_cert, args.tls_key))
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
