"""Alert payloads are Slack-compatible, delivery retries a failing webhook, and the watchdog's
webhook has the forwarder's controls (services/webhooks.py): https unless allowed, signed, a
redirect never followed, the URL redacted in every log line. A real local HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from radstream.services.watchdog import Alert, WebhookNotifier, slack_payload
from radstream.services.webhooks import SIGNATURE_HEADER, signature

SECRET = b"s" * 32


class Receiver:
    """A webhook that answers 500 to the first `fail` posts, then 200."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.bodies: list[dict] = []
        self.signatures: list[tuple[bytes, str | None]] = []
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                outer.paths.append(self.path)
                outer.bodies.append(json.loads(raw))
                outer.signatures.append((raw, self.headers.get(SIGNATURE_HEADER)))
                if self.path.startswith("/moved"):
                    self.send_response(302)
                    self.send_header("Location", "/elsewhere")
                else:
                    self.send_response(500 if len(outer.bodies) <= outer.fail else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:  # noqa: N802 - a followed redirect would land here
                outer.paths.append("GET " + self.path)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/test"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    r = Receiver(getattr(request, "param", 0))
    yield r
    r.server.shutdown()
    r.server.server_close()


ALERT = Alert("stalled", "preprocess", 42, "preprocess (pid 42) stalled for 300s (lag 7 and no message processed)")


def test_payload_is_a_single_text_field() -> None:
    payload = slack_payload(ALERT, "node-1")
    assert set(payload) == {"text"}
    assert payload["text"].startswith(":warning: radstream watch on node-1: [stalled] preprocess (pid 42)")
    assert slack_payload(Alert("recovered", "qc", 1, "qc recovered"))["text"].startswith(":white_check_mark:")
    json.dumps(payload)  # serialisable as-is


@pytest.mark.parametrize("receiver", [2], indirect=True)
def test_delivery_retries_until_accepted(receiver: Receiver) -> None:
    notifier = WebhookNotifier(receiver.url, SECRET, allow_http=True, attempts=4, backoff_s=0.01)
    try:
        assert notifier.deliver(slack_payload(ALERT))
    finally:
        notifier.close()
    assert len(receiver.bodies) == 3 and receiver.bodies[-1] == slack_payload(ALERT)


@pytest.mark.parametrize("receiver", [10], indirect=True)
def test_delivery_gives_up_after_its_attempts(receiver: Receiver) -> None:
    notifier = WebhookNotifier(receiver.url, SECRET, allow_http=True, attempts=3, backoff_s=0.01)
    try:
        assert not notifier.deliver(slack_payload(ALERT))
    finally:
        notifier.close()
    assert len(receiver.bodies) == 3


def test_unreachable_webhook_does_not_raise() -> None:
    notifier = WebhookNotifier("http://127.0.0.1:9/nothing", SECRET, allow_http=True, attempts=2, backoff_s=0.01,
                               timeout_s=0.5)
    try:
        assert not notifier.deliver({"text": "x"})
    finally:
        notifier.close()


def test_notify_posts_from_the_background_thread(receiver: Receiver) -> None:
    notifier = WebhookNotifier(receiver.url, SECRET, allow_http=True, backoff_s=0.01)
    notifier.notify(ALERT)
    notifier.close()  # drains the queue
    assert [b["text"] for b in receiver.bodies] == [slack_payload(ALERT, notifier.host)["text"]]


def test_every_alert_is_signed_over_its_exact_body(receiver: Receiver) -> None:
    notifier = WebhookNotifier(receiver.url, SECRET, allow_http=True, backoff_s=0.01)
    assert notifier.deliver(slack_payload(ALERT))
    ((raw, sent),) = receiver.signatures
    assert sent == signature(SECRET, raw) and sent.startswith("sha256=")


def test_a_redirect_is_a_failure_never_followed_nor_retried(receiver: Receiver, caplog) -> None:
    url = receiver.url.replace("/hooks/test", "/moved/T0SECRET/B0SECRET?token=xyz")
    notifier = WebhookNotifier(url, SECRET, allow_http=True, attempts=4, backoff_s=0.01)
    with caplog.at_level("WARNING"):
        assert not notifier.deliver(slack_payload(ALERT))
    assert receiver.paths == ["/moved/T0SECRET/B0SECRET?token=xyz"]  # one POST; nothing went to /elsewhere
    assert "a redirect, not followed" in caplog.text
    assert "SECRET" not in caplog.text and "token" not in caplog.text
    assert notifier.shown_url == f"http://127.0.0.1:{receiver.server.server_address[1]}"


def test_plain_http_needs_allowing_and_the_secret_is_required_and_long_enough(caplog) -> None:
    with pytest.raises(ValueError, match=r"webhook URL http://hooks.example is plain http"):
        WebhookNotifier("http://hooks.example/services/T0/B0/SECRET", SECRET)
    with pytest.raises(ValueError, match="at least 32 bytes"):
        WebhookNotifier("https://hooks.example/services/x", b"short")
    with pytest.raises(ValueError, match="at least 32 bytes"):
        WebhookNotifier("https://hooks.example/services/x", None)
    with caplog.at_level("WARNING"):
        notifier = WebhookNotifier("https://127.0.0.1:9/services/T0/B0/SECRET", SECRET, attempts=1, timeout_s=0.5)
        assert not notifier.deliver({"text": "x"})
    assert "webhook https://127.0.0.1:9 " in caplog.text and "SECRET" not in caplog.text


@pytest.mark.parametrize("extra, message", [
    ([], "radstream: error: watch --webhook signs every POST: pass --secret-file FILE or set RADSTREAM_WATCH_SECRET(_FILE)"),
    (["--secret-file", "@"], "radstream: error: webhook URL http://127.0.0.1:9 is plain http: alerts name hosts, "
                             "stages and studies' lag; use https (or --allow-http on a trusted local network)"),
])
def test_watch_refuses_an_unsigned_or_plain_http_webhook_in_one_line(tmp_path, extra: list[str], message: str) -> None:
    import subprocess
    import sys

    (tmp_path / "s").write_bytes(SECRET)
    argv = [sys.executable, "-m", "radstream.services.cli", "watch", "--webhook", "http://127.0.0.1:9/services/T/B/SECRET",
            "--run-dir", str(tmp_path), *[str(tmp_path / "s") if a == "@" else a for a in extra]]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                          env={"RADSTREAM_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [message]
