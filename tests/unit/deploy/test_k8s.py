"""The kustomize tree (k8s/): base and every overlay render, and what they render
deploys every stage worker the code defines, safely, with the right Kafka wiring."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
import yaml
from deploy_expectations import REPO, Consumer
from radstream.streams.kafka.topics import parse_topic_partitions, topic_specs

K8S = REPO / "k8s"
TREES = ["base", "overlays/dev", "overlays/prod-gpu"]
HEALTH_PORT = 8080
GPU = "nvidia.com/gpu"

Resource = dict[str, Any]


def _render(tree: str) -> list[Resource]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: cannot run `kubectl kustomize`")
    proc = subprocess.run(["kubectl", "kustomize", str(K8S / tree)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"kubectl kustomize k8s/{tree} failed:\n{proc.stderr}"
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


_RENDERED: dict[str, list[Resource]] = {}


@pytest.fixture(params=TREES)
def rendered(request: pytest.FixtureRequest) -> list[Resource]:
    if request.param not in _RENDERED:
        _RENDERED[request.param] = _render(request.param)
    return _RENDERED[request.param]


@pytest.fixture
def prod_gpu() -> list[Resource]:
    if "overlays/prod-gpu" not in _RENDERED:
        _RENDERED["overlays/prod-gpu"] = _render("overlays/prod-gpu")
    return _RENDERED["overlays/prod-gpu"]


def of_kind(resources: list[Resource], kind: str) -> list[Resource]:
    return [r for r in resources if r["kind"] == kind]


def config(resources: list[Resource]) -> dict[str, str]:
    maps = [r for r in of_kind(resources, "ConfigMap") if r["metadata"]["name"].startswith("radstream-config")]
    assert len(maps) == 1, "expected exactly one radstream-config ConfigMap"
    return maps[0]["data"]


def container(deployment: Resource) -> Resource:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{deployment['metadata']['name']}: one container per stage pod"
    return containers[0]


def deployment_for(resources: list[Resource], consumer: Consumer) -> Resource:
    found = [d for d in of_kind(resources, "Deployment") if container(d).get("args") == consumer.args]
    assert len(found) == 1, f"expected one Deployment running `radstream {' '.join(consumer.args)}`, found {len(found)}"
    return found[0]


def stage_deployments(resources: list[Resource]) -> list[Resource]:
    """The stage workers' Deployments (the edges, receiver and gateway, are labelled `edge`)."""
    return [d for d in of_kind(resources, "Deployment")
            if d["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component") == "stage"]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_renders(rendered: list[Resource]) -> None:
    kinds = {r["kind"] for r in rendered}
    assert {"Deployment", "PodDisruptionBudget", "ScaledObject", "KafkaTopic", "ConfigMap",
            "NetworkPolicy", "PersistentVolumeClaim"} <= kinds


def test_config_map_holds_the_container_settings(rendered: list[Resource]) -> None:
    env = config(rendered)
    assert all(key.startswith("RADSTREAM_") for key in env), "the ConfigMap holds RADSTREAM_* settings only"
    assert env["RADSTREAM_HEALTH_HOST"] == "0.0.0.0"
    assert env["RADSTREAM_HEALTH_PORT"] == str(HEALTH_PORT)
    assert env["RADSTREAM_BOOTSTRAP"]
    assert "RADSTREAM_TOPIC_PREFIX" in env
    assert env["RADSTREAM_MODEL_KEY_FILE"]


