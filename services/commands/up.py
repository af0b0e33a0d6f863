"""`radstream up`: every stage as a child process, plus the embedded broker without --bootstrap (services/stack.py)."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from radstream.services.commands.bootstrap import add_bootstrap, config_from


def register(subparsers: argparse._SubParsersAction) -> None:
    sp = add_bootstrap(subparsers.add_parser(
        "up", help="every stage as a child process (plus the embedded broker without --bootstrap)"))
    sp.add_argument("--receiver-port", type=int, help="also run the DICOM C-STORE receiver on this port")
    sp.add_argument("--ae-title", default="RADSTREAM", help="the receiver's AE title (default RADSTREAM)")
    sp.add_argument("--peers", metavar="FILE", help="the receiver's peers file (default: $RADSTREAM_RECEIVER_PEERS)")
    sp.add_argument("--allow-any-peer", action="store_true", help="the receiver admits any peer (local demos only)")
    sp.add_argument("--no-monitor", action="store_true", help="without the monitor stage (PPV and drift)")
    sp.set_defaults(func=cmd_up)


def cmd_up(args: argparse.Namespace) -> int:
    from radstream.services.commands.receiver import peer_table
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
    stack = Stack(config, config.kafka.bootstrap or None, receiver=receiver, monitor=not args.no_monitor).start()
    assert stack.supervisor is not None
    print(f"radstream up on {stack.bootstrap} (topics ready): {', '.join(c.label for c in stack.supervisor.children)}", flush=True)
    print(f"logs in {stack.logs}; `radstream status` shows health; Ctrl-C or SIGTERM stops", flush=True)
    try:
        stack.run_forever(lambda: bool(stopping))
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
    return 0
