"""`radstream thresholds push|show|history|diff|rollback`."""

from __future__ import annotations

import argparse
from pathlib import Path

from radstream.services.commands.bootstrap import require_bootstrap
from radstream.services.commands.errors import CliError
from radstream.services.times import iso

KEY_HELP = ("private key that signs the push; its name is the author (`radstream keys new NAME`; "
            "default $RADSTREAM_SIGNING_KEY, else the dev key `radstream up` made)")


def _run(fn, args: argparse.Namespace) -> int:
    from radstream.domain.signatures import KeyFileError
    from radstream.domain.thresholds import ThresholdError

    try:
        return fn(args)
    except (ThresholdError, KeyFileError, LookupError) as exc:
        raise CliError(str(exc)) from None


def _push(args: argparse.Namespace) -> int:
    from radstream.services import thresholds
    from radstream.services.signing import signing_key
    from radstream.streams.stages.registry import known_threshold_keys

    config = require_bootstrap(args)
    key = signing_key(config, args.key)
    docs = thresholds.read_file(Path(args.file))
    version = thresholds.push(config.kafka, docs, key, args.reason, known_threshold_keys(config),
                              config.trusted_keys())
    print(f"pushed version {version} ({len(docs)} scope(s)), signed by {key.name}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from radstream.services import thresholds

    config = require_bootstrap(args)
    print(thresholds.show(thresholds.current_book(config.kafka, config.trusted_keys()), args.effective), end="")
    return 0


def _history(args: argparse.Namespace) -> int:
    from radstream.services import thresholds

    config = require_bootstrap(args)
    for r in thresholds.history(config.kafka, config.trusted_keys()):
        when = iso(r["created_at"])
        values = ", ".join(f"{k}={v:g}" for k, v in sorted(r["values"].items())) or "(cleared)"
        line = f"v{r['version']} {when} {r['author']} {r['scope']}: {values} -- {r['reason']}"
        if r["status"] != "pushed":
            by = f" by {', '.join(sorted(r['rejected_by']))}" if r["rejected_by"] else ""
            line = f"REJECTED{by} ({r['status'].removeprefix('rejected: ')}): {line}"
        print(line)
    return 0


def _diff(args: argparse.Namespace) -> int:
    from radstream.services import thresholds

    config = require_bootstrap(args)
    settings, trusted = config.kafka, config.trusted_keys()
    lines = thresholds.diff(thresholds.book_at(settings, args.v1, trusted),
                            thresholds.book_at(settings, args.v2, trusted))
    print("\n".join(lines) if lines else f"no difference between v{args.v1} and v{args.v2}")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from radstream.services import thresholds
    from radstream.services.signing import signing_key
    from radstream.streams.stages.registry import known_threshold_keys

    config = require_bootstrap(args)
    key = signing_key(config, args.key)
    version = thresholds.rollback(config.kafka, args.version, key, known_threshold_keys(config),
                                  config.trusted_keys())
    print(f"pushed version {version}: the thresholds of version {args.version}, signed by {key.name}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("thresholds", help="live threshold pushes through the config topic")
    cmds = parser.add_subparsers(dest="thresholds_command", required=True)

    def add(name: str, fn, help_text: str) -> argparse.ArgumentParser:
        sp = cmds.add_parser(name, help=help_text)
        sp.add_argument("--bootstrap", metavar="HOST:PORT")
        sp.set_defaults(func=lambda a: _run(fn, a))
        return sp

    sp = add("push", _push, "validate a YAML/JSON threshold file and push it as a new version")
    sp.add_argument("file")
    sp.add_argument("--key", metavar="FILE", help=KEY_HELP)
    sp.add_argument("--reason", required=True)
    sp = add("show", _show, "the thresholds in force (per scope, or --effective merged)")
    sp.add_argument("--effective", action="store_true")
    add("history", _history, "every pushed version: who, when, why, what; and the records stages rejected")
    sp = add("diff", _diff, "effective values that differ between two versions")
    sp.add_argument("v1", type=int)
    sp.add_argument("v2", type=int)
    sp = add("rollback", _rollback, "push the thresholds of an earlier version as a new version")
    sp.add_argument("version", type=int)
    sp.add_argument("--key", metavar="FILE", help=KEY_HELP)
