"""A minimal downstream consumer of radstream study results.

Needs only confluent-kafka, fastavro and schemas/StudyResult.avsc: no radstream code.
Prints one JSON line per final study result, dropping redeliveries by idempotency key.

    python examples/results_consumer.py --bootstrap localhost:9092 [--topic study.results] [--group reporting]

Broker security comes from the same variables as radstream's own clients (docs/security.md, The
bus), so a bus that requires TLS, mutual TLS or SASL_SSL needs nothing new:

    RADSTREAM_KAFKA_SECURITY_PROTOCOL=SSL RADSTREAM_KAFKA_SSL_CA=ca.crt \
    RADSTREAM_KAFKA_SSL_CERT=reporting.crt RADSTREAM_KAFKA_SSL_KEY=reporting.key python examples/results_consumer.py ...
"""

import argparse
import io
import json
import os
import sys
from pathlib import Path

import fastavro
from confluent_kafka import Consumer

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "StudyResult.avsc"
# RADSTREAM_KAFKA_<NAME> -> librdkafka key; a NAME_FILE form reads a mounted Secret's first line.
SECURITY = {"SECURITY_PROTOCOL": "security.protocol", "SASL_MECHANISM": "sasl.mechanism",
            "SASL_USERNAME": "sasl.username", "SASL_PASSWORD": "sasl.password", "SSL_CA": "ssl.ca.location",
            "SSL_CERT": "ssl.certificate.location", "SSL_KEY": "ssl.key.location", "SSL_KEY_PASSWORD": "ssl.key.password"}


def security_config(env: dict[str, str]) -> dict[str, str]:
    """The broker security settings, read as radstream reads them (same names, same SCRAM default)."""
    conf = {"security.protocol": env.get("RADSTREAM_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").upper() or "PLAINTEXT"}
    for name, key in SECURITY.items():
        value = env.get(f"RADSTREAM_KAFKA_{name}")
        if not value and name.endswith("PASSWORD") and env.get(f"RADSTREAM_KAFKA_{name}_FILE"):
            value = Path(env[f"RADSTREAM_KAFKA_{name}_FILE"]).read_text().strip()
        if value and name != "SECURITY_PROTOCOL":
            conf[key] = value
    if conf["security.protocol"].startswith("SASL_"):
        conf.setdefault("sasl.mechanism", "SCRAM-SHA-512")
    if env.get("RADSTREAM_ENV") == "prod" and conf["security.protocol"] not in ("SSL", "SASL_SSL"):
        sys.exit(f"results_consumer: RADSTREAM_ENV=prod refuses {conf['security.protocol']}: set SSL or SASL_SSL")
    return conf


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", default="study.results")
    parser.add_argument("--group", default="reporting-example")
    parser.add_argument("--max", type=int, default=0, help="stop after this many results (0: run forever)")
    args = parser.parse_args()

    schema = fastavro.parse_schema(json.loads(SCHEMA.read_text()))
    fingerprint = bytes.fromhex(fastavro.schema.fingerprint(fastavro.schema.to_parsing_canonical_form(schema),
                                                            "CRC-64-AVRO"))
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": args.group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": True,
                         "session.timeout.ms": 10000, "heartbeat.interval.ms": 1000, **security_config(dict(os.environ))})
    consumer.subscribe([args.topic])
    seen: set[str] = set()
    try:
        while not args.max or len(seen) < args.max:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            data = msg.value()
            # Avro single-object encoding: C3 01, 8-byte schema fingerprint, then the body.
            if data[:2] != b"\xc3\x01" or data[2:10] != fingerprint:
                continue  # not a StudyResult of this schema version: a real consumer would log it
            result = fastavro.schemaless_reader(io.BytesIO(data[10:]), schema)
            if result["idempotency_key"] in seen:
                continue  # a redelivery
            if not result["final"]:
                continue  # an incremental per-image update; reporting waits for the final result
            seen.add(result["idempotency_key"])
            print(json.dumps(result), flush=True)
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
