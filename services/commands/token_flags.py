"""`--token` / `--token-file` and their environment variables, for every command that sends a bearer token.

A token on the command line is visible to every user of the machine (`ps`, /proc/PID/cmdline)
and lands in shell history, so it still works but warns once; a file (a mounted Secret) or the
environment keeps it out of the process list.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping

from radstream.services.commands.errors import EXIT_USAGE, CliError

_warned: set[str] = set()


def add_token_flags(sp: argparse.ArgumentParser, env: str) -> None:
    """`--token T` and `--token-file FILE`, defaulting to $ENV and then $ENV_FILE."""
    sp.add_argument("--token", metavar="T",
                    help=f"sent as `Authorization: Bearer T`; visible in the process list, so prefer "
                         f"--token-file or ${env} (default: ${env})")
    sp.add_argument("--token-file", metavar="FILE", help=f"a file holding the token (default: ${env}_FILE)")


def bearer_token(args: argparse.Namespace, env: str, environ: Mapping[str, str] | None = None) -> str | None:
    """--token (warned), else --token-file, else $ENV, else the file $ENV_FILE names; None if none is set."""
    e = os.environ if environ is None else environ
    if getattr(args, "token", None):
        warn_once("--token", f"--token is visible in the process list (ps): use --token-file FILE or ${env}_FILE")
        return args.token
    path = getattr(args, "token_file", None) or (None if e.get(env) else e.get(f"{env}_FILE"))
    if path:
        return read_secret_file(path, "token")
    return e.get(env) or None


def read_secret_file(path: str, what: str) -> str:
    """The file's content, stripped; a missing, unreadable or empty file is a usage error naming it."""
    try:
        with open(path, encoding="utf-8") as handle:
            value = handle.read().strip()
    except OSError as exc:
        raise CliError(f"cannot read the {what} file {path}: {exc.strerror}", EXIT_USAGE) from None
    if not value:
        raise CliError(f"the {what} file {path} is empty", EXIT_USAGE)
    return value


def warn_once(key: str, message: str) -> None:
    """One line on stderr per process, however often the flag is read."""
    if key not in _warned:
        _warned.add(key)
        print(f"radstream: warning: {message}", file=sys.stderr, flush=True)


def warn_if_password_in_url(url: str, flag: str) -> None:
    """`user:password@` in a URL flag is as visible in the process list as --token."""
    from urllib.parse import urlsplit

    if urlsplit(url).password:
        warn_once(flag, f"the password in {flag} (user:password@) is visible in the process list (ps): "
                        "prefer a bearer token from --token-file")
