"""`radstream receiver`: the DICOM C-STORE SCP (services/receiver.py), and with `--dicomweb-port` the
STOW-RS endpoint beside it (services/stow.py), in the foreground until SIGTERM."""

from __future__ import annotations

import argparse
import os
import time
import signal
import threading

from radstream.services.commands.bootstrap import add_bootstrap, require_bootstrap
from radstream.services.commands.errors import EXIT_USAGE, CliError


def register(subparsers: argparse._SubParsersAction) -> None:
    sp = subparsers.add_parser("receiver", help="DICOM C-STORE SCP: store, publish DicomArrived, then acknowledge")
    sp.add_argument("--port", type=int, required=True, help="DICOM port to listen on (0: any free port)")
    sp.add_argument("--ae-title", required=True, help="this SCP's AE title")
    sp.add_argument("--host", help="address to bind (default: $RADSTREAM_RECEIVER_HOST or 127.0.0.1)")
    add_bootstrap(sp)
    sp.add_argument("--peers", metavar="FILE",
                    help="the DICOM senders admitted, `AE_TITLE SITE [CIDR]` per line (default: $RADSTREAM_RECEIVER_PEERS); "
                         "an unknown calling AE title or an address outside its CIDR gets A-ASSOCIATE-RJ")
    sp.add_argument("--allow-any-peer", action="store_true",
                    help="admit any calling AE title, under its own title as the site (local demos only)")
    sp.add_argument("--tls-cert", metavar="PEM", help="DICOM TLS (PS3.15 Annex B): this SCP's certificate")
    sp.add_argument("--tls-key", metavar="PEM", help="DICOM TLS: the certificate's private key")
    sp.add_argument("--tls-ca", metavar="PEM", help="DICOM TLS: require client certificates signed by this CA")
    sp.add_argument("--key", metavar="FILE", help="sign every arrival with this key (default $RADSTREAM_SIGNING_KEY); "
                    "required with RADSTREAM_ENV=prod, where decode accepts only signed arrivals (its trusted-keys "
                    "line lists the peers' sites, or `*`)")
    sp.add_argument("--dicomweb-port", type=int, metavar="N",
                    help="also serve STOW-RS (POST /dicom-web/studies[/{study}]) on this HTTP port (0: any free port)")
    sp.add_argument("--dicomweb-tokens", metavar="FILE",
                    help="STOW-RS bearer tokens, `TOKEN [SITE]` per line (default: $RADSTREAM_DICOMWEB_TOKENS)")
    sp.add_argument("--dicomweb-no-auth", action="store_true", help="STOW-RS without a token (local demos only)")
    sp.set_defaults(func=cmd_receiver)


