"""The gateway and the forwarder as real processes against the embedded broker.

Gateway: every stage runs (`stack`), real radiographs and synthetic studies are
published, and their events arrive over real HTTP (SSE), resumable by Last-Event-ID;
study state, display PNGs and site scoping are checked on the way.
Forwarder: study results posted to a real aiohttp webhook that fails at first.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pydicom
import pytest
from aiohttp import web
from radstream.services.synthetic.studies import write_synthetic_study
from radstream.services.broker import free_port
from radstream.services.demo import real_radiographs
from radstream.services.gateway.sse import SseMessage, iter_sse
from radstream.services.overrides import record_override
from radstream.services.signing import signing_key
from radstream.services.publish import publish, read_instance
from radstream.streams.blobstore import open_blob_store
from radstream.streams.kafka.producer import EventPublisher
from radstream.streams.kafka.topics import FINDINGS_OVERRIDES, STUDY_RESULTS, create_topics

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "services" / "gateway"))
from gateway_records import study_result

pytestmark = pytest.mark.integration
SITE = "SITE_A"


def _start(args: list[str], env: dict[str, str], log: Path, ready: str) -> subprocess.Popen:
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "radstream.services.cli", *args],
                                env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while ready.encode() not in log.read_bytes():
        assert proc.poll() is None, f"{args[0]} exited: {log.read_text()}"
        assert time.monotonic() < deadline, f"{args[0]} did not start: {log.read_text()}"
        time.sleep(0.1)
    return proc


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture
def gateway_url(stack, pipeline_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"tok-all\ntok-a {SITE}\ntok-other OTHER_SITE\n")
    port = free_port()
    proc = _start(["gateway", "--port", str(port), "--tokens", str(tokens), "--heartbeat", "1"], pipeline_env,
                  tmp_path / "gateway.log", "gateway listening on")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


def test_real_studies_stream_over_sse_with_resume(gateway_url: str, pipeline_config, pipeline_env: dict[str, str],
                                                  tmp_path: Path) -> None:
    synthetic = [write_synthetic_study(tmp_path / f"syn{i}", n_images=2, seed=700 + i) for i in range(2)]
    urgent_paths = write_synthetic_study(tmp_path / "urgent", n_images=1, seed=710)
    store = open_blob_store(pipeline_config.blob_url)

    async def scenario() -> None:
        auth = {"Authorization": "Bearer tok-a"}
        async with aiohttp.ClientSession(headers=auth, timeout=aiohttp.ClientTimeout(total=280)) as session:
            # connect before anything is published: the events arrive live
            async with session.get(f"{gateway_url}/events") as resp:
                assert resp.status == 200
                studies, errors = await asyncio.to_thread(
                    publish, EventPublisher(pipeline_config.kafka), store,
                    real_radiographs() + [p for s in synthetic for p in s], SITE, lambda m: None)
                assert not errors and len(studies) == 4
                [urgent], errors = await asyncio.to_thread(
                    publish, EventPublisher(pipeline_config.kafka), store, urgent_paths, SITE, lambda m: None,
                    priority="stat")  # down the STAT lane: its events are on the .stat twins (D-057)
                assert not errors
                seen: list[SseMessage] = []
                finals: set[str] = set()
                pings = 0
                async for msg in iter_sse(resp.content):
                    if msg == "ping":
                        pings += 1
                    if not isinstance(msg, SseMessage):
                        continue
                    seen.append(msg)
                    payload = json.loads(msg.data)
                    if msg.event == "study.results" and payload["record"]["final"]:
                        finals.add(payload["study_uid"])
                    if finals >= {*studies, urgent}:
                        break
            assert pings >= 1  # the stack takes seconds: heartbeats kept the stream alive meanwhile
            assert {m.event for m in seen} == {"image.decoded", "inference.results", "findings.fused", "study.results"}
            lanes = {(m.event, json.loads(m.data)["position"]["topic"]) for m in seen
                     if json.loads(m.data)["study_uid"] == urgent}
            assert lanes == {("image.decoded", "image.decoded.stat"), ("inference.results", "inference.results.stat"),
                             ("findings.fused", "findings.fused.stat"), ("study.results", "study.results")}
            seqs = [int(m.id.rsplit("-", 1)[1]) for m in seen]
            assert seqs == sorted(set(seqs))  # strictly increasing, no duplicates

            # resume the stream of one study from its second event: the rest, no gap, no duplicate
            study = studies[-1]
            ids = [m.id for m in seen if json.loads(m.data)["study_uid"] == study]
            async with session.get(f"{gateway_url}/studies/{study}/events", headers={"Last-Event-ID": ids[1]}) as r:
                rest = []
                async for msg in iter_sse(r.content):
                    if isinstance(msg, SseMessage):
                        rest.append(msg.id)
                    if rest and rest[-1] == ids[-1]:
                        break
            assert rest == ids[2:]

            # the latest state, and a display image from the blob store
            state = await (await session.get(f"{gateway_url}/studies/{study}")).json()
            assert state["status"] == "final" and state["site"] == SITE and state["model_versions"]
            assert all(img["status"] == "ANALYSED" for img in state["images"])
            async with session.get(gateway_url + state["images"][0]["image_url"]) as png:
                assert png.status == 200 and (await png.read())[:8] == b"\x89PNG\r\n\x1a\n"
            # RG3 is an extremity: not analysable, with the reason, over the same API
            rg3 = read_instance(real_radiographs()[2]).study_uid
            extremity = await (await session.get(f"{gateway_url}/studies/{rg3}")).json()
            assert {img["status"] for img in extremity["images"]} == {"NOT_ANALYSABLE"}
            assert all(img["qc_flags"] for img in extremity["images"])
            # a radiologist's override, recorded the CLI's way, reaches the gateway and its finding only
            rg1 = read_instance(real_radiographs()[0]).study_uid
            chest = await (await session.get(f"{gateway_url}/studies/{rg1}")).json()
            findings = [f["finding_id"] for img in chest["images"] for f in img["findings"] or []]
            assert findings, "RG1 gives nodule findings (phantom-trained models on a real chest)"
            target = findings[0]
            # signed with the dev key the stack made (and the gateway trusts); an unsigned verdict on
            # another finding, produced straight onto the topic, is never shown
            await asyncio.to_thread(record_override, pipeline_config.kafka, rg1, target, "rejected",
                                    signing_key(pipeline_config, None), "phantom-trained model")
            if len(findings) > 1:
                forged = EventPublisher(pipeline_config.kafka)
                forged.send(FINDINGS_OVERRIDES, findings[1], {"finding_id": findings[1], "study_uid": rg1,
                                                              "verdict": "CONFIRMED", "by": "dr-it", "created_at": 1})
                forged.flush()
            deadline = time.monotonic() + 30
            while True:
                chest = await (await session.get(f"{gateway_url}/studies/{rg1}")).json()
                marked = {f["finding_id"]: f["override"] for img in chest["images"] for f in img["findings"] or []
                          if "override" in f}
                if marked or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            if len(findings) > 1:  # the forged verdict was read, and dropped
                while (await (await session.get(f"{gateway_url}/healthz")).json()).get(
                        "untrusted_overrides_skipped", 0) < 1:
                    assert time.monotonic() < deadline + 30, "the gateway never read the unsigned override"
                    await asyncio.sleep(0.2)
                chest = await (await session.get(f"{gateway_url}/studies/{rg1}")).json()
                marked = {f["finding_id"]: f["override"] for img in chest["images"] for f in img["findings"] or []
                          if "override" in f}
            assert list(marked) == [target] and marked[target]["verdict"] == "rejected"
            assert marked[target]["by"] == "dev" and chest["overridden"] == 1
            # the DICOM SR of real final results, through the CLI: RG1's findings, RG3's QC reasons
            for uid, name in ((rg1, "rg1.dcm"), (rg3, "rg3.dcm")):
                run = await asyncio.to_thread(
                    subprocess.run, [sys.executable, "-m", "radstream.services.cli", "sr", "--study", uid, "--out",
                                     str(tmp_path / name)], env={**os.environ, **pipeline_env},
                    capture_output=True, text=True, timeout=120)
                assert run.returncode == 0, run.stderr
                assert "patient from the original" in run.stdout, run.stdout  # the blob store has them
            rg1_sr, rg3_sr = (pydicom.dcmread(tmp_path / n) for n in ("rg1.dcm", "rg3.dcm"))
            assert rg1_sr.StudyInstanceUID == rg1 and rg3_sr.StudyInstanceUID == rg3
            assert (rg1_sr.PatientID, rg3_sr.PatientID) == ("9RG1", "11RG3")  # filed under the images' patient
            groups = [g for g in rg1_sr.ContentSequence[-1].ContentSequence]  # Imaging Measurements
            clear = [img for img in chest["images"] if img["status"] == "ANALYSED" and not img["findings"]]
            assert len(groups) == len(findings) + len(clear)  # a "No finding" group per clear image
            assert "NOT FOR CLINICAL USE" in rg1_sr.SeriesDescription  # the demo models' manifests say so
            reasons = [i.TextValue for g in rg3_sr.ContentSequence[-1].ContentSequence for i in g.ContentSequence
                       if i.ValueType == "TEXT" and i.TextValue.startswith("not analysable: ")]
            assert reasons and any("outside the models' applicability" in r for r in reasons)
            flagged = await (await session.get(f"{gateway_url}/studies?qc_flag=any")).json()
            assert [s["study_uid"] for s in flagged["studies"]] == [rg3]
            # another site's token: the same 404 as a study that does not exist; no token: 401
            async with session.get(f"{gateway_url}/studies/{study}", headers={"Authorization": "Bearer tok-other"}) as r:
                assert r.status == 404
                assert r.headers["X-Content-Type-Options"] == "nosniff"
            async with aiohttp.ClientSession() as anonymous:
                async with anonymous.get(f"{gateway_url}/studies/{study}/events") as r:
                    assert r.status == 401
            health = await (await session.get(f"{gateway_url}/healthz")).json()
            assert health["ready"] and health["studies"] == 5  # the four and the urgent one

    asyncio.run(scenario())


WEBHOOK_SECRET = b"webhook-secret-of-at-least-32-bytes!"


class Webhook:
    """A real aiohttp server on its own loop: answers 503 to the first POST, 200 afterwards,
    checking each body's X-Radstream-Signature as a receiver would. `/moved` redirects (302)
    to `/hook`; what reaches `/hook` that way would be a followed redirect."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict]] = []
        self.bad_signatures = 0
        self.redirected = 0
        self.loop = asyncio.new_event_loop()
        self.url = ""
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(WEBHOOK_SECRET, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get("X-Radstream-Signature", ""), expected):
            self.bad_signatures += 1
            return web.Response(status=401)
        self.posts.append((request.headers.get("Idempotency-Key", ""), json.loads(body)))
        return web.Response(status=503 if len(self.posts) == 1 else 200)

    async def _moved(self, request: web.Request) -> web.Response:
        self.redirected += 1
        raise web.HTTPFound("/hook")

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        app.router.add_post("/moved", self._moved)
        app.router.add_get("/hook", self._handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hook"

    def __enter__(self) -> Webhook:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


def test_forwarder_posts_each_final_result_once_with_retries(pipeline_env, pipeline_config, tmp_path: Path) -> None:
    settings = pipeline_config.kafka
    create_topics(settings, 1)
    producer = EventPublisher(settings)
    for key, final in (("res-1", True), ("res-2", True), ("res-1", True), ("res-3", False)):
        record = study_result(study=f"1.2.3.{key}", key=key)
        record["final"] = final
        producer.send(STUDY_RESULTS, record["study_uid"], record)
    producer.flush()
    with Webhook() as hook:
        secret = tmp_path / "webhook.secret"
        secret.write_bytes(WEBHOOK_SECRET + b"\n")
        # plain http is refused unless asked for, with the URL shown as scheme and host only
        refused = subprocess.run([sys.executable, "-m", "radstream.services.cli", "forward", "--url",
                                  hook.url + "?token=t0ps3cret", "--secret-file", str(secret)],
                                 env={**os.environ, **pipeline_env}, capture_output=True, text=True, timeout=60, check=False)
        assert refused.returncode == 2 and "plain http" in refused.stderr and "t0ps3cret" not in refused.stderr
        assert "/hook" not in refused.stderr and "Traceback" not in refused.stderr
        proc = _start(["forward", "--url", hook.url, "--allow-http", "--secret-file", str(secret)], pipeline_env,
                      tmp_path / "forward.log", "forwarding")
        try:
            deadline = time.monotonic() + 60
            while len({k for k, _ in hook.posts}) < 2 or len(hook.posts) < 3:
                assert proc.poll() is None, (tmp_path / "forward.log").read_text()
                assert time.monotonic() < deadline, f"posts so far: {[k for k, _ in hook.posts]}"
                time.sleep(0.1)
            time.sleep(1.0)  # nothing else may arrive: the duplicate and the non-final result are skipped
        finally:
            _stop(proc)
    keys = [k for k, _ in hook.posts]
    assert keys == ["res-1", "res-1", "res-2"]  # the 503 was retried; each key acknowledged once
    assert hook.posts[-1][1]["study_uid"] == "1.2.3.res-2" and hook.posts[-1][1]["final"] is True
    assert hook.bad_signatures == 0  # every body verified under the shared secret


def test_forwarder_never_follows_a_redirect_and_redacts_the_url(pipeline_env, pipeline_config, tmp_path: Path) -> None:
    """A webhook answering 302 gets the result once; nothing reaches the redirect's target, the
    result goes to the DLQ as a permanent failure, and neither the DLQ record nor /healthz
    shows the URL's path or query."""
    from radstream.services.status import stage_statuses
    from radstream.streams.kafka.topics import dlq
    from tests.plain_reader import PlainReader

    settings = pipeline_config.kafka
    create_topics(settings, 1)
    producer = EventPublisher(settings)
    record = study_result(study="1.2.3.moved", key="res-moved")
    producer.send(STUDY_RESULTS, record["study_uid"], record)
    producer.flush()
    secret = tmp_path / "webhook.secret"
    secret.write_bytes(WEBHOOK_SECRET)
    dlq_topic = settings.topic(dlq(STUDY_RESULTS))
    with Webhook() as hook:
        url = hook.url.replace("/hook", "/moved") + "?token=t0ps3cret"
        proc = _start(["forward", "--url", url, "--allow-http", "--secret-file", str(secret), "--max-attempts", "3"],
                      pipeline_env, tmp_path / "forward.log", "forwarding")
        try:
            reader = PlainReader(settings.bootstrap, [dlq_topic])
            assert reader.poll_until(lambda r: r[dlq_topic], 60), (tmp_path / "forward.log").read_text()
            reader.close()
            health = next(r["health"] for r in stage_statuses(pipeline_config.home / "run") if r["stage"] == "forward")
        finally:
            _stop(proc)
    assert hook.redirected == 1 and hook.posts == [] and hook.bad_signatures == 0  # tried once, never followed
    dead = reader.records[dlq_topic][0]
    assert "HTTP 302" in dead["error_message"] and "not followed" in dead["error_message"], dead
    assert dead["error_class"] == "PERMANENT" and dead["error_code"] == "webhook_redirected"
    origin = hook.url.removesuffix("/hook")
    assert origin in dead["error_message"] and health["webhook"] == origin
    shown = str(dead) + json.dumps(health) + (tmp_path / "forward.log").read_text()
    assert "t0ps3cret" not in shown and "/moved" not in shown
