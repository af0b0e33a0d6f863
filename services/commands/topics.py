"""`radstream topics create`: every pipeline topic that is missing (streams/kafka/topics.py)."""

from __future__ import annotations

import argparse

from radstream.services.commands.bootstrap import add_bootstrap, require_bootstrap


def register(subparsers: argparse._SubParsersAction) -> None:
    topics = subparsers.add_parser("topics", help="manage topics").add_subparsers(dest="topics_command", required=True)
    sp = add_bootstrap(topics.add_parser("create", help="create every pipeline topic that is missing"))
    sp.add_argument("--partitions", type=int, default=None)
    sp.set_defaults(func=cmd_topics_create)


def cmd_topics_create(args: argparse.Namespace) -> int:
    from radstream.streams.kafka.topics import create_topics

    config = require_bootstrap(args)
    created = create_topics(config.kafka, args.partitions or config.partitions, per_topic=config.topic_partitions)
    print(f"created {len(created)} topic(s)" + (": " + ", ".join(created) if created else " (all existed)"))
    return 0
