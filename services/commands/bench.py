"""`radstream bench`: the streamed pipeline against the same stages in one process, and the other
measurements (SSE fan-out, decode, preprocess, chaos, the STAT lane, config pushes, two setups compared) in
services/bench.py, services/chaos.py, services/stat_bench.py and services/bench_compare.py."""

from __future__ import annotations

import argparse
from pathlib import Path

from radstream.services.commands.bootstrap import add_bootstrap, config_from
from radstream.services.commands.errors import CliError


def register(subparsers: argparse._SubParsersAction) -> None:
    sp = add_bootstrap(subparsers.add_parser("bench", help="streamed pipeline vs the same stages in one process"))
    sp.add_argument("--images", type=int, default=40)
    sp.add_argument("--warmup", type=int, default=4)
    sp.add_argument("--rate", type=float, default=0.0, help="images per second (default: all at once)")
    sp.add_argument("--json-out", help="also write the figures as JSON")
    sp.add_argument("--gateway-clients", type=int, nargs="+", metavar="N",
                    help="instead: SSE fan-out at these client counts (p99 delivery latency)")
    sp.add_argument("--decode", action="store_true", help="instead: decode per core against plain pydicom")
    sp.add_argument("--preprocess", action="store_true",
                    help="instead: preprocess per profile alone against the shared steps done once")
    sp.add_argument("--chaos", type=int, metavar="N", help="instead: kill -9 a random stage N times under load")
    sp.add_argument("--events", type=int, default=1000, help="arrivals for --chaos (default 1000)")
    sp.add_argument("--stat", type=int, metavar="N",
                    help="instead: N urgent studies on an idle pipeline, then behind a routine backlog (STAT lane)")
    sp.add_argument("--backlog", type=int, default=500, help="routine studies queued before --stat's urgent ones")
    sp.add_argument("--config-pushes", type=int, metavar="N",
                    help="instead: push N threshold versions under load and time their propagation")
    sp.add_argument("--compare", choices=["blob-store", "broker"],
                    help="instead: the burst on two setups, alternated: blobs on file:// vs s3:// (an embedded "
                         "SeaweedFS; plus put/get per blob size), or the embedded broker in memory vs --durable")
    sp.add_argument("--rounds", type=int, default=3, help="runs of each setup for --compare (default 3)")
    sp.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from radstream.services.bench import dump, run_bench, run_config_push_bench

    config = config_from(args)
    if args.gateway_clients:
        from radstream.services.bench import run_gateway_bench

        report = run_gateway_bench(args.gateway_clients)
    elif args.decode:
        from radstream.services.bench import run_decode_bench

        report = run_decode_bench()
    elif args.preprocess:
        from radstream.services.bench import run_preprocess_bench

        report = run_preprocess_bench(config)
    elif args.stat:
        from radstream.services.stat_bench import run_stat_bench

        report = run_stat_bench(config, config.kafka.bootstrap or None, urgent=args.stat, backlog=args.backlog)
    elif args.chaos:
        from radstream.services.chaos import run_chaos

        report = run_chaos(config, config.kafka.bootstrap or None, kills=args.chaos, events=args.events)
    elif args.compare:
        from radstream.services.bench_compare import run_blob_store_comparison, run_broker_comparison

        compare = run_blob_store_comparison if args.compare == "blob-store" else run_broker_comparison
        try:
            report = compare(config, config.kafka.bootstrap or None, images=args.images, warmup=args.warmup,
                             rounds=args.rounds)
        except ValueError as exc:
            raise CliError(str(exc)) from None
    elif args.config_pushes:
        report = run_config_push_bench(config, config.kafka.bootstrap or None, pushes=args.config_pushes)
    else:
        report = run_bench(config, config.kafka.bootstrap or None, images=args.images, warmup=args.warmup,
                           rate=args.rate)
    if args.json_out:
        dump(report, Path(args.json_out))
    return 0
