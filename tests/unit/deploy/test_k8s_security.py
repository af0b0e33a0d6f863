"""The rendered k8s trees keep each identity to its own topics and each pod to what it needs
(docs/security.md, D-028): a KafkaUser per stage whose ACLs are derived here from the stage
registry, SASL_SSL wiring in prod, blobs read-only except for their writers, and the model key
on infer pods only."""

from __future__ import annotations

import pytest
from deploy_expectations import REPO, Acl, Consumer, consumers, edge_acls, export_consumers, model_names, stage_acls
from radstream.streams.kafka.topics import CONFIG_THRESHOLDS, FINDINGS_OVERRIDES, OVERRIDES_AUDIT
from test_k8s import TREES, Resource, _render, container, deployment_for, of_kind

BLOB_WRITERS = {"decode", "preprocess", "receiver"}  # the stages whose pure function calls BlobStore.put, and the receiver (raw DICOM)


@pytest.fixture(scope="module")
def prod() -> list[Resource]:
    return _render("overlays/prod-gpu")


def rendered_acls(user: Resource) -> set[Acl]:
    auth = user["spec"]["authorization"]
    assert auth["type"] == "simple"
    return {(a["resource"]["type"], a["resource"]["name"] + ("*" if a["resource"].get("patternType") == "prefixed" else ""),
             op) for a in auth["acls"] for op in a["operations"]}


def users(resources: list[Resource]) -> dict[str, Resource]:
    return {u["metadata"]["name"]: u for u in of_kind(resources, "KafkaUser")}


def test_each_stage_user_has_exactly_the_acls_its_topics_need(prod: list[Resource]) -> None:
    found = users(prod)
    for consumer in consumers(model_names()):
        user = found.get(f"radstream-{consumer.instance}")
        assert user, f"no KafkaUser radstream-{consumer.instance}"
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        assert rendered_acls(user) == stage_acls(consumer), consumer.instance
    for name, acls in edge_acls().items():
        assert rendered_acls(found[f"radstream-{name}"]) == acls, name


def test_every_export_edge_has_its_own_user_with_exactly_its_acls(prod: list[Resource]) -> None:
    """export-dicom, -stow, -hl7, -fhir: read study.results as their group, write its DLQ and (PACS
    exports) their changelog; no export may write a pipeline topic."""
    found = users(prod)
    for consumer in export_consumers():
        user = found.get(f"radstream-{consumer.instance}")
        assert user, f"no KafkaUser radstream-{consumer.instance}"
        acls = rendered_acls(user)
        assert acls == stage_acls(consumer), consumer.instance
        assert {n for t, n, op in acls if op == "Write"} <= {"study.results.dlq", "config.thresholds.audit",
                                                            f"radstream.{consumer.stage}.changelog"}


def _keda_logins(resources: list[Resource]) -> None:
    """Every ScaledObject's kafka trigger logs in through a TriggerAuthentication of the tree: SCRAM
    over TLS as a KafkaUser of the tree whose ACLs cover that trigger's topic and group."""
    auths = {a["metadata"]["name"]: a for a in of_kind(resources, "TriggerAuthentication")}
    maps = {m["metadata"]["name"]: m for m in of_kind(resources, "ConfigMap")}
    found = users(resources)
    scaled = of_kind(resources, "ScaledObject")
    assert scaled
    for so in scaled:
        for trigger in so["spec"]["triggers"]:
            assert trigger["type"] == "kafka"
            ref = trigger.get("authenticationRef", {}).get("name")
            assert ref in auths, f"{so['metadata']['name']}: kafka trigger without credentials"
            spec = auths[ref]["spec"]
            plain = {p["parameter"]: p for p in spec["configMapTargetRef"]}
            literal = {k: maps[plain[k]["name"]]["data"][plain[k]["key"]] for k in ("sasl", "tls", "username")}
            params = {p["parameter"]: p for p in spec["secretTargetRef"]}
            assert not set(plain) & set(params)
            assert literal["sasl"] == "scram_sha512" and literal["tls"] == "enable"
            user = literal["username"]
            assert params["password"]["name"] == user and params["password"]["key"] == "password"  # Strimzi's Secret
            assert params["ca"]["name"] == "radstream-cluster-ca-cert"
            meta = trigger["metadata"]
            need = {("topic", meta["topic"], "Describe"), ("group", meta["consumerGroup"], "Describe")}
            assert need <= rendered_acls(found[user]), f"{so['metadata']['name']}: {user} cannot read the lag"


def test_keda_reads_the_lag_as_its_own_describe_only_user(prod: list[Resource]) -> None:
    _keda_logins(prod)
    assert {op for *_, op in rendered_acls(users(prod)["radstream-keda"])} == {"Describe"}


