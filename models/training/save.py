"""Writing a trained model: its weights as an artifact and its manifest in a registry.

Shared by the finding models (train_demo.py) and the pixel-QC models (train_qc.py), so
neither imports the other for it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from radstream.models.families import effective_architecture, get_family
from radstream.models.manifest import ArtifactRef, ModelManifest, sha256_file


VERSION = "1"


# What the demo models were trained for; qc refuses images outside it (header checks).
APPLICABILITY = {"modalities": ["CR", "DX"], "body_parts": ["CHEST"], "views": ["PA", "AP"]}


def save_model(
    net: nn.Module, manifest_fields: dict, registry_dir: Path, artifacts_dir: Path
) -> ModelManifest:
    """Write the weights and the manifest (`version` defaults to VERSION); read it back."""
    name = manifest_fields["name"]
    fields = {"version": VERSION, "applicability": APPLICABILITY, **manifest_fields}
    family = get_family(fields["family"])
    fields["backends"] = fields.get("backends") or list(family.backends)
    fields["architecture"] = effective_architecture(family, fields.get("architecture", {}))
    artifact = artifacts_dir / f"{name}-{fields['version']}.pt"
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().clone() for k, v in net.state_dict().items()}, artifact)
    manifest = ModelManifest(
        artifact=ArtifactRef(path=os.path.relpath(artifact, registry_dir), sha256=sha256_file(artifact)),
        **fields,
    )
    path = registry_dir / f"{name}.json"
    manifest.write(path)
    return ModelManifest.read(path)