def _pod_problems(d: Resource, resources: list[Resource]) -> list[str]:
    """Probes, resources, securityContext and volumes of one stage Deployment."""
    name, pod = d["metadata"]["name"], d["spec"]["template"]["spec"]
    c, env = container(d), config(resources)
    problems = []
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    for probe in ("livenessProbe", "readinessProbe"):
        get = c.get(probe, {}).get("httpGet", {})
        port = ports.get(get.get("port"), get.get("port"))
        if get.get("path") != "/healthz" or port != HEALTH_PORT:
            problems.append(f"{name}: {probe} must GET /healthz on {HEALTH_PORT}, got {get}")
    for part in ("requests", "limits"):
        if not {"cpu", "memory"} <= set(c.get("resources", {}).get(part, {})):
            problems.append(f"{name}: resources.{part} must set cpu and memory")
    sc, pod_sc = c.get("securityContext", {}), pod.get("securityContext", {})
    if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
        problems.append(f"{name}: runAsNonRoot")
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.append(f"{name}: readOnlyRootFilesystem")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{name}: allowPrivilegeEscalation must be false")
    if "ALL" not in sc.get("capabilities", {}).get("drop", []):
        problems.append(f"{name}: capabilities must drop ALL")
    config_refs = [e["configMapRef"]["name"] for e in c.get("envFrom", []) if "configMapRef" in e]
    if not any(ref.startswith("radstream-config") for ref in config_refs):
        problems.append(f"{name}: envFrom the radstream-config ConfigMap")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: volumes.get(m["name"], {}) for m in c.get("volumeMounts", [])}
    if "emptyDir" not in mounts.get(env["RADSTREAM_HOME"], {}):
        problems.append(f"{name}: RADSTREAM_HOME ({env['RADSTREAM_HOME']}) must be a writable emptyDir")
    if env["RADSTREAM_BLOB_URL"].startswith("s3://"):  # components/blobs-s3: credentials, no volume
        problems += [f"{name}: {p}" for p in s3_credential_problems(c)]
        if any(v.get("persistentVolumeClaim") for v in volumes.values()):
            problems.append(f"{name}: mounts a volume claim although the blobs are on S3")
    else:
        blob_path = env["RADSTREAM_BLOB_URL"].removeprefix("file://")
        claim = mounts.get(blob_path, {}).get("persistentVolumeClaim", {}).get("claimName")
        pvcs = {p["metadata"]["name"]: p for p in of_kind(resources, "PersistentVolumeClaim")}
        if claim not in pvcs or "ReadWriteMany" not in pvcs[claim]["spec"]["accessModes"]:
            problems.append(f"{name}: the blob store ({blob_path}) must be a ReadWriteMany PVC")
    key_dir = env["RADSTREAM_MODEL_KEY_FILE"].rsplit("/", 1)[0]
    key_mounted = mounts.get(key_dir, {}).get("secret", {}).get("secretName") == "radstream-model-key"
    is_infer = d["spec"]["template"]["metadata"]["labels"].get("radstream.io/stage") == "infer"
    if is_infer and not key_mounted:
        problems.append(f"{name}: RADSTREAM_MODEL_KEY_FILE's folder must mount the Secret radstream-model-key")
    if key_mounted and not is_infer:  # only infer decrypts weights (docs/security.md, Retention and mounts)
        problems.append(f"{name}: mounts the model key, which only infer pods may")
    return problems


S3_SECRET = "radstream-s3-credentials"


def s3_credential_problems(c: Resource) -> list[str]:
    """The S3 key pair from the Secret radstream-s3-credentials, as env (never a literal value)."""
    env = {e["name"]: e for e in c.get("env", [])}
    problems = []
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        ref = env.get(var, {}).get("valueFrom", {}).get("secretKeyRef", {})
        if ref != {"name": S3_SECRET, "key": var}:
            problems.append(f"{var} must come from the Secret {S3_SECRET}, got {env.get(var)}")
    return problems


def _wiring_problems(d: Resource, consumer: Consumer, resources: list[Resource]) -> list[str]:
    """The PodDisruptionBudget and the KEDA ScaledObject of one stage Deployment."""
    name, env = d["metadata"]["name"], config(resources)
    labels = d["spec"]["template"]["metadata"]["labels"]
    problems = []
    pdbs = [p for p in of_kind(resources, "PodDisruptionBudget") if selects(p["spec"]["selector"]["matchLabels"], labels)]
    if len(pdbs) != 1:
        problems.append(f"{name}: expected one PodDisruptionBudget selecting its pods, found {len(pdbs)}")
    scalers = [s for s in of_kind(resources, "ScaledObject") if s["spec"]["scaleTargetRef"]["name"] == name]
    if len(scalers) != 1:
        return problems + [f"{name}: expected one ScaledObject targeting it, found {len(scalers)}"]
    assert scalers[0]["apiVersion"] == "keda.sh/v1alpha1"
    triggers = [t for t in scalers[0]["spec"]["triggers"] if t["type"] == "kafka"]
    if len(triggers) != 1:
        return problems + [f"{name}: expected one kafka trigger"]
    meta = triggers[0]["metadata"]
    expected = {
        "consumerGroup": consumer.group_id,
        "topic": env["RADSTREAM_TOPIC_PREFIX"] + consumer.input_topic,
        "bootstrapServers": env["RADSTREAM_BOOTSTRAP"],
    }
    for key, value in expected.items():
        if meta.get(key) != value:
            problems.append(f"{name}: ScaledObject {key} is {meta.get(key)!r}, expected {value!r}")
    if not meta.get("lagThreshold"):
        problems.append(f"{name}: ScaledObject needs a lagThreshold")
    return problems


