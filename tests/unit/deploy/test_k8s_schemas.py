"""Every rendered kustomize tree validates against the Kubernetes schemas of the version the
README names (kubernetes-validate, strict: unknown fields are errors too).

kubernetes-validate ships the schemas of the built-in API groups only. The custom resources of
the operators we depend on are skipped, because their schemas live in the operators' CRDs, which
are not installed here: Strimzi's KafkaTopic and KafkaUser, KEDA's ScaledObject and
TriggerAuthentication, the Prometheus Operator's PodMonitor. Their fields the pipeline relies on
are checked by test_k8s.py and test_k8s_security.py. Any other kind without a schema fails (a
misspelt apiVersion of a built-in kind must not pass as "unknown")."""

from __future__ import annotations

import functools
import re

import pytest
from deploy_expectations import REPO
from test_k8s import _RENDERED, K8S, Resource, _render

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate (test extra)")
import kubernetes_validate.utils as _kv_utils  # noqa: E402
from kubernetes_validate.utils import SchemaNotFoundError  # noqa: E402

# validate() re-reads and re-parses the version's whole _definitions.json for every resource
# (about 1.5 s a tree); the schemas are read-only data, so parse each file once per session.
if hasattr(_kv_utils, "schema_contents"):
    _kv_utils.schema_contents = functools.lru_cache(maxsize=None)(_kv_utils.schema_contents)

# The operator CRDs kubernetes-validate has no schema for (see the module docstring).
CUSTOM_RESOURCES = {
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"),
    ("kafka.strimzi.io/v1beta2", "KafkaUser"),
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
}
TREES = ["base", *sorted(f"overlays/{p.name}" for p in (K8S / "overlays").iterdir() if p.is_dir())]


def kubernetes_version() -> str:
    """The version README.md names ("Kubernetes 1.NN"): the one the manifests must fit."""
    found = re.search(r"\*\*Kubernetes (\d+\.\d+)\*\*", (REPO / "README.md").read_text())
    assert found, "README.md must name the Kubernetes version (**Kubernetes 1.NN**)"
    return found.group(1)


def schema_problems(resources: list[Resource], version: str) -> tuple[list[str], set[tuple[str, str]]]:
    """Validation errors of the built-in kinds, and the (apiVersion, kind) pairs without a schema."""
    problems, unknown = [], set()
    for r in resources:
        try:
            kubernetes_validate.validate(r, version, strict=True)
        except SchemaNotFoundError:
            unknown.add((r["apiVersion"], r["kind"]))
        except kubernetes_validate.ValidationError as e:
            where = ".".join(str(p) for p in e.path)
            problems.append(f"{r['kind']} {r['metadata']['name']}: {where}: {e.message}")
    return problems, unknown


@pytest.mark.parametrize("tree", TREES)
def test_every_rendered_tree_fits_the_kubernetes_schemas(tree: str) -> None:
    if tree not in _RENDERED:
        _RENDERED[tree] = _render(tree)
    resources = _RENDERED[tree]
    problems, unknown = schema_problems(resources, kubernetes_version())
    assert not problems, f"k8s/{tree}:\n" + "\n".join(problems)
    assert unknown <= CUSTOM_RESOURCES, f"k8s/{tree}: kinds with no schema: {sorted(unknown - CUSTOM_RESOURCES)}"
    assert len(resources) > len([r for r in resources if (r["apiVersion"], r["kind"]) in unknown])


def test_the_validator_rejects_what_kubernetes_would() -> None:
    """The check bites: a wrong type and an unknown field (strict) in a rendered Deployment."""
    if "base" not in _RENDERED:
        _RENDERED["base"] = _render("base")
    (deployment, *_) = [r for r in _RENDERED["base"] if r["kind"] == "Deployment"]
    assert not schema_problems([deployment], kubernetes_version())[0]
    for spec in ({"replicas": "two"}, {"replica": 1}):
        bad = {**deployment, "spec": {**deployment["spec"], **spec}}
        problems, _ = schema_problems([bad], kubernetes_version())
        assert len(problems) == 1 and problems[0].startswith(f"Deployment {deployment['metadata']['name']}: spec"), spec
