"""The Dockerfile: a builder, a CPU runtime without CUDA and a GPU runtime, both
non-root; and the targets the compose files build exist."""

from __future__ import annotations

import re

import yaml
from deploy_expectations import REPO

DOCKERFILE = (REPO / "Dockerfile").read_text()


def stages() -> dict[str, str]:
    """Build stage name -> its instructions."""
    parts = re.split(r"(?m)^FROM\s+\S+\s+AS\s+(\S+)\s*$", DOCKERFILE)
    return dict(zip(parts[1::2], parts[2::2]))


def test_targets() -> None:
    assert {"builder", "runtime-cpu", "runtime-gpu"} <= set(stages())
    assert list(stages())[-1] == "runtime-cpu", "a plain `docker build .` gives the CPU image"


def test_cpu_runtime_has_no_cuda() -> None:
    all_stages = stages()
    cpu_sources = re.findall(r"COPY --from=(\S+)", all_stages["runtime-cpu"])
    assert cpu_sources, "runtime-cpu copies its venv from a deps stage"
    for source in cpu_sources:
        assert "download.pytorch.org/whl/cpu" in all_stages[source], f"{source}: torch from the CPU index"
        assert "cu1" not in all_stages[source] and "TORCH_CUDA" not in all_stages[source]


def test_torch_and_torchvision_are_the_versions_pyproject_pins() -> None:
    """Installed first from PyTorch's index; if they differed from the wheel's pins, installing the
    wheel would replace them from PyPI (a CUDA build, in the CPU image too)."""
    pins = dict(re.findall(r'"(torch|torchvision)==([^"]+)"', (REPO / "pyproject.toml").read_text()))
    args = dict(re.findall(r"(?m)^ARG (TORCH_VERSION|TORCHVISION_VERSION)=(\S+)", DOCKERFILE))
    assert args == {"TORCH_VERSION": pins["torch"], "TORCHVISION_VERSION": pins["torchvision"]}
    for deps in ("deps-cpu", "deps-gpu"):
        assert '"torchvision==${TORCHVISION_VERSION}"' in stages()[deps], f"{deps}: torchvision from the same index"


def test_runtimes_run_as_non_root() -> None:
    for target in ("runtime-cpu", "runtime-gpu"):
        users = re.findall(r"(?m)^USER\s+(\S+)", stages()[target])
        assert users and users[-1].split(":")[0] not in ("0", "root"), f"{target}: USER must be non-root"


def test_dockerignore_keeps_secrets_and_venvs_out() -> None:
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".radstream"} <= set(ignored)


def test_compose_builds_existing_targets() -> None:
    for name in ("docker-compose.yml", "docker-compose.gpu.yml"):
        doc = yaml.safe_load((REPO / "compose" / name).read_text())
        for svc in doc["services"].values():
            if "build" in svc:
                assert svc["build"]["target"] in stages(), f"{name}: unknown target {svc['build']['target']}"
