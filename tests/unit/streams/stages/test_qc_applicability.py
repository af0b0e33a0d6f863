"""qc's header checks take their applicability from the manifests of the models in force."""

from __future__ import annotations

from pathlib import Path

from radstream.models.manifest import ModelManifest
from radstream.streams.config import Config
from radstream.domain.thresholds import ThresholdBook
from radstream.streams.stage import Inbound
from radstream.domain.qc import Applicability, applicability_union, header_flags
from radstream.streams.stages.qc import QcStage
from radstream.streams.stages.registry import build_stage
from radstream.streams.state import MemoryStore
from tests.unit.streams.stages.test_pixel_qc import _fused

REGISTRY = Path(__file__).resolve().parents[4] / "models" / "registry"


def test_union_ors_values_and_an_empty_dimension_accepts_anything() -> None:
    chest = {"modalities": ["CR"], "body_parts": ["CHEST"], "views": ["PA"]}
    knee = {"modalities": ["dx"], "body_parts": ["knee"], "views": []}
    assert applicability_union([chest]) == Applicability(("CR",), ("CHEST",), ("PA",))
    # values are upper-cased and OR-ed; the knee model restricts no view, so no view is refused
    assert applicability_union([chest, knee]) == Applicability(("CR", "DX"), ("CHEST", "KNEE"), ())
    assert applicability_union([chest, {}]) == Applicability((), (), ())
    assert applicability_union([]) == Applicability((), (), ())


def test_shipped_manifests_declare_chest_pa_ap_radiographs() -> None:
    manifests = [ModelManifest.read(p) for p in sorted(REGISTRY.glob("*.json"))]
    assert manifests
    for m in manifests:  # each one, so a manifest regenerated without it is caught by name
        assert m.applicability == {"modalities": ["CR", "DX"], "body_parts": ["CHEST"], "views": ["PA", "AP"]}, m.name
    assert applicability_union(m.applicability for m in manifests) == Applicability(("CR", "DX"), ("CHEST",),
                                                                                     ("AP", "PA"))


def test_header_flags_check_modality_against_applicability() -> None:
    fused = _fused(modality="CT")
    assert header_flags(fused, ("CHEST",), ("PA",), ("CR", "DX")) == [
        "modality CT is outside the models' applicability (CR, DX)"]
    assert header_flags(_fused(modality=None), ("CHEST",), (), ("CR",)) == [
        "modality missing is outside the models' applicability (CR)"]
    assert header_flags(fused, ("CHEST",), ("PA",), ()) == []  # no model restricts modality


def _qc_stage_from(registry: Path, tmp_path: Path) -> QcStage:
    stage = build_stage("qc", Config.from_env(env={"RADSTREAM_MODEL_REGISTRY": str(registry),
                                                   "RADSTREAM_HOME": str(tmp_path)}),
                        book=ThresholdBook(), state=MemoryStore())
    assert isinstance(stage, QcStage)
    return stage


def _status(stage: QcStage, sop: str, **meta) -> tuple[str, list[str]]:
    images = stage.process(Inbound(_fused(sop=sop, **meta)))[0].value["images"]
    image = next(i for i in images if i["sop_uid"] == sop)
    return image["status"], image["qc_flags"]


def test_qc_stage_built_from_the_registry_gates_what_the_manifests_exclude(tmp_path: Path) -> None:
    stage = _qc_stage_from(REGISTRY, tmp_path)
    assert (stage.modalities, stage.applicable, stage.views) == (("CR", "DX"), ("CHEST",), ("AP", "PA"))
    assert _status(stage, "1.1") == ("ANALYSED", [])
    assert _status(stage, "1.2", modality="DX", view_position="AP")[0] == "ANALYSED"
    status, flags = _status(stage, "1.3", modality="MG")
    assert status == "NOT_ANALYSABLE" and flags == ["modality MG is outside the models' applicability (CR, DX)"]
    status, flags = _status(stage, "1.4", body_part="HAND", laterality="L")
    assert flags == ["body part HAND is outside the models' applicability (CHEST)"]
    status, flags = _status(stage, "1.5", view_position="LL")
    assert flags == ["view position LL is outside the models' applicability (AP, PA)"]


def test_a_model_for_another_body_part_widens_what_qc_lets_through(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    registry.mkdir()
    for path in REGISTRY.glob("*.json"):
        manifest = ModelManifest.read(path)
        manifest.artifact = type(manifest.artifact)(str((path.parent / manifest.artifact.path).resolve()),
                                                    manifest.artifact.sha256, manifest.artifact.encrypted)
        manifest.write(registry / path.name)
    knee = ModelManifest.read(sorted(registry.glob("*.json"))[0])
    knee.name = "knee-detector"
    knee.applicability = {"modalities": ["DX"], "body_parts": ["KNEE"], "views": []}
    knee.write(registry / "knee-detector.json")
    stage = _qc_stage_from(registry, tmp_path)
    assert (stage.modalities, stage.applicable, stage.views) == (("CR", "DX"), ("CHEST", "KNEE"), ())
    assert _status(stage, "2.1", body_part="KNEE", laterality="R", view_position="LL") == ("ANALYSED", [])
    assert _status(stage, "2.2", body_part="HAND", laterality="R")[0] == "NOT_ANALYSABLE"
