"""`radstream bench --compare blob-store|broker`: the same streamed burst on two setups, alternated
run by run in one invocation, so the two see the same machine.

- `blob-store`: blobs on `file://` (a folder under RADSTREAM_HOME) against `s3://` on an embedded
  SeaweedFS (services/object_store.py, the server the tests use), plus the blob store's own put and
  get latency per blob size (1-30 MB) on each;
- `broker`: the embedded broker in memory against `--durable DIR` (Tansu's S3 engine on an embedded
  SeaweedFS in DIR, D-051), blobs on files for both.

Every run gets fresh storage (a content-addressed store skips a put it already has, which would
flatter the second run) and records the load average at its start and end: the machine is shared,
and a figure means little without it. The in-process baseline is skipped: the comparison is
between the two streamed setups, `ratio` is the second's median over the first's.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Callable
from statistics import median
from typing import Any

from radstream.services.bench import run_bench
from radstream.streams.blobstore_base import BlobStore
from radstream.streams.config import Config

BLOB_SIZES_MB = (1, 4, 16, 30)
COMPARISONS = ("blob-store", "broker")


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, as `uptime` shows them."""
    return [round(x, 2) for x in os.getloadavg()]


def summarise(runs: list[dict[str, Any]], first: str, second: str) -> dict[str, Any]:
    """Per setup the median streamed images/s and p50 latency over its runs, and second / first."""
    out: dict[str, Any] = {}
    for setup in (first, second):
        mine = [r for r in runs if r["setup"] == setup]
        if not mine:
            raise ValueError(f"no run of {setup!r} to summarise")
        out[setup] = {"runs": len(mine),
                      "streamed_images_per_s": median(r["streamed_images_per_s"] for r in mine),
                      "p50_ms": median(r["p50_ms"] for r in mine)}
    out["ratio"] = {"streamed_images_per_s": out[second]["streamed_images_per_s"] / out[first]["streamed_images_per_s"],
                    "p50_ms": out[second]["p50_ms"] / out[first]["p50_ms"]}
    return out


