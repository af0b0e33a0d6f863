"""The `radstream` command. Thin handlers over the domain code; errors are one line, never a traceback."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path

EXIT_ERROR = 1
EXIT_USAGE = 2


class CliError(Exception):
    """An expected failure: printed as one line, exit code attached."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def _config(args: argparse.Namespace):
    from radstream.streams.config import Config

    return Config.from_env(getattr(args, "bootstrap", None))


def _settings(args: argparse.Namespace):
    settings = _config(args).kafka
    if not settings.bootstrap:
        raise CliError("no Kafka bootstrap servers: pass --bootstrap HOST:PORT or set RADSTREAM_BOOTSTRAP", EXIT_USAGE)
    return settings


def cmd_broker(args: argparse.Namespace) -> int:
    from radstream.services.broker import EmbeddedBroker

    broker = EmbeddedBroker(args.port).start()
    print(f"embedded broker listening on {broker.bootstrap} (memory storage; Ctrl-C to stop)", flush=True)

    def _stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        code = broker.wait()
        raise CliError(f"embedded broker exited with code {code}")
    except KeyboardInterrupt:
        return 0
    finally:
        broker.stop()


def cmd_topics_create(args: argparse.Namespace) -> int:
    from radstream.streams.kafka.topics import create_topics

    config = _config(args)
    created = create_topics(_settings(args), args.partitions or config.partitions)
    print(f"created {len(created)} topic(s)" + (": " + ", ".join(created) if created else " (all existed)"))
    return 0


def cmd_stage(args: argparse.Namespace) -> int:
    from radstream.models.manifest import ModelLoadError
    from radstream.streams.runtime import StageRunner, serve_unhealthy
    from radstream.streams.stages.registry import build_stage

    config = _config(args)
    _settings(args)
    try:
        stage = build_stage(args.name, config, args.model)
    except ModelLoadError as exc:
        label = f"{args.name}:{args.model}" if args.model else args.name
        return serve_unhealthy(label, str(exc), config.health_host, args.health_port or config.health_port)
    runner = StageRunner(stage, config.kafka, health_port=args.health_port or config.health_port,
                         health_host=config.health_host, stall_after_s=config.stall_after_s)
    return runner.run()


def cmd_up(args: argparse.Namespace) -> int:
    from radstream.services.stack import Stack

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    config = _config(args)  # --bootstrap, else RADSTREAM_BOOTSTRAP, else the embedded broker
    receiver = (args.receiver_port, args.ae_title) if args.receiver_port else None
    stack = Stack(config, config.kafka.bootstrap or None, receiver=receiver).start()
    assert stack.supervisor is not None
    print(f"radstream up on {stack.bootstrap} (topics ready): {', '.join(c.label for c in stack.supervisor.children)}", flush=True)
    print(f"logs in {stack.logs}; `radstream status` shows health; Ctrl-C or SIGTERM stops", flush=True)
    try:
        stack.run_forever(lambda: bool(stopping))
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from radstream.services.publish import PublishError, publish
    from radstream.streams.blobstore import open_blob_store
    from radstream.streams.kafka.producer import EventProducer

    config = _config(args)
    producer = EventProducer(_settings(args))
    try:
        studies, errors = publish(producer, open_blob_store(config.blob_url), [Path(p) for p in args.paths],
                                  site=args.site, log=lambda m: print(m, file=sys.stderr))
    except PublishError as exc:
        raise CliError(str(exc)) from None
    for study in studies:
        print(study)
    for line in errors:
        print(f"radstream: skipped {line}", file=sys.stderr)
    return EXIT_ERROR if errors else 0


def cmd_results(args: argparse.Namespace) -> int:
    from radstream.services.overrides import apply_overrides, current_overrides
    from radstream.services.results import as_json, study_results, summary_line

    settings = _settings(args)
    try:
        overrides = current_overrides(settings)
        for result in study_results(settings, follow=args.follow, study=args.study, final_only=not args.updates):
            result = apply_overrides(result, overrides)
            print(as_json(result) if args.json else summary_line(result), flush=True)
    except LookupError as exc:
        raise CliError(str(exc)) from None
    except KeyboardInterrupt:
        pass
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from radstream.services.status import format_table, stage_statuses

    rows = stage_statuses()
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from radstream.services.demo import run_demo

    config = _config(args)
    return run_demo(config, config.kafka.bootstrap or None, synthetic_studies=args.synthetic, timeout_s=args.timeout)


