"""`radstream bench`: throughput and latency of the streamed pipeline against the same
stages chained in one process without Kafka.

Per-stage overhead is read from each stage's own /metrics: wall time per message
(decode, produce, flush, commit) minus the time inside the stage's function.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from radstream.services.inprocess import InProcessPipeline
from radstream.services.percentiles import percentile
from radstream.services.publish import publish
from radstream.services.results import study_results
from radstream.services.stack import Stack
from radstream.services.status import stage_statuses
from radstream.streams.blobstore import open_blob_store
from radstream.streams.config import Config
from radstream.streams.kafka.producer import EventPublisher


@dataclass
class StageOverhead:
    stage: str
    messages: int
    compute_ms: float
    wall_ms: float

    @property
    def overhead_ms(self) -> float:
        return self.wall_ms - self.compute_ms


def _histogram_sums(text: str, name: str) -> dict[str, tuple[float, float]]:
    """{stage: (sum, count)} for a Prometheus histogram in exposition text."""
    sums: dict[str, list[float]] = {}
    for line in text.splitlines():
        for suffix, idx in (("_sum", 0), ("_count", 1)):
            if line.startswith(name + suffix + "{"):
                stage = line.split('stage="')[1].split('"')[0]
                sums.setdefault(stage, [0.0, 0.0])[idx] += float(line.rsplit(" ", 1)[1])
    return {k: (v[0], v[1]) for k, v in sums.items()}


def stage_overheads(home: Path) -> list[StageOverhead]:
    rows = []
    for entry in stage_statuses(home / "run"):
        with urllib.request.urlopen(entry["health_url"] + "/metrics", timeout=5) as resp:
            text = resp.read().decode()
        compute = _histogram_sums(text, "radstream_stage_compute_seconds")
        wall = _histogram_sums(text, "radstream_stage_wall_seconds")
        label = entry["stage"] + (f":{entry['health']['models'][0]['name']}" if entry["health"].get("models") else "")
        for stage, (csum, count) in compute.items():
            if count:
                rows.append(StageOverhead(label, int(count), 1000 * csum / count, 1000 * wall[stage][0] / count))
    return sorted(rows, key=lambda r: r.stage)


def infer_backends(home: Path) -> dict[str, str]:
    """{model: backend} as each running infer stage reports it on /healthz."""
    found = {}
    for entry in stage_statuses(home / "run"):
        for model in entry["health"].get("models", []):
            found[model["name"]] = model["backend"]
    return dict(sorted(found.items()))


def _wait_for(pending: set[str], settings, stack: Stack, timeout_s: float) -> dict[str, float]:
    landed: dict[str, float] = {}
    for result in study_results(settings, follow=True, idle_timeout_s=timeout_s):
        stack.poll()
        if result["study_uid"] in pending and result["study_uid"] not in landed:
            landed[result["study_uid"]] = time.time()
            for image in result["images"]:
                landed.setdefault("latency:" + image["sop_uid"], image["latency_ms"])
        if len([k for k in landed if not k.startswith("latency:")]) == len(pending):
            break
    return landed


def run_bench(config: Config, bootstrap: str | None, images: int = 40, warmup: int = 4, rate: float = 0.0,
              say=print, env: dict[str, str] | None = None, durable: str | None = None,
              inprocess: bool = True) -> dict:
    """`rate` > 0 publishes that many images per second (latency without queueing); 0 publishes
    them all at once (throughput; latency then includes the queue).

    `env`: variables for the stages and this process's blob store (RADSTREAM_BLOB_URL, AWS_*);
    `durable`: the embedded broker's `--durable`; `inprocess=False` skips the in-process baseline
    (services/bench_compare.py compares two streamed setups instead)."""
    from radstream.services.synthetic.studies import write_synthetic_study

    data = config.home / "bench-data"
    say(f"generating {images + warmup} synthetic images ...")
    warm_dirs = [write_synthetic_study(data / f"warm-{i}", 1, seed=90_000 + i)[0].parent for i in range(warmup)]
    dirs = [write_synthetic_study(data / f"img-{i}", 1, seed=100_000 + i)[0].parent for i in range(images)]

    with Stack(config, bootstrap, env=env, durable=durable) as stack:
        settings = config.kafka.with_bootstrap(stack.bootstrap)
        store = open_blob_store(config.blob_url, env={**os.environ, **env} if env else None)
        producer = EventPublisher(settings)
        say(f"pipeline up on {stack.bootstrap}; warming up with {warmup} image(s) ...")
        warm, _ = publish(producer, store, warm_dirs, log=lambda m: None)
        _wait_for(set(warm), settings, stack, 300)
        before = {r.stage: r for r in stage_overheads(config.home)}
        say(f"streaming {images} image(s)" + (f" at {rate:g}/s" if rate > 0 else " at once") + " ...")
        t0 = time.time()
        studies = []
        for i, d in enumerate(dirs if rate > 0 else [dirs]):
            if rate > 0:
                time.sleep(max(0.0, t0 + i / rate - time.time()))
            studies += publish(producer, store, d if isinstance(d, list) else [d], log=lambda m: None)[0]
        landed = _wait_for(set(studies), settings, stack, 600)
        elapsed = max(v for k, v in landed.items() if not k.startswith("latency:")) - t0
        after = stage_overheads(config.home)
        backends = infer_backends(config.home)
        producer.close()
    latencies = [v for k, v in landed.items() if k.startswith("latency:")]
    overheads = []
    for row in after:  # subtract the warm-up so only steady state counts
        prev = before.get(row.stage)
        n = row.messages - (prev.messages if prev else 0)
        if n <= 0:
            continue
        c = (row.compute_ms * row.messages - (prev.compute_ms * prev.messages if prev else 0)) / n
        w = (row.wall_ms * row.messages - (prev.wall_ms * prev.messages if prev else 0)) / n
        overheads.append(StageOverhead(row.stage, n, c, w))

    inproc_elapsed = None
    if inprocess:
        say("running the same stages in one process without Kafka ...")
        inproc = InProcessPipeline(config)
        inproc.run(warm_dirs)
        t1 = time.perf_counter()
        inproc.stage_seconds.clear()
        inproc.run(dirs)
        inproc_elapsed = time.perf_counter() - t1

    total_compute = sum(o.compute_ms * o.messages for o in overheads)
    total_overhead = sum(o.overhead_ms * o.messages for o in overheads)
    report = {
        "images": images,
        "rate": rate or "burst",
        "streamed_images_per_s": images / elapsed,
        "inprocess_images_per_s": images / inproc_elapsed if inproc_elapsed else None,
        "latency_ms": {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
                       "p99": percentile(latencies, 99)},
        "stages": [o.__dict__ | {"overhead_ms": o.overhead_ms} for o in overheads],
        "overhead_share_of_compute": total_overhead / total_compute if total_compute else None,
        # RADSTREAM_BACKEND as set for the run, and what each infer stage opened (its /healthz)
        "backend": config.backend,
        "backends": backends,
    }
    report["throughput_ratio_streamed_over_inprocess"] = (
        report["streamed_images_per_s"] / report["inprocess_images_per_s"] if inproc_elapsed else None)
    say(format_report(report))
    return report


def format_report(r: dict) -> str:
    lines = [
        f"images: {r['images']} (published {'at ' + str(r['rate']) + '/s' if r['rate'] != 'burst' else 'at once'})",
        f"throughput: streamed {r['streamed_images_per_s']:.2f} img/s"
        + (f", in-process {r['inprocess_images_per_s']:.2f} img/s (ratio {r['throughput_ratio_streamed_over_inprocess']:.2f})"
           if r["inprocess_images_per_s"] else " (no in-process baseline)"),
        f"end-to-end latency (arrival to study assembly): p50 {r['latency_ms']['p50']:.0f} ms, "
        f"p95 {r['latency_ms']['p95']:.0f} ms, p99 {r['latency_ms']['p99']:.0f} ms",
        f"backend: RADSTREAM_BACKEND={r['backend']}: "
        + ", ".join(f"{m} {b}" for m, b in r["backends"].items()),
        f"{'stage':<28} {'msgs':>5} {'compute ms':>11} {'wall ms':>9} {'overhead ms':>12}",
    ]
    for s in r["stages"]:
        lines.append(f"{s['stage']:<28} {s['messages']:>5} {s['compute_ms']:>11.2f} {s['wall_ms']:>9.2f} {s['overhead_ms']:>12.2f}")
    if r["overhead_share_of_compute"] is not None:
        lines.append(f"streaming overhead: {100 * r['overhead_share_of_compute']:.1f}% of compute")
    return "\n".join(lines)


def dump(report: dict, path: Path) -> None:
    path.write_text(json.dumps(report, indent=2))




def _stage_versions(home: Path) -> list[int]:
    return [r["health"].get("config_version", -1) for r in stage_statuses(home / "run")]


def run_config_push_bench(config: Config, bootstrap: str | None, pushes: int = 20, images: int = 20,
                          say=print) -> dict:
    """Push `pushes` threshold versions while `images` flow; time until every stage applies each.

    Also checks the switch drops and duplicates nothing: every image's study gets exactly one
    final result after dedupe.
    """
    import threading

    from radstream.services.signing import signing_key
    from radstream.services.synthetic.studies import write_synthetic_study
    from radstream.services.thresholds import push
    from radstream.streams.stages.registry import known_threshold_keys

    data = config.home / "bench-config-data"
    dirs = [write_synthetic_study(data / f"img-{i}", 1, seed=200_000 + i)[0].parent for i in range(images)]
    keys = known_threshold_keys(config)
    key = sorted(k for k in keys if k.startswith("rule:"))[0]
    with Stack(config, bootstrap) as stack:
        settings = config.kafka.with_bootstrap(stack.bootstrap)
        signer, trusted = signing_key(config, None), config.trusted_keys()  # the dev key the stack made
        n_stages = len(stack.supervisor.children) if stack.supervisor else 0
        stack.wait_ready()
        say(f"{n_stages} stages up; pushing {pushes} versions of {key} while {images} images flow ...")
        producer = EventPublisher(settings)
        store = open_blob_store(config.blob_url)
        studies: list[str] = []

        def feed() -> None:
            for d in dirs:  # spread over the pushes (each push command takes ~1.5 s)
                studies.extend(publish(producer, store, [d], log=lambda m: None)[0])
                time.sleep(1.5 * pushes / max(1, images))

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        delays, push_ms = [], []
        for i in range(pushes):
            value = 0.5 + 0.01 * (i % 2)
            t_push = time.monotonic()
            version = push(settings, [{"scope": key.split("/")[0], "values": {key: value}}], signer,
                           "propagation benchmark", keys, trusted)
            t0 = time.monotonic()  # the record is acknowledged by the broker: propagation starts here
            push_ms.append(1000 * (t0 - t_push))
            while min(_stage_versions(config.home) or [0]) < version:
                if time.monotonic() - t0 > 30:
                    raise TimeoutError(f"version {version} not applied by every stage within 30 s")
                stack.poll()
                time.sleep(0.01)
            delays.append(1000 * (time.monotonic() - t0))
        feeder.join()
        results: dict[str, set[str]] = {}
        for result in study_results(settings, follow=True, idle_timeout_s=120):
            results.setdefault(result["study_uid"], set()).add(result["idempotency_key"])
            if set(studies) <= set(results):
                break
        producer.close()
    report = {
        "pushes": pushes,
        "propagation_ms": {"p50": percentile(delays, 50), "p99": percentile(delays, 99), "max": max(delays)},
        "push_call_ms": {"p50": percentile(push_ms, 50), "max": max(push_ms)},
        "images": images,
        "studies_with_result": len(set(studies) & set(results)),
        "studies_with_more_than_one_result": sum(1 for k in results.values() if len(k) > 1),
    }
    say(f"propagation from the broker's ack to every stage's /healthz: p50 {report['propagation_ms']['p50']:.0f} ms, "
        f"p99 {report['propagation_ms']['p99']:.0f} ms, max {report['propagation_ms']['max']:.0f} ms "
        f"(the push command itself, validation and version lookup included: p50 {report['push_call_ms']['p50']:.0f} ms); "
        f"{report['studies_with_result']}/{images} studies got a result, "
        f"{report['studies_with_more_than_one_result']} got more than one")
    return report


DECODE_FILES = ("RG1_UNCR.dcm", "RG1_J2KR.dcm", "MR2_UNCR.dcm", "MR2_J2KR.dcm", "CT_small.dcm", "MR_small.dcm")


def _decode_corpus() -> list[Path]:
    import data_store
    import pydicom

    folders = [Path(data_store.__file__).parent / "data", Path(pydicom.__file__).parent / "data" / "test_files"]
    found = []
    for name in DECODE_FILES:
        for folder in folders:
            if (folder / name).exists():
                found.append(folder / name)
                break
    return found


def run_decode_bench(repeats: int = 7, say=print) -> dict:
    """Median time of the decode stage's core (decode_instance: checks, LUTs, polarity, display
    image) against a plain `pydicom.dcmread(...).pixel_array` on the same bytes, one core."""
    import io

    import pydicom

    from radstream.domain.dicom.decode import decode_instance
    from radstream.streams.stages.registry import limit_compute_threads

    limit_compute_threads(1)
    rows = []
    for path in _decode_corpus():
        data = path.read_bytes()
        ours, plain = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            decode_instance(data)
            ours.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            _ = pydicom.dcmread(io.BytesIO(data)).pixel_array
            plain.append(time.perf_counter() - t0)
        o, p = percentile(ours, 50), percentile(plain, 50)
        rows.append({"file": path.name, "radstream_ms": 1000 * o, "pydicom_ms": 1000 * p, "ratio": o / p,
                     "radstream_images_per_s": 1 / o})
    say(f"{'file':<16} {'decode_instance ms':>19} {'pixel_array ms':>15} {'ratio':>6} {'img/s/core':>11}")
    for r in rows:
        say(f"{r['file']:<16} {r['radstream_ms']:>19.1f} {r['pydicom_ms']:>15.1f} {r['ratio']:>6.2f} "
            f"{r['radstream_images_per_s']:>11.1f}")
    return {"repeats": repeats, "files": rows}


def run_preprocess_bench(config: Config, repeats: int = 7, say=print) -> dict:
    """preprocess's work on RG1 (1955x1841) for the profiles in force, one thread: each profile
    alone (`apply_profile`, what one tensor costs by itself), all of them one after another, and
    all of them with the shared steps done once (`apply_profiles`), with the shared run's time per
    step; then the stage's whole path from the uint16 blob, with the robust scale of the float
    frame (model frame, percentiles, scale) against the one from the stored integers (D-055),
    tensors checked equal. Medians of `repeats`, alternated run by run."""
    import numpy as np

    from radstream.domain.dicom.pixels import model_frame
    from radstream.models.intensity import robust_scale_stored
    from radstream.models.profile import (
        PREPROCESS_STEPS,
        apply_profile,
        apply_profiles,
        apply_profiles_to_unit,
        robust_scale,
    )
    from radstream.streams.stages.registry import limit_compute_threads, models_in_force

    limit_compute_threads(1)
    users: dict[str, list[str]] = {}
    profiles = {}
    for manifest in models_in_force(config).values():
        profiles[manifest.input_profile.hash()] = manifest.input_profile
        users.setdefault(manifest.input_profile.hash(), []).append(manifest.name)
    stored, transform = _rg1_stored()
    image = model_frame(stored, transform)
    alone: dict[str, list[float]] = {h: [] for h in profiles}
    separate, shared, steps = [], [], {step: [] for step in PREPROCESS_STEPS}
    path = {"float_scale": [], "stored_scale": [], "float_stage": [], "stored_stage": []}
    for _ in range(repeats):
        t_all = 0.0
        for h, profile in profiles.items():
            t0 = time.perf_counter()
            apply_profile(image, profile)
            alone[h].append(time.perf_counter() - t0)
            t_all += alone[h][-1]
        separate.append(t_all)
        seconds: dict[str, float] = {}
        t0 = time.perf_counter()
        apply_profiles(image, list(profiles.values()), seconds)
        shared.append(time.perf_counter() - t0)
        for step in PREPROCESS_STEPS:
            steps[step].append(seconds.get(step, 0.0))
        t0 = time.perf_counter()
        scaled_float = robust_scale(model_frame(stored, transform))
        t1 = time.perf_counter()
        float_tensors = apply_profiles_to_unit(scaled_float, list(profiles.values()))
        t2 = time.perf_counter()
        scaled_stored = robust_scale_stored(stored, transform)
        t3 = time.perf_counter()
        stored_tensors = apply_profiles_to_unit(scaled_stored, list(profiles.values()))
        t4 = time.perf_counter()
        path["float_scale"].append(t1 - t0)
        path["float_stage"].append(t2 - t0)
        path["stored_scale"].append(t3 - t2)
        path["stored_stage"].append(t4 - t2)
        if any(not np.array_equal(float_tensors[h][0], stored_tensors[h][0]) for h in profiles):
            raise AssertionError("the robust scale from the stored integers changed a tensor")
    ms = lambda xs: 1000 * percentile(xs, 50)  # noqa: E731
    rows = [{"profile": h, "models": users[h], "size": p.size, "letterbox": p.letterbox, "clahe": p.clahe.enabled,
             "alone_ms": ms(alone[h])} for h, p in profiles.items()]
    report = {"repeats": repeats, "image": "RG1_UNCR (1955x1841)", "profiles": rows,
              "separate_ms": ms(separate), "shared_ms": ms(shared),
              "speedup": percentile(separate, 50) / percentile(shared, 50),
              "shared_steps_ms": {step: ms(v) for step, v in steps.items()},
              "stage_path_ms": {k: ms(v) for k, v in path.items()},
              "stage_speedup": percentile(path["float_stage"], 50) / percentile(path["stored_stage"], 50),
              "robust_scale_speedup": percentile(path["float_scale"], 50) / percentile(path["stored_scale"], 50)}
    say(f"{'profile':<17} {'size':>4} {'letterbox':>9} {'CLAHE':>5} {'alone ms':>9}  models")
    for r in rows:
        say(f"{r['profile']:<17} {r['size']:>4} {str(r['letterbox']):>9} {str(r['clahe']):>5} {r['alone_ms']:>9.1f}  "
            + ", ".join(r["models"]))
    say(f"all {len(rows)} profiles one by one: {report['separate_ms']:.1f} ms; shared steps once: "
        f"{report['shared_ms']:.1f} ms ({report['speedup']:.2f}x); shared run per step: "
        + ", ".join(f"{k} {v:.1f} ms" for k, v in report["shared_steps_ms"].items()))
    p = report["stage_path_ms"]
    say(f"the stage from the uint16 blob: robust scale of the float frame {p['float_scale']:.1f} ms, from the "
        f"stored integers {p['stored_scale']:.1f} ms ({report['robust_scale_speedup']:.2f}x); whole path "
        f"{p['float_stage']:.1f} -> {p['stored_stage']:.1f} ms ({report['stage_speedup']:.2f}x), tensors identical")
    return report


def _rg1_stored():
    """RG1's pixel blob as decode stores it (uint16 stored values) and its PixelTransform."""
    from radstream.domain.dicom.decode import decode_instance

    [path] = [p for p in _decode_corpus() if p.name == "RG1_UNCR.dcm"]
    decoded = decode_instance(path.read_bytes())
    return decoded.stored[0], decoded.transform