def test_a_prod_tree_with_export_dicom_logs_the_export_in_as_its_own_user(tmp_path) -> None:
    """The composition docs/deployment.md describes: export-dicom listed before kafka-auth, so the
    generated login patch finds its Deployment and its ScaledObject."""
    import shutil
    import subprocess

    import yaml

    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    import os

    def k8s(path: str) -> str:  # kustomize takes relative paths only
        return os.path.relpath(REPO / "k8s" / path, tmp_path)

    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": "radstream",
        "resources": [k8s("base")],
        "components": [k8s("components/export-dicom"), k8s("base/patches"), k8s("components/kafka-auth")],
        "configMapGenerator": [{"name": "radstream-config", "behavior": "merge",
                                "literals": ["RADSTREAM_ENV=prod", "RADSTREAM_EXPORT_DICOM_TO=PACS@pacs:104"]}]}))
    proc = subprocess.run(["kubectl", "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    resources = [d for d in yaml.safe_load_all(proc.stdout) if d]
    export = Consumer("export-dicom", None, "radstream-export-dicom", "study.results")
    (d,) = [d for d in of_kind(resources, "Deployment") if d["metadata"]["name"] == "radstream-export-dicom"]
    env = {e["name"]: e.get("value") for e in container(d).get("env", [])}
    assert env.get("RADSTREAM_KAFKA_SASL_USERNAME") == "radstream-export-dicom"
    secrets = {v["name"]: v["secret"]["secretName"] for v in d["spec"]["template"]["spec"]["volumes"] if "secret" in v}
    assert secrets.get("kafka-user") == "radstream-export-dicom"
    assert rendered_acls(users(resources)["radstream-export-dicom"]) == stage_acls(export)
    _keda_logins(resources)


def test_only_the_thresholds_identity_writes_thresholds_and_the_gateway_writes_verdicts_only(
        prod: list[Resource]) -> None:
    writers = {name for name, u in users(prod).items() if ("topic", CONFIG_THRESHOLDS, "Write") in rendered_acls(u)}
    assert writers == {"radstream-thresholds"}
    gateway = rendered_acls(users(prod)["radstream-gateway"])
    assert {op for _, _, op in gateway} == {"Read", "Describe", "Write"}
    # the audit of the verdicts it ignored (D-036), and the viewer's verdicts (D-042)
    assert {name for _, name, op in gateway if op == "Write"} == {OVERRIDES_AUDIT, FINDINGS_OVERRIDES}


def test_prod_stages_log_in_as_their_own_user_over_tls(prod: list[Resource]) -> None:
    config = next(c for c in of_kind(prod, "ConfigMap") if c["metadata"]["name"].startswith("radstream-config"))["data"]
    assert config["RADSTREAM_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config["RADSTREAM_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    for consumer in consumers(model_names()):
        d = deployment_for(prod, consumer)
        env = {e["name"]: e.get("value") for e in container(d).get("env", [])}
        assert env.get("RADSTREAM_KAFKA_SASL_USERNAME") == f"radstream-{consumer.instance}"
        secrets = {v["name"]: v["secret"]["secretName"] for v in d["spec"]["template"]["spec"]["volumes"] if "secret" in v}
        assert secrets.get("kafka-user") == f"radstream-{consumer.instance}", "mounts another stage's password"
        mounts = {m["name"]: m for m in container(d)["volumeMounts"]}
        assert config["RADSTREAM_KAFKA_SASL_PASSWORD_FILE"].startswith(mounts["kafka-user"]["mountPath"] + "/")
        assert config["RADSTREAM_KAFKA_SSL_CA"].startswith(mounts["kafka-ca"]["mountPath"] + "/")


@pytest.mark.parametrize("tree", [*TREES, "overlays/pacs-export", "overlays/results-out", "overlays/prod-results-out"])
def test_blobs_are_read_only_except_for_their_writers_and_the_model_key_is_on_infer_only(tree: str) -> None:
    resources = _render(tree)
    deployments = of_kind(resources, "Deployment")
    assert deployments
    for d in deployments:
        spec = d["spec"]["template"]["spec"]
        labels = d["spec"]["template"]["metadata"]["labels"]
        stage = labels.get("radstream.io/stage") or labels.get("radstream.io/edge")  # receiver, gateway
        mounts = {m["name"]: m for m in container(d).get("volumeMounts", [])}
        name = d["metadata"]["name"]
        if "blobs" in mounts:
            assert bool(mounts["blobs"].get("readOnly")) == (stage not in BLOB_WRITERS), f"{tree} {name}: blobs mount"
        has_key = any(v.get("secret", {}).get("secretName") == "radstream-model-key" for v in spec.get("volumes", []))
        assert has_key == (stage == "infer"), f"{tree} {name}: model key mounted={has_key}"
        for m in mounts.values():
            if m["name"] in ("model-key", "kafka-user", "kafka-ca", "trusted-keys"):
                assert m.get("readOnly"), f"{tree} {name}: {m['name']} is mounted writable"


def test_blobs_gc_runs_as_a_cron_job_with_its_own_user(prod: list[Resource]) -> None:
    (job,) = [j for j in of_kind(prod, "CronJob") if j["metadata"]["name"] == "radstream-blobs-gc"]
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["args"][:2] == ["blobs", "gc"] and "--raw-after" in c["args"] and "--derived-after" in c["args"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    assert env["RADSTREAM_KAFKA_SASL_USERNAME"] == "radstream-blobs-gc" in users(prod)
    assert not any(v.get("secret", {}).get("secretName") == "radstream-model-key" for v in pod["volumes"])


@pytest.mark.parametrize("tree", [*TREES, "overlays/pacs-export", "overlays/results-out", "overlays/prod-results-out"])
def test_retention_waits_for_every_export_the_tree_deploys(tree: str) -> None:
    """A raw DICOM blob must outlive every export that may still send its study (D-029): the gc
    CronJob names each deployed export's group with --exported-by."""
    resources = _render(tree)
    exports = {d["spec"]["template"]["metadata"]["labels"]["radstream.io/stage"].removeprefix("export-")
               for d in of_kind(resources, "Deployment")
               if d["spec"]["template"]["metadata"]["labels"].get("radstream.io/stage", "").startswith("export-")}
    (job,) = [j for j in of_kind(resources, "CronJob") if j["metadata"]["name"] == "radstream-blobs-gc"]
    (c,) = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    required = {c["args"][i + 1] for i, a in enumerate(c["args"]) if a == "--exported-by"}
    assert exports <= required, f"{tree}: gc does not wait for {sorted(exports - required)}"
    if tree == "overlays/pacs-export":
        assert exports == {"dicom"}
    if tree in ("overlays/results-out", "overlays/prod-results-out"):
        assert exports == {"dicom", "stow", "hl7", "fhir"}
