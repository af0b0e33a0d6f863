"""`radstream bench --chaos N`: the pipeline under load while random stage processes are
kill -9'd N times (the supervisor restarts them, as `radstream up` or Kubernetes would).

At the end every arrival must have exactly one final result after dedupe, or one DLQ
record. Prints events, kills, lost, duplicates seen and removed, and recovery time per kill
(kill to the replacement process holding partitions again).
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
import urllib.request
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

from radstream.services.publish import publish
from radstream.services.stack import Stack
from radstream.streams.blobstore import open_blob_store
from radstream.streams.config import Config
from radstream.streams.kafka.producer import EventPublisher
from radstream.streams.kafka.reader import read_events
from radstream.streams.kafka.topics import CONSUMED, STUDY_RESULTS, dlq


def make_events(folder: Path, events: int, distinct: int = 40) -> list[tuple[Path, str, str]]:
    """`events` single-instance studies: `distinct` phantoms, cloned with fresh UIDs.
    Returns (path, study UID, SOP UID) per event."""
    from radstream.services.synthetic.studies import write_synthetic_study

    folder.mkdir(parents=True, exist_ok=True)
    seeds = [write_synthetic_study(folder / f"seed-{i}", 1, seed=300_000 + i)[0] for i in range(min(distinct, events))]
    paths = []
    for i in range(events):
        ds = pydicom.dcmread(seeds[i % len(seeds)])
        ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        path = folder / f"event-{i:05d}.dcm"
        ds.save_as(path)
        paths.append((path, str(ds.StudyInstanceUID), str(ds.SOPInstanceUID)))
    return paths


def _health(url: str) -> dict:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=1) as resp:
            return json.loads(resp.read())
    except OSError:
        return {}


def _group_of(home: Path, stage: str, pid: int) -> str | None:
    try:
        return json.loads((home / "run" / f"{stage}-{pid}.json").read_text())["group"]
    except (OSError, ValueError, KeyError):
        return None


def _recovered(home: Path, stage: str, group: str | None, old_pid: int, timeout_s: float,
               stack: Stack) -> float | None:
    """Seconds until a new process in the killed one's consumer group holds partitions."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        stack.poll()
        for path in (home / "run").glob(f"{stage}-*.json"):
            try:
                entry = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if entry["pid"] != old_pid and entry.get("group") == group \
                    and _health(entry["health_url"]).get("partitions"):
                return time.monotonic() - t0
        time.sleep(0.05)
    return None


def run_chaos(config: Config, bootstrap: str | None, kills: int = 20, events: int = 1000,
              seed: int = 0, say=print) -> dict:
    rng = random.Random(seed)
    say(f"preparing {events} arrival(s) ...")
    arrivals = make_events(config.home / "chaos-data", events)
    paths = [p for p, _, _ in arrivals]
    with Stack(config, bootstrap) as stack:
        assert stack.supervisor is not None
        settings = config.kafka.with_bootstrap(stack.bootstrap)
        stack.wait_ready()
        producer = EventPublisher(settings)
        store = open_blob_store(config.blob_url)
        studies: list[str] = []

        def feed() -> None:
            for i in range(0, len(paths), 10):
                studies.extend(publish(producer, store, paths[i:i + 10], log=lambda m: None)[0])

        t_start = time.monotonic()
        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        recoveries = []
        for k in range(kills):
            time.sleep(rng.uniform(0.5, 2.5))
            # Only processes that are up and registered: a kill must hit a running consumer.
            running = [c for c in stack.supervisor.children if c.proc and c.proc.poll() is None
                       and _group_of(config.home, c.stage, c.proc.pid)]
            child = rng.choice(running)
            old_pid = child.proc.pid
            group = _group_of(config.home, child.stage, old_pid)
            os.kill(old_pid, signal.SIGKILL)
            took = _recovered(config.home, child.stage, group, old_pid, 60, stack)
            recoveries.append({"stage": child.label, "recovery_s": took})
            say(f"kill {k + 1}/{kills}: {child.label} (pid {old_pid}) recovered in "
                + (f"{took:.2f}s" if took is not None else "NEVER (60 s)"))
        feeder.join()
        producer.close()
        say(f"all {len(studies)} arrival(s) published; waiting for results ...")
        keys: dict[str, set[str]] = {}
        partial_first: set[str] = set()  # a study whose first final result lacked a model (fuse's deadline)
        amendments: set[str] = set()  # late_amendment results (distinct keys): a later, different version
        raw = 0
        deadline = time.monotonic() + 600
        for _, result in read_events(settings, STUDY_RESULTS, follow=True, idle_timeout_s=120):
            stack.poll()
            if not result["final"]:
                continue  # incremental updates are not study results
            raw += 1
            if result["study_uid"] not in keys and any(i["missing_models"] for i in result["images"]):
                partial_first.add(result["study_uid"])
            if result["completion"] == "late_amendment":
                amendments.add(result["idempotency_key"])
            keys.setdefault(result["study_uid"], set()).add(result["idempotency_key"])
            if set(studies) <= set(keys) or time.monotonic() > deadline:
                break
        elapsed = time.monotonic() - t_start
        dead = set()
        for topic in CONSUMED:
            for _, record in read_events(settings, dlq(topic)):
                dead.add(record["key"].decode() if record["key"] else "")
    # Each arrival is one single-instance study; DLQ records are keyed by its SOP UID.
    lost = [study for _, study, sop in arrivals if study not in keys and sop not in dead]
    distinct = sum(len(v) for v in keys.values())
    report = {
        "events": len(arrivals), "published": len(studies), "kills": kills, "elapsed_s": elapsed,
        # results read until every study had one: a second, different final result is not a duplicate
        "results_seen": raw, "duplicates_removed": raw - distinct,
        "studies_with_more_than_one_distinct_result": sum(1 for v in keys.values() if len(v) > 1),
        "studies_first_final_partial": len(partial_first), "late_amendments": len(amendments),
        "distinct_results": distinct, "dead_lettered": len(dead), "lost": len(lost),
        "recoveries": recoveries,
    }
    times = sorted(r["recovery_s"] for r in recoveries if r["recovery_s"] is not None)
    say(f"events {report['events']}, kills {kills}, lost {report['lost']}, results seen {raw}, "
        f"duplicates removed {report['duplicates_removed']}, first final result partial "
        f"{report['studies_first_final_partial']}, amendments {report['late_amendments']}, "
        f"dead-lettered {len(dead)}; recovery per kill: "
        + (f"median {times[len(times) // 2]:.2f}s, max {times[-1]:.2f}s" if times else "n/a")
        + f"; {elapsed:.0f}s in all")
    return report
