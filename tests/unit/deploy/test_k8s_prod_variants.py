"""The production variants built from components/prod-gpu: overlays/prod-results-out (every export
edge, logged in as its own KafkaUser) and overlays/prod-s3 (the blobs on S3 through
components/blobs-s3: no volume, credentials from a Secret, egress to the store only). Rendered by
`kubectl kustomize`; the schema test validates both like every overlay."""

from __future__ import annotations

import json
import re

from deploy_expectations import export_consumers, stage_acls
from radstream.streams.blobstore_s3 import S3Settings, parse_s3_url
from test_k8s import S3_SECRET, Resource, _pod_problems, _wiring_problems, config, container, of_kind
from test_k8s_edges import tree
from test_k8s_security import rendered_acls, users


def _pod_spec(d: Resource) -> str:
    """The pod template's spec, the ConfigMap's content hash left out (the two trees' configs differ)."""
    return re.sub(r"radstream-config-[a-z0-9]+", "radstream-config", json.dumps(d["spec"]["template"]["spec"], sort_keys=True))


def _volume_names(d: Resource) -> list[str]:
    return [v["name"] for v in d["spec"]["template"]["spec"]["volumes"]]


def test_prod_results_out_runs_every_export_as_its_own_user_with_the_prod_settings_once() -> None:
    resources = tree("overlays/prod-results-out")
    env = config(resources)
    assert env["RADSTREAM_ENV"] == "prod" and env["RADSTREAM_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    found = users(resources)
    for consumer in export_consumers():
        (d,) = [d for d in of_kind(resources, "Deployment") if d["metadata"]["name"] == f"radstream-{consumer.instance}"]
        problems = _pod_problems(d, resources) + _wiring_problems(d, consumer, resources)
        assert not problems, "\n".join(problems)
        c = container(d)
        login = {e["name"]: e.get("value") for e in c.get("env", [])}
        assert login.get("RADSTREAM_KAFKA_SASL_USERNAME") == f"radstream-{consumer.instance}"
        secrets = {v["name"]: v["secret"]["secretName"] for v in d["spec"]["template"]["spec"]["volumes"] if "secret" in v}
        assert secrets["kafka-user"] == f"radstream-{consumer.instance}"
        assert rendered_acls(found[f"radstream-{consumer.instance}"]) == stage_acls(consumer)
        assert {m["name"]: m for m in c["volumeMounts"]}["trusted-keys"]["readOnly"] is True
    prod = {d["metadata"]["name"]: d for d in of_kind(tree("overlays/prod-gpu"), "Deployment")}
    for d in of_kind(resources, "Deployment"):  # the prod component applied once, after every Deployment
        names = _volume_names(d)
        assert len(names) == len(set(names)), f"{d['metadata']['name']}: a volume twice: {names}"
        if d["metadata"]["name"] in prod:
            assert _pod_spec(d) == _pod_spec(prod[d["metadata"]["name"]]), d["metadata"]["name"]
    # nothing secret is generated for prod: the export tokens come from the secret store
    assert not [s for s in of_kind(resources, "Secret") if s["metadata"].get("labels", {}).get("radstream.io/dev-only")]


def _selected(policy: Resource, labels: dict[str, str]) -> bool:
    selector = policy["spec"]["podSelector"]
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for rule in selector.get("matchExpressions", []):
        assert rule["operator"] == "In", rule
        if labels.get(rule["key"]) not in rule["values"]:
            return False
    return True


def test_prod_s3_keeps_the_blobs_on_s3_with_no_volume_and_egress_to_the_store() -> None:
    resources = tree("overlays/prod-s3")
    env = config(resources)
    bucket, prefix = parse_s3_url(env["RADSTREAM_BLOB_URL"])
    assert (bucket, prefix) == ("hospital-imaging", "radstream")
    settings = S3Settings.from_env({**env, "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"})
    assert settings.endpoint == "https://minio.storage.svc:9000"
    assert not of_kind(resources, "PersistentVolumeClaim")
    deployments = of_kind(resources, "Deployment")
    assert {d["metadata"]["name"] for d in deployments} == {d["metadata"]["name"] for d in of_kind(tree("overlays/prod-gpu"), "Deployment")}
    (store,) = [p for p in of_kind(resources, "NetworkPolicy") if p["metadata"]["name"] == "radstream-object-store"]
    assert store["spec"]["policyTypes"] == ["Egress"]
    assert store["spec"]["egress"] == [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "storage"}}}],
                                        "ports": [{"protocol": "TCP", "port": 9000}]}]
    for d in deployments:
        name = d["metadata"]["name"]
        assert not _pod_problems(d, resources), _pod_problems(d, resources)
        assert "blobs" not in _volume_names(d), name
        assert _selected(store, d["spec"]["template"]["metadata"]["labels"]), f"{name} cannot reach the object store"
    (gc,) = of_kind(resources, "CronJob")
    pod = gc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert "blobs" not in [v["name"] for v in pod["volumes"]]
    (c,) = pod["containers"]
    assert {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in c["env"] if e["name"].startswith("AWS_")} == {
        "AWS_ACCESS_KEY_ID": S3_SECRET, "AWS_SECRET_ACCESS_KEY": S3_SECRET}
