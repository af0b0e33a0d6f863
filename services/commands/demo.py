"""`radstream demo`: the pipeline on real and synthetic radiographs, results printed (services/demo.py)."""

from __future__ import annotations

import argparse

from radstream.services.commands.bootstrap import add_bootstrap, config_from


def register(subparsers: argparse._SubParsersAction) -> None:
    sp = add_bootstrap(subparsers.add_parser(
        "demo", help="run the pipeline on real and synthetic radiographs, print results"))
    sp.add_argument("--synthetic", type=int, default=2, help="synthetic studies to add (default 2)")
    sp.add_argument("--timeout", type=float, default=300.0)
    sp.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from radstream.services.demo import run_demo

    config = config_from(args)
    return run_demo(config, config.kafka.bootstrap or None, synthetic_studies=args.synthetic, timeout_s=args.timeout)
