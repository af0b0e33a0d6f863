"""One study is one trace across every stage and every process, exported over real OTLP/HTTP
to a receiver in this test (protobuf decoded with the OpenTelemetry proto package)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from radstream.services.synthetic.studies import write_synthetic_study
from radstream.services.stack import Stack
from radstream.streams.config import Config, trace_key
from radstream.streams.stages.registry import models_in_force
from radstream.streams.telemetry import study_context, trace_id_hex
from tests.plain_reader import PlainReader

pytestmark = pytest.mark.integration


class Collector:
    """A minimal OTLP/HTTP traces endpoint: keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                req = ExportTraceServiceRequest.FromString(body)
                for rs in req.resource_spans:
                    service = next(a.value.string_value for a in rs.resource.attributes if a.key == "service.name")
                    for ss in rs.scope_spans:
                        for sp in ss.spans:
                            outer.spans.append({"service": service, "name": sp.name, "trace": sp.trace_id.hex(),
                                                "id": sp.span_id.hex(), "parent": sp.parent_span_id.hex(),
                                                "links": [link.span_id.hex() for link in sp.links]})
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"


def test_one_study_is_one_connected_trace_over_every_stage(pipeline_env, tmp_path) -> None:
    collector = Collector()
    otel = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": collector.endpoint}
    env = {**pipeline_env, **otel}
    config = Config.from_env(env={**os.environ, **env})
    files = write_synthetic_study(tmp_path / "s", n_images=2, seed=99)
    with Stack(config, config.kafka.bootstrap, env=env) as stack:
        # The publisher is its own process too (a process installs its tracer provider once).
        res = subprocess.run([sys.executable, "-m", "radstream.services.cli", "publish", *map(str, files)],
                             env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        studies = res.stdout.split()
        topic = config.kafka.topic("study.results")
        reader = PlainReader(config.kafka.bootstrap, [topic])
        assert reader.poll_until(lambda r: r[topic], 120, stack.poll)
        reader.close()
    result = reader.records[topic][0]
    key = trace_key({**os.environ, **env})  # the publisher's: the install's key under its RADSTREAM_HOME
    trace_id = trace_id_hex(study_context(studies[0], key))
    assert result["trace_id"] == trace_id

    deadline = time.monotonic() + 10
    services = set()
    while time.monotonic() < deadline:
        spans = [s for s in collector.spans if s["trace"] == trace_id]
        services = {s["service"] for s in spans}
        if {"radstream-qc", "radstream-publish"} <= services:
            break
        time.sleep(0.2)
    models = sorted(models_in_force(Config.from_env(env={**os.environ, **pipeline_env})))  # one infer per model
    assert services == {"radstream-publish", "radstream-decode", "radstream-preprocess", "radstream-fuse",
                        "radstream-qc", *(f"radstream-infer:{m}" for m in models)}
    # Connected: every span's parent is another span of the trace, or the study's root context.
    ids = {s["id"] for s in spans}
    root = format(trace.get_current_span(study_context(studies[0], key)).get_span_context().span_id, "016x")
    assert all(s["parent"] in ids or s["parent"] == root for s in spans)
    # Consumer spans are linked to the producer span they continue.
    consumers = [s for s in spans if " process " in s["name"]]
    assert consumers and all(s["links"] == [s["parent"]] for s in consumers)
    assert not [s for s in collector.spans if s["trace"] != trace_id and "qc" in s["service"]]
