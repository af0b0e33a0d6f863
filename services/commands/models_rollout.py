"""`radstream models promote|rollback|compare|versions`: model versions rolled out through the
config topic (D-056), registered under `radstream models` by services/commands/models.py."""

from __future__ import annotations

import argparse
import json
import sys
import time

from radstream.services.commands.bootstrap import add_bootstrap, require_bootstrap, trusted_keys_or_fail
from radstream.services.commands.errors import EXIT_ERROR, CliError

KEY_HELP = ("private key that signs the push; its name is the author (`radstream keys new NAME`; "
            "default $RADSTREAM_SIGNING_KEY, else the dev key `radstream up` made)")


def register_rollout(models: argparse._SubParsersAction) -> None:
    sp = add_bootstrap(models.add_parser("promote", help="put a model version in force: a push of the model set "
                                                         "on the config topic, followed by every stage live"))
    sp.add_argument("name")
    sp.add_argument("--version", required=True, help="a version the registry holds (`models versions NAME`)")
    sp.add_argument("--key", metavar="FILE", help=KEY_HELP)
    sp.add_argument("--reason", default="", help="the audit trail (default: promote NAME to version V)")
    sp.set_defaults(func=lambda a: _run(_promote, a))
    sp = add_bootstrap(models.add_parser("rollback", help="put back the version of a model in force before "
                                                          "the current one (the same push)"))
    sp.add_argument("name")
    sp.add_argument("--key", metavar="FILE", help=KEY_HELP)
    sp.set_defaults(func=lambda a: _run(_rollback, a))
    sp = add_bootstrap(models.add_parser("versions", help="a model's registered versions, and which is in force"))
    sp.add_argument("name")
    sp.set_defaults(func=lambda a: _run(_versions, a))
    sp = add_bootstrap(models.add_parser("compare", help="a shadow version against the live one on the same "
                                                         "images: score correlation, flips, box F1"))
    sp.add_argument("name")
    sp.add_argument("--since", required=True, metavar="T",
                    help="results from T on: ISO 8601, epoch ms, or back from now (30m, 1h, 2d)")
    sp.add_argument("--iou", type=float, default=0.5, help="IoU at which two boxes match (default 0.5)")
    sp.add_argument("--json", action="store_true", help="the figures as JSON")
    sp.set_defaults(func=lambda a: _run(_compare, a))


def _run(fn, args: argparse.Namespace) -> int:
    from radstream.domain.signatures import KeyFileError
    from radstream.domain.thresholds import ThresholdError
    from radstream.models.manifest import ModelLoadError

    try:
        return fn(args)
    except (ThresholdError, KeyFileError, ModelLoadError, LookupError) as exc:
        raise CliError(str(exc)) from None


def _registry(config):
    from radstream.streams.stages.registry import registry_dir

    return registry_dir(config)


def _promote(args: argparse.Namespace) -> int:
    from radstream.services import model_rollout
    from radstream.services.signing import signing_key

    config = require_bootstrap(args)
    key = signing_key(config, args.key)
    version = model_rollout.promote(config.kafka, _registry(config), args.name, args.version, key, args.reason,
                                    trusted_keys_or_fail(config))
    print(f"pushed config version {version}: {args.name} version {args.version} in force, signed by {key.name}")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from radstream.services import model_rollout
    from radstream.services.signing import signing_key

    config = require_bootstrap(args)
    key = signing_key(config, args.key)
    version, was, now = model_rollout.rollback(config.kafka, _registry(config), args.name, key,
                                               trusted_keys_or_fail(config))
    print(f"pushed config version {version}: {args.name} back from version {was} to {now}, signed by {key.name}")
    return 0


def _versions(args: argparse.Namespace) -> int:
    from radstream.models.registry import registered_versions
    from radstream.services import model_rollout

    config = require_bootstrap(args)
    registry = _registry(config)
    current, set_version = model_rollout.in_force(config.kafka, trusted_keys_or_fail(config))
    live = current.get(args.name, model_rollout.default_version(registry, args.name))
    for v in registered_versions(registry, args.name):
        print(f"{v}{'  in force' if v == live else ''}")
    origin = f"model set of config version {set_version}" if args.name in current else "default manifest"
    print(f"# in force: {live} ({origin})")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from radstream.services import model_compare, thresholds
    from radstream.services.times import iso, parse_since

    try:
        since = parse_since(args.since, int(time.time() * 1000))
    except ValueError as exc:
        raise CliError(f"--since: {exc}") from None
    config = require_bootstrap(args)
    floors = thresholds.current_book(config.kafka, trusted_keys_or_fail(config)).effective().values

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    agreement = model_compare.compare(config.kafka, _registry(config), args.name, since, floors, args.iou, progress)
    if agreement.matched == 0:
        raise CliError(f"{args.name}: no image has both a live and a shadow result since {iso(since)} "
                       f"({agreement.only_live} only live, {agreement.only_shadow} only shadow; is "
                       f"`radstream stage infer --model {args.name} --shadow` running?)", EXIT_ERROR)
    if args.json:
        print(json.dumps({"since": iso(since), **agreement.to_dict()}, indent=2))
    else:
        print(model_compare.render(agreement, iso(since)), end="")
    return 0
