"""The HTTP gateway: live study events over Server-Sent Events, study state, display images, the viewer.

See docs/gateway.md. `create_app` builds the aiohttp application around an
`EventHub` (the in-memory index) fed by a `KafkaEventSource` (one consumer thread).
"""

from radstream.services.gateway.app import Gateway, create_app
from radstream.services.gateway.auth import (
    Authenticator,
    JwtSettings,
    JwtVerifier,
    Principal,
    TokenGrant,
    load_token_file,
    sign_jwt,
    verify_jwt,
)
from radstream.services.gateway.hub import EventHub, HubLimits
from radstream.services.gateway.load import GatewayLoadReport, gateway_load
from radstream.services.gateway.source import KafkaEventSource
from radstream.services.gateway.sse import StreamSettings

__all__ = [
    "Authenticator", "EventHub", "JwtSettings", "JwtVerifier", "TokenGrant", "Gateway", "GatewayLoadReport", "HubLimits", "KafkaEventSource", "Principal",
    "StreamSettings", "create_app", "gateway_load", "load_token_file", "sign_jwt", "verify_jwt",
]