def run_gateway_bench(levels: list[int], target_p99_ms: float = 100.0, rate_hz: float = 50.0,
                      say=print) -> dict:
    """Concurrent SSE clients on one gateway process, at increasing counts, with events at
    `rate_hz`: the largest count whose p99 delivery latency stays under the target
    (services/gateway/load.py; the clients run in the same process, so this is an upper
    bound on the gateway's own cost). Stops at the first count that times out."""
    from radstream.services.gateway.load import gateway_load

    rows = []
    say(f"events at {rate_hz:g}/s, 200 per client")
    say(f"{'clients':>8} {'delivered':>10} {'cut off':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for n in levels:
        try:
            r = gateway_load(n, rate_hz=rate_hz)
        except TimeoutError:
            say(f"{n:>8} timed out: the process could not keep up")
            break
        rows.append(r.as_dict())
        say(f"{n:>8} {r.delivered:>10} {r.cut_off:>8} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f} {r.max_ms:>8.1f}")
    held = [r["clients"] for r in rows if r["p99_ms"] < target_p99_ms and r["cut_off"] == 0]
    say(f"largest client count with p99 < {target_p99_ms:.0f} ms and nobody cut off: {max(held) if held else 'none'}")
    return {"target_p99_ms": target_p99_ms, "levels": rows, "max_clients_within_target": max(held, default=0)}
