"""The `--bootstrap` option (Kafka bootstrap servers) and the one check that a command has a broker."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from radstream.services.commands.errors import EXIT_USAGE, CliError

if TYPE_CHECKING:
    from radstream.streams.config import Config

NO_BOOTSTRAP = "no Kafka bootstrap servers: pass --bootstrap HOST:PORT or set RADSTREAM_BOOTSTRAP"


def add_bootstrap(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap servers (default: $RADSTREAM_BOOTSTRAP)")
    return parser


def config_from(args: argparse.Namespace) -> Config:
    """The environment's Config, with the command's --bootstrap when it has that option."""
    from radstream.streams.config import Config

    return Config.from_env(getattr(args, "bootstrap", None))


def require_bootstrap(args: argparse.Namespace, message: str = NO_BOOTSTRAP, code: int = EXIT_USAGE) -> Config:
    """`config_from(args)`, or a CliError when neither --bootstrap nor RADSTREAM_BOOTSTRAP names a broker."""
    config = config_from(args)
    if not config.kafka.bootstrap:
        raise CliError(message, code)
    return config


def trusted_keys_or_fail(config: Config) -> dict:
    """The trusted keys (streams/config.py), or a CliError naming the bad file or line."""
    from radstream.domain.signatures import KeyFileError

    try:
        return config.trusted_keys()
    except KeyFileError as exc:
        raise CliError(str(exc)) from None
