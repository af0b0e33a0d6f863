"""Bearer-token auth from command-line flags and settings, for the gateway and STOW-RS ingest:
one reading of the token file, one check that some auth is configured, one set of errors."""

from __future__ import annotations

from radstream.services.commands.errors import EXIT_USAGE, CliError
from radstream.services.gateway.auth import Authenticator, load_token_file


def bearer_auth(token_file: str | None, jwt_secret: str | None, open_access: bool, *, service: str = "",
                tokens_flag: str, env_prefix: str, no_auth_flag: str) -> Authenticator:
    """The Authenticator, or a one-line CliError naming the flags and settings that configure it.

    `service` prefixes the messages ("STOW-RS "); `env_prefix` names the settings
    (`<prefix>_TOKENS`, `<prefix>_JWT_SECRET`).
    """
    try:
        tokens = load_token_file(token_file) if token_file else None
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read the {service}token file: {exc}", EXIT_USAGE) from None
    try:
        return Authenticator(tokens, jwt_secret, open_access=open_access)
    except ValueError:
        raise CliError(f"no {service}auth configured: pass {tokens_flag} FILE, set {env_prefix}_TOKENS or "
                       f"{env_prefix}_JWT_SECRET, or {no_auth_flag} for a local demo", EXIT_USAGE) from None