def _check(rendered: list[Resource], consumers: list[Consumer]) -> None:
    problems = []
    for consumer in consumers:
        d = deployment_for(rendered, consumer)
        problems += _pod_problems(d, rendered) + _wiring_problems(d, consumer, rendered)
    assert not problems, "\n".join(problems)


def test_every_stage_is_deployed_scaled_and_protected(
    rendered: list[Resource], expected_consumers: list[Consumer]
) -> None:
    _check(rendered, [c for c in expected_consumers if c.model is None])


def test_every_model_has_its_infer_deployment(
    rendered: list[Resource], expected_consumers: list[Consumer], require_models: list[str]
) -> None:
    _check(rendered, [c for c in expected_consumers if c.model is not None])


def test_no_deployment_runs_an_unknown_stage_or_model(
    rendered: list[Resource], expected_consumers: list[Consumer], require_models: list[str]
) -> None:
    known = [c.args for c in expected_consumers]
    strays = [d["metadata"]["name"] for d in stage_deployments(rendered) if container(d).get("args") not in known]
    # the other Deployments are the edges, each running its own command (test_k8s_edges.py)
    edges = [d for d in of_kind(rendered, "Deployment") if d not in stage_deployments(rendered)]
    strays += [d["metadata"]["name"] for d in edges
               if container(d)["args"][0] != d["spec"]["template"]["metadata"]["labels"].get("radstream.io/edge")]
    assert not strays, f"Deployments for no stage/model in the code or models/registry: {strays}"


def test_every_topic_has_a_kafka_topic(rendered: list[Resource]) -> None:
    env = config(rendered)
    topics = {t["spec"].get("topicName", t["metadata"]["name"]): t for t in of_kind(rendered, "KafkaTopic")}
    for spec in topic_specs(int(env["RADSTREAM_PARTITIONS"]), parse_topic_partitions(env["RADSTREAM_TOPIC_PARTITIONS"])):
        name = env["RADSTREAM_TOPIC_PREFIX"] + spec.name
        assert name in topics, f"no KafkaTopic for {name}"
        topic = topics[name]
        assert topic["apiVersion"] == "kafka.strimzi.io/v1beta2"
        assert topic["metadata"]["labels"].get("strimzi.io/cluster"), f"{name}: strimzi.io/cluster label"
        assert topic["spec"]["partitions"] == spec.partitions, f"{name}: partitions"
        settings = {k: str(v) for k, v in topic["spec"].get("config", {}).items()}
        for key, value in spec.topic_config().items():
            assert settings.get(key) == value, f"{name}: {key} must be {value!r} (topic_specs())"
        policy = settings.get("cleanup.policy")
        if spec.compacted:
            assert policy == "compact", f"{name} is compacted in topic_specs()"
        else:
            assert policy == "delete" and settings.get("retention.ms"), f"{name}: delete, with a retention"

def test_network_policy_allows_kafka_dns_and_prometheus_only(rendered: list[Resource]) -> None:
    policies = [p for p in of_kind(rendered, "NetworkPolicy") if p["metadata"]["name"] == "radstream-stages"]
    assert len(policies) == 1
    spec = policies[0]["spec"]
    # the edges' own policies: test_k8s_edges.py
    assert {p["metadata"]["name"] for p in of_kind(rendered, "NetworkPolicy")} - {"radstream-stages"} <= \
        {"radstream-receiver", "radstream-gateway"}
    for d in stage_deployments(rendered):
        assert selects(spec["podSelector"]["matchLabels"], d["spec"]["template"]["metadata"]["labels"])
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    ingress_ports = {p["port"] for rule in spec["ingress"] for p in rule["ports"]}
    assert ingress_ports == {HEALTH_PORT}
    sources = [peer for rule in spec["ingress"] for peer in rule["from"]]
    assert all(p["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"} for p in sources)
    egress_ports = {p["port"] for rule in spec["egress"] for p in rule["ports"]}
    assert egress_ports == {53, 9092, 9093}, "egress: DNS and the Kafka listeners only"


def test_model_key_is_a_reference_and_dev_only_in_dev() -> None:
    for tree in TREES:
        _RENDERED.setdefault(tree, _render(tree))
    dev_secrets = of_kind(_RENDERED["overlays/dev"], "Secret")
    # the model key and the receiver's trace-id key (components/receiver): placeholders, labelled
    assert sorted(s["metadata"]["name"] for s in dev_secrets) == ["radstream-model-key", "radstream-trace-key"]
    assert all(s["metadata"]["labels"].get("radstream.io/dev-only") == "true" for s in dev_secrets)
    for tree in ("base", "overlays/prod-gpu"):
        assert not of_kind(_RENDERED[tree], "Secret"), f"k8s/{tree} must only reference the model key Secret"


