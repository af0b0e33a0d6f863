"""Signing keys on disk: `radstream keys new`, the key a push signs with, the keys a reader
trusts, and the dev pair `radstream up` makes so the embedded demo works with no setup.

The format and the signature itself are domain/signatures.py; which files apply (and that
production has no fallback) is streams/config.py. This module only reads and writes files.
"""

from __future__ import annotations

import os
from pathlib import Path

from radstream.domain.signatures import (
    KeyFileError,
    SigningKey,
    new_signing_key,
    parse_signing_key,
)
from radstream.streams.config import (
    DEV_GATEWAY_KEY_NAME,
    DEV_GATEWAY_KEY_PATH,
    DEV_KEY_NAME,
    DEV_KEY_PATH,
    DEV_TRUSTED_KEYS_PATH,
    Config,
)


DEV_TRUSTED_HEADER = "# written by `radstream up`"  # only a file `up` wrote gets the dev gateway key appended


def write_key_pair(name: str, folder: Path, delegate: bool = False) -> tuple[Path, Path, SigningKey]:
    """`NAME.key` (mode 0600, never overwritten) and `NAME.pub` (its trusted-keys line, marked
    `delegate` when asked: a service key that signs overrides for the people it authenticated) in `folder`."""
    key = new_signing_key(name)
    folder.mkdir(parents=True, exist_ok=True)
    private, public = folder / f"{name}.key", folder / f"{name}.pub"
    try:
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{private} exists: a key is never overwritten (remove it first)") from None
    except OSError as exc:
        raise KeyFileError(f"cannot write {private}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as handle:
        handle.write(key.private_line() + "\n")
    public.write_text(key.public_line(delegate) + "\n")
    return private, public, key


def read_signing_key(path: Path) -> SigningKey:
    try:
        text = path.read_text()
    except OSError as exc:
        raise KeyFileError(f"cannot read key {path}: {exc.strerror}") from None
    if path.stat().st_mode & 0o077:
        raise KeyFileError(f"{path} is readable by others: chmod 600 {path}")
    return parse_signing_key(text, str(path))


def signing_key(config: Config, path: str | Path | None) -> SigningKey:
    """The key a push signs with: `--key`, else RADSTREAM_SIGNING_KEY, else (not in prod) the dev key."""
    chosen = Path(path) if path else config.signing_key_path()
    if chosen is None:
        raise KeyFileError("a push is signed: pass --key FILE (made by `radstream keys new NAME`) "
                           "or set RADSTREAM_SIGNING_KEY")
    return read_signing_key(chosen)


def gateway_signing_key(config: Config, path: str | Path | None) -> SigningKey | None:
    """The gateway's delegate key: `--signing-key`, else RADSTREAM_GATEWAY_SIGNING_KEY, else (not
    in prod) the dev gateway key; None when there is none (the viewer's overrides are off)."""
    chosen = Path(path) if path else config.gateway_signing_key_path()
    return read_signing_key(chosen) if chosen is not None else None


def ensure_dev_keys(home: Path) -> Path:
    """The dev key pair under RADSTREAM_HOME and a trusted-keys file trusting it, made once; and
    the dev gateway key, trusted there as `delegate` (D-042).

    Only `radstream up` (and what runs on it: demo, bench, tests) calls this; a reader uses the
    file only when RADSTREAM_TRUSTED_KEYS is unset and RADSTREAM_ENV is not prod."""
    trusted = home / DEV_TRUSTED_KEYS_PATH
    private = home / DEV_KEY_PATH
    if not private.exists():
        _, public, _ = write_key_pair(DEV_KEY_NAME, private.parent)
        if not trusted.exists():
            trusted.write_text(DEV_TRUSTED_HEADER + ": the dev key under this RADSTREAM_HOME (not for production)\n"
                               + public.read_text())
    gateway = home / DEV_GATEWAY_KEY_PATH
    if not gateway.exists() and trusted.is_file() and trusted.read_text().startswith(DEV_TRUSTED_HEADER):
        _, public, _ = write_key_pair(DEV_GATEWAY_KEY_NAME, gateway.parent, delegate=True)
        with trusted.open("a") as handle:
            handle.write("# the dev gateway's key: signs the viewer's overrides for whoever it authenticated\n"
                         + public.read_text())
    return trusted



def arrival_signer(config: Config, path: str | Path | None, command: str) -> SigningKey | None:
    """The key `publish`, `pull` or the receiver signs its arrivals with (D-038): `--key`, else
    RADSTREAM_SIGNING_KEY; required where decode requires signed arrivals (RADSTREAM_ENV=prod,
    RADSTREAM_REQUIRE_SIGNED_ARRIVALS=1), else None (unsigned, as before) when neither is set."""
    chosen = Path(path) if path else config.signing_key_file
    if chosen is None:
        if config.require_signed_arrivals:
            raise KeyFileError(f"{command}: decode accepts only signed arrivals here: pass --key FILE (a key whose "
                               "trusted-keys line lists the site) or set RADSTREAM_SIGNING_KEY")
        return None
    return read_signing_key(chosen)