def cmd_bench(args: argparse.Namespace) -> int:
    from radstream.services.bench import dump, run_bench, run_config_push_bench

    config = _config(args)
    if args.gateway_clients:
        from radstream.services.bench import run_gateway_bench

        report = run_gateway_bench(args.gateway_clients)
    elif args.decode:
        from radstream.services.bench import run_decode_bench

        report = run_decode_bench()
    elif args.chaos:
        from radstream.services.chaos import run_chaos

        report = run_chaos(config, config.kafka.bootstrap or None, kills=args.chaos, events=args.events)
    elif args.config_pushes:
        report = run_config_push_bench(config, config.kafka.bootstrap or None, pushes=args.config_pushes)
    else:
        report = run_bench(config, config.kafka.bootstrap or None, images=args.images, warmup=args.warmup,
                           rate=args.rate)
    if args.json_out:
        dump(report, Path(args.json_out))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="radstream", description="Streaming medical-imaging AI on Kafka.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_bootstrap(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap servers (default: $RADSTREAM_BOOTSTRAP)")
        return sp

    sp = sub.add_parser("broker", help="run the embedded Kafka-protocol broker in the foreground")
    sp.add_argument("--port", type=int, default=9092)
    sp.set_defaults(func=cmd_broker)

    topics = sub.add_parser("topics", help="manage topics").add_subparsers(dest="topics_command", required=True)
    sp = with_bootstrap(topics.add_parser("create", help="create every pipeline topic that is missing"))
    sp.add_argument("--partitions", type=int, default=None)
    sp.set_defaults(func=cmd_topics_create)

    sp = with_bootstrap(sub.add_parser("stage", help="run one stage worker"))
    sp.add_argument("name", help="decode, preprocess, infer, fuse or qc")
    sp.add_argument("--model", help="model name (infer only)")
    sp.add_argument("--health-port", type=int, default=None)
    sp.set_defaults(func=cmd_stage)

    sp = with_bootstrap(sub.add_parser("up", help="every stage as a child process (plus the embedded broker without --bootstrap)"))
    sp.add_argument("--receiver-port", type=int, help="also run the DICOM C-STORE receiver on this port")
    sp.add_argument("--ae-title", default="RADSTREAM", help="the receiver's AE title (default RADSTREAM)")
    sp.set_defaults(func=cmd_up)

    sp = with_bootstrap(sub.add_parser("publish", help="store DICOM files and publish their arrival events"))
    sp.add_argument("paths", nargs="+", metavar="PATH")
    sp.add_argument("--site", default="", help="site / AE title recorded on the events")
    sp.set_defaults(func=cmd_publish)

    sp = with_bootstrap(sub.add_parser("results", help="read study results"))
    sp.add_argument("--study", help="only this Study Instance UID")
    sp.add_argument("--follow", action="store_true", help="keep reading new results")
    sp.add_argument("--json", action="store_true", help="one JSON object per line")
    sp.add_argument("--updates", action="store_true", help="also the incremental (non-final) per-image updates")
    sp.set_defaults(func=cmd_results)

    sp = sub.add_parser("status", help="running stages on this host and their health")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_status)

    sp = with_bootstrap(sub.add_parser("demo", help="run the pipeline on real and synthetic radiographs, print results"))
    sp.add_argument("--synthetic", type=int, default=2, help="synthetic studies to add (default 2)")
    sp.add_argument("--timeout", type=float, default=300.0)
    sp.set_defaults(func=cmd_demo)

    sp = with_bootstrap(sub.add_parser("bench", help="streamed pipeline vs the same stages in one process"))
    sp.add_argument("--images", type=int, default=40)
    sp.add_argument("--warmup", type=int, default=4)
    sp.add_argument("--rate", type=float, default=0.0, help="images per second (default: all at once)")
    sp.add_argument("--json-out", help="also write the figures as JSON")
    sp.add_argument("--gateway-clients", type=int, nargs="+", metavar="N",
                    help="instead: SSE fan-out at these client counts (p99 delivery latency)")
    sp.add_argument("--decode", action="store_true", help="instead: decode per core against plain pydicom")
    sp.add_argument("--chaos", type=int, metavar="N", help="instead: kill -9 a random stage N times under load")
    sp.add_argument("--events", type=int, default=1000, help="arrivals for --chaos (default 1000)")
    sp.add_argument("--config-pushes", type=int, metavar="N",
                    help="instead: push N threshold versions under load and time their propagation")
    sp.set_defaults(func=cmd_bench)

    for module in _command_modules():
        module.register(sub)
    return p


def _command_modules() -> list:
    """Every `services/commands/<name>.py`, each adding its own subcommands."""
    import importlib
    import pkgutil

    from radstream.services import commands

    return [importlib.import_module(f"{commands.__name__}.{m.name}") for m in pkgutil.iter_modules(commands.__path__)]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("RADSTREAM_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    try:
        return args.func(args)
    except CliError as exc:
        print(f"radstream: error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the promise: one clear line, never a traceback
        logging.getLogger("radstream").debug("unhandled error", exc_info=True)
        print(f"radstream: error: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    # Run the imported module's main, not this __main__ copy: command modules raise
    # radstream.services.cli.CliError, which must be the class main() catches.
    from radstream.services.cli import main as _main

    sys.exit(_main())
