"""What a stage is: a pure function from an input event to output events, plus a registration.

The Kafka loop, retries, commits, DLQ, health and metrics live once, in
streams/runtime.py, and wrap any Stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from radstream.domain.thresholds import ThresholdBook, ThresholdSet
from radstream.domain.errors import StageError, classify
from radstream.streams.kafka.topics import STAT_LANED, schema_of, stat_twin

if TYPE_CHECKING:
    from radstream.streams.state import StateStore


# While a stage reads a STAT twin, the batch it takes at a time when it batches only to share
# produce-flush-commit (D-044): an urgent message waits for at most this many.
LANED_BATCH = 4


@dataclass
class Output:
    """One event to produce. `topic` is the logical name; the runtime adds the prefix."""

    topic: str
    key: str
    value: dict[str, Any]
    # Trace parent for outputs made by a timer (on_tick), which have no input message.
    trace_parent: list[tuple[str, bytes | None]] | None = None

    @property
    def schema(self) -> str:
        """The contract of the output topic (streams/kafka/topics.SCHEMAS)."""
        return schema_of(self.topic)


@dataclass
class Inbound:
    """A decoded input event with where it came from."""

    value: dict[str, Any]
    key: str | None = None
    partition: int = 0
    offset: int = 0
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    topic: str = ""  # the logical input topic (a stage with `extra_input_topics` tells them apart by it)


Result = list[Output] | StageError


class Stage:
    """Base class. Subclasses set the class attributes and implement `process`.

    What a stage reads besides its input is given to its constructor: stages that read
    thresholds take the `config` book (the runtime's config watcher keeps that book
    current, between batches only); stateful stages set `stateful = True` and take their
    `state` store (a MemoryStore by default; build_stage gives them their ChangelogStore).
    The runtime calls `on_tick` of stateful stages regularly, for deadlines.
    """

    name: ClassVar[str]
    input_topic: ClassVar[str]
    # Further topics consumed by the same group, each decoded with its own schema and dead-lettered
    # to its own DLQ (the monitor reads overrides beside results). A stateful stage's changelog
    # partition p then holds what partition p of any of them wrote.
    extra_input_topics: ClassVar[tuple[str, ...]] = ()
    # The topics its outputs go to (besides its input's DLQ): what its Kafka identity may
    # write (k8s/components/kafka-auth, a test derives the ACLs from this; D-028).
    output_topics: ClassVar[tuple[str, ...]] = ()
    stateful: ClassVar[bool] = False
    # Up to max_batch messages already fetched are handled together, so produce-flush-commit
    # is paid once per batch; only infer waits (max_wait_ms), and only while messages keep
    # arriving (streams/batching.py).
    max_batch: int = 16
    max_wait_ms: int = 0
    # An edge to a hospital system: a peer that does not answer is waited for (streams/holds.py),
    # never skipped into the DLQ; /healthz turns unhealthy after unhealthy_after_s of silence.
    retry_until_answered: ClassVar[bool] = False
    unhealthy_after_s: float = 300.0
    config: ThresholdBook | None = None  # None: manifest defaults only (version 0)
    state: StateStore | None = None  # stateful stages only

    def laned_batch(self) -> int:
        """The most messages taken at a time while this stage reads a STAT twin: an urgent message
        waits for the batch in hand. decode and preprocess batch only to share produce-flush-commit
        and take milliseconds per message, so 4 (D-044); fuse and qc (stateful) take a fraction of a
        millisecond per message, so their batch costs an urgent one little and they keep it; infer
        overrides it (D-057)."""
        return self.max_batch if self.stateful else min(self.max_batch, LANED_BATCH)

    def thresholds(self, site: str | None = None) -> ThresholdSet:
        """The effective thresholds for a message from `site` (version 0: manifest defaults)."""
        return self.config.effective(site) if self.config else ThresholdSet()

    @property
    def input_topics(self) -> tuple[str, ...]:
        return (self.input_topic, *self.extra_input_topics)

    @property
    def input_schema(self) -> str:
        """The contract of the input topic (streams/kafka/topics.SCHEMAS): what the runtime decodes."""
        return schema_of(self.input_topic)

    @property
    def group_id(self) -> str:
        return f"radstream-{self.name}"

    @property
    def timing_label(self) -> str:
        """Key under which this stage's compute time is recorded in events' `stage_ms`."""
        return self.name

    def process(self, event: Inbound) -> list[Output]:
        raise NotImplementedError

    def process_batch(self, events: list[Inbound]) -> list[Result]:
        """Default: one at a time, each failure classified on its own."""
        results: list[Result] = []
        for event in events:
            try:
                results.append(self.process(event))
            except Exception as exc:  # classified, never swallowed: becomes a retry or a DLQ record
                results.append(classify(exc))
        return results

    def start(self) -> None:
        """Called once the runner has subscribed, before its first poll: work that may go on while
        the member joins and polls (infer loads its model in the background, D-043)."""

    def between_batches(self) -> None:
        """Called by the runner on every loop, after the config watcher's poll and never during a
        batch: what a stage follows of the config beyond thresholds (infer: the model set, D-056)."""

    def on_tick(self, now_ms: int) -> list[Output]:
        return []

    def health(self) -> dict[str, Any]:
        """Extra fields for /healthz (loaded models, backend, ...)."""
        return {}

    def close(self) -> None:
        """Release resources on shutdown."""


def traceparent_of(event: Inbound) -> str | None:
    """The trace parent of an input, kept in state so a timer's output joins the same trace."""
    for key, value in event.headers:
        if key == "traceparent" and value:
            return value.decode()
    return None


def trace_parent(traceparent: str | None) -> list[tuple[str, bytes | None]] | None:
    return [("traceparent", traceparent.encode())] if traceparent else None


def stat_input(stage: Stage | type[Stage]) -> str | None:
    """The `.stat` twin a stage reads beside its input, urgent first (D-044, D-057), or None: a
    stage with one input topic that has a twin, unless it holds partitions for a peer (an export
    edge). The runtime subscribes to it and the deploy tests derive the ACLs from it."""
    if stage.input_topic in STAT_LANED and not stage.extra_input_topics and not stage.retry_until_answered:
        return stat_twin(stage.input_topic)
    return None
