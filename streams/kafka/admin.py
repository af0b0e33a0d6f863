"""Building the admin client (topic listing and creation)."""

from __future__ import annotations

from confluent_kafka.admin import AdminClient

from radstream.streams.kafka.settings import KafkaSettings


def admin_client(settings: KafkaSettings) -> AdminClient:
    return AdminClient(settings.admin_config())
