"""`radstream thresholds push|show|history|diff|rollback`."""

from __future__ import annotations

import argparse
from pathlib import Path

from radstream.services.commands.bootstrap import require_bootstrap
from radstream.services.commands.errors import CliError
from radstream.services.times import iso


def _run(fn, args: argparse.Namespace) -> int:
    from radstream.domain.thresholds import ThresholdError

    try:
        return fn(args)
    except (ThresholdError, LookupError) as exc:
        raise CliError(str(exc)) from None


def _push(args: argparse.Namespace) -> int:
    from radstream.services import thresholds
    from radstream.streams.stages.registry import known_threshold_keys

    config = require_bootstrap(args)
    docs = thresholds.read_file(Path(args.file))
    version = thresholds.push(config.kafka, docs, args.author, args.reason, known_threshold_keys(config))
    print(f"pushed version {version} ({len(docs)} scope(s))")
    return 0


def _show(args: argparse.Namespace) -> int:
    from radstream.services import thresholds

    print(thresholds.show(thresholds.current_book(require_bootstrap(args).kafka), args.effective), end="")
    return 0


def _history(args: argparse.Namespace) -> int:
    from radstream.services import thresholds

    for r in thresholds.history(require_bootstrap(args).kafka):
        when = iso(r["created_at"])
        values = ", ".join(f"{k}={v:g}" for k, v in sorted(r["values"].items())) or "(cleared)"
        print(f"v{r['version']} {when} {r['author']} {r['scope']}: {values} -- {r['reason']}")
    return 0


def _diff(args: argparse.Namespace) -> int:
    from radstream.services import thresholds

    settings = require_bootstrap(args).kafka
    lines = thresholds.diff(thresholds.book_at(settings, args.v1), thresholds.book_at(settings, args.v2))
    print("\n".join(lines) if lines else f"no difference between v{args.v1} and v{args.v2}")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from radstream.services import thresholds
    from radstream.streams.stages.registry import known_threshold_keys

    config = require_bootstrap(args)
    version = thresholds.rollback(config.kafka, args.version, args.author, known_threshold_keys(config))
    print(f"pushed version {version}: the thresholds of version {args.version}")
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
    sp.add_argument("--author", required=True)
    sp.add_argument("--reason", required=True)
    sp = add("show", _show, "the thresholds in force (per scope, or --effective merged)")
    sp.add_argument("--effective", action="store_true")
    add("history", _history, "every pushed version: who, when, why, what")
    sp = add("diff", _diff, "effective values that differ between two versions")
    sp.add_argument("v1", type=int)
    sp.add_argument("v2", type=int)
    sp = add("rollback", _rollback, "push the thresholds of an earlier version as a new version")
    sp.add_argument("version", type=int)
    sp.add_argument("--author", required=True)
