"""`radstream broker`: the embedded Kafka-protocol broker in the foreground (services/broker.py)."""

from __future__ import annotations

import argparse
import signal

from radstream.services.commands.errors import CliError


def register(subparsers: argparse._SubParsersAction) -> None:
    sp = subparsers.add_parser("broker", help="run the embedded Kafka-protocol broker in the foreground")
    sp.add_argument("--port", type=int, default=9092)
    sp.set_defaults(func=cmd_broker)


def cmd_broker(args: argparse.Namespace) -> int:
    from radstream.services.broker import EmbeddedBroker

    broker = EmbeddedBroker(args.port).start()
    print(f"embedded broker listening on {broker.bootstrap} (memory storage; Ctrl-C to stop)", flush=True)

    def _stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        code = broker.wait()
        raise CliError(f"embedded broker exited with code {code}")
    except KeyboardInterrupt:
        return 0
    finally:
        broker.stop()
