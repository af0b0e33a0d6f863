"""Alert payloads are Slack-compatible and delivery retries a failing webhook."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from radstream.services.watchdog import Alert, WebhookNotifier, slack_payload


class Receiver:
    """A webhook that answers 500 to the first `fail` posts, then 200."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.bodies: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.bodies.append(body)
                self.send_response(500 if len(outer.bodies) <= outer.fail else 200)
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
    notifier = WebhookNotifier(receiver.url, attempts=4, backoff_s=0.01)
    try:
        assert notifier.deliver(slack_payload(ALERT))
    finally:
        notifier.close()
    assert len(receiver.bodies) == 3 and receiver.bodies[-1] == slack_payload(ALERT)


@pytest.mark.parametrize("receiver", [10], indirect=True)
def test_delivery_gives_up_after_its_attempts(receiver: Receiver) -> None:
    notifier = WebhookNotifier(receiver.url, attempts=3, backoff_s=0.01)
    try:
        assert not notifier.deliver(slack_payload(ALERT))
    finally:
        notifier.close()
    assert len(receiver.bodies) == 3


def test_unreachable_webhook_does_not_raise() -> None:
    notifier = WebhookNotifier("http://127.0.0.1:9/nothing", attempts=2, backoff_s=0.01, timeout_s=0.5)
    try:
        assert not notifier.deliver({"text": "x"})
    finally:
        notifier.close()


def test_notify_posts_from_the_background_thread(receiver: Receiver) -> None:
    notifier = WebhookNotifier(receiver.url, backoff_s=0.01)
    notifier.notify(ALERT)
    notifier.close()  # drains the queue
    assert [b["text"] for b in receiver.bodies] == [slack_payload(ALERT, notifier.host)["text"]]
