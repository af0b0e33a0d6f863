"""`radstream bench --stat N`: the STAT lane under load (D-044, D-057).

One stack, warmed with three routine studies (every model loaded), then two phases: N urgent
single-image studies published on an idle pipeline (the baseline), then a routine backlog (500 by default) and, at once after it, N more urgent
studies. Each urgent study's latency is from just before its publish to its final result's
broker timestamp (what qc produced it at, not when this process read it). The target is the
loaded p50 at most 2x the idle p50; the report also says how much of the backlog was done when
the last urgent result landed, which shows whether the urgent ones overtook it, and for each
stage the median time from an urgent publish to that stage's output (`hops_ms`), which says
where an urgent image waited.
"""

from __future__ import annotations

import time
from pathlib import Path

from radstream.services.chaos import make_events
from radstream.services.percentiles import percentile
from radstream.services.publish import publish
from radstream.services.stack import Stack
from radstream.streams.blobstore import open_blob_store
from radstream.streams.config import Config
from radstream.streams.kafka.producer import EventPublisher
from radstream.streams.kafka.reader import read_events
from radstream.streams.kafka.topics import (
    FINDINGS_FUSED,
    IMAGE_DECODED,
    IMAGE_PREPROCESSED,
    INFERENCE_RESULTS,
    STAT_LANED,
    STUDY_RESULTS,
    stat_twin,
)

# The hops an urgent image takes, each the output topic of one stage (and its .stat twin, if any).
HOPS = {"decode": IMAGE_DECODED, "preprocess": IMAGE_PREPROCESSED, "infer (last model)": INFERENCE_RESULTS,
        "fuse": FINDINGS_FUSED, "qc": STUDY_RESULTS}


def run_stat_bench(config: Config, bootstrap: str | None, urgent: int = 5, backlog: int = 500,
                   say=print) -> dict:
    say(f"preparing {backlog} routine and {2 * urgent} urgent arrival(s) ...")
    warmup = 3
    events = make_events(config.home / "stat-data", backlog + 2 * urgent + warmup)
    idle_paths = [p for p, _, _ in events[:urgent]]
    loaded_paths = [p for p, _, _ in events[urgent:2 * urgent]]
    warmup_paths = [p for p, _, _ in events[2 * urgent:2 * urgent + warmup]]
    routine_paths = [p for p, _, _ in events[2 * urgent + warmup:]]
    with Stack(config, bootstrap) as stack:
        settings = config.kafka.with_bootstrap(stack.bootstrap)
        stack.wait_ready(timeout_s=600)
        producer = EventPublisher(settings)
        store = open_blob_store(config.blob_url)
        # Warm: every model loaded (infer loads in the background once it holds partitions, D-043)
        # and every stage past its first message, so the idle baseline measures the pipeline only.
        _urgent_latencies(settings, stack, producer, store, warmup_paths, priority="routine")
        say(f"idle: {urgent} urgent studies on an idle pipeline ...")
        idle = _urgent_latencies(settings, stack, producer, store, idle_paths)
        say(f"loaded: {backlog} routine studies, then {urgent} urgent ones ...")
        t0 = time.monotonic()
        routine, _ = publish(producer, store, routine_paths, log=lambda m: None)
        say(f"  backlog published in {time.monotonic() - t0:.1f}s")
        loaded = _urgent_latencies(settings, stack, producer, store, loaded_paths)
        # By the broker's timestamps: a read to the end goes on while results keep coming (D-011),
        # so what it finds is the backlog done by the end of the read, not by the last urgent result.
        finals: dict[str, int] = {}
        for msg, r in read_events(settings, STUDY_RESULTS, skip_undecodable=True):
            if r["final"]:
                finals.setdefault(r["study_uid"], msg.timestamp()[1])
        urgent_done_at = max(finals[s] for s in loaded)
        routine_done = sum(1 for s in set(routine) if s in finals and finals[s] <= urgent_done_at)
        hops = {"idle": _hop_medians(settings, idle), "loaded": _hop_medians(settings, loaded)}
        producer.close()
    idle_p50, loaded_p50 = percentile(list(idle.values()), 50), percentile(list(loaded.values()), 50)
    report = {
        "urgent": urgent, "backlog": backlog,
        "idle_ms": {"p50": idle_p50, "max": max(idle.values())},
        "loaded_ms": {"p50": loaded_p50, "max": max(loaded.values())},
        "ratio_p50": loaded_p50 / idle_p50,
        "routine_done_when_urgent_done": routine_done,
        "latency_ms": {"p50": loaded_p50},
        "hops_ms": hops,
    }
    say(f"urgent latency: idle p50 {idle_p50:.0f} ms (max {report['idle_ms']['max']:.0f}); behind {backlog} "
        f"routine: p50 {loaded_p50:.0f} ms (max {report['loaded_ms']['max']:.0f}), {report['ratio_p50']:.2f}x idle; "
        f"{routine_done}/{backlog} routine studies were done when the last urgent one was")
    for phase, medians in hops.items():
        say(f"  {phase}, median ms from publish to each stage's output: "
            + ", ".join(f"{hop} {ms:.0f}" for hop, ms in medians.items()))
    return report


def _hop_medians(settings, latencies: dict[str, float]) -> dict[str, float]:
    """Per stage, the median over the urgent studies of the time from publish to that stage's output
    (broker timestamps; infer: its last model's). `latencies` is study -> ms, as measured, so the
    publish time is the final result's timestamp less it."""
    finals: dict[str, float] = {}
    for msg, r in read_events(settings, STUDY_RESULTS, skip_undecodable=True):
        if r["final"] and r["study_uid"] in latencies and r["study_uid"] not in finals:
            finals[r["study_uid"]] = msg.timestamp()[1]
    sent = {study: finals[study] - ms for study, ms in latencies.items() if study in finals}
    medians = {}
    for hop, topic in HOPS.items():
        at: dict[str, float] = {}
        for t in (topic, stat_twin(topic)) if topic in STAT_LANED else (topic,):
            for msg, r in read_events(settings, t, skip_undecodable=True):
                if r["study_uid"] in sent:
                    at[r["study_uid"]] = max(at.get(r["study_uid"], 0.0), msg.timestamp()[1])
        if at:
            medians[hop] = percentile([at[s] - sent[s] for s in at], 50)
    return medians


def _urgent_latencies(settings, stack: Stack, producer: EventPublisher, store, paths: list[Path],
                      timeout_s: float = 900.0, priority: str = "stat") -> dict[str, float]:
    """Publish `paths` (one study each, urgent by default) and wait for their final results: study -> ms."""
    sent: dict[str, float] = {}
    for path in paths:
        at = time.time() * 1000
        [study], _ = publish(producer, store, [path], log=lambda m: None, priority=priority)
        sent[study] = at
    got: dict[str, float] = {}
    deadline = time.monotonic() + timeout_s
    for msg, result in read_events(settings, STUDY_RESULTS, follow=True, idle_timeout_s=timeout_s,
                                   skip_undecodable=True):
        stack.poll()
        study = result["study_uid"]
        if result["final"] and study in sent and study not in got:
            got[study] = msg.timestamp()[1] - sent[study]
        if set(got) == set(sent) or time.monotonic() > deadline:
            break
    missing = set(sent) - set(got)
    if missing:
        raise TimeoutError(f"{len(missing)} urgent result(s) never arrived within {timeout_s:.0f} s")
    return got
