"""The one Kafka runtime: consume, call the stage, produce, then checkpoint.

Delivery guarantee: at-least-once. Every batch ends in a checkpoint
(streams/checkpoint.py): outputs and DLQ records acknowledged, then the stateful
stage's changelog, and only then the input offsets, so a crash can only repeat work
(outputs carry idempotency keys) and never lose it. A stateless stage does not wait for
the acknowledgement: its offsets are committed on a later turn of the loop, once it has
come (D-060).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from radstream.domain.errors import BlobStoreUnavailable, Skipped, StageError, TransientError
from radstream.domain.retry import RetryPolicy
from radstream.models.manifest import ModelLoadError
from radstream.streams import metrics, telemetry
from radstream.streams.batching import collect_batch
from radstream.streams.checkpoint import Checkpoint, last_offsets
from radstream.streams.codec import Codec
from radstream.streams.config import ConfigWatcher, RejectionAudit
from radstream.streams.health import HealthServer, register_process
from radstream.streams.holds import PartitionHolds
from radstream.streams.kafka.consumer import group_consumer
from radstream.streams.kafka.producer import open_producer
from radstream.streams.kafka.settings import KafkaSettings
from radstream.streams.kafka.topics import dlq, lane_of, schema_of
from radstream.streams.lanes import StatFirst
from radstream.streams.stage import Inbound, Output, Result, Stage, stat_input
from radstream.streams.state import ChangelogStore

log = logging.getLogger(__name__)


class StageRunner:
    """Runs one Stage against Kafka until SIGTERM."""

    def __init__(
        self,
        stage: Stage,
        settings: KafkaSettings,
        codec: Codec | None = None,
        health_port: int = 0,
        health_host: str = "127.0.0.1",
        max_attempts: int = 3,
        backoff_s: float = 0.2,
        stall_after_s: float = 600.0,
        trusted_keys: dict[str, Any] | None = None,
        blob_unhealthy_after_s: float = 10.0,
    ) -> None:
        self.state: ChangelogStore | None = None
        if stage.stateful:
            if not isinstance(stage.state, ChangelogStore):
                raise TypeError(f"stage {stage.name} is stateful: under the runtime its state must be a "
                                f"ChangelogStore (build_stage gives it one), not {type(stage.state).__name__}")
            self.state = stage.state
        if stage.retry_until_answered and stage.extra_input_topics:
            raise TypeError(f"stage {stage.name} retries until answered: it holds partitions of one input topic")
        if stage.retry_until_answered and stage.max_batch != 1:
            raise TypeError(f"stage {stage.name} retries until answered: it must take one message at a time "
                            "(max_batch = 1), so nothing after an unanswered message is sent before it")
        self.stage = stage
        self.settings = settings
        self.codec = codec or Codec(settings.schema_registry_config())
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.input_topic = settings.topic(stage.input_topic)
        self._inputs = {settings.topic(t): t for t in stage.input_topics}  # deployed name -> logical
        # The STAT lane (streams/lanes.py): a stage whose one input has a .stat twin reads it too,
        # urgent first; the twin shares the input's schema, partitions and DLQ (D-044, D-057).
        twin = stat_input(stage)
        self.stat_topic = settings.topic(twin) if twin else None
        if twin:
            self._inputs[settings.topic(twin)] = twin
        self.dlq_topic = settings.topic(dlq(stage.input_topic))
        # A stateless stage commits once acknowledged without waiting (D-060); stateful stages and
        # export edges (held until answered, one message at a time) keep the waiting checkpoint.
        self._deferred = not stage.stateful and not stage.retry_until_answered
        self._producer = open_producer(settings, linger_ms=0 if self._deferred else None)
        self.group_id = settings.group(stage.group_id)
        # Co-partitioned inputs of a stateful stage (the monitor; fuse and qc with their STAT twin)
        # must stay together: range assigns partition p of every input topic to one member, whose
        # state for p both feed; everything else is cooperative-sticky.
        co_partitioned = stage.stateful and len(self._inputs) > 1
        self._consumer = group_consumer(settings, self.group_id, static_member=True,
                                        assignor="range" if co_partitioned else None)
        self._stopping = False
        self._assigned: list[int] = []
        self._last_progress = time.time()
        self._processed = 0
        self._last_lag_check = 0.0
        self._lag: dict[tuple[str, int], int] = {}
        self._last_loop = time.time()
        self.stall_after_s = stall_after_s
        self._checkpoint = Checkpoint(self._producer, self._consumer, self.input_topic, self.state)
        self._lane = StatFirst(self._consumer, self.input_topic, self.stat_topic) if self.stat_topic else None
        # Held partitions: an export peer that does not answer (retry_until_answered), and for every
        # stateless stage a blob store that does not answer (BlobStoreUnavailable), are waited for,
        # never dead-lettered. Stateful stages hold nothing else: their state moved as they processed.
        # A hold is per (topic, partition), so a laned stage's urgent twin topic is held on its own.
        self._holds: PartitionHolds | None = (
            PartitionHolds(self._consumer, self.input_topic, unhealthy_after_s=stage.unhealthy_after_s)
            if stage.retry_until_answered else
            None if stage.stateful else
            PartitionHolds(self._consumer, self.input_topic, cap_s=5.0, unhealthy_after_s=blob_unhealthy_after_s))
        # The stage's own book when it reads thresholds, so the watcher's updates are what it sees.
        # Only records signed by `trusted_keys` take effect (None or empty: none do); the rest are audited.
        self._config = ConfigWatcher(settings, self.codec, book=stage.config, trusted=trusted_keys,
                                     on_rejected=RejectionAudit(settings, self.codec, stage.name))
        self._health = HealthServer(self.health, host=health_host, port=health_port)
        self._health_host, self._health_port = health_host, health_port

    # -- lifecycle -------------------------------------------------------------
    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        telemetry.setup_tracing(self.stage.timing_label)
        self._health.start()
        reg = register_process(self.stage.name, self._health.url, {"group": self.group_id})
        # Join first: the group protocol runs in librdkafka's thread while the config topic is read
        # and infer's model loads (D-043); nothing is handled before the first poll below.
        self._consumer.subscribe(list(self._inputs), on_assign=self._on_assign, on_revoke=self._on_revoke,
                                 on_lost=self._on_lost)
        self.stage.start()
        self._config.load()  # the whole config topic before any work
        self._config_changed()
        log.info("stage %s started: group %s, input %s, health %s",
                 self.stage.name, self.group_id, ", ".join(self._inputs), self._health.url)
        unusable = None
        try:
            while not self._stopping:
                self._step()
        except ModelLoadError as exc:  # the background load failed: nothing was answered, nothing committed
            unusable = str(exc)
        finally:
            log.info("stage %s draining and leaving the group", self.stage.name)
            self._checkpoint.close()
            self._consumer.close()
            self._config.close()
            self.stage.close()
            self._health.stop()
            telemetry.shutdown()
            reg.unlink(missing_ok=True)
        if unusable is not None:
            return serve_unhealthy(self.stage.timing_label, unusable, self._health_host, self._health_port)
        return 0

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._stopping = True

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        parts = sorted({p.partition for p in partitions})  # the same numbers of every input topic
        self._assigned = sorted(set(self._assigned) | set(parts))
        if self._lane is not None:
            self._lane.assigned()
        if self.state is not None:
            self.state.restore(parts)
        log.info("assigned partitions %s", parts)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Under cooperative-sticky only the partitions that move are revoked (the others keep
        being consumed), so everything here is per partition."""
        parts = sorted({p.partition for p in partitions})
        self._checkpoint.commit_sync(parts)
        self._forget(partitions)
        log.info("revoked partitions %s", parts)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions the group took away (this member's session expired): another member owns
        them already, so nothing is committed; their work is redone from the last commit."""
        lost = sorted({p.partition for p in partitions})
        self._checkpoint.forget(lost)
        self._forget(partitions)
        log.warning("lost partitions %s (session expired): not committing", lost)

    def _forget(self, partitions: list[TopicPartition]) -> None:
        parts = sorted({p.partition for p in partitions})
        self._assigned = [p for p in self._assigned if p not in parts]
        for tp in partitions:  # revoked partitions must not keep reporting stale lag
            self._lag.pop((tp.topic, tp.partition), None)
            try:
                metrics.consumer_lag.remove(self.stage.name, self._lag_label(tp.topic, tp.partition))
            except KeyError:
                pass
        if self.state is not None:
            self.state.drop(parts)
        if self._holds is not None:
            self._holds.drop(parts)

    # -- one iteration -----------------------------------------------------------
    def _config_changed(self) -> None:
        metrics.config_version.labels(self.stage.name).set(self._config.book.version)
        metrics.config_rejections.labels(self.stage.name).set(self._config.book.rejections)
        metrics.config_untrusted.labels(self.stage.name).set(self._config.untrusted)
        log.info("config version %d in force", self._config.book.version)

    def _step(self) -> None:
        self._last_loop = time.time()
        if self._deferred:
            self._checkpoint.settle()  # commit what the broker has acknowledged since the last turn
        if self._config.poll():  # between batches only: a message is processed wholly under one version
            self._config_changed()
        self.stage.between_batches()  # infer follows the model set in force here (D-056)
        metrics.config_rejections.labels(self.stage.name).set(self._config.book.rejections)
        metrics.config_untrusted.labels(self.stage.name).set(self._config.untrusted)
        if self._holds is not None:
            self._holds.resume_due()
        msgs = self._poll_batch()
        if self.state is not None:
            ticked = self.stage.on_tick(int(time.time() * 1000))
            if ticked:
                self._produce_all([(o, telemetry.context_from(o.trace_parent)) for o in ticked])
                self._checkpoint.commit()  # no input offsets: outputs, then the changelog
        if msgs:
            self._handle(msgs)
        self._update_lag()

    def _poll_batch(self) -> list[Message]:
        first = self._consumer.poll(0.2)
        if first is None:
            if self._lane is not None:
                self._lane.select([])  # nothing urgent came: the routine partitions may resume
            return []
        batch = [first]
        # An urgent message waits for the batch in hand: a laned stage takes `laned_batch` at a time
        # (asked each time: infer's depends on the backend it loaded; D-044, D-057).
        limit = self.stage.laned_batch() if self._lane is not None else self.stage.max_batch
        if limit > 1:  # run now when nothing more is buffered (streams/batching.py)
            batch = collect_batch(first, self._consumer.consume, limit, self.stage.max_wait_ms / 1000)
        good = []
        for m in batch:
            err = m.error()
            if err is None:
                good.append(m)
            elif err.code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error: %s", err)
        return self._lane.select(good) if self._lane is not None else good

    def _handle(self, msgs: list[Message]) -> None:
        started = time.perf_counter()
        spans = [telemetry.start_consumer_span(self.stage.timing_label, m.topic(), m.headers()) for m in msgs]
        results: list[Result | None] = [None] * len(msgs)
        inbound: dict[int, Inbound] = {}
        for i, m in enumerate(msgs):
            logical = self._inputs.get(m.topic(), self.stage.input_topic)
            try:
                _, value = self.codec.decode(m.value(), expect=schema_of(logical))
            except StageError as exc:
                results[i] = exc
                continue
            key = m.key().decode("utf-8", "replace") if m.key() is not None else None
            inbound[i] = Inbound(value, key, m.partition(), m.offset(), list(m.headers() or []), logical)

        attempts = {i: 0 for i in inbound}
        retry_policy = RetryPolicy(self.max_attempts, self.backoff_s)
        pending = list(inbound)
        compute = 0.0
        while pending:
            t0 = time.perf_counter()
            got = self._process([inbound[i] for i in pending])
            compute += time.perf_counter() - t0
            retry = []
            for i, res in zip(pending, got):
                attempts[i] += 1
                results[i] = res
                if isinstance(res, StageError) and not isinstance(res, Skipped):
                    metrics.failed.labels(self.stage.name, res.error_class, res.code).inc()
                    if res.transient and retry_policy.retries_after(attempts[i]):
                        retry.append(i)
            if retry:
                time.sleep(retry_policy.delay(attempts[retry[0]]))
            pending = retry

        held = self._hold_unanswered(msgs, results)
        done = {i for i, m in enumerate(msgs) if m.offset() < held.get((m.topic(), m.partition()), m.offset() + 1)}
        to_produce: list[tuple[Output, Any]] = []
        for i, (m, res) in enumerate(zip(msgs, results)):
            if i not in done:
                continue  # held: neither produced, nor dead-lettered, nor committed
            if isinstance(res, Skipped):
                log.info("skipped %s[%d]@%d: %s", m.topic(), m.partition(), m.offset(), res.reason)
                metrics.skipped.labels(self.stage.name, res.code).inc()
            elif isinstance(res, StageError):
                self._dead_letter(m, res, attempts.get(i, 1))
                spans[i].set_status(telemetry.trace.Status(telemetry.trace.StatusCode.ERROR, res.reason))
            else:
                to_produce += [(o, telemetry.span_context(spans[i])) for o in res or []]
        self._produce_all(to_produce, stage_ms=1000 * compute / max(1, len(inbound)))
        by_topic: dict[str, list[Message]] = {self.input_topic: []}
        for i in sorted(done):
            by_topic.setdefault(msgs[i].topic(), []).append(msgs[i])
        if self._deferred:
            self._checkpoint.commit_when_acknowledged({t: last_offsets(h) for t, h in by_topic.items() if h})
        else:
            for topic, handled in by_topic.items():  # the first commit flushes; the others find nothing left
                self._checkpoint.commit(last_offsets(handled), topic=topic)
        for span in spans:
            span.end()

        n = len(msgs)
        wall = time.perf_counter() - started
        self._processed += n
        self._last_progress = time.time()
        metrics.processed.labels(self.stage.name).inc(n)
        metrics.batch_size.labels(self.stage.name).observe(n)
        metrics.last_progress.labels(self.stage.name).set(self._last_progress)
        for _ in range(n):
            metrics.compute_seconds.labels(self.stage.name).observe(compute / n)
            metrics.wall_seconds.labels(self.stage.name).observe(wall / n)
        now_ms = time.time() * 1000
        for ev in inbound.values():
            if "arrived_at" in ev.value:
                metrics.end_to_end_seconds.labels(self.stage.name).observe(max(0.0, now_ms - ev.value["arrived_at"]) / 1000)

    def _hold_unanswered(self, msgs: list[Message], results: list[Result | None]) -> dict[tuple[str, int], int]:
        """(topic, partition) -> the first offset whose peer did not answer: any transient failure
        of a retry-until-answered stage, a blob store that does not answer for the others."""
        if self._holds is None:
            return {}
        held: dict[tuple[str, int], int] = {}
        for m, res in zip(msgs, results):
            waits = self.stage.retry_until_answered or isinstance(res, BlobStoreUnavailable)
            key = (m.topic(), m.partition())
            if isinstance(res, StageError) and res.transient and waits and key not in held:
                held[key] = m.offset()
                self._holds.hold(m.partition(), m.offset(), res.reason, topic=m.topic())
        self._holds.answered({(m.topic(), m.partition()) for m in msgs} - set(held))
        return held

    def _process(self, events: list[Inbound]) -> list[Result]:
        if self.state is None:
            return self.stage.process_batch(events)
        results: list[Result] = []
        for ev in events:  # stateful: one at a time, so state writes land in the input's partition
            self.state.current_partition = ev.partition
            results += self.stage.process_batch([ev])
        return results

    # -- producing (the checkpoint judges and commits) ----------------------------
    def _produce_all(self, outputs: list[tuple[Output, Any]], stage_ms: float | None = None) -> None:
        """Encode and produce; each output gets a producer span under its parent trace context."""
        for out, parent in outputs:
            topic = self.settings.topic(lane_of(out.topic, out.value))  # an urgent event takes the STAT twin
            headers = telemetry.producer_headers(self.stage.timing_label, topic, parent)
            if stage_ms is not None and "stage_ms" in out.value:
                out.value["stage_ms"] = {**out.value["stage_ms"], self.stage.timing_label: round(stage_ms, 3)}
            value = self.codec.encode(out.schema, out.value, topic)
            hdrs = headers + [("radstream-stage", self.stage.name.encode())]
            if "idempotency_key" in out.value:
                hdrs.append(("radstream-idempotency-key", out.value["idempotency_key"].encode()))
            self._producer.produce(topic, out.key.encode(), value, hdrs)
            metrics.produced.labels(self.stage.name, out.topic).inc()

    def _dead_letter(self, m: Message, err: StageError, attempts: int) -> None:
        record = {
            "stage": self.stage.name,
            "source_topic": m.topic(),
            "partition": m.partition(),
            "offset": m.offset(),
            "key": m.key(),
            "value": m.value(),
            "headers": [{"key": k, "value": v} for k, v in (m.headers() or [])],
            "error_class": "TRANSIENT_EXHAUSTED" if isinstance(err, TransientError) else "PERMANENT",
            "error_code": err.code,
            "error_message": err.reason,
            "attempts": attempts,
            "failed_at": int(time.time() * 1000),
        }
        log.warning("dead-lettered %s[%d]@%d: %s (%s)", m.topic(), m.partition(), m.offset(), err.reason, err.code)
        logical = dlq(self._inputs.get(m.topic(), self.stage.input_topic))
        topic = self.settings.topic(logical)
        self._producer.produce(topic, m.key(), self.codec.encode(schema_of(logical), record, topic),
                               list(m.headers() or []))
        metrics.dead_lettered.labels(self.stage.name, err.code).inc()

    # -- observability -------------------------------------------------------------
    def _update_lag(self) -> None:
        now = time.time()
        if now - self._last_lag_check < 5 or not self._assigned:
            return
        self._last_lag_check = now
        parts = [TopicPartition(topic, p) for topic in self._inputs for p in self._assigned]
        try:
            committed = self._consumer.committed(parts, timeout=2)
        except Exception as exc:  # lag is best-effort telemetry; log and carry on
            log.debug("lag check failed: %s", exc)
            return
        for tp in committed:
            _, high = self._consumer.get_watermark_offsets(tp, cached=True) or (0, 0)
            offset = max(tp.offset, 0)
            lag = self._lag[(tp.topic, tp.partition)] = max(0, high - offset)
            metrics.consumer_lag.labels(self.stage.name, self._lag_label(tp.topic, tp.partition)).set(lag)

    def _lag_label(self, topic: str, partition: int) -> str:
        """The lag metric's partition label: the number for the input topic (as before), topic:number else."""
        return str(partition) if topic == self.input_topic else f"{self._inputs.get(topic, topic)}:{partition}"

    def health(self) -> dict[str, Any]:
        """Unhealthy (503) when work waits and nothing moves: lag > 0 with no progress, or a
        main loop that stopped turning, for `stall_after_s`. An idle stage with no lag is healthy."""
        now = time.time()
        lag = sum(v for (_, p), v in self._lag.items() if p in self._assigned)
        progress_age = now - self._last_progress
        loop_age = now - self._last_loop
        stalled = (lag > 0 and progress_age > self.stall_after_s) or loop_age > self.stall_after_s
        holds = self._holds.health() if self._holds is not None else {"healthy": True}
        return {
            "stage": self.stage.name,
            "group": self.group_id,
            "pid": os.getpid(),
            "healthy": not stalled and bool(holds.pop("healthy")),
            "partitions": self._assigned,
            "lag": lag,
            "loop_age_s": round(loop_age, 3),
            "last_progress_age_s": round(progress_age, 3),
            "processed": self._processed,
            "config_version": self._config.book.version,
            "config_rejections": self._config.book.rejections,
            "config_untrusted": self._config.untrusted,
            "config_last_error": self._config.book.last_error,
            **holds,
            **({"stat_topic": self.stat_topic, "urgent_handled": self._lane.urgent_seen} if self._lane else {}),
            **self.stage.health(),
        }


def serve_unhealthy(stage: str, reason: str, host: str = "127.0.0.1", port: int = 0) -> int:
    """A stage that cannot start (e.g. a model that fails authentication) keeps answering
    /healthz with 503 and the reason until SIGTERM, so probes and `radstream status` say why."""
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    server = HealthServer(lambda: {"stage": stage, "pid": os.getpid(), "healthy": False, "error": reason},
                          host=host, port=port).start()
    reg = register_process(stage, server.url, {"error": reason})
    log.error("stage %s cannot start: %s (serving /healthz as unhealthy on %s)", stage, reason, server.url)
    try:
        while not stopping:
            time.sleep(0.2)
    finally:
        server.stop()
        reg.unlink(missing_ok=True)
    return 1
