"""Threshold pushes, history, diff and rollback over `config.thresholds` (compacted, the
state every stage follows) and `config.thresholds.audit` (every push, kept forever).

Documents are YAML or JSON: one `{scope, values}` mapping or a list of them. `show`
prints exactly that form, so its output can be pushed back unchanged.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from radstream.domain.thresholds import ThresholdBook, ThresholdError, validate_document
from radstream.streams.kafka.producer import EventPublisher
from radstream.streams.kafka.reader import read_events
from radstream.streams.kafka.settings import KafkaSettings
from radstream.streams.kafka.topics import CONFIG_AUDIT, CONFIG_THRESHOLDS


def parse_document(text: str, source: str = "document") -> list[dict[str, Any]]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ThresholdError(f"{source}: not valid YAML or JSON ({str(exc).splitlines()[0]})") from None
    docs = data if isinstance(data, list) else [data]
    out = []
    for doc in docs:
        if not isinstance(doc, dict) or set(doc) - {"scope", "values", "version", "author", "reason", "created_at"} \
                or not isinstance(doc.get("values"), dict):
            raise ThresholdError(f"{source}: each document needs `scope` and a `values` mapping, nothing else")
        out.append({"scope": doc.get("scope", "global"), "values": doc["values"]})
    return out


def _records(settings: KafkaSettings, topic: str) -> list[dict[str, Any]]:
    # skip_undecodable: foreign records are the stages' problem to report; the CLI skips them
    return [record for _, record in read_events(settings, topic, skip_undecodable=True)]


def current_book(settings: KafkaSettings) -> ThresholdBook:
    book = ThresholdBook()
    for record in _records(settings, CONFIG_THRESHOLDS):
        book.apply(record)
    return book


def history(settings: KafkaSettings) -> list[dict[str, Any]]:
    return sorted(_records(settings, CONFIG_AUDIT), key=lambda r: (r["version"], r["scope"]))


def book_at(settings: KafkaSettings, version: int) -> ThresholdBook:
    book = ThresholdBook()
    for record in history(settings):
        if record["version"] <= version:
            book.apply(record)
    return book


def push(settings: KafkaSettings, docs: list[dict[str, Any]], author: str, reason: str,
         known_keys: set[str]) -> int:
    """Validate everything, then produce every document under one new version."""
    if not author or not reason:
        raise ThresholdError("a push needs --author and --reason (they are the audit trail)")
    for doc in docs:
        validate_document(doc["scope"], doc["values"], known_keys)
    version = max(current_book(settings).version, max((r["version"] for r in history(settings)), default=0)) + 1
    producer = EventPublisher(settings)
    now = int(time.time() * 1000)
    for doc in docs:
        record = {"version": version, "scope": doc["scope"], "author": author, "reason": reason,
                  "created_at": now, "values": {k: float(v) for k, v in doc["values"].items()}}
        producer.send(CONFIG_THRESHOLDS, doc["scope"], record)
        producer.send(CONFIG_AUDIT, doc["scope"], record)
    producer.flush()
    return version


def rollback(settings: KafkaSettings, version: int, author: str, known_keys: set[str]) -> int:
    """Push, as a new version, the records in force at `version`; scopes born later are emptied."""
    then = book_at(settings, version)
    if not then.records:
        raise ThresholdError(f"no version {version} in the history")
    now = current_book(settings)
    docs = [{"scope": s, "values": r["values"]} for s, r in sorted(then.records.items())]
    docs += [{"scope": s, "values": {}} for s in sorted(set(now.records) - set(then.records))]
    return push(settings, docs, author, f"rollback to version {version}", known_keys)


def show(book: ThresholdBook, effective: bool) -> str:
    if effective:
        docs: Any = {"scope": "global", "values": book.effective().values}
        header = f"# effective thresholds, version {book.effective().version}\n"
    else:
        docs = [{"scope": s, "values": r["values"]} for s, r in sorted(book.records.items())]
        header = f"# thresholds per scope, version {book.version}\n"
    return header + yaml.safe_dump(docs, sort_keys=True)


def diff(before: ThresholdBook, after: ThresholdBook) -> list[str]:
    a, b = before.effective().values, after.effective().values
    lines = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            lines.append(f"{key}: {a.get(key, '(default)')} -> {b.get(key, '(default)')}")
    return lines


def read_file(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ThresholdError(f"{path}: {exc.strerror}") from None
    return parse_document(text, str(path))


