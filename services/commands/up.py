"""`radstream up`: every stage as a child process, plus the embedded broker without --bootstrap (services/stack.py)."""

from __future__ import annotations

import argparse
import signal

from radstream.services.commands.bootstrap import add_bootstrap, config_from


def register(subparsers: argparse._SubParsersAction) -> None:
    sp = add_bootstrap(subparsers.add_parser(
        "up", help="every stage as a child process (plus the embedded broker without --bootstrap)"))
    sp.add_argument("--receiver-port", type=int, help="also run the DICOM C-STORE receiver on this port")
    sp.add_argument("--ae-title", default="RADSTREAM", help="the receiver's AE title (default RADSTREAM)")
    sp.set_defaults(func=cmd_up)


def cmd_up(args: argparse.Namespace) -> int:
    from radstream.services.stack import Stack

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    config = config_from(args)  # --bootstrap, else RADSTREAM_BOOTSTRAP, else the embedded broker
    receiver = (args.receiver_port, args.ae_title) if args.receiver_port else None
    stack = Stack(config, config.kafka.bootstrap or None, receiver=receiver).start()
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
