"""Prometheus metrics shared by every stage process (one registry per process), and the one
rendering of a registry as the text format that every `/metrics` serves (the stages' health
server, the gateway)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry()

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

processed = Counter("radstream_messages_processed", "Input messages fully handled", ["stage"], registry=REGISTRY)
failed = Counter("radstream_messages_failed", "Processing attempts that raised", ["stage", "error_class", "code"], registry=REGISTRY)
dead_lettered = Counter("radstream_messages_dead_lettered", "Messages sent to the DLQ", ["stage", "code"], registry=REGISTRY)
skipped = Counter("radstream_messages_skipped", "Messages skipped on purpose (e.g. not an image)", ["stage", "reason"], registry=REGISTRY)
produced = Counter("radstream_messages_produced", "Output events produced", ["stage", "topic"], registry=REGISTRY)
compute_seconds = Histogram("radstream_stage_compute_seconds", "Time in the stage's own function per message", ["stage"], buckets=_LATENCY_BUCKETS, registry=REGISTRY)
wall_seconds = Histogram("radstream_stage_wall_seconds", "Wall time per message including Kafka and commits", ["stage"], buckets=_LATENCY_BUCKETS, registry=REGISTRY)
end_to_end_seconds = Histogram("radstream_end_to_end_seconds", "Arrival to output of this stage", ["stage"], buckets=_LATENCY_BUCKETS, registry=REGISTRY)
batch_size = Histogram("radstream_batch_size", "Messages per processed batch", ["stage"], buckets=(1, 2, 4, 8, 16, 32, 64), registry=REGISTRY)
config_untrusted = Gauge("radstream_config_untrusted", "Threshold records ignored since start: unsigned, "
                         "unknown key or bad signature", ["stage"], registry=REGISTRY)
config_rejections = Gauge("radstream_config_rejections", "Threshold records rejected since start", ["stage"], registry=REGISTRY)
config_version = Gauge("radstream_config_version", "Config version in force", ["stage"], registry=REGISTRY)
last_progress = Gauge("radstream_last_progress_timestamp_seconds", "Unix time of the last processed message", ["stage"], registry=REGISTRY)
consumer_lag = Gauge("radstream_consumer_lag", "High watermark minus committed offset", ["stage", "partition"], registry=REGISTRY)
oom_splits = Counter("radstream_oom_batch_splits", "Batches halved after running out of memory", ["stage", "model"], registry=REGISTRY)
gpu_memory_bytes = Gauge("radstream_gpu_memory_bytes", "CUDA memory allocated by this process (infer on GPU only)", ["stage", "model"], registry=REGISTRY)
model_seconds = Histogram("radstream_model_inference_seconds", "Per-batch model inference time", ["stage", "model"], buckets=_LATENCY_BUCKETS, registry=REGISTRY)

# The monitor stage (services/monitor/): drift per group (site:S, device:M/MODEL) and feature, and agreement.
monitor_drift_alarm = Gauge("radstream_monitor_drift_alarm", "1 while a feature of a group drifts past both "
                            "thresholds (PSI and KS) against its reference window", ["group", "feature"],
                            registry=REGISTRY)
monitor_psi = Gauge("radstream_monitor_psi", "Population stability index of a group's feature, current vs reference",
                    ["group", "feature"], registry=REGISTRY)
monitor_ks = Gauge("radstream_monitor_ks", "Two-sample KS statistic of a group's feature, current vs reference",
                   ["group", "feature"], registry=REGISTRY)
monitor_ppv = Gauge("radstream_monitor_ppv", "Confirmed / (confirmed + rejected) findings, per rule, model, site, "
                    "week", ["dimension", "key"], registry=REGISTRY)


def exposition(registry: CollectorRegistry = REGISTRY) -> tuple[bytes, str]:
    """`registry` in Prometheus's text exposition format, and its Content-Type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST
