"""`radstream receiver`: the DICOM C-STORE SCP in the foreground until SIGTERM (see services/receiver.py)."""

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
    sp.set_defaults(func=cmd_receiver)


def cmd_receiver(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from radstream.services.receiver import InstanceSink, Receiver, receiver_settings
    from radstream.streams.blobstore import open_blob_store
    from radstream.streams.health import HealthServer, register_process
    from radstream.streams.kafka.producer import EventPublisher

    config = require_bootstrap(args)
    if not 0 < len(args.ae_title.strip()) <= 16:
        raise CliError("--ae-title must be 1 to 16 characters", EXIT_USAGE)
    settings = receiver_settings(config)
    if args.host:
        settings = replace(settings, host=args.host)

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    sink = InstanceSink(open_blob_store(config.blob_url), lambda: EventPublisher(config.kafka), settings.ack_timeout_s)
    try:
        receiver = Receiver(args.ae_title.strip(), args.port, sink, settings).start()
    except OSError as exc:
        raise CliError(f"cannot listen on {settings.host}:{args.port}: {exc.strerror or exc}") from None
    started = time.time()

    def health() -> dict:
        last = sink.last_stored
        return {"stage": "receiver", "pid": os.getpid(), "healthy": True, "ae_title": receiver.ae_title,
                "port": receiver.port, "active_associations": len(receiver.ae.active_associations),
                "last_progress_age_s": round(time.time() - (last or started), 3)}

    server = HealthServer(health, host=config.health_host, port=config.health_port).start()
    registration = register_process("receiver", server.url, {"ae_title": receiver.ae_title, "port": receiver.port})
    print(f"receiver {receiver.ae_title} listening on {settings.host}:{receiver.port} "
          f"(publishing to {config.kafka.topic('dicom.arrived')}; health {server.url}; SIGTERM stops)", flush=True)
    try:
        stopping.wait()
    finally:
        receiver.stop()
        server.stop()
        registration.unlink(missing_ok=True)
    return 0