def cmd_receiver(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from radstream.services.instance_header import HeaderReader
    from radstream.services.receiver import InstanceSink, Receiver, receiver_settings
    from radstream.streams.blobstore import open_blob_store
    from radstream.streams.health import HealthServer, register_process
    from radstream.streams.kafka.producer import EventPublisher

    config = require_bootstrap(args)
    if not 0 < len(args.ae_title.strip()) <= 16:
        raise CliError("--ae-title must be 1 to 16 characters", EXIT_USAGE)
    if config.receiver_max_mb <= 0:
        raise CliError("RADSTREAM_RECEIVER_MAX_MB must be positive", EXIT_USAGE)
    settings = receiver_settings(config)
    if args.host:
        settings = replace(settings, host=args.host)
    peers = peer_table(args.peers or config.receiver_peers_file, args.allow_any_peer)
    tls = tls_files(args)
    from radstream.services.signing import arrival_signer

    try:
        signer = arrival_signer(config, args.key, "receiver")
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    # The header of every instance (C-STORE and STOW-RS) is read in bounded worker processes, one per association.
    headers = HeaderReader(settings.max_dataset_bytes, workers=min(settings.max_associations, 4))
    sink = InstanceSink(open_blob_store(config.blob_url), lambda: EventPublisher(config.kafka), settings.ack_timeout_s,
                        headers=headers, signer=signer, urgent_sites=config.stat_sites)
    stow = _stow_server(args, config, sink, settings.host)
    try:
        receiver = Receiver(args.ae_title.strip(), args.port, sink, settings, peers, tls).start()
    except OSError as exc:
        if stow:
            stow.stop()
        raise CliError(f"cannot listen on {settings.host}:{args.port}: {exc.strerror or exc}") from None
    started = time.time()

    def health() -> dict:
        last = sink.last_stored
        return {"stage": "receiver", "pid": os.getpid(), "healthy": True, "ae_title": receiver.ae_title,
                "port": receiver.port, "active_associations": len(receiver.ae.active_associations),
                "dicomweb_port": stow.port if stow else None,
                "last_progress_age_s": round(time.time() - (last or started), 3)}

    server = HealthServer(health, host=config.health_host, port=config.health_port).start()
    registration = register_process("receiver", server.url, {"ae_title": receiver.ae_title, "port": receiver.port,
                                                              "dicomweb_port": stow.port if stow else None})
    stow_line = f"; STOW-RS on {stow.url}/studies" if stow else ""
    admitted = "any peer (--allow-any-peer)" if peers.any_peer else f"{len(peers.peers)} peer(s)"
    print(f"receiver {receiver.ae_title} listening on {settings.host}:{receiver.port}"
          f"{' (DICOM TLS)' if tls else ''}, admitting {admitted}{stow_line} "
          f"(publishing to {config.kafka.topic('dicom.arrived')}; health {server.url}; SIGTERM stops)", flush=True)
    try:
        stopping.wait()
    finally:
        if stow:
            stow.stop()
        receiver.stop()
        server.stop()
        registration.unlink(missing_ok=True)
    return 0


def peer_table(path: str | None, allow_any_peer: bool):
    """The peers admitted: the file's, or every peer with --allow-any-peer; a one-line CliError otherwise."""
    from pathlib import Path

    from radstream.domain.dicom.peers import PeerTable, parse_peers

    if path and allow_any_peer:
        raise CliError("--peers (or RADSTREAM_RECEIVER_PEERS) and --allow-any-peer exclude each other", EXIT_USAGE)
    if allow_any_peer:
        return PeerTable(any_peer=True)
    if not path:
        raise CliError("no DICOM peers configured: pass --peers FILE (`AE_TITLE SITE [CIDR]` per line), set "
                       "RADSTREAM_RECEIVER_PEERS, or --allow-any-peer for a local demo", EXIT_USAGE)
    from radstream.services.receiver import LivePeerTable
    from radstream.streams.watched_file import WatchedFile

    try:
        return LivePeerTable(WatchedFile(Path(path), lambda text: parse_peers(text, path)))
    except OSError as exc:
        raise CliError(f"cannot read the peers file {path}: {exc.strerror or exc}", EXIT_USAGE) from None
    except UnicodeDecodeError:
        raise CliError(f"the peers file {path} is not text", EXIT_USAGE) from None
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def tls_files(args: argparse.Namespace):
    """The TLS files from --tls-cert/--tls-key/--tls-ca, or None; a CliError when only half is given."""
    from radstream.services.tls import TlsFiles, server_tls_context

    if not (args.tls_cert or args.tls_key or args.tls_ca):
        return None
    if not (args.tls_cert and args.tls_key):
        raise CliError("DICOM TLS needs both --tls-cert and --tls-key (--tls-ca to verify clients)", EXIT_USAGE)
    tls = TlsFiles(args.tls_cert, args.tls_key, args.tls_ca)
    try:
        server_tls_context(tls)  # refused here, before anything listens
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    return tls


def _stow_server(args: argparse.Namespace, config, sink, host: str):
    """The STOW-RS server on --dicomweb-port, started; None without the flag."""
    if args.dicomweb_port is None:
        return None
    from radstream.services.commands.auth_flags import bearer_auth, jwt_settings
    from radstream.services.stow import MB, StowHandler, StowLimits, StowServer

    auth = bearer_auth(args.dicomweb_tokens or config.dicomweb_tokens_file, jwt_settings(config, "dicomweb"),
                       args.dicomweb_no_auth, service="STOW-RS ", tokens_flag="--dicomweb-tokens",
                       env_prefix="RADSTREAM_DICOMWEB", no_auth_flag="--dicomweb-no-auth")
    if config.stow_max_part_mb <= 0 or config.stow_max_request_mb <= 0:
        raise CliError("RADSTREAM_STOW_MAX_REQUEST_MB and RADSTREAM_STOW_MAX_PART_MB must be positive", EXIT_USAGE)
    limits = StowLimits(int(config.stow_max_request_mb * MB), int(config.stow_max_part_mb * MB))
    try:
        return StowServer(StowHandler(sink, auth, limits), host, args.dicomweb_port).start()
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{args.dicomweb_port}: {exc.strerror or exc}") from None