def blob_latency(stores: dict[str, BlobStore], sizes_mb: tuple[int, ...] = BLOB_SIZES_MB, reps: int = 5,
                 say: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Median ms of `put_array` and `get_array` (the sha256 check included) per store and size, the
    stores alternated per repetition; a new random float32 array each time, so no put is skipped."""
    import numpy as np

    rng = np.random.default_rng(20261204)
    rows = []
    for size in sizes_mb:
        times: dict[str, dict[str, list[float]]] = {name: {"put": [], "get": []} for name in stores}
        for _ in range(reps):
            for name, store in stores.items():
                array = rng.random(size * (1 << 20) // 4, dtype=np.float32)
                t0 = time.perf_counter()
                ref = store.put_array(array)
                t1 = time.perf_counter()
                store.get_array(ref)
                t2 = time.perf_counter()
                times[name]["put"].append(1000 * (t1 - t0))
                times[name]["get"].append(1000 * (t2 - t1))
        row = {"size_mb": size, **{f"{name}_{op}_ms": median(v) for name, ops in times.items() for op, v in ops.items()}}
        rows.append(row)
        say(f"{size:>3} MB: " + ", ".join(f"{name} put {row[f'{name}_put_ms']:.1f} / get {row[f'{name}_get_ms']:.1f} ms"
                                          for name in stores))
    return rows


def _one_run(setup: str, config: Config, bootstrap: str | None, images: int, warmup: int, say: Callable[[str], None],
             env: dict[str, str], durable: str | None = None) -> dict[str, Any]:
    say(f"--- {setup}: {images} images at once (load average {' '.join(map(str, load_average()))}) ---")
    start_load = load_average()
    report = run_bench(config, bootstrap, images=images, warmup=warmup, say=say, env=env, durable=durable,
                       inprocess=False)
    return {"setup": setup, "streamed_images_per_s": report["streamed_images_per_s"],
            "p50_ms": report["latency_ms"]["p50"], "p99_ms": report["latency_ms"]["p99"],
            "load_start": start_load, "load_end": load_average(), "stages": report["stages"]}


def run_blob_store_comparison(config: Config, bootstrap: str | None, images: int = 40, warmup: int = 4,
                              rounds: int = 3, say: Callable[[str], None] = print) -> dict[str, Any]:
    """file:// then s3:// (SeaweedFS), `rounds` times; then put/get latency on both stores."""
    from radstream.services.object_store import EmbeddedObjectStore
    from radstream.streams.blobstore import open_blob_store

    folder = config.home / "bench-seaweedfs"
    shutil.rmtree(folder, ignore_errors=True)
    server = EmbeddedObjectStore(folder).start()
    runs: list[dict[str, Any]] = []
    try:
        bucket = "radstream-bench"
        server.ensure_bucket(bucket)
        for i in range(rounds):
            path = config.home / f"bench-blobs-{i}"
            runs.append(_one_run("file", dataclasses.replace(config, blob_url=str(path)), bootstrap, images, warmup,
                                 say, {"RADSTREAM_BLOB_URL": str(path)}))
            shutil.rmtree(path, ignore_errors=True)
            url = f"s3://{bucket}/run-{i}"
            runs.append(_one_run("s3", dataclasses.replace(config, blob_url=url), bootstrap, images, warmup, say,
                                 {**server.env(), "RADSTREAM_BLOB_URL": url}))
        say(f"--- put/get per blob (load average {' '.join(map(str, load_average()))}) ---")
        latency_path = config.home / "bench-blobs-latency"
        latency_load = load_average()
        latency = blob_latency({"file": open_blob_store(str(latency_path)),
                                "s3": open_blob_store(f"s3://{bucket}/latency", env=server.env())}, say=say)
        shutil.rmtree(latency_path, ignore_errors=True)
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    report = {"compare": "blob-store", "images": images, "rounds": rounds, "runs": runs,
              "summary": summarise(runs, "file", "s3"),
              "blob_latency": {"load_start": latency_load, "load_end": load_average(), "sizes": latency}}
    say(format_comparison(report, "file", "s3"))
    return report


def run_broker_comparison(config: Config, bootstrap: str | None, images: int = 40, warmup: int = 4,
                          rounds: int = 3, say: Callable[[str], None] = print) -> dict[str, Any]:
    """The embedded broker in memory, then `--durable DIR`, `rounds` times, blobs on files."""
    if bootstrap:
        raise ValueError("--compare broker runs the embedded broker itself (memory and --durable): without --bootstrap")
    runs: list[dict[str, Any]] = []
    for i in range(rounds):
        for setup in ("memory", "durable"):
            path = config.home / f"bench-blobs-{setup}-{i}"
            durable = config.home / f"bench-durable-{i}" if setup == "durable" else None
            runs.append(_one_run(setup, dataclasses.replace(config, blob_url=str(path)), None, images, warmup, say,
                                 {"RADSTREAM_BLOB_URL": str(path)}, str(durable) if durable else None))
            shutil.rmtree(path, ignore_errors=True)
            if durable:
                shutil.rmtree(durable, ignore_errors=True)
    report = {"compare": "broker", "images": images, "rounds": rounds, "runs": runs,
              "summary": summarise(runs, "memory", "durable")}
    say(format_comparison(report, "memory", "durable"))
    return report


def format_comparison(report: dict[str, Any], first: str, second: str) -> str:
    lines = [f"{'run':<10} {'img/s':>7} {'p50 ms':>8} {'p99 ms':>8}  load average at start -> end"]
    for r in report["runs"]:
        lines.append(f"{r['setup']:<10} {r['streamed_images_per_s']:>7.2f} {r['p50_ms']:>8.0f} {r['p99_ms']:>8.0f}  "
                     f"{' '.join(map(str, r['load_start']))} -> {' '.join(map(str, r['load_end']))}")
    s = report["summary"]
    lines.append(f"median {first}: {s[first]['streamed_images_per_s']:.2f} img/s, p50 {s[first]['p50_ms']:.0f} ms; "
                 f"{second}: {s[second]['streamed_images_per_s']:.2f} img/s, p50 {s[second]['p50_ms']:.0f} ms; "
                 f"{second}/{first}: throughput {s['ratio']['streamed_images_per_s']:.2f}x, "
                 f"p50 {s['ratio']['p50_ms']:.2f}x")
    return "\n".join(lines)
