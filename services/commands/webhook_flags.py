"""`--secret-file` and `--allow-http` for every command that posts to a webhook (forward, watch)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping

from radstream.services.commands.errors import EXIT_USAGE, CliError


def add_webhook_flags(sp: argparse.ArgumentParser, env: str) -> None:
    sp.add_argument("--allow-http", action="store_true", help="allow a plain http webhook URL (a trusted local network only)")
    sp.add_argument("--secret-file", metavar="FILE", help="HMAC-SHA256 secret (>= 32 bytes) for X-Radstream-Signature "
                    f"(default: ${env}, else the file ${env}_FILE)")


def webhook_secret(args: argparse.Namespace, env: str, command: str, environ: Mapping[str, str] | None = None) -> bytes:
    """--secret-file, else $ENV, else the file $ENV_FILE names (trailing newline dropped); required."""
    e = os.environ if environ is None else environ
    path = args.secret_file or (None if e.get(env) else e.get(f"{env}_FILE"))
    if path:
        try:
            with open(path, "rb") as handle:
                return handle.read().rstrip(b"\r\n")
        except OSError as exc:
            raise CliError(f"cannot read the webhook secret {path}: {exc.strerror}") from None
    if e.get(env):
        return e[env].encode()
    raise CliError(f"{command} signs every POST: pass --secret-file FILE or set {env}(_FILE)", EXIT_USAGE)
