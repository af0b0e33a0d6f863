"""`radstream export <target>`: the long-running stages that send final results to hospital systems.

Each target is its own module, `services/commands/export_<target>.py`, defining
`register(targets)` on the `export` subparsers (with `add_export_flags`) and running
its stage with `run_export`; TARGETS lists them in help order.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import Any

from radstream.services.commands.bootstrap import (
    add_bootstrap,
    require_bootstrap,
    trusted_keys_or_fail,
)
from radstream.services.commands.errors import EXIT_USAGE, CliError

TARGETS: tuple[str, ...] = ("dicom", "stow", "hl7", "fhir")


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("export", help="send final study results to a PACS, a RIS (HL7 v2) or a FHIR server")
    targets = sp.add_subparsers(dest="target", metavar="TARGET", required=True)
    for name in TARGETS:
        importlib.import_module(f"radstream.services.commands.export_{name}").register(targets)


def add_export_flags(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The flags every export stage takes: the broker, its /healthz port, when silence is unhealthy."""
    add_bootstrap(sp)
    sp.add_argument("--health-port", type=int, default=None)
    sp.add_argument("--unhealthy-after", type=float, default=300.0, metavar="SECONDS",
                    help="report unhealthy once the peer has not answered for this long (default 300)")
    return sp


def run_export(args: argparse.Namespace, build: Callable[..., object]) -> int:
    """Run the stage `build(store, config, args)` makes on the shared runtime until SIGTERM."""
    from radstream.streams.blobstore import open_blob_store
    from radstream.streams.runtime import StageRunner

    config = require_bootstrap(args)
    stage = build(open_blob_store(config.blob_url), config, args)
    stage.unhealthy_after_s = args.unhealthy_after
    runner = StageRunner(stage, config.kafka, health_port=args.health_port or config.health_port,
                         health_host=config.health_host, stall_after_s=config.stall_after_s,
                         trusted_keys=trusted_keys_or_fail(config))
    return runner.run()


def clinical_use_check(config: Any) -> Callable[[dict[str, str]], bool]:
    """model_versions -> whether demo models (or models not in the registry) made the result:
    the edges then mark what they send "not for clinical use"."""
    from radstream.models.registry import default_registry_dir, load_manifests
    from radstream.services.structured_report import made_by_demo_models

    manifests = load_manifests(config.model_registry or default_registry_dir())
    return lambda versions: made_by_demo_models(versions, manifests)


def host_port(value: str, flag: str) -> tuple[str, int]:
    """HOST:PORT of a peer, or a one-line usage error naming the flag."""
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CliError(f"{flag} takes HOST:PORT, not {value!r}", EXIT_USAGE)
    return host.strip("[]"), int(port)