def test_prod_gpu_puts_infer_and_only_infer_on_gpus(prod_gpu: list[Resource]) -> None:
    deployments = of_kind(prod_gpu, "Deployment")
    infer = [d for d in deployments if container(d)["args"][:2] == ["stage", "infer"]]
    assert infer, "prod-gpu renders no infer Deployment"
    for d in deployments:
        name, pod, c = d["metadata"]["name"], d["spec"]["template"]["spec"], container(d)
        if d in infer:
            assert str(c["resources"]["limits"].get(GPU)) == "1", f"{name}: limits {GPU}: 1"
            assert pod.get("nodeSelector"), f"{name}: GPU nodeSelector"
            assert any(t.get("key") == GPU for t in pod.get("tolerations", [])), f"{name}: GPU toleration"
            assert "gpu" in c["image"], f"{name}: the GPU image"
        else:
            assert GPU not in c["resources"].get("limits", {}), f"{name} must stay on CPU"
            assert GPU not in c["resources"].get("requests", {}), f"{name} must stay on CPU"
            assert "gpu" not in c["image"], f"{name}: the CPU image"


@pytest.mark.parametrize("tree", ["base", "overlays/dev"])
def test_cpu_trees_request_no_gpu(tree: str) -> None:
    resources = _RENDERED.setdefault(tree, _render(tree))
    for d in of_kind(resources, "Deployment"):
        assert GPU not in container(d)["resources"].get("limits", {}), d["metadata"]["name"]


def test_prod_runs_with_the_dev_fallbacks_off_and_the_trusted_keys_mounted(prod_gpu: list[Resource]) -> None:
    """RADSTREAM_ENV=prod is what makes infer refuse plaintext weights and the dev key, and every
    stage refuse to start without trusted keys (tests/unit/models/test_encrypted_weights.py runs
    that check); the trusted-keys file it requires is mounted read-only in every stage pod."""
    settings = config(prod_gpu)
    assert settings["RADSTREAM_ENV"] == "prod"
    folder = settings["RADSTREAM_TRUSTED_KEYS"].rpartition("/")[0]
    for deployment in of_kind(prod_gpu, "Deployment"):
        mounts = {m["name"]: m for m in container(deployment)["volumeMounts"]}
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        assert mounts["trusted-keys"]["mountPath"] == folder and mounts["trusted-keys"]["readOnly"] is True
        assert volumes["trusted-keys"]["configMap"] == {"name": "radstream-trusted-keys", "optional": False}
    for tree in ("base", "overlays/dev"):
        _RENDERED.setdefault(tree, _render(tree))
        assert config(_RENDERED[tree]).get("RADSTREAM_ENV", "dev") != "prod"


def test_the_pacs_export_overlay_adds_export_dicom_wired_like_a_stage() -> None:
    """k8s/components/export-dicom (used by overlays/pacs-export): the stage with the shared pod
    settings, its PDB and KEDA trigger on study.results, the PACS from the ConfigMap, and an egress
    policy to the PACS; every other Deployment is a stage the code defines."""
    from radstream.services.export.pacs import CStoreExport

    resources = _render("overlays/pacs-export")
    consumer = Consumer(CStoreExport.name, None, f"radstream-{CStoreExport.name}", CStoreExport.input_topic)
    [export] = [d for d in of_kind(resources, "Deployment") if d["metadata"]["name"] == "radstream-export-dicom"]
    assert container(export)["args"][:4] == ["export", "dicom", "--to", "$(RADSTREAM_EXPORT_DICOM_TO)"]
    assert config(resources)["RADSTREAM_EXPORT_DICOM_TO"] == "ORTHANC@orthanc.pacs.svc:4242"
    problems = _pod_problems(export, resources) + _wiring_problems(export, consumer, resources)
    assert not problems, "\n".join(problems)
    [policy] = [p for p in of_kind(resources, "NetworkPolicy") if p["metadata"]["name"] == "radstream-export-dicom-pacs"]
    assert policy["spec"]["egress"][0]["ports"] == [{"port": 4242, "protocol": "TCP"}]
    dev = {d["metadata"]["name"] for d in of_kind(_render("overlays/dev"), "Deployment")}
    assert {d["metadata"]["name"] for d in of_kind(resources, "Deployment")} == dev | {"radstream-export-dicom"}
