"""Model versions in force: promote and roll back by pushing the model set onto the config topic (D-056).

The model set is one signed record of scope `models` on the config topic (domain/thresholds.py):
model name -> version in force; a model it does not name serves its default manifest. A promotion
pushes the set with one version changed; a rollback pushes it with that model's previous version
(the one in force before the current, by the audit history). Every infer stage follows the push
without a restart (streams/stages/infer.py), and results carry the new version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from radstream.domain.signatures import SigningKey
from radstream.domain.thresholds import MODEL_SET_SCOPE, ThresholdError, model_set_of, model_set_values
from radstream.models.manifest import ModelLoadError, ModelManifest, read_weights
from radstream.models.registry import load_version, registered_versions
from radstream.services import thresholds
from radstream.streams.kafka.settings import KafkaSettings


def in_force(settings: KafkaSettings, trusted: dict[str, Any]) -> tuple[dict[str, str], int]:
    """(model name -> version the model set names, the set's config version; 0: never pushed)."""
    book = thresholds.current_book(settings, trusted)
    return book.model_set(), book.model_set_version


def default_version(registry_dir: Path, name: str) -> str:
    path = Path(registry_dir) / f"{name}.json"
    if not path.is_file():
        raise ThresholdError(f"no model {name!r} in {registry_dir}")
    return ModelManifest.read(path).version


def checked_version(registry_dir: Path, name: str, version: str) -> ModelManifest:
    """The manifest of `name` at `version` with its artifact read and verified (hash, and key
    when encrypted), so a version that cannot serve is refused before anything is pushed."""
    try:
        manifest = load_version(registry_dir, name, version)
        read_weights(manifest)
    except (ModelLoadError, OSError, ValueError) as exc:
        raise ThresholdError(str(exc).splitlines()[0] if str(exc) else f"{name} v{version} cannot be read") from None
    return manifest


def _push(settings: KafkaSettings, versions: dict[str, str], key: SigningKey, reason: str,
          trusted: dict[str, Any]) -> int:
    return thresholds.push(settings, [{"scope": MODEL_SET_SCOPE, "values": model_set_values(versions)}], key,
                           reason, None, trusted)


def promote(settings: KafkaSettings, registry_dir: Path, name: str, version: str, key: SigningKey, reason: str,
            trusted: dict[str, Any]) -> int:
    """Push the model set with `name` at `version`; returns the config version pushed."""
    checked_version(registry_dir, name, version)
    current, _ = in_force(settings, trusted)
    if current.get(name, default_version(registry_dir, name)) == version:
        raise ThresholdError(f"{name} version {version} is already in force")
    return _push(settings, {**current, name: version}, key, reason or f"promote {name} to version {version}",
                 trusted)


def version_history(settings: KafkaSettings, registry_dir: Path, name: str, trusted: dict[str, Any]) -> list[str]:
    """The versions of `name` in force over time, oldest first, one entry per change (the
    default manifest's version before any model set named it)."""
    seen = [default_version(registry_dir, name)]
    for record in thresholds.history(settings, trusted):
        if record["scope"] != MODEL_SET_SCOPE or record["status"] != "pushed":
            continue
        version = model_set_of(record["values"]).get(name, seen[0])
        if version != seen[-1]:
            seen.append(version)
    return seen


def rollback(settings: KafkaSettings, registry_dir: Path, name: str, key: SigningKey, trusted: dict[str, Any]
             ) -> tuple[int, str, str]:
    """Push the model set with `name` back at the version in force before the current one:
    (config version pushed, from version, to version)."""
    current, _ = in_force(settings, trusted)
    now = current.get(name, default_version(registry_dir, name))
    history = version_history(settings, registry_dir, name, trusted)
    earlier = [v for v in history[:-1] if v != now] if history and history[-1] == now else []
    if not earlier:
        raise ThresholdError(f"{name}: no earlier version to roll back to (in force: {now}, "
                             f"registered: {', '.join(registered_versions(registry_dir, name))})")
    previous = earlier[-1]
    checked_version(registry_dir, name, previous)
    return _push(settings, {**current, name: previous}, key, f"rollback {name} from {now} to {previous}",
                 trusted), now, previous
