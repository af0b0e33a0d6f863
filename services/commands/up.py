"""`radstream up`: every stage as a child process, plus the embedded broker without --bootstrap (services/stack.py)."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from radstream.services.commands.bootstrap import add_bootstrap, config_from
from radstream.services.commands.errors import CliError


def register(subparsers: argparse._SubParsersAction) -> None:
    sp = add_bootstrap(subparsers.add_parser(
        "up", help="every stage as a child process (plus the embedded broker without --bootstrap)"))
    sp.add_argument("--receiver-port", type=int, help="also run the DICOM C-STORE receiver on this port")
    sp.add_argument("--ae-title", default="RADSTREAM", help="the receiver's AE title (default RADSTREAM)")
    sp.add_argument("--peers", metavar="FILE", help="the receiver's peers file (default: $RADSTREAM_RECEIVER_PEERS)")
    sp.add_argument("--allow-any-peer", action="store_true", help="the receiver admits any peer (local demos only)")
    sp.add_argument("--no-monitor", action="store_true", help="without the monitor stage (PPV and drift)")
    add_durable(sp)
    sp.set_defaults(func=cmd_up)


def add_durable(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--durable", metavar="DIR|s3://BUCKET/",
                    help="the embedded broker keeps its topics across restarts: in an embedded SeaweedFS in DIR, "
                         "or in an S3 bucket (the AWS_* variables say where); without it, it keeps them in memory")


def cmd_up(args: argparse.Namespace) -> int:
    from radstream.services.commands.receiver import peer_table
    from radstream.services.durable_broker import MEMORY_NOTE
    from radstream.services.stack import Stack

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    config = config_from(args)  # --bootstrap, else RADSTREAM_BOOTSTRAP, else the embedded broker
    receiver = None
    if args.receiver_port:
        peers = args.peers or config.receiver_peers_file
        peer_table(peers, args.allow_any_peer)  # refused here, not by a receiver child restarting in a loop
        receiver = ["--port", str(args.receiver_port), "--ae-title", args.ae_title,
                    *(["--allow-any-peer"] if args.allow_any_peer else ["--peers", str(Path(peers).resolve())])]
    embedded = not config.kafka.bootstrap
    if args.durable and not embedded:
        raise CliError("--durable is for the embedded broker: with --bootstrap (or RADSTREAM_BOOTSTRAP) "
                       "the Kafka cluster keeps the topics")
    if embedded and not args.durable:
        print(MEMORY_NOTE, flush=True)
    stack = Stack(config, config.kafka.bootstrap or None, receiver=receiver, durable=args.durable,
                  monitor=not args.no_monitor).start()
    assert stack.supervisor is not None
    if stack.storage:
        print(f"embedded broker: {stack.storage.describe()}", flush=True)
    print(f"radstream up on {stack.bootstrap} (topics ready): {', '.join(c.label for c in stack.supervisor.children)}", flush=True)
    print(f"logs in {stack.logs}; `radstream status` shows health; Ctrl-C or SIGTERM stops", flush=True)
    try:
        stack.run_forever(lambda: bool(stopping))
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
    return 0
