"""Building consumers. The two kinds radstream uses, each from KafkaSettings:

- a group consumer: one per stage process; the runtime's checkpoint commits its offsets
  (never automatically); a static member when the process has a `group_instance_id`, and
  rebalanced incrementally (cooperative-sticky);
- a standalone consumer: in no group, it assigns partitions itself and commits nothing
  (changelog restore, the config topic, commands, the gateway).
"""

from __future__ import annotations

from confluent_kafka import Consumer

from radstream.streams.kafka.settings import KafkaSettings


def group_consumer(settings: KafkaSettings, group_id: str, static_member: bool = False,
                   assignor: str | None = None) -> Consumer:
    """A member of the physical group `group_id` (already prefixed: `settings.group(...)`);
    `static_member`: as `settings.group_instance_id` (a stage runner); `assignor`: see
    `KafkaSettings.consumer_config`."""
    return Consumer(settings.consumer_config(group_id, static_member=static_member, assignor=assignor))


def standalone_consumer(settings: KafkaSettings) -> Consumer:
    """A consumer for `assign()`: reads partitions from where it is told, joins no group."""
    return Consumer(settings.consumer_config(None))
