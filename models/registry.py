"""Finding model manifests on disk: one `<name>.json` per model in a registry folder."""

from __future__ import annotations

from pathlib import Path

from radstream.models.manifest import ModelLoadError, ModelManifest


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
