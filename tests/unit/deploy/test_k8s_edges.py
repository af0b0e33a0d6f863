"""The edges in k8s (components/receiver, components/gateway, in the dev and prod-gpu trees): each
a Deployment with the stages' pod security, a Service for its ports, and a NetworkPolicy that lets
in only its clients (and Prometheus) and out only to Kafka and DNS. The container's args are parsed
by the real CLI parser, so a port or flag the code does not know fails here."""

from __future__ import annotations

import pytest
from radstream.services.cli import build_parser
from test_k8s import _RENDERED, HEALTH_PORT, Resource, _pod_problems, _render, container, of_kind, selects

TREES = ["overlays/dev", "overlays/prod-gpu", "overlays/pacs-export"]
KAFKA_AND_DNS = {53, 9092, 9093}


def tree(name: str) -> list[Resource]:
    if name not in _RENDERED:
        _RENDERED[name] = _render(name)
    return _RENDERED[name]


def edge(resources: list[Resource], name: str) -> tuple[Resource, object]:
    """The edge's Deployment, and its container's args as the CLI parses them."""
    (d,) = [d for d in of_kind(resources, "Deployment") if d["metadata"]["name"] == f"radstream-{name}"]
    args = build_parser().parse_args(container(d)["args"])
    assert args.func.__name__ == f"cmd_{name}", args.func.__name__
    return d, args


def policy_ports(resources: list[Resource], name: str, labels: dict[str, str]) -> tuple[dict[int, list], set[int]]:
    """{ingress port: its peers} and the egress ports of the one NetworkPolicy named for this edge."""
    (policy,) = [p for p in of_kind(resources, "NetworkPolicy") if p["metadata"]["name"] == f"radstream-{name}"]
    spec = policy["spec"]
    assert selects(spec["podSelector"]["matchLabels"], labels)
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    ingress: dict[int, list] = {}
    for rule in spec["ingress"]:
        for port in rule["ports"]:
            ingress.setdefault(port["port"], []).extend(rule["from"])
    return ingress, {p["port"] for rule in spec["egress"] for p in rule["ports"]}


