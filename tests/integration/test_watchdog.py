"""`radstream watch` as its own process against a real stack: a hung stage (SIGSTOP) is
alerted and killed, the supervisor restarts it and the pending work completes; a dead
stage (SIGKILL) is restarted by the supervisor and reported dead by the watchdog."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from radstream.services.synthetic.studies import write_synthetic_study
from radstream.services.publish import publish
from radstream.services.webhooks import SIGNATURE_HEADER, signature
from radstream.streams.blobstore import open_blob_store
from radstream.streams.kafka.producer import EventPublisher
from tests.plain_reader import PlainReader

pytestmark = pytest.mark.integration
SECRET = b"watchdog-alert-signing-secret-32+"


class Webhook:
    """A Slack-style webhook receiver: keeps every posted `text`."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.unsigned = 0  # posts whose X-Radstream-Signature did not verify under SECRET
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                outer.unsigned += self.headers.get(SIGNATURE_HEADER) != signature(SECRET, raw)
                outer.texts.append(json.loads(raw)["text"])
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T000/B000/x"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def matching(self, *words: str) -> list[str]:
        return [t for t in list(self.texts) if all(w in t for w in words)]


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    w = Webhook()
    yield w
    w.server.shutdown()
    w.server.server_close()


@pytest.fixture
def watchdog(stack, pipeline_env, webhook, tmp_path) -> Iterator[Path]:
    """The watchdog subprocess on the stack's run directory; yields its log file."""
    run_dir = stack.config.home / "run"
    env = {**os.environ, **pipeline_env, "RADSTREAM_HOME": str(stack.config.home), "RADSTREAM_RUN_DIR": str(run_dir)}
    log_path = tmp_path / "watch.log"
    secret = tmp_path / "watch-secret"
    secret.write_bytes(SECRET + b"\n")
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "radstream.services.cli", "watch", "--interval", "0.5", "--warn-after", "3",
             "--restart-after", "6", "--webhook", webhook.url, "--allow-http", "--secret-file", str(secret),
             "--run-dir", str(run_dir)],
            env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield log_path
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        assert proc.returncode == 0, log_path.read_text()[-3000:]
    assert webhook.unsigned == 0, "an alert without a valid X-Radstream-Signature"
    assert "/services/T000" not in log_path.read_text()  # the hook's path (its secret in Slack) is never logged


def _wait(cond, timeout_s: float, stack, what: str, log_path: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stack.poll()
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; watchdog log:\n{log_path.read_text()[-3000:]}")


def _registered(stack) -> bool:
    run_dir = stack.config.home / "run"
    return all((run_dir / f"{c.stage}-{c.proc.pid}.json").exists() for c in stack.supervisor.children)


def _publish_studies(config, tmp_path: Path, seeds: list[int]) -> list[str]:
    dirs = [write_synthetic_study(tmp_path / f"s{seed}", n_images=2, seed=seed)[0].parent for seed in seeds]
    studies, errors = publish(EventPublisher(config.kafka), open_blob_store(config.blob_url), dirs, log=lambda m: None)
    assert not errors
    return studies


def _results_land(stack, studies: list[str], log_path: Path, timeout_s: float = 180) -> None:
    settings = stack.config.kafka
    topic = settings.topic("study.results")
    reader = PlainReader(settings.bootstrap, [topic])
    try:
        ok = reader.poll_until(lambda r: set(studies) <= {x["study_uid"] for x in r[topic] if x["final"]}, timeout_s, stack.poll)
    finally:
        reader.close()
    assert ok, f"results for {len({x['study_uid'] for x in reader.records[topic]})}/{len(studies)} studies; " \
               f"watchdog log:\n{log_path.read_text()[-3000:]}"


def test_hung_stage_with_pending_work_is_alerted_killed_and_restarted(stack, pipeline_config, webhook, watchdog,
                                                                      tmp_path) -> None:
    _wait(lambda: _registered(stack), 120, stack, "every stage to register", watchdog)
    preprocess = stack.supervisor.find("preprocess")
    hung_pid = preprocess.proc.pid
    os.kill(hung_pid, signal.SIGSTOP)  # alive, holds its partitions, answers nothing
    studies = _publish_studies(pipeline_config, tmp_path, [901, 902])  # its lag grows

    _wait(lambda: webhook.matching("[unresponsive]", f"preprocess (pid {hung_pid})"), 30, stack,
          "the unresponsive alert", watchdog)
    _wait(lambda: webhook.matching("[restarting]", f"preprocess (pid {hung_pid})"), 30, stack,
          "the restart alert", watchdog)
    _wait(lambda: preprocess.restarts >= 1 and preprocess.proc.pid != hung_pid, 30, stack,
          "the supervisor to restart preprocess", watchdog)

    _results_land(stack, studies, watchdog)
    assert not webhook.matching("[dead]", f"pid {hung_pid}")  # the watchdog's own kill is not news


def test_dead_stage_is_restarted_and_reported_dead(stack, pipeline_config, webhook, watchdog, tmp_path) -> None:
    _wait(lambda: _registered(stack), 120, stack, "every stage to register", watchdog)
    decode = stack.supervisor.find("decode")
    dead_pid = decode.proc.pid
    studies = _publish_studies(pipeline_config, tmp_path, [911, 912])
    os.kill(dead_pid, signal.SIGKILL)  # no cleanup: its registration file stays behind

    _wait(lambda: decode.restarts >= 1, 30, stack, "the supervisor to restart decode", watchdog)
    _wait(lambda: webhook.matching("[dead]", f"decode (pid {dead_pid})"), 30, stack, "the dead alert", watchdog)
    assert not (stack.config.home / "run" / f"decode-{dead_pid}.json").exists()  # stale registration removed

    _results_land(stack, studies, watchdog)
    assert not webhook.matching("[restarting]")  # nothing was hung: the watchdog killed nothing
