"""Server-Sent Events: the wire framing (pure) and the per-client writer.

Each client has its own writer task: it sends the replay, then drains the client's
bounded queue, with a `: ping` comment whenever nothing was sent for `heartbeat_s`.
A write that does not finish within `write_timeout_s`, or a queue that overflowed,
ends the stream with an `overflow` event naming the last id delivered; the browser's
EventSource then reconnects with that `Last-Event-ID` and resumes without a gap.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from radstream.services.gateway.events import GatewayEvent
from radstream.services.gateway.hub import EventHub, Replay, Subscription

RETRY_MS = 2000


def format_event(data: str, event: str | None = None, event_id: str | None = None) -> bytes:
    """One SSE message. Multi-line data becomes several `data:` lines, as the spec requires."""
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if event is not None:
        lines.append(f"event: {event}")
    lines += [f"data: {line}" for line in data.split("\n")]
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def format_comment(text: str) -> bytes:
    return f": {text}\n\n".encode()


def frame(hub: EventHub, event: GatewayEvent) -> bytes:
    event_id = hub.event_id(event.seq)
    return format_event(event.data(event_id), event.kind, event_id)


@dataclass(frozen=True)
class StreamSettings:
    heartbeat_s: float = 15.0
    write_timeout_s: float = 10.0
    max_streams_per_identity: int = 16  # beyond it: 429 (one token cannot hold every socket)


class StreamQuota:
    """Open SSE streams per identity (loop thread only, so no lock)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: dict[str, int] = {}
        self.refused = 0

    def acquire(self, identity: str) -> bool:
        if self.open.get(identity, 0) >= self.limit:
            self.refused += 1
            return False
        self.open[identity] = self.open.get(identity, 0) + 1
        return True

    def release(self, identity: str) -> None:
        left = self.open.get(identity, 0) - 1
        if left > 0:
            self.open[identity] = left
        else:
            self.open.pop(identity, None)


async def stream_events(request: web.Request, hub: EventHub, sub: Subscription, replay: Replay,
                        settings: StreamSettings) -> web.StreamResponse:
    resp = web.StreamResponse(headers={
        "Content-Type": "text/event-stream; charset=utf-8",
        "Cache-Control": "no-cache, no-store",
        "X-Accel-Buffering": "no",  # tell reverse proxies not to buffer the stream
    })
    try:
        await resp.prepare(request)
        await _write(resp, f"retry: {RETRY_MS}\n".encode() + format_comment(f"radstream gateway epoch {hub.epoch}"),
                     settings)
        if replay.reset_reason:
            await _write(resp, format_event(json.dumps({"reason": replay.reset_reason, "epoch": hub.epoch}),
                                            "reset"), settings)
        for event in replay.events:
            await _write(resp, frame(hub, event), settings)
            hub.mark_delivered(sub, event)
        await _follow(resp, hub, sub, settings)
    except (TimeoutError, ConnectionResetError):
        pass  # a stuck or gone client: just stop writing to it
    finally:
        hub.unsubscribe(sub)
    return resp


async def _follow(resp: web.StreamResponse, hub: EventHub, sub: Subscription, settings: StreamSettings) -> None:
    while True:
        # The hub only marks an overflow when the queue is full, i.e. while this task is busy writing.
        if sub.overflowed.is_set():
            notice = {"last_event_id": sub.last_delivered,
                      "reason": "client too slow: reconnect with Last-Event-ID to resume"}
            await _write(resp, format_event(json.dumps(notice), "overflow"), settings)
            return
        try:
            event = await asyncio.wait_for(sub.queue.get(), settings.heartbeat_s)
        except TimeoutError:
            await _write(resp, format_comment("ping"), settings)
            continue
        if event is None:
            return
        await _write(resp, frame(hub, event), settings)
        hub.mark_delivered(sub, event)


async def _write(resp: web.StreamResponse, data: bytes, settings: StreamSettings) -> None:
    await asyncio.wait_for(resp.write(data), settings.write_timeout_s)


@dataclass
class SseMessage:
    event: str = "message"
    data: str = ""
    id: str | None = None


async def iter_sse(lines: Any) -> AsyncIterator[SseMessage | str]:
    """Parse an SSE byte stream (an async iterator of lines, e.g. `ClientResponse.content`).

    Yields each message, and each comment as a plain string (`"ping"`). Client side:
    used by the load check and the tests.
    """
    msg, data = SseMessage(), []
    async for raw in lines:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                msg.data = "\n".join(data)
                yield msg
            msg, data = SseMessage(), []
        elif line.startswith(":"):
            yield line[1:].strip()
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "event":
                msg.event = value
            elif name == "id":
                msg.id = value
