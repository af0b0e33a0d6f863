"""TLS contexts for every edge that speaks TLS itself: DICOM (receiver, export dicom) and MLLP (export hl7).

One place, so the floor (TLS 1.2, BCP 195, as PS3.15 Annex B's profiles require) and the
one-line refusal of bad files are the same on every port and every peer.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass


@dataclass(frozen=True)
class TlsFiles:
    """Our certificate and key (PEM); as a server, with `ca`, clients must present a certificate it signed."""

    cert: str
    key: str
    ca: str | None = None


@dataclass(frozen=True)
class ClientTls:
    """As a client: the CA that signed the peer's certificate (None: the system's), and our own
    certificate and key for a peer that wants one (mutual TLS)."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None


def _why(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def server_tls_context(tls: TlsFiles) -> ssl.SSLContext:
    """A TLS 1.2+ server context; ValueError in one line."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(tls.cert, tls.key)
        if tls.ca:
            context.load_verify_locations(cafile=tls.ca)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load the TLS certificate, key or CA: {_why(exc)}") from None
    return context


def client_tls_context(tls: ClientTls) -> ssl.SSLContext:
    """A TLS 1.2+ client context that verifies the peer's certificate and host name; ValueError in one line."""
    if bool(tls.cert) != bool(tls.key):
        raise ValueError("a client certificate needs both --tls-cert and --tls-key")
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls.ca)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if tls.cert:
            context.load_cert_chain(tls.cert, tls.key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load the TLS CA, certificate or key: {_why(exc)}") from None
    return context
