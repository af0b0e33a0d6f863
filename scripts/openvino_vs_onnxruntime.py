"""OpenVINO against ONNX Runtime on this CPU, on the same exported graphs (D-035).

Not part of the product: OpenVINO is not a dependency (it was measured and not adopted), so
install it first (`pip install openvino`) into a scratch environment. Each exportable model's
raw graph (`export_graph`, opset 17) runs under ONNX Runtime's CPU provider with the backend's
own session options, and under OpenVINO's CPU plugin (`PERFORMANCE_HINT=LATENCY`), both at
`--threads`, on phantom batches through the model's profile. Calls are interleaved (ORT,
OpenVINO, ORT, ...) so a load spike on a shared machine hits both; medians. `--precision`
is OpenVINO's INFERENCE_PRECISION_HINT (`f32`, or `default`: bf16 on CPUs with AMX or
AVX-512 BF16). Prints one JSON line per model: milliseconds, ORT's time over OpenVINO's, and the
largest absolute difference between their outputs.

    python scripts/openvino_vs_onnxruntime.py [--threads 1] [--precision f32|default]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from radstream.models.backends.export import INPUT_NAME, export_graph, graph_batch, output_index
from radstream.models.backends.onnxruntime_backend import session_options
from radstream.models.profile import apply_profile
from radstream.models.registry import default_registry_dir, load_manifests
from radstream.services.synthetic.phantoms import make_phantom


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precision", default="f32", choices=("f32", "default"))
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import onnxruntime as ort
    import openvino as ov

    core = ov.Core()
    config = {"INFERENCE_NUM_THREADS": args.threads, "PERFORMANCE_HINT": "LATENCY"}
    if args.precision == "f32":
        config["INFERENCE_PRECISION_HINT"] = "f32"
    print(json.dumps({"onnxruntime": ort.__version__, "openvino": ov.__version__, "threads": args.threads,
                      "openvino_precision": str(core.get_property("CPU", "INFERENCE_PRECISION_HINT"))
                      if args.precision == "default" else "f32"}))
    rng = np.random.default_rng(3)
    images = [make_phantom(rng, 512).image for _ in range(8)]
    for name, manifest in load_manifests(default_registry_dir()).items():
        if "onnx" not in manifest.backends:
            continue
        graph = export_graph(manifest)
        session = ort.InferenceSession(graph, session_options(args.threads), providers=["CPUExecutionProvider"])
        names = sorted((o.name for o in session.get_outputs()), key=output_index)
        with tempfile.TemporaryDirectory() as tmp:  # OpenVINO reads ONNX from a file (demo weights only)
            path = Path(tmp) / "model.onnx"
            path.write_bytes(graph)
            compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        request = compiled.create_infer_request()
        x = np.stack([apply_profile(i, manifest.input_profile)[0] for i in images]).astype(np.float32)
        row = {}
        for batch in (1,) if graph_batch(session) else (1, 8):
            xb = x[:batch]
            ours = session.run(names, {INPUT_NAME: xb})
            theirs = request.infer({0: xb})
            diff = max(float(np.max(np.abs(a - theirs[compiled.output(n)]))) if a.size else 0.0
                       for a, n in zip(ours, names))
            times_ort, times_ov = [], []
            for _ in range(15 if batch == 1 else 5):
                t0 = time.perf_counter()
                session.run(names, {INPUT_NAME: xb})
                times_ort.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                request.infer({0: xb})
                times_ov.append(time.perf_counter() - t0)
            t_ort, t_ov = float(np.median(times_ort)), float(np.median(times_ov))
            row[f"batch{batch}"] = {"ort_ms": round(1000 * t_ort, 3), "openvino_ms": round(1000 * t_ov, 3),
                                    "ort_over_openvino": round(t_ort / t_ov, 3), "max_abs_diff": diff}
        print(json.dumps({"model": name, **row}), flush=True)


if __name__ == "__main__":
    main()
