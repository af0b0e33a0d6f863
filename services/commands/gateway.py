"""`radstream gateway` (live results over HTTP/SSE and the viewer) and `radstream forward` (webhook)."""

from __future__ import annotations

import argparse
import os

from radstream.services.commands.bootstrap import (
    add_bootstrap,
    require_bootstrap,
    trusted_keys_or_fail,
)
from radstream.services.commands.errors import EXIT_USAGE, CliError
from radstream.services.commands.webhook_flags import add_webhook_flags, webhook_secret


def register(subparsers: argparse._SubParsersAction) -> None:
    sp = subparsers.add_parser("gateway", help="HTTP gateway: live study events (SSE), study state, images, viewer")
    sp.add_argument("--port", type=int, required=True, help="HTTP port (0: any free port)")
    sp.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 in containers)")
    add_bootstrap(sp)
    sp.add_argument("--tokens", metavar="FILE",
                    help="token file, `TOKEN [SITE,SITE|* [NAME]]` per line (default: $RADSTREAM_GATEWAY_TOKENS)")
    sp.add_argument("--no-auth", action="store_true", help="serve every site to anyone (local demos only)")
    sp.add_argument("--heartbeat", type=float, default=15.0, metavar="S", help="seconds between `: ping` comments")
    sp.add_argument("--max-streams", type=int, default=16, metavar="N",
                    help="open event streams per identity (token or JWT sub); more get 429")
    sp.add_argument("--max-studies", type=int, default=1000, help="studies kept in memory (least recent evicted)")
    sp.add_argument("--signing-key", metavar="FILE",
                    help="the gateway's delegate key (`radstream keys new NAME --delegate`): it signs the viewer's "
                         "overrides for the identity each request authenticated (default: "
                         "$RADSTREAM_GATEWAY_SIGNING_KEY, else the dev gateway key `radstream up` made; "
                         "none: overrides are off)")
    sp.set_defaults(func=cmd_gateway)

    fp = subparsers.add_parser("forward", help="POST each final study result to a webhook (Idempotency-Key header)")
    fp.add_argument("--url", required=True, help="webhook URL (https; shown as scheme://host only)")
    add_webhook_flags(fp, "RADSTREAM_FORWARD_SECRET")
    add_bootstrap(fp)
    fp.add_argument("--max-attempts", type=int, default=6, help="POST attempts per result before the DLQ")
    fp.add_argument("--all", action="store_true", help="forward non-final results too")
    fp.set_defaults(func=cmd_forward)


def cmd_gateway(args: argparse.Namespace) -> int:
    from aiohttp import web
    from radstream.services.commands.auth_flags import bearer_auth, jwt_settings
    from radstream.services.gateway import (
        EventHub,
        Gateway,
        HubLimits,
        KafkaEventSource,
        StreamSettings,
        create_app,
    )
    from radstream.streams.blobstore import open_blob_store
    from radstream.streams.config import RejectionAudit
    from radstream.streams.kafka.topics import OVERRIDES_AUDIT

    if args.max_streams < 1:
        raise CliError("--max-streams must be at least 1", EXIT_USAGE)
    config = require_bootstrap(args)
    auth = bearer_auth(args.tokens or config.gateway_tokens_file, jwt_settings(config, "gateway"), args.no_auth,
                       tokens_flag="--tokens", env_prefix="RADSTREAM_GATEWAY", no_auth_flag="--no-auth")
    hub = EventHub(HubLimits(max_studies=args.max_studies))
    trusted = trusted_keys_or_fail(config)
    # unsigned overrides are dropped, and written to findings.overrides.audit as rejected
    source = KafkaEventSource(config.kafka, trusted=trusted,
                              on_rejected=RejectionAudit(config.kafka, None, "gateway", OVERRIDES_AUDIT, "finding_id"))
    from radstream.streams.monitoring import ReferenceFileError, monitor_settings

    try:
        monitor = monitor_settings(config)  # /monitoring: the same windows and threshold as the monitor stage
    except ReferenceFileError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    gateway = Gateway(hub, auth, open_blob_store(config.blob_url), source,
                      StreamSettings(heartbeat_s=args.heartbeat, max_streams_per_identity=args.max_streams),
                      tickets=_ticket_issuer(), monitor=monitor, writer=_override_writer(args, config, trusted))
    overrides = (f"overrides signed by {gateway.writer.key.name} for each token's identity"
                 if gateway.writer else "overrides off: no signing key")

    def announce(_: str) -> None:
        print(f"gateway listening on http://{args.host}:{port[0]} (epoch {hub.epoch}; following "
              f"{config.kafka.topic('study.results')} and 4 more topics; {overrides}; SIGTERM stops)", flush=True)

    port = [args.port]
    if args.port == 0:
        from radstream.services.broker import free_port

        port[0] = free_port()
    try:
        web.run_app(create_app(gateway), host=args.host, port=port[0], print=announce, access_log=None,
                    handle_signals=True, handler_cancellation=True)
    except OSError as exc:
        raise CliError(f"cannot listen on {args.host}:{port[0]}: {exc.strerror or exc}") from None
    return 0


