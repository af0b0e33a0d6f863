"""The local stack (compose/): it parses, runs every stage worker the code defines on
real Apache Kafka in KRaft mode, and Prometheus scrapes every stage. Also the
Dockerfile targets that compose and k8s name."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from deploy_expectations import REPO, Consumer

COMPOSE = REPO / "compose"
HEALTH_PORT = 8080


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    return yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())["services"]


@pytest.fixture(scope="module")
def prometheus() -> dict[str, Any]:
    return yaml.safe_load((COMPOSE / "prometheus.yml").read_text())


def scrape_targets(prometheus: dict[str, Any]) -> set[str]:
    """host:port of every static target and DNS-discovered name."""
    targets = set()
    for job in prometheus["scrape_configs"]:
        for static in job.get("static_configs", []):
            targets.update(static["targets"])
        for sd in job.get("dns_sd_configs", []):
            targets.update(f"{name}:{sd['port']}" for name in sd["names"])
    return targets


def _stage_problems(name: str, svc: dict[str, Any]) -> list[str]:
    env = svc.get("environment", {})
    problems = []
    if env.get("RADSTREAM_BOOTSTRAP") != "kafka:9092":
        problems.append(f"{name}: RADSTREAM_BOOTSTRAP must be kafka:9092")
    if env.get("RADSTREAM_HEALTH_HOST") != "0.0.0.0" or str(env.get("RADSTREAM_HEALTH_PORT")) != str(HEALTH_PORT):
        problems.append(f"{name}: health endpoint must bind 0.0.0.0:{HEALTH_PORT}")
    blob_path = env.get("RADSTREAM_BLOB_URL", "").removeprefix("file://")
    if not any(v.startswith("blobs:") and v.split(":")[1] == blob_path for v in svc.get("volumes", [])):
        problems.append(f"{name}: the named volume 'blobs' must be mounted at RADSTREAM_BLOB_URL")
    if not svc.get("read_only") or "ALL" not in svc.get("cap_drop", []):
        problems.append(f"{name}: read_only root and cap_drop ALL")
    if str(svc.get("user", "0")).split(":")[0] in ("0", "root"):
        problems.append(f"{name}: must run as a non-root user")
    if svc.get("depends_on", {}).get("topics", {}).get("condition") != "service_completed_successfully":
        problems.append(f"{name}: must start after the topics service completed")
    return problems


def _check(services: dict[str, dict[str, Any]], consumers: list[Consumer]) -> None:
    problems = []
    for consumer in consumers:
        found = {n: s for n, s in services.items() if s.get("command") == consumer.args}
        if list(found) != [consumer.instance]:
            problems.append(f"expected one service {consumer.instance!r} running {consumer.args}, found {list(found)}")
            continue
        problems += _stage_problems(consumer.instance, found[consumer.instance])
    assert not problems, "\n".join(problems)


def test_every_stage_has_a_service(services: dict[str, dict[str, Any]], expected_consumers: list[Consumer]) -> None:
    _check(services, [c for c in expected_consumers if c.model is None])


def test_every_model_has_an_infer_service(
    services: dict[str, dict[str, Any]], expected_consumers: list[Consumer], require_models: list[str]
) -> None:
    _check(services, [c for c in expected_consumers if c.model is not None])


def test_kafka_is_apache_kafka_in_kraft_mode(services: dict[str, dict[str, Any]]) -> None:
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@kafka:")
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"]), "a KRaft cluster id is 16 bytes, base64url"
    assert not any("zookeeper" in name or "ZOOKEEPER" in str(s) for name, s in services.items())
    assert "healthcheck" in kafka


def test_supporting_services(services: dict[str, dict[str, Any]]) -> None:
    assert services["schema-registry"]["image"].startswith("confluentinc/cp-schema-registry:")
    assert "kafka:9092" in services["schema-registry"]["environment"]["SCHEMA_REGISTRY_KAFKASTORE_BOOTSTRAP_SERVERS"]
    assert "opentelemetry-collector" in services["otel-collector"]["image"]
    assert services["jaeger"]["image"].startswith("jaegertracing/")
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    topics = services["topics"]
    assert topics["command"] == ["topics", "create"]
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert topics.get("restart") == "no"


def test_config_files_are_mounted_and_parse(services: dict[str, dict[str, Any]]) -> None:
    for name in ("otel-collector", "prometheus"):
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert yaml.safe_load((COMPOSE / source).read_text()), f"{name}: {source} is empty"
    otel = yaml.safe_load((COMPOSE / "otel-collector.yaml").read_text())
    traces = otel["service"]["pipelines"]["traces"]
    assert "otlp" in traces["receivers"]
    jaeger = [e for e in traces["exporters"] if e.startswith("otlp/")]
    assert jaeger and otel["exporters"][jaeger[0]]["endpoint"].startswith("jaeger:")


def test_prometheus_scrapes_every_stage(prometheus: dict[str, Any], expected_consumers: list[Consumer]) -> None:
    targets = scrape_targets(prometheus)
    missing = [c.instance for c in expected_consumers if f"{c.instance}:{HEALTH_PORT}" not in targets]
    assert not missing, f"no Prometheus scrape target for {missing}"


def test_gpu_override_runs_infer_on_the_gpu_target(expected_consumers: list[Consumer]) -> None:
    override = yaml.safe_load((COMPOSE / "docker-compose.gpu.yml").read_text())["services"]
    assert set(override) == {c.instance for c in expected_consumers if c.stage == "infer"}
    for svc in override.values():
        assert svc["build"]["target"] == "runtime-gpu"
        assert svc["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]


@pytest.mark.parametrize("file", ["docker-compose.yml", "docker-compose.gpu.yml"])
def test_every_published_port_is_bound_to_loopback(file: str) -> None:
    """Kafka (no authentication in compose), Jaeger, the collector and Prometheus are reachable
    from this host only, never from the network the laptop is on (docs/security.md)."""
    doc = yaml.safe_load((COMPOSE / file).read_text()) or {}
    published = [(name, port) for name, svc in (doc.get("services") or {}).items() for port in svc.get("ports", [])]
    if file == "docker-compose.yml":
        assert published, "the base compose file publishes no port: this test would check nothing"
    for name, port in published:
        if isinstance(port, dict):  # long syntax
            assert port.get("host_ip") == "127.0.0.1", f"{name}: {port} is published on every interface"
        else:
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port} is published on every interface"
