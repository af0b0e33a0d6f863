"""Threshold pushes, history, diff and rollback over `config.thresholds` (compacted, the
state every stage follows) and `config.thresholds.audit` (every push, kept forever).

Documents are YAML or JSON: one `{scope, values}` mapping or a list of them. `show`
prints exactly that form, so its output can be pushed back unchanged.

Every record is signed by the pusher's key, whose name is its author; every read here checks
signatures against the same trusted keys as the stages, so `show`, `diff` and `rollback`
never act on a record the stages ignored. `history` shows those too, marked rejected.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml

from radstream.domain.signatures import SigningKey, rejection, sign
from radstream.domain.thresholds import MODEL_SET_SCOPE, ThresholdBook, ThresholdError, validate_document
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


def _trusted_only(records: list[dict[str, Any]], trusted: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in records if not r.get("rejected") and rejection("ThresholdSet", r, trusted) is None]


def current_book(settings: KafkaSettings, trusted: dict[str, Any]) -> ThresholdBook:
    """What the stages have in force: the records on config.thresholds a trusted key signed."""
    book = ThresholdBook()
    for record in _trusted_only(_records(settings, CONFIG_THRESHOLDS), trusted):
        book.apply(record)
    return book


def history(settings: KafkaSettings, trusted: dict[str, Any]) -> list[dict[str, Any]]:
    """Every push on the audit topic in version order, each with `status`: "pushed", or
    "rejected: <why>" for a record a stage ignored (or that does not verify here), with the
    stages that ignored it in `rejected_by` (the copies each stage wrote, folded into one)."""
    entries: dict[tuple, dict[str, Any]] = {}
    for record in _records(settings, CONFIG_AUDIT):
        why = record.get("rejected") or rejection("ThresholdSet", record, trusted)
        ident = (record["scope"], record["version"], record["created_at"], record.get("signer", ""),
                 record.get("signature", ""), json.dumps(record["values"], sort_keys=True), why or "")
        entry = entries.setdefault(ident, {**record, "status": f"rejected: {why}" if why else "pushed",
                                           "rejected_by": []})
        if record.get("rejected_by") and record["rejected_by"] not in entry["rejected_by"]:
            entry["rejected_by"].append(record["rejected_by"])
    return sorted(entries.values(), key=lambda r: (r["version"], r["scope"], r["status"] != "pushed"))


def book_at(settings: KafkaSettings, version: int, trusted: dict[str, Any]) -> ThresholdBook:
    book = ThresholdBook()
    for record in history(settings, trusted):
        if record["status"] == "pushed" and record["version"] <= version:
            book.apply(record)
    return book


def push(settings: KafkaSettings, docs: list[dict[str, Any]], key: SigningKey, reason: str,
         known_keys: set[str] | None, trusted: dict[str, Any]) -> int:
    """Validate everything, then produce every document under one new version, signed by
    `key` (the author is the key's name). `known_keys` None: the caller checked the keys itself
    (the model set, whose versions services/model_rollout.py checks against the registry)."""
    if not reason:
        raise ThresholdError("a push needs --reason (it is the audit trail)")
    for doc in docs:
        validate_document(doc["scope"], doc["values"], known_keys)
    pushed = [r["version"] for r in history(settings, trusted) if r["status"] == "pushed"]
    version = max(current_book(settings, trusted).version, max(pushed, default=0)) + 1
    producer = EventPublisher(settings)
    now = int(time.time() * 1000)
    for doc in docs:
        record = sign("ThresholdSet", {"version": version, "scope": doc["scope"], "reason": reason, "created_at": now,
                                       "values": {k: float(v) for k, v in doc["values"].items()}}, key)
        producer.send(CONFIG_THRESHOLDS, doc["scope"], record)
        producer.send(CONFIG_AUDIT, doc["scope"], record)
    producer.flush()
    return version


def rollback(settings: KafkaSettings, version: int, key: SigningKey, known_keys: set[str],
             trusted: dict[str, Any]) -> int:
    """Push, as a new version, the records in force at `version`; scopes born later are emptied.
    The model set is left as it is (`radstream models rollback` moves it)."""
    then = book_at(settings, version, trusted)
    if not then.records:
        raise ThresholdError(f"no version {version} in the history")
    now = current_book(settings, trusted)
    then_scopes = {s: r for s, r in then.records.items() if s != MODEL_SET_SCOPE}
    docs = [{"scope": s, "values": r["values"]} for s, r in sorted(then_scopes.items())]
    docs += [{"scope": s, "values": {}} for s in sorted(set(now.records) - set(then_scopes) - {MODEL_SET_SCOPE})]
    if not docs:
        raise ThresholdError(f"version {version} holds no thresholds (only the model set)")
    return push(settings, docs, key, f"rollback to version {version}", known_keys, trusted)


def show(book: ThresholdBook, effective: bool) -> str:
    if effective:
        docs: Any = {"scope": "global", "values": book.effective().values}
        header = f"# effective thresholds, version {book.effective().version}\n"
    else:
        docs = [{"scope": s, "values": r["values"]} for s, r in sorted(book.records.items()) if s != MODEL_SET_SCOPE]
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


