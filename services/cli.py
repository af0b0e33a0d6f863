"""The `radstream` command. Thin handlers over the domain code; errors are one line, never a traceback.

Every command is a module under `services/commands/`, registered in `COMMANDS` order.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from radstream.services import commands
from radstream.services.commands.errors import EXIT_ERROR, CliError
from radstream.services.logs import setup_logging


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="radstream", description="Streaming medical-imaging AI on Kafka.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in commands.COMMANDS:
        importlib.import_module(f"{commands.__name__}.{name}").register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(os.environ.get("RADSTREAM_LOG_LEVEL", "INFO"))
    try:
        return args.func(args)
    except CliError as exc:
        print(f"radstream: error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the promise: one clear line, never a traceback
        logging.getLogger("radstream").debug("unhandled error", exc_info=True)
        print(f"radstream: error: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
