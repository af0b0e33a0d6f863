"""Threshold documents: scopes, keys, validation and precedence (pure; the watcher that
reads them off `config.thresholds` is streams/config.py).

Each record has a scope (`global`, `model:<name>`, `rule:<id>`, `site:<ae-title>`) and
values keyed by full threshold keys (`rule:<id>/<name>` or `model:<name>/<label>`, built
by `ThresholdKey`, which says what each kind means). A
`model:` or `rule:` scope may only set its own keys. More specific scopes win:
global < model < rule < site. The effective set's version is the highest version among
the records that contributed.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


SCOPE_RE = re.compile(r"^(global|models|(model|rule|site):[A-Za-z0-9._-]+)$")

# The model set in force (D-056): one record of scope `models` whose keys name a version of a model,
# `model:<name>/<version>`, each 1. It shares the topic, the versions, the signatures and the audit
# of the thresholds, but it is not a threshold: `effective` leaves it out, so a promotion does not
# change any result's config_version (results carry model_versions for that).
MODEL_SET_SCOPE = "models"



KEY_RE = re.compile(r"^(rule|model):[A-Za-z0-9._-]+/[A-Za-z0-9._-]+$")


PRECEDENCE = {"models": -1, "global": 0, "model": 1, "rule": 2, "site": 3}


class ThresholdError(ValueError):
    """A threshold document that must not take effect; the message says why."""


@dataclass(frozen=True)
class ThresholdKey:
    """A full threshold key, `<kind>:<owner>/<name>`, spelled as threshold files, pushes and findings spell it.

    The two kinds mean two different things:
    - `model:<name>/<label>` (`ThresholdKey.model_label`): one model's operating point for one
      of its labels, read outside the finding rules; what it gates follows the model's task.
      A detector's boxes scoring under it are dropped in infer (default 0: keep every box).
      A qc model's probability at or above it makes the image NOT_ANALYSABLE in qc (default
      from the manifest).
    - `rule:<id>/<name>` (`ThresholdKey.rule`): a parameter of one finding rule
      (domain/rules.py), with the rule's own default; the default rule of a label is
      `rule:<label>-detected/min_score` or `rule:<label>-suspected/min_probability`.
    """

    kind: str  # "model" or "rule"
    owner: str  # the model's name, or the rule's id
    name: str  # the model's label, or the rule's threshold name

    @classmethod
    def model_label(cls, model: str, label: str) -> ThresholdKey:
        """A model's operating point for one label: infer's score floor (detector), qc's gate (qc model)."""
        return cls("model", model, label)

    @classmethod
    def rule(cls, rule_id: str, name: str) -> ThresholdKey:
        """A parameter of a finding rule."""
        return cls("rule", rule_id, name)

    def __str__(self) -> str:
        return f"{self.kind}:{self.owner}/{self.name}"


@dataclass(frozen=True)
class ThresholdSet:
    """Operating points in force and the version that produced them."""

    version: int = 0
    values: dict[str, float] = field(default_factory=dict)

    def get(self, key: str | ThresholdKey, default: float) -> float:
        return self.values.get(str(key), default)


def scope_kind(scope: str) -> str:
    return scope.split(":", 1)[0]


def validate_document(scope: str, values: dict[str, Any], known_keys: set[str] | None = None) -> None:
    """Structural checks every reader applies; `known_keys` adds the registry check the CLI makes."""
    if not SCOPE_RE.match(scope or ""):
        raise ThresholdError(f"invalid scope {scope!r}: use global, model:<name>, rule:<id> or site:<ae-title>")
    if scope == MODEL_SET_SCOPE:
        model_set_of(values)
        if known_keys is not None:
            raise ThresholdError("the model set is pushed by `radstream models promote` / `rollback`, not as thresholds")
        return
    kind = scope_kind(scope)
    for key, value in values.items():
        if not KEY_RE.match(key):
            raise ThresholdError(f"{scope}: invalid threshold key {key!r} (expected rule:<id>/<name> or model:<name>/<label>)")
        if kind in ("model", "rule") and not key.startswith(scope + "/"):
            raise ThresholdError(f"{scope}: key {key!r} belongs to another scope")
        if known_keys is not None and key not in known_keys:
            raise ThresholdError(f"{scope}: unknown threshold {key!r} (no such model, label or rule in force)")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 <= value <= 1:
            raise ThresholdError(f"{scope}: {key} = {value!r} is out of range [0, 1]")


def validate_record(record: dict[str, Any]) -> None:
    if record.get("version", 0) <= 0:
        raise ThresholdError(f"version must be positive, got {record.get('version')!r}")
    if not record.get("author"):
        raise ThresholdError("a threshold record needs an author")
    validate_document(record.get("scope", ""), record.get("values", {}))


def model_set_values(versions: dict[str, str]) -> dict[str, float]:
    """The `models` record's values for a model set (model name -> version in force)."""
    return {f"model:{name}/{version}": 1.0 for name, version in sorted(versions.items())}


def model_set_of(values: dict[str, Any]) -> dict[str, str]:
    """Model name -> version in force, from a `models` record's values; ThresholdError says what is wrong."""
    versions: dict[str, str] = {}
    for key, value in values.items():
        if not KEY_RE.match(key) or not key.startswith("model:"):
            raise ThresholdError(f"models: invalid key {key!r} (expected model:<name>/<version>)")
        if value != 1:
            raise ThresholdError(f"models: {key} = {value!r}: a version in force is 1")
        name, version = key[len("model:"):].split("/", 1)
        if name in versions:
            raise ThresholdError(f"models: {name} is in force at two versions ({versions[name]}, {version})")
        versions[name] = version
    return versions


def effective(records: dict[str, dict[str, Any]], site: str | None = None) -> ThresholdSet:
    """Merge the latest record per scope by precedence (site only for the given site); the model
    set is not a threshold and is left out."""
    chosen = [r for s, r in records.items()
              if s != MODEL_SET_SCOPE and (scope_kind(s) != "site" or (site and s == f"site:{site}"))]
    chosen.sort(key=lambda r: (PRECEDENCE[scope_kind(r["scope"])], r["scope"]))
    values: dict[str, float] = {}
    for record in chosen:
        values.update(record["values"])
    return ThresholdSet(max((r["version"] for r in chosen), default=0), values)


class ThresholdBook:
    """The latest good record per scope, plus what was rejected and why."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.rejections = 0
        self.last_error: str | None = None

    def apply(self, record: dict[str, Any]) -> bool:
        try:
            validate_record(record)
            current = self.records.get(record["scope"])
            if current and record["version"] <= current["version"]:
                raise ThresholdError(f"{record['scope']}: version {record['version']} is not newer than {current['version']}")
        except ThresholdError as exc:
            self.rejections += 1
            self.last_error = str(exc)
            log.error("rejected threshold record, keeping the last good version: %s", exc)
            return False
        self.records[record["scope"]] = record
        return True

    def effective(self, site: str | None = None) -> ThresholdSet:
        return effective(self.records, site)

    @property
    def version(self) -> int:
        return max((r["version"] for r in self.records.values()), default=0)

    def model_set(self) -> dict[str, str]:
        """Model name -> version in force by the last `models` record (empty: every default manifest)."""
        record = self.records.get(MODEL_SET_SCOPE)
        return model_set_of(record["values"]) if record else {}

    @property
    def model_set_version(self) -> int:
        record = self.records.get(MODEL_SET_SCOPE)
        return record["version"] if record else 0
