"""`radstream stage NAME`: one stage worker on the shared runtime (streams/runtime.py)."""

from __future__ import annotations

import argparse

from radstream.services.commands.bootstrap import add_bootstrap, require_bootstrap
from radstream.services.commands.errors import EXIT_USAGE, CliError
from radstream.services.commands.webhook_flags import webhook_secret


def register(subparsers: argparse._SubParsersAction) -> None:
    sp = add_bootstrap(subparsers.add_parser("stage", help="run one stage worker"))
    sp.add_argument("name", help="decode, preprocess, infer, fuse or qc")
    sp.add_argument("--model", help="model name (infer only)")
    sp.add_argument("--shadow", action="store_true",
                    help="infer only: run a candidate version beside the live one, in its own group, "
                         "writing to inference.shadow (fuse ignores it; `models compare` reads it)")
    sp.add_argument("--version", help="with --shadow: the version to run (default: the newest registered)")
    sp.add_argument("--health-port", type=int, default=None)
    sp.set_defaults(func=cmd_stage)


def cmd_stage(args: argparse.Namespace) -> int:
    from radstream.domain.signatures import KeyFileError
    from radstream.models.manifest import ModelLoadError
    from radstream.streams.runtime import StageRunner, serve_unhealthy
    from radstream.streams.stages.registry import build_stage

    config = require_bootstrap(args)
    try:
        trusted = config.trusted_keys()  # a stage that cannot check pushes does not start
        stage = build_stage(args.name, config, args.model, shadow=args.shadow, version=args.version)
    except (ModelLoadError, KeyFileError) as exc:
        label = f"{args.name}:{args.model}" + (":shadow" if args.shadow else "") if args.model else args.name
        return serve_unhealthy(label, str(exc), config.health_host, args.health_port or config.health_port)
    if args.name == "monitor" and config.monitor_webhook:
        from radstream.services.monitor.alerts import SECRET_ENV, wire_webhook

        secret = webhook_secret(argparse.Namespace(secret_file=None), SECRET_ENV, "RADSTREAM_MONITOR_WEBHOOK")
        try:
            wire_webhook(stage, config, secret)  # the watchdog's signed sender
        except ValueError as exc:
            raise CliError(str(exc), EXIT_USAGE) from None
    runner = StageRunner(stage, config.kafka, health_port=args.health_port or config.health_port,
                         health_host=config.health_host, stall_after_s=config.stall_after_s, trusted_keys=trusted,
                         blob_unhealthy_after_s=config.blob_unhealthy_after_s)
    return runner.run()
