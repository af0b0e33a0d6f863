"""`radstream broker`: the embedded Kafka-protocol broker in the foreground (services/broker.py)."""

from __future__ import annotations

import argparse
import signal

from radstream.services.commands.errors import CliError
from radstream.services.commands.up import add_durable


def register(subparsers: argparse._SubParsersAction) -> None:
    sp = subparsers.add_parser("broker", help="run the embedded Kafka-protocol broker in the foreground")
    sp.add_argument("--port", type=int, default=9092)
    add_durable(sp)
    sp.set_defaults(func=cmd_broker)


def cmd_broker(args: argparse.Namespace) -> int:
    from radstream.services.broker import EmbeddedBroker
    from radstream.services.durable_broker import MEMORY_NOTE, open_durable_storage

    storage = open_durable_storage(args.durable) if args.durable else None
    try:
        broker = EmbeddedBroker(args.port, **({"storage": storage.url, "storage_env": storage.env}
                                              if storage else {})).start()
    except BaseException:
        if storage:
            storage.stop()
        raise
    print(f"embedded broker listening on {broker.bootstrap} "
          f"({storage.describe() if storage else 'memory storage'}; Ctrl-C to stop)", flush=True)
    if storage is None:
        print(MEMORY_NOTE, flush=True)

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
        if storage:
            storage.stop()