def _override_writer(args: argparse.Namespace, config, trusted: dict):
    """The viewer's override writer, when a delegate key is configured; its own trusted keys
    must list that key as `delegate`, else every verdict it signs would be ignored (D-042)."""
    from radstream.domain.signatures import DelegateKey, KeyFileError
    from radstream.services.gateway.verdicts import OverrideWriter
    from radstream.services.signing import gateway_signing_key

    try:
        key = gateway_signing_key(config, args.signing_key)
    except KeyFileError as exc:
        raise CliError(str(exc)) from None
    if key is None:
        return None
    listed = trusted.get(key.name)
    mine = key.key.public_key().public_bytes_raw()
    if not isinstance(listed, DelegateKey) or listed.public.public_bytes_raw() != mine:
        raise CliError(f"the gateway's signing key {key.name!r} is not a delegate in the trusted keys: add "
                       f"`{key.public_line(delegate=True)}` to RADSTREAM_TRUSTED_KEYS (every reader's)", EXIT_USAGE)
    return OverrideWriter(config.kafka, key)


def cmd_forward(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from confluent_kafka import KafkaException
    from confluent_kafka.admin import NewTopic
    from radstream.services.gateway.forward import DEFAULT_RETRY, WebhookForwarder
    from radstream.streams.kafka.admin import admin_client
    from radstream.streams.kafka.topics import STUDY_RESULTS, dlq
    from radstream.streams.runtime import StageRunner

    if args.max_attempts < 1:
        raise CliError("--max-attempts must be at least 1", EXIT_USAGE)
    config = require_bootstrap(args)
    try:
        stage = WebhookForwarder(args.url, webhook_secret(args, "RADSTREAM_FORWARD_SECRET", "forward"),
                                 replace(DEFAULT_RETRY, max_attempts=args.max_attempts),
                                 final_only=not args.all, allow_http=args.allow_http)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    # study.results has no consumer in the pipeline, so `topics create` makes no DLQ for it.
    admin = admin_client(config.kafka)
    dlq_topic = config.kafka.topic(dlq(STUDY_RESULTS))
    if dlq_topic not in admin.list_topics(timeout=30).topics:
        for future in admin.create_topics([NewTopic(dlq_topic, num_partitions=config.partitions,
                                                    replication_factor=-1)]).values():
            try:
                future.result()
            except KafkaException as exc:  # racing creators are fine; anything else is reported
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise CliError(f"cannot create {dlq_topic}: {exc}") from None
    print(f"forwarding {config.kafka.topic(STUDY_RESULTS)} to {stage.shown_url} (signed; SIGTERM stops)", flush=True)
    # Retries happen inside the stage (bounded backoff), so the runtime makes one attempt.
    return StageRunner(stage, config.kafka, max_attempts=1, health_host=config.health_host,
                       health_port=config.health_port, trusted_keys=trusted_keys_or_fail(config)).run()


def _ticket_issuer():
    """Tickets (services/gateway/tickets.py) under $RADSTREAM_GATEWAY_TICKET_KEY(_FILE), shared by
    every replica behind one address; unset, a random key of this process."""
    from radstream.services.commands.token_flags import read_secret_file
    from radstream.services.gateway.tickets import TicketIssuer

    key = os.environ.get("RADSTREAM_GATEWAY_TICKET_KEY")
    if not key and os.environ.get("RADSTREAM_GATEWAY_TICKET_KEY_FILE"):
        key = read_secret_file(os.environ["RADSTREAM_GATEWAY_TICKET_KEY_FILE"], "ticket key")
    try:
        return TicketIssuer(key.encode() if key else None)
    except ValueError as exc:
        raise CliError(f"RADSTREAM_GATEWAY_TICKET_KEY: {exc}", EXIT_USAGE) from None
