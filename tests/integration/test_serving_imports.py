"""An infer stage is serving only: a real `radstream stage infer` process, run against the
broker until it has inferred one image, never imports a module of radstream.models.training.

The process is the real CLI entry point, with one addition: at exit it writes the names in
`sys.modules`, so a module imported late (on the first batch) or through importlib counts
too (`-X importtime` misses the latter).
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from radstream.models.profile import apply_profile
from radstream.models.registry import default_registry_dir, load_manifests
from radstream.streams.blobstore import FileBlobStore
from radstream.streams.config import Config
from radstream.streams.kafka.producer import EventPublisher
from radstream.streams.kafka.topics import IMAGE_PREPROCESSED, INFERENCE_RESULTS, create_topics
from tests.factories import metadata
from tests.plain_reader import PlainReader

MODEL = "demo-rfdetr"  # the family whose training (rfdetr's matcher and criterion) is the largest


def _preprocessed_event(store: FileBlobStore, manifest, sop: str) -> dict:
    image = np.random.default_rng(0).normal(1000, 200, (300, 400)).astype(np.float32)
    tensor, box = apply_profile(image, manifest.input_profile)
    entry = {"profile": manifest.input_profile.hash(), "tensor": store.put_array(tensor), "scale_x": box.scale_x,
             "scale_y": box.scale_y, "pad_x": box.pad_x, "pad_y": box.pad_y, "orig_width": box.original_width,
             "orig_height": box.original_height}
    return {"schema_version": 1, "idempotency_key": sop, "study_uid": "1.2", "series_uid": "1.2.3", "sop_uid": sop,
            "frame": 0, "site": "T", "expected_instances": 1, "arrived_at": 1, "config_version": 0, "trace_id": None,
            "display": None, "metadata": metadata(), "tensors": [entry], "stage_ms": {}}


# `python -m radstream.services.cli ...` (how the supervisor starts a stage), recording sys.modules at exit
RUN_CLI_RECORDING_MODULES = """
import atexit, runpy, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write("\\n".join(sorted(sys.modules))))
sys.argv[0] = "radstream"
runpy.run_module("radstream.services.cli", run_name="__main__", alter_sys=True)
"""


def test_an_infer_stage_imports_no_training_code(pipeline_env: dict[str, str], tmp_path) -> None:
    env = {**os.environ, **pipeline_env, "RADSTREAM_MODELS": MODEL}
    config = Config.from_env(env=env)
    create_topics(config.kafka)
    manifest = load_manifests(default_registry_dir(), [MODEL])[MODEL]
    producer = EventPublisher(config.kafka)
    producer.send(IMAGE_PREPROCESSED, "1.2.3.4",
                  _preprocessed_event(FileBlobStore(config.blob_url), manifest, "1.2.3.4"))
    producer.flush()

    log, modules_file = tmp_path / "stage.log", tmp_path / "modules.txt"
    with log.open("w") as out:
        stage = subprocess.Popen([sys.executable, "-c", RUN_CLI_RECORDING_MODULES, str(modules_file), "stage", "infer",
                                  "--model", MODEL], env=env, stdout=out, stderr=subprocess.STDOUT)

    def still_running() -> None:
        assert stage.poll() is None, f"the infer stage exited ({stage.returncode}):\n{log.read_text()[-2000:]}"

    reader = PlainReader(config.kafka.bootstrap, [config.kafka.topic(INFERENCE_RESULTS)])
    try:
        inferred = reader.poll_until(lambda r: any(r.values()), timeout_s=120, on_idle=still_running)
    finally:
        reader.close()
        stage.terminate()
        stage.wait(timeout=60)
    assert inferred, f"the infer stage produced no result; its log ends:\n{log.read_text()[-2000:]}"
    assert stage.returncode == 0 and modules_file.exists(), log.read_text()[-2000:]
    modules = set(modules_file.read_text().split())
    assert {"radstream.streams.stages.infer", "radstream.models.families.rf_detr", "rfdetr"} <= modules
    training = sorted(m for m in modules if m.startswith("radstream.models.training"))
    assert training == [], f"the infer stage imported training code: {training}"
    # rfdetr calls torch.jit.script at import, which torch 2.14 warns about: not in a stage's log
    # (models/families/__init__.py silences that one notice).
    assert "torch.jit.script" not in log.read_text(), log.read_text()[-2000:]
