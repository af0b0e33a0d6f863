"""`radstream watch`: the watchdog as its own process (services/watchdog.py)."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from radstream.services.commands.errors import EXIT_USAGE, CliError
from radstream.services.commands.webhook_flags import add_webhook_flags, webhook_secret


def register(subparsers: argparse._SubParsersAction) -> None:
    sp = subparsers.add_parser(
        "watch", help="alert on stalled, hung or dead stage processes; restart stuck ones (SIGKILL)")
    sp.add_argument("--interval", type=float, default=5.0, metavar="S", help="seconds between looks (default 5)")
    sp.add_argument("--warn-after", type=float, default=300.0, metavar="S",
                    help="alert after a stage is stalled (lag > 0, no progress) or silent this long (default 300)")
    sp.add_argument("--restart-after", type=float, default=600.0, metavar="S",
                    help="SIGKILL it after this long, so its supervisor restarts it (default 600)")
    sp.add_argument("--no-restart", action="store_true",
                    help="alert only (Kubernetes: the liveness probe restarts pods)")
    sp.add_argument("--webhook", metavar="URL", help="Slack-compatible incoming webhook for alerts (https; signed; "
                    "shown as scheme://host only)")
    add_webhook_flags(sp, "RADSTREAM_WATCH_SECRET")
    sp.add_argument("--run-dir", type=Path, help="stage registry folder (default: $RADSTREAM_RUN_DIR or $RADSTREAM_HOME/run)")
    sp.add_argument("--target", action="append", default=[], metavar="URL",
                    help="also watch this health URL (no pid: alert only); repeatable")
    sp.add_argument("--probe-timeout", type=float, default=2.0, metavar="S", help="per request (default 2)")
    sp.set_defaults(func=cmd_watch)


def cmd_watch(args: argparse.Namespace) -> int:
    from radstream.services.watchdog import Policy, Watchdog, WebhookNotifier
    from radstream.streams.health import run_dir

    if args.interval <= 0 or args.warn_after <= 0 or args.restart_after < args.warn_after:
        raise CliError("need --interval > 0, --warn-after > 0 and --restart-after >= --warn-after", EXIT_USAGE)
    notifier = WebhookNotifier(None)
    if args.webhook:
        secret = webhook_secret(args, "RADSTREAM_WATCH_SECRET", "watch --webhook")
        try:
            notifier = WebhookNotifier(args.webhook, secret, allow_http=args.allow_http)
        except ValueError as exc:
            raise CliError(str(exc), EXIT_USAGE) from None
    folder = args.run_dir or run_dir()
    policy = Policy(args.warn_after, args.restart_after, restart=not args.no_restart)
    watchdog = Watchdog(folder, policy, notifier, args.probe_timeout, args.target)
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    mode = f"restart after {args.restart_after:g}s" if policy.restart else "alert only"
    print(f"radstream watch: {folder} every {args.interval:g}s; warn after {args.warn_after:g}s, {mode}"
          + (f"; webhook {notifier.shown_url} (signed)" if args.webhook else ""), flush=True)
    try:
        watchdog.run(args.interval, lambda: bool(stopping))
    except KeyboardInterrupt:
        pass
    finally:
        watchdog.close()
    return 0
