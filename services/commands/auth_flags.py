"""Bearer-token auth from command-line flags and settings, for the gateway and STOW-RS ingest:
one reading of the token file and the JWT settings, one check that some auth is configured,
one set of errors."""

from __future__ import annotations

from typing import Any

from radstream.services.commands.errors import EXIT_USAGE, CliError
from radstream.services.gateway.auth import Authenticator, JwtSettings, load_token_file


def jwt_settings(config: Any, service: str) -> JwtSettings:
    """The JWT settings of `service` ("gateway", "dicomweb") from the Config's `<service>_jwt_*` fields."""
    return JwtSettings(secret=getattr(config, f"{service}_jwt_secret"), jwks_file=getattr(config, f"{service}_jwt_jwks"),
                       audience=getattr(config, f"{service}_jwt_audience"),
                       issuer=getattr(config, f"{service}_jwt_issuer"),
                       max_lifetime_s=getattr(config, f"{service}_jwt_max_lifetime_s"))


def bearer_auth(token_file: str | None, jwt: JwtSettings, open_access: bool, *, service: str = "",
                tokens_flag: str, env_prefix: str, no_auth_flag: str) -> Authenticator:
    """The Authenticator, or a one-line CliError naming the flags and settings that configure it.

    `service` prefixes the messages ("STOW-RS "); `env_prefix` names the settings
    (`<prefix>_TOKENS`, `<prefix>_JWT_SECRET`, `<prefix>_JWT_JWKS`, ...).
    """
    try:
        tokens = load_token_file(token_file) if token_file else None
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read the {service}token file: {exc}", EXIT_USAGE) from None
    if not (tokens or jwt.enabled or open_access):
        raise CliError(f"no {service}auth configured: pass {tokens_flag} FILE, set {env_prefix}_TOKENS, "
                       f"{env_prefix}_JWT_SECRET or {env_prefix}_JWT_JWKS, or {no_auth_flag} for a local demo",
                       EXIT_USAGE)
    try:
        return Authenticator(tokens, open_access=open_access, jwt_settings=jwt)
    except ValueError as exc:
        raise CliError(f"{service}JWT settings ({env_prefix}_JWT_*): {exc}", EXIT_USAGE) from None
