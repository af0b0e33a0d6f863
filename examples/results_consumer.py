"""A minimal downstream consumer of radstream study results.

Needs only confluent-kafka, fastavro and schemas/StudyResult.avsc: no radstream code.
Prints one JSON line per final study result, dropping redeliveries by idempotency key.

    python examples/results_consumer.py --bootstrap localhost:9092 [--topic study.results] [--group reporting]
"""

import argparse
import io
import json
from pathlib import Path

import fastavro
from confluent_kafka import Consumer

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "StudyResult.avsc"


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
                         "auto.offset.reset": "earliest", "enable.auto.commit": True})
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
