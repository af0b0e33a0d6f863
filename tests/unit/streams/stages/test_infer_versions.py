"""infer follows the model set in force: a push naming another version of its model opens that
version in the background, keeps serving the old one until it is ready, and swaps between batches;
a version whose artifact fails verification is refused (one line) and the old one stays. A shadow
stage writes to inference.shadow in its own group and says so when its version goes live.

Real models (the shipped demo classifier, v2 by default and v1 in versions/) on the torch backend."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from radstream.domain.thresholds import MODEL_SET_SCOPE, ThresholdBook, model_set_values
from radstream.models.profile import apply_profile
from radstream.models.registry import default_registry_dir, every_version, registered_versions
from radstream.streams.blobstore import FileBlobStore
from radstream.streams.config import Config
from radstream.streams.kafka.topics import INFERENCE_RESULTS, INFERENCE_SHADOW
from radstream.streams.stages.registry import build_stage
from tests.unit.streams.stages.test_infer_stage import _event

NAME = "demo-classifier"


def _registry(tmp_path: Path) -> Path:
    """The shipped classifier's two versions with absolute artifact paths, plus a version 9 whose
    artifact hash does not match (a tampered or half-copied file)."""
    shipped = default_registry_dir()
    out = tmp_path / "registry"
    for source, target in ((shipped / f"{NAME}.json", out / f"{NAME}.json"),
                           (shipped / "versions" / NAME / "1.json", out / "versions" / NAME / "1.json")):
        data = json.loads(source.read_text())
        data["artifact"]["path"] = str((source.parent / data["artifact"]["path"]).resolve())
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(data))
    bad = json.loads((out / "versions" / NAME / "1.json").read_text())
    bad.update(version="9")
    bad["artifact"]["sha256"] = "0" * 64
    (out / "versions" / NAME / "9.json").write_text(json.dumps(bad))
    return out


def _config(tmp_path: Path) -> Config:
    return Config.from_env(env={**os.environ, "RADSTREAM_HOME": str(tmp_path / "home"),
                                "RADSTREAM_MODEL_REGISTRY": str(_registry(tmp_path)), "RADSTREAM_MODELS": NAME,
                                "RADSTREAM_BLOB_URL": str(tmp_path / "blobs")})


def _events(config: Config, store: FileBlobStore, n: int) -> list:
    """Preprocessed images with a tensor for every registered version's distinct input profile, as
    preprocess renders them (the shipped v1 shares v2's; another version may have its own)."""
    manifests = every_version(config.model_registry, [NAME])
    events = []
    for i in range(n):
        rng = np.random.default_rng(i)
        event = _event(store, manifests[0], f"1.2.3.{i}", rng)
        pixels = np.random.default_rng(i).normal(1000, 200, (300, 400)).astype(np.float32)  # _event's image
        for m in manifests[1:]:
            if m.input_profile.hash() not in {t["profile"] for t in event.value["tensors"]}:
                tensor, box = apply_profile(pixels, m.input_profile)
                event.value["tensors"].append(
                    {"profile": m.input_profile.hash(), "tensor": store.put_array(tensor), "scale_x": box.scale_x,
                     "scale_y": box.scale_y, "pad_x": box.pad_x, "pad_y": box.pad_y,
                     "orig_width": box.original_width, "orig_height": box.original_height})
        events.append(event)
    return events


def _push(book: ThresholdBook, version: int, model_version: str) -> None:
    assert book.apply({"version": version, "scope": MODEL_SET_SCOPE, "author": "lead", "reason": "r",
                       "created_at": 1, "values": model_set_values({NAME: model_version})})


def _settle(stage) -> None:
    """What the runner does between batches, until a background open has finished."""
    stage.between_batches()
    while stage._switch is not None:
        stage._switch.join()
        stage.between_batches()


def test_live_infer_switches_versions_between_batches_and_refuses_a_bad_one(tmp_path, caplog) -> None:
    config = _config(tmp_path)
    assert registered_versions(config.model_registry, NAME) == ["1", "2", "9"]
    book = ThresholdBook()
    stage = build_stage("infer", config, NAME, book=book)
    stage.start()
    store = FileBlobStore(tmp_path / "blobs")
    events = _events(config, store, 3)
    [[before]] = stage.process_batch(events[:1])
    assert before.topic == INFERENCE_RESULTS and before.value["model"]["version"] == "2"
    assert stage.group_id == f"radstream-infer-{NAME}"

    _push(book, 1, "1")
    stage.between_batches()  # opens v1 in the background; v2 keeps serving meanwhile
    assert stage.health()["models"][0]["version"] == "2"
    _settle(stage)
    results = stage.process_batch(events)
    assert {r[0].value["model"]["version"] for r in results} == {"1"}
    assert all(r[0].value["idempotency_key"] != before.value["idempotency_key"] for r in results[:1])
    assert results[0][0].value["config_version"] == 0  # the model set is not a threshold version
    v1_score = results[0][0].value["classifications"]["nodule"]
    assert v1_score != before.value["classifications"]["nodule"]  # really another artifact

    with caplog.at_level(logging.ERROR):
        _push(book, 2, "9")
        _settle(stage)
    [refusal] = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert "version 9 refused" in refusal and "keeping version 1" in refusal and "\n" not in refusal
    health = stage.health()["models"][0]
    assert health["version"] == "1" and "version 9 refused" in health["refused"]
    assert stage.process_batch(events[:1])[0][0].value["model"]["version"] == "1"
    stage.between_batches()
    assert stage._switch is None  # a refused version is not retried until the model set changes

    _push(book, 3, "2")  # rollback
    _settle(stage)
    [[after]] = stage.process_batch(events[:1])
    assert after.value["model"]["version"] == "2"
    assert after.value["classifications"]["nodule"] == before.value["classifications"]["nodule"]


def test_shadow_infer_writes_to_the_shadow_topic_and_says_when_it_went_live(tmp_path, caplog) -> None:
    config = _config(tmp_path)
    book = ThresholdBook()
    stage = build_stage("infer", config, NAME, book=book, shadow=True, version="1")
    assert stage.group_id == f"radstream-infer-{NAME}-shadow" and stage.manifest.version == "1"
    stage.start()
    store = FileBlobStore(tmp_path / "blobs")
    [[out]] = stage.process_batch(_events(config, store, 1))
    assert out.topic == INFERENCE_SHADOW and out.value["model"]["version"] == "1"
    with caplog.at_level(logging.WARNING):
        _push(book, 1, "1")
        stage.between_batches()
        stage.between_batches()  # said once
    said = [r.getMessage() for r in caplog.records if "live version now" in r.getMessage()]
    assert len(said) == 1 and "shadow of demo-classifier: version 1" in said[0]
    assert stage.manifest.version == "1" and stage._switch is None  # a shadow never switches


def test_a_stage_started_after_a_promotion_serves_the_version_in_force_from_its_first_result(tmp_path) -> None:
    """The runner reads the config topic after the default version began loading (D-043): the
    first batch waits for the version the model set names rather than answering with the default."""
    config = _config(tmp_path)
    book = ThresholdBook()
    _push(book, 4, "1")  # in force before this process started
    stage = build_stage("infer", config, NAME, book=book)
    stage.start()  # the default (v2) loads in the background, as in the runner
    stage.between_batches()  # the runner's first loop after the config load: v1 opens
    assert stage._switch is not None
    [[first]] = stage.process_batch(_events(config, FileBlobStore(tmp_path / "blobs"), 1))
    assert first.value["model"]["version"] == "1" and stage.health()["models"][0]["version"] == "1"


def test_preprocess_and_fuse_know_every_registered_version(tmp_path) -> None:
    """A version with its own input profile gets its tensor from preprocess, and fuse calibrates
    its results by its own manifest, without a restart of either when it is put in force."""
    from radstream.streams.state import MemoryStore

    config = _config(tmp_path)
    other = json.loads((config.model_registry / "versions" / NAME / "1.json").read_text())
    other.update(version="3")
    other["input_profile"]["mean"] = other["input_profile"]["mean"] + 0.05
    other.pop("input_profile_hash")
    other["calibration"] = {"method": "temperature", "temperature": 2.0}
    (config.model_registry / "versions" / NAME / "3.json").write_text(json.dumps(other))
    shipped = {m.version: m.input_profile.hash() for m in every_version(config.model_registry, [NAME])}
    assert shipped["3"] != shipped["2"]
    preprocess = build_stage("preprocess", config)
    assert set(preprocess.profiles) == set(shipped.values())
    fuse = build_stage("fuse", config, state=MemoryStore())
    assert fuse.calibrations[(NAME, "3")] == {"method": "temperature", "temperature": 2.0}
    assert (NAME, "2") not in fuse.calibrations  # the default's is its ExpectedModel's
