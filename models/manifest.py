"""Model manifests: the JSON contract between a trained artifact and the inference stage."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from radstream.models.profile import InputProfile

# "qc" models are multi-label classifiers of acquisition defects: their outputs gate an image
# in the qc stage and never become findings.
Task = Literal["detector", "classifier", "qc"]
_TASKS = ("detector", "classifier", "qc")


class ModelLoadError(Exception):
    """A model cannot be used: manifest missing or invalid, artifact missing or tampered with."""


@dataclass(frozen=True)
class ArtifactRef:
    """Weights file, relative to the manifest's folder, and the sha256 of the file as stored
    (of the ciphertext when `encrypted`)."""

    path: str
    sha256: str
    encrypted: bool = False


@dataclass
class ModelManifest:
    name: str
    version: str
    task: Task
    family: str
    labels: list[str]
    input_profile: InputProfile
    artifact: ArtifactRef
    default_thresholds: dict[str, float]
    fusion_weight: float = 1.0
    architecture: dict[str, Any] = field(default_factory=dict)  # every setting of the net, defaults included
    validation: dict[str, Any] = field(default_factory=dict)
    # {"method": "temperature", "temperature": T, ...} or {"method": "isotonic", "x": [...], "y": [...]};
    # empty: scores are used as the model gives them (models/calibration.py)
    calibration: dict[str, Any] = field(default_factory=dict)
    not_for_clinical_use: bool = True
    # Backends this model may run on (an allow-list: "torch", "onnx", "tensorrt"); the infer
    # stage picks TensorRT, then torch on CUDA, then torch on the CPU (models/backends/select.py).
    backends: list[str] = field(default_factory=lambda: ["torch"])
    # What the model was trained for: {"modalities": [...], "body_parts": [...], "views": [...]};
    # qc's header checks refuse images outside the union over the models in force. Empty: anything.
    applicability: dict[str, list[str]] = field(default_factory=dict)
    manifest_dir: Path | None = field(default=None, compare=False)  # set when loaded from disk

    def __post_init__(self) -> None:
        if self.task not in _TASKS:
            raise ValueError(f"task must be one of {_TASKS}, got {self.task!r}")
        if not self.labels:
            raise ValueError("a model needs at least one label")
        unknown = set(self.default_thresholds) - set(self.labels)
        if unknown:
            raise ValueError(f"thresholds for unknown labels: {sorted(unknown)}")

    @property
    def key(self) -> str:
        return f"{self.name}-{self.version}"

    def check_batch(self, shape: tuple[int, ...]) -> None:
        """Every backend's input contract: (N, C, S, S) for this model's input profile."""
        profile = self.input_profile
        expected = (profile.channels, profile.size, profile.size)
        if len(shape) != 4 or tuple(shape[1:]) != expected:
            raise ValueError(f"{self.key}: expected batch (N, {expected}), got {tuple(shape)}")

    def artifact_path(self) -> Path:
        if self.manifest_dir is None:
            raise ModelLoadError(f"{self.key}: manifest was not loaded from disk; artifact path unknown")
        return (self.manifest_dir / self.artifact.path).resolve()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "task": self.task,
            "family": self.family,
            "labels": list(self.labels),
            "input_profile": self.input_profile.to_dict(),
            "input_profile_hash": self.input_profile.hash(),
            "artifact": {"path": self.artifact.path, "sha256": self.artifact.sha256,
                         "encrypted": self.artifact.encrypted},
            "default_thresholds": dict(self.default_thresholds),
            "fusion_weight": self.fusion_weight,
            "architecture": dict(self.architecture),
            "validation": self.validation,
            "calibration": self.calibration,
            "not_for_clinical_use": self.not_for_clinical_use,
            "backends": list(self.backends),
            "applicability": {k: list(v) for k, v in self.applicability.items()},
        }

    def content_hash(self) -> str:
        """sha256 (16 hex digits) of the manifest as written: weights, profile, labels and
        architecture all change it, so it keys compiled engines (models/backends/engine_cache.py)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: dict[str, Any], manifest_dir: Path | None = None) -> ModelManifest:
        values = dict(data)
        recorded_hash = values.pop("input_profile_hash", None)
        profile = InputProfile.from_dict(values.pop("input_profile"))
        if recorded_hash is not None and recorded_hash != profile.hash():
            raise ValueError(f"input_profile_hash {recorded_hash} does not match the profile ({profile.hash()})")
        return cls(
            input_profile=profile,
            artifact=ArtifactRef(**values.pop("artifact")),
            manifest_dir=manifest_dir,
            **values,
        )

    def write(self, path: Path) -> None:
        """Write as JSON; the artifact path stays relative, so read the file back to use it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> ModelManifest:
        """Load one manifest; any problem becomes a one-line ModelLoadError."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelLoadError(f"model manifest not found: {path}") from None
        except json.JSONDecodeError as exc:
            raise ModelLoadError(f"model manifest {path} is not valid JSON: {exc}") from None
        try:
            return cls.from_dict(data, manifest_dir=path.parent.resolve())
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelLoadError(f"model manifest {path} is invalid: {exc}") from None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_weights(manifest: ModelManifest) -> bytes:
    """The artifact's plaintext bytes, in memory only: verified by sha256, decrypted when
    encrypted, and only as this manifest's model name and version (models/crypto.py)."""
    from radstream.models import crypto

    data = verify_artifact(manifest).read_bytes()
    if not manifest.artifact.encrypted:
        return data
    try:
        return crypto.decrypt(data, crypto.load_key(), manifest.name, manifest.version)
    except (crypto.ModelKeyError, crypto.DecryptionError) as exc:
        raise ModelLoadError(f"{manifest.key}: {exc}") from None


def production_refusal(manifest: ModelManifest, env: dict[str, str] | None = None) -> str | None:
    """Why RADSTREAM_ENV=prod must not serve this model (plaintext weights, or the dev
    overlay's published key), or None. Checked by the infer stage before it loads anything."""
    from radstream.models import crypto

    if not manifest.artifact.encrypted:
        return (f"{manifest.key}: RADSTREAM_ENV=prod refuses unencrypted weights "
                "(`radstream models encrypt IN OUT --manifest M` under the production key)")
    try:
        key = crypto.load_key(env)
    except crypto.ModelKeyError as exc:
        return f"{manifest.key}: {exc}"
    if crypto.is_dev_key(key):
        return (f"{manifest.key}: RADSTREAM_ENV=prod refuses the dev-only model key from k8s/overlays/dev "
                "(provide the Secret radstream-model-key from the secret store)")
    return None


def verify_artifact(manifest: ModelManifest) -> Path:
    """Return the artifact path after checking it exists and matches the recorded sha256."""
    path = manifest.artifact_path()
    if not path.is_file():
        raise ModelLoadError(f"{manifest.key}: artifact not found: {path}")
    actual = sha256_file(path)
    if actual != manifest.artifact.sha256:
        raise ModelLoadError(
            f"{manifest.key}: artifact sha256 mismatch for {path} "
            f"(expected {manifest.artifact.sha256[:12]}…, got {actual[:12]}…)"
        )
    return path
