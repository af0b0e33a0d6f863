"""Finding model manifests on disk: one `<name>.json` per model in a registry folder."""

from __future__ import annotations

import logging
from pathlib import Path

from radstream.models.manifest import ModelLoadError, ModelManifest


log = logging.getLogger(__name__)


def default_registry_dir() -> Path:
    """The registry shipped with the package (models/registry/)."""
    return Path(__file__).parent / "registry"


def load_manifests(registry_dir: Path, names: list[str] | None = None) -> dict[str, ModelManifest]:
    """Manifests by model name: the `names` asked for, or every manifest in the folder."""
    registry_dir = Path(registry_dir)
    if not registry_dir.is_dir():
        raise ModelLoadError(f"model registry folder not found: {registry_dir}")
    if names is None:
        paths = sorted(registry_dir.glob("*.json"))
    else:
        paths = [registry_dir / f"{name}.json" for name in names]
    manifests: dict[str, ModelManifest] = {}
    for path in paths:
        manifest = ModelManifest.read(path)
        if manifest.name != path.stem:
            raise ModelLoadError(f"model manifest {path} names model {manifest.name!r}, expected {path.stem!r}")
        manifests[manifest.name] = manifest
    return manifests


# Other versions of a model than its default manifest (`<name>.json`, what serves when no model set
# is pushed): `versions/<name>/<version>.json`, each with its own artifact. `radstream models promote`
# puts one in force through the config topic (D-056); `stage infer --shadow` runs one beside the live.
VERSIONS_DIR = "versions"


def load_version(registry_dir: Path, name: str, version: str) -> ModelManifest:
    """The manifest of `name` at `version`: the default one when it is that version, else the
    registered other version. A ModelLoadError (one line) when there is none."""
    registry_dir = Path(registry_dir)
    for path in (registry_dir / f"{name}.json", registry_dir / VERSIONS_DIR / name / f"{version}.json"):
        if path.is_file():
            manifest = ModelManifest.read(path)
            if manifest.name == name and manifest.version == version:
                return manifest
            if path.parent != registry_dir:
                raise ModelLoadError(f"model manifest {path} is {manifest.key}, expected {name}-{version}")
    raise ModelLoadError(f"{name} has no version {version!r} in {registry_dir} "
                         f"(registered: {', '.join(registered_versions(registry_dir, name)) or 'none'})")


def _version_order(version: str) -> tuple:
    return (0, int(version), "") if version.isdigit() else (1, 0, version)


def registered_versions(registry_dir: Path, name: str) -> list[str]:
    """Every version of `name` the registry holds (default manifest and others), oldest first."""
    registry_dir = Path(registry_dir)
    versions = {p.stem for p in (registry_dir / VERSIONS_DIR / name).glob("*.json")}
    default = registry_dir / f"{name}.json"
    if default.is_file():
        versions.add(ModelManifest.read(default).version)
    return sorted(versions, key=_version_order)


def every_version(registry_dir: Path, names: list[str]) -> list[ModelManifest]:
    """Each registered version of each of `names`: what preprocess renders tensors for and fuse
    calibrates by, so a version put in force (or shadowed) needs no restart of either."""
    found = []
    for name in names:
        for version in registered_versions(registry_dir, name):
            try:
                found.append(load_version(registry_dir, name, version))
            except ModelLoadError as exc:  # a broken candidate must not stop the stages serving the rest
                log.error("skipping %s version %s: %s", name, version, exc)
    return found
