"""Building the admin client (topic listing and creation)."""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from radstream.streams.kafka.settings import KafkaSettings


def admin_client(settings: KafkaSettings, quiet: bool = False) -> AdminClient:
    """`quiet`: no librdkafka log lines (a CLI that reports an unreachable broker in one line)."""
    return AdminClient({**settings.admin_config(), **({"log_level": 0} if quiet else {})})


def broker_unreachable(settings: KafkaSettings, timeout_s: float = 10.0) -> str | None:
    """Why the broker does not answer a metadata request, or None when it does."""
    try:
        admin_client(settings, quiet=True).list_topics(timeout=timeout_s)
    except KafkaException as exc:
        return exc.args[0].str()
    return None
