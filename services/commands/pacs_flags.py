"""What `radstream export dicom` and `export stow` share: the UID root, the demo-model marking, the
stage's changelog (the SR it stored last per study, services/export/predecessors.py)."""

from __future__ import annotations

import argparse
from typing import Any

from radstream.domain.dicom.uids import DEFAULT_UID_ROOT, check_uid_root
from radstream.services.commands.errors import EXIT_USAGE, CliError


def add_pacs_flags(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
    sp.add_argument("--uid-root", default=DEFAULT_UID_ROOT, metavar="ROOT",
                    help="UID root of the objects' derived UIDs (default 2.25: UUID-derived, no registration)")
    sp.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                    help="how long to wait for the PACS at each step before retrying (default 30)")
    return sp


def pacs_options(config: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The PacsExportStage keywords: its changelog state (created when missing), UID root, demo marking."""
    from radstream.models.registry import default_registry_dir, load_manifests
    from radstream.services.structured_report import made_by_demo_models

    try:
        root = check_uid_root(args.uid_root)
    except ValueError as exc:
        raise CliError(f"--uid-root: {exc}", EXIT_USAGE) from None
    if args.timeout <= 0:
        raise CliError("--timeout must be positive", EXIT_USAGE)
    manifests = load_manifests(config.model_registry or default_registry_dir())
    return {"state": stage_changelog(config, f"export-{args.target}"), "uid_root": root,
            "not_for_clinical_use": lambda result: made_by_demo_models(result["model_versions"], manifests)}


def stage_changelog(config: Any, stage: str) -> Any:
    """The stage's ChangelogStore; its topic is created (co-partitioned with study.results) if missing."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import NewTopic
    from radstream.streams.kafka.admin import admin_client
    from radstream.streams.kafka.topics import CHANGELOGS, STUDY_RESULTS, dlq
    from radstream.streams.state import ChangelogStore

    settings = config.kafka
    admin = admin_client(settings)
    try:
        topics = admin.list_topics(timeout=30).topics
    except KafkaException as exc:
        raise CliError(f"cannot reach the broker at {settings.bootstrap}: {exc}") from None
    results = topics.get(settings.topic(STUDY_RESULTS))
    partitions = len(results.partitions) if results is not None and results.partitions else config.partitions
    wanted = [(settings.topic(CHANGELOGS[stage]), {"cleanup.policy": "compact"}),
              (settings.topic(dlq(STUDY_RESULTS)), {})]
    new = [NewTopic(name, num_partitions=partitions, replication_factor=-1, config=conf)
           for name, conf in wanted if name not in topics]
    for future in (admin.create_topics(new).values() if new else []):
        try:
            future.result()
        except KafkaException as exc:  # racing creators are fine; anything else is reported
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise CliError(f"cannot create the topics of {stage}: {exc}") from None
    return ChangelogStore(settings, CHANGELOGS[stage])
