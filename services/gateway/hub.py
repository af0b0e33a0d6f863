"""The gateway's in-memory index and fan-out: numbers events, keeps them per study, feeds subscribers.

Runs on the asyncio loop only (the Kafka thread hands events over with
`call_soon_threadsafe`), so it needs no locks, and subscribing (snapshot + register)
is atomic with respect to new events: replay and live never overlap or leave a gap.

Event ids are `<epoch>-<seq>`: `epoch` is random per gateway process, `seq` a
counter assigned as events are consumed. Within one epoch an id names one event
exactly, so `Last-Event-ID` resumes with no gap and no duplicate. An id from another
epoch (the gateway restarted) or older than what is still retained cannot be
resumed: the stream then starts with a `reset` event and replays what is retained.

Bounds: `max_studies` studies (least recently updated evicted first),
`max_events_per_study` events per study, `max_recent` events for `GET /events`
replay, and `queue_size` undelivered events per subscriber (a subscriber that falls
further behind is cut off with an `overflow` event, never waited for).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from radstream.services.gateway.events import EventFilter, GatewayEvent, Position, dedupe_key
from radstream.services.gateway.state import StudyState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HubLimits:
    max_studies: int = 1000
    max_events_per_study: int = 2000
    max_recent: int = 20000
    queue_size: int = 1000


@dataclass
class StudyEntry:
    state: StudyState
    events: deque[GatewayEvent]
    seen_keys: set[tuple[str, str]] = field(default_factory=set)
    dropped_upto: int = 0  # highest seq no longer retained for this study


class Subscription:
    """One SSE client: a bounded queue of live events that match its scope."""

    def __init__(self, study_uid: str | None, sites: frozenset[str] | None, event_filter: EventFilter,
                 queue_size: int) -> None:
        self.study_uid = study_uid
        self.sites = sites  # None: every site
        self.filter = event_filter
        self.queue: asyncio.Queue[GatewayEvent | None] = asyncio.Queue(queue_size)  # None: the gateway is closing
        self.overflowed = asyncio.Event()
        self.last_delivered: str | None = None

    def wants(self, event: GatewayEvent) -> bool:
        if self.study_uid is not None and event.study_uid != self.study_uid:
            return False
        if self.sites is not None and event.site not in self.sites:
            return False
        return self.filter.matches(event)


@dataclass(frozen=True)
class Replay:
    """What a new subscriber gets before live events: maybe a reset notice, then retained events."""

    events: list[GatewayEvent]
    reset_reason: str | None = None


class EventHub:
    def __init__(self, limits: HubLimits | None = None, epoch: str | None = None) -> None:
        self.limits = limits = limits or HubLimits()
        self.epoch = epoch or secrets.token_hex(4)
        self.seq = 0
        self.studies: OrderedDict[str, StudyEntry] = OrderedDict()
        self.recent: deque[GatewayEvent] = deque(maxlen=limits.max_recent)
        self.recent_dropped_upto = 0
        self.evicted_upto = 0  # highest seq of any evicted study
        self.subscribers: set[Subscription] = set()
        self.duplicates = 0
        self.overflows = 0
        self.delivered = 0  # events written to SSE clients (replayed and live), for /metrics
        self.site_conflicts = 0  # records ignored because they claimed another site for a known study
        self.ready = asyncio.Event()  # set once the source has read every partition to its start-time end
        # Called with (kind, record) for each record indexed (not redeliveries): /monitoring's state.
        self.observers: list[Callable[[str, dict[str, Any]], None]] = []

    # -- ids --------------------------------------------------------------------
    def event_id(self, seq: int) -> str:
        return f"{self.epoch}-{seq}"

    def parse_id(self, event_id: str | None) -> int | None:
        """The seq of an id from this epoch; None for no id; -1 for an id that cannot be resumed here."""
        if not event_id:
            return None
        epoch, _, seq = event_id.strip().rpartition("-")
        if epoch != self.epoch or not seq.isdigit() or int(seq) > self.seq:
            return -1
        return int(seq)

    # -- ingest (loop thread) -----------------------------------------------------
    def ingest(self, kind: str, record: dict[str, Any], position: Position) -> GatewayEvent | None:
        """Index one decoded pipeline event and offer it to subscribers; None for a redelivery, or for
        a record that claims another site for a study this gateway already knows."""
        study_uid = record["study_uid"]
        entry = self.studies.get(study_uid)
        if entry is not None and not entry.state.owned_by(record.get("site") or ""):
            # A study belongs to its first site (D-024): another site's record never moves it.
            self.site_conflicts += 1
            log.warning("ignored a %s record claiming site %r for a study of site %r (%d so far)",
                        kind, record.get("site"), entry.state.site, self.site_conflicts)
            return None
        if entry is None:
            # A study evicted earlier may come back; anything up to the eviction mark may be missing.
            entry = self.studies[study_uid] = StudyEntry(StudyState(study_uid),
                                                         deque(maxlen=self.limits.max_events_per_study),
                                                         dropped_upto=self.evicted_upto)
            self._evict()
        self.studies.move_to_end(study_uid)
        dedupe = (kind, dedupe_key(kind, record))
        if dedupe[1] and dedupe in entry.seen_keys:
            self.duplicates += 1
            return None
        entry.seen_keys.add(dedupe)
        entry.state.apply(kind, record)
        for observe in self.observers:
            observe(kind, record)
        self.seq += 1
        event = GatewayEvent(self.seq, kind, study_uid, entry.state.site, record, position,
                             entry.state.facets(), entry.state.summary())
        entry.state.last_event_id = self.event_id(self.seq)
        if len(entry.events) == entry.events.maxlen:
            entry.dropped_upto = entry.events[0].seq
        entry.events.append(event)
        if len(self.recent) == self.recent.maxlen:
            self.recent_dropped_upto = self.recent[0].seq
        self.recent.append(event)
        for sub in list(self.subscribers):
            if sub.wants(event):
                self._offer(sub, event)
        return event

    def _offer(self, sub: Subscription, event: GatewayEvent) -> None:
        try:
            sub.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflows += 1
            self.subscribers.discard(sub)
            sub.overflowed.set()
            log.info("cut off a slow SSE client (%d events behind)", sub.queue.qsize())

    def _evict(self) -> None:
        while len(self.studies) > self.limits.max_studies:
            _, old = self.studies.popitem(last=False)
            if old.events:
                self.evicted_upto = max(self.evicted_upto, old.events[-1].seq)

    # -- subscribing ------------------------------------------------------------
    def subscribe(self, study_uid: str | None, sites: frozenset[str] | None, event_filter: EventFilter,
                  last_event_id: str | None) -> tuple[Subscription, Replay]:
        """Register a subscriber and return what it must be sent first (atomic: no await)."""
        sub = Subscription(study_uid, sites, event_filter, self.limits.queue_size)
        after = self.parse_id(last_event_id)
        reset = None
        if after == -1:
            reset, after = "the event id is from another gateway run or unknown; replaying from the start", 0
        if study_uid is not None:
            entry = self.studies.get(study_uid)
            retained = list(entry.events) if entry else []
            dropped = entry.dropped_upto if entry else self.evicted_upto
        else:
            retained, dropped = list(self.recent), self.recent_dropped_upto
        if after and after < dropped:
            reset, after = "events after the given id are no longer retained; replaying what is", 0
        replay = [e for e in retained if e.seq > (after or 0) and sub.wants(e)]
        self.subscribers.add(sub)
        return sub, Replay(replay, reset)

    def mark_delivered(self, sub: Subscription, event: GatewayEvent) -> None:
        """`event` was written to `sub`'s stream: its resume point moves, and the count grows."""
        sub.last_delivered = self.event_id(event.seq)
        self.delivered += 1

    def unsubscribe(self, sub: Subscription) -> None:
        self.subscribers.discard(sub)

    def close(self) -> None:
        """End every stream (on shutdown): each writer finishes what it is sending, then stops."""
        for sub in list(self.subscribers):
            self.subscribers.discard(sub)
            try:
                sub.queue.put_nowait(None)
            except asyncio.QueueFull:
                sub.overflowed.set()

    # -- queries ----------------------------------------------------------------
    def study(self, study_uid: str) -> StudyState | None:
        entry = self.studies.get(study_uid)
        return entry.state if entry else None

    def stats(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "seq": self.seq, "studies": len(self.studies), "clients": len(self.subscribers),
                "events_delivered": self.delivered,
                "duplicates_dropped": self.duplicates, "clients_cut_off": self.overflows,
                "site_conflicts_ignored": self.site_conflicts,
                "ready": self.ready.is_set()}
