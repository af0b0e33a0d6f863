"""The gateway's `/metrics`: what its pods' `prometheus.io/scrape` annotation promises (the stages'
pod settings, base/patches), in the same text format as the stages' (streams/metrics.py renders
both). Read at scrape time from the counters the hub, the quota, the writer and the Kafka source
already keep for `/healthz`, so there is one count of each thing, and one registry per app (not the
process-wide one), so several gateways in one test process do not share numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from radstream.services.gateway.hub import EventHub
from radstream.services.gateway.sse import StreamQuota


class CountedGateway(Protocol):
    """What the collector reads of `app.Gateway` (named here, not imported: app imports this module)."""

    hub: EventHub
    quota: StreamQuota
    writer: Any  # OverrideWriter | None: `.written`
    source: Any  # KafkaEventSource | None: `.undecodable`, `.untrusted`


class GatewayCollector:
    """Gauges and counters of one gateway, from its live objects."""

    def __init__(self, gateway: CountedGateway) -> None:
        self.gateway = gateway

    def collect(self) -> Iterator[Metric]:
        gw, hub = self.gateway, self.gateway.hub
        gauges: list[tuple[str, str, float]] = [
            ("radstream_gateway_sse_clients", "Open SSE event streams", len(hub.subscribers)),
            ("radstream_gateway_studies", "Studies held in memory", len(hub.studies)),
            ("radstream_gateway_ready", "1 once the source has read every partition to its start-time end",
             float(hub.ready.is_set())),
        ]
        counters: list[tuple[str, str, float]] = [
            ("radstream_gateway_events_received", "Events taken from Kafka and numbered since start", hub.seq),
            ("radstream_gateway_events_delivered", "Events written to SSE clients (replayed and live)", hub.delivered),
            ("radstream_gateway_clients_cut_off", "SSE clients cut off for falling behind (overflow)", hub.overflows),
            ("radstream_gateway_streams_refused", "Event streams refused: the identity had its maximum open",
             gw.quota.refused),
            ("radstream_gateway_duplicates_dropped", "Redelivered records dropped by idempotency key", hub.duplicates),
            ("radstream_gateway_site_conflicts_ignored", "Records ignored for claiming another site for a known study",
             hub.site_conflicts),
        ]
        if gw.writer is not None:
            counters.append(("radstream_gateway_overrides_written", "Verdicts the viewer signed and wrote",
                             gw.writer.written))
        if gw.source is not None:
            counters += [("radstream_gateway_undecodable_skipped", "Records the gateway could not decode",
                          gw.source.undecodable),
                         ("radstream_gateway_untrusted_overrides_skipped", "Verdicts ignored: unsigned or unknown key",
                          gw.source.untrusted)]
        for name, doc, value in gauges:
            yield GaugeMetricFamily(name, doc, value=value)
        for name, doc, count in counters:
            yield CounterMetricFamily(name, doc, value=count)


def gateway_registry(gateway: CountedGateway) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(GatewayCollector(gateway))
    return registry