def service_ports(resources: list[Resource], name: str, d: Resource) -> set[int]:
    """The container ports the edge's Service forwards to (named targetPorts resolved)."""
    (svc,) = [s for s in of_kind(resources, "Service") if s["metadata"]["name"] == f"radstream-{name}"]
    assert selects(svc["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])
    named = {p["name"]: p["containerPort"] for p in container(d)["ports"]}
    return {named.get(p["targetPort"], p["targetPort"]) for p in svc["spec"]["ports"]}


def monitoring_only(peers: list) -> bool:
    return all(p.get("namespaceSelector", {}).get("matchLabels") == {"kubernetes.io/metadata.name": "monitoring"}
               for p in peers)


@pytest.mark.parametrize("name", TREES)
def test_the_receiver_listens_on_all_interfaces_behind_a_service_and_a_policy(name: str) -> None:
    resources = tree(name)
    d, args = edge(resources, "receiver")
    assert not _pod_problems(d, resources), _pod_problems(d, resources)
    assert args.host == "0.0.0.0" and args.peers and args.dicomweb_tokens and not args.allow_any_peer
    assert not args.dicomweb_no_auth
    listening = {args.port, args.dicomweb_port}
    assert service_ports(resources, "receiver", d) == listening
    ingress, egress = policy_ports(resources, "receiver", d["spec"]["template"]["metadata"]["labels"])
    assert set(ingress) == listening | {HEALTH_PORT}
    assert monitoring_only(ingress[HEALTH_PORT])
    assert all(not monitoring_only(ingress[p]) for p in listening), "the senders must reach the DICOM ports"
    assert egress == KAFKA_AND_DNS
    trace = [e for e in container(d)["env"] if e["name"] == "RADSTREAM_TRACE_KEY"]
    assert len(trace) == 1 and trace[0]["valueFrom"]["secretKeyRef"]["name"] == "radstream-trace-key", \
        "every sender shares one trace-id key, from a Secret (streams/config.py trace_key)"
    mounts = {m["mountPath"]: m for m in container(d)["volumeMounts"]}
    for path in (args.peers, args.dicomweb_tokens):
        folder = path.rpartition("/")[0]
        assert mounts[folder]["readOnly"] is True, f"{folder} must be a read-only mount"


@pytest.mark.parametrize("name", TREES)
def test_the_gateway_serves_on_its_health_port_behind_a_service_and_a_policy(name: str) -> None:
    resources = tree(name)
    d, args = edge(resources, "gateway")
    assert not _pod_problems(d, resources), _pod_problems(d, resources)
    assert args.host == "0.0.0.0" and args.port == HEALTH_PORT and args.tokens and not args.no_auth
    assert service_ports(resources, "gateway", d) == {HEALTH_PORT}
    ingress, egress = policy_ports(resources, "gateway", d["spec"]["template"]["metadata"]["labels"])
    assert set(ingress) == {HEALTH_PORT} and not monitoring_only(ingress[HEALTH_PORT])
    assert egress == KAFKA_AND_DNS
    (ing,) = [i for i in of_kind(resources, "Ingress") if i["metadata"]["name"] == "radstream-gateway"]
    backends = [p["backend"]["service"]["name"] for r in ing["spec"]["rules"] for p in r["http"]["paths"]]
    assert backends == ["radstream-gateway"] and ing["spec"]["tls"]


def test_prod_edges_log_in_as_their_own_user_and_the_receiver_signs_its_arrivals() -> None:
    resources = tree("overlays/prod-gpu")
    users = {u["metadata"]["name"] for u in of_kind(resources, "KafkaUser")}
    for name in ("receiver", "gateway"):
        d, _ = edge(resources, name)
        env = {e["name"]: e.get("value") for e in container(d)["env"]}
        assert env["RADSTREAM_KAFKA_SASL_USERNAME"] == f"radstream-{name}" in users
        secrets = {v["name"]: v["secret"]["secretName"] for v in d["spec"]["template"]["spec"]["volumes"] if "secret" in v}
        assert secrets["kafka-user"] == f"radstream-{name}"
    d, _ = edge(resources, "receiver")
    key = {e["name"]: e.get("value") for e in container(d)["env"]}["RADSTREAM_SIGNING_KEY"]
    mounts = {m["mountPath"]: m for m in container(d)["volumeMounts"]}
    assert mounts[key.rpartition("/")[0]]["readOnly"] is True


def test_every_export_edge_has_a_component_wired_like_a_stage() -> None:
    """overlays/results-out includes components/export-{dicom,stow,hl7,fhir}: each export the CLI
    defines is a Deployment with the stages' pod settings, its PDB and KEDA trigger on
    study.results as its own group, args the CLI parses (the peer from the ConfigMap), its bearer
    token (stow, fhir) from a read-only Secret, and an egress policy to its peer only."""
    from deploy_expectations import export_consumers
    from test_k8s import _wiring_problems, config

    resources = tree("overlays/results-out")
    env = config(resources)
    for consumer in export_consumers():
        (d,) = [d for d in of_kind(resources, "Deployment") if d["metadata"]["name"] == f"radstream-{consumer.instance}"]
        problems = _pod_problems(d, resources) + _wiring_problems(d, consumer, resources)
        assert not problems, "\n".join(problems)
        argv = [env[a[2:-1]] if a.startswith("$(") else a for a in container(d)["args"]]  # as the kubelet expands them
        args = build_parser().parse_args(argv)
        assert args.func.__module__.endswith(consumer.stage.replace("-", "_")), args.func
        if hasattr(args, "token_file"):
            assert args.token_file and not args.token
            mounts = {m["mountPath"]: m for m in container(d)["volumeMounts"]}
            assert mounts[args.token_file.rpartition("/")[0]]["readOnly"] is True
        (policy,) = [p for p in of_kind(resources, "NetworkPolicy")
                     if p["spec"]["policyTypes"] == ["Egress"] and p["metadata"]["name"].startswith(f"radstream-{consumer.instance}-")]
        assert selects(policy["spec"]["podSelector"]["matchLabels"], d["spec"]["template"]["metadata"]["labels"])
        assert len(policy["spec"]["egress"]) == 1 and len(policy["spec"]["egress"][0]["ports"]) == 1
