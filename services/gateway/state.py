"""The latest known state of one study, folded from its events (pure).

`GET /studies/{uid}` returns `StudyState.as_json()`; every streamed event carries
`StudyState.summary()` so a worklist needs no second request.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from radstream.domain.keys import image_key
from radstream.services.gateway.events import Facets
from radstream.services.overrides import override_view
from radstream.streams.kafka.topics import (
    FINDINGS_FUSED,
    FINDINGS_OVERRIDES,
    IMAGE_DECODED,
    INFERENCE_RESULTS,
    STUDY_RESULTS,
)


class StudyState:
    """Everything the gateway knows about one study, latest first-hand value wins."""

    def __init__(self, study_uid: str) -> None:
        self.study_uid = study_uid
        self.site = ""
        self.expected_instances: int | None = None
        self.images: dict[str, dict[str, Any]] = {}
        self.displays: dict[str, dict[str, Any]] = {}  # image key -> BlobRef of the windowed PNG (never sent out)
        # image key -> (BlobRef of decode's full-range pixel blob, its pixel_transform); never sent out
        self.pixels: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {}
        self.result: dict[str, Any] | None = None  # the latest StudyResult
        # finding_id -> the latest verdict; attached to the finding when shown, whichever arrived first
        self.overrides: dict[str, dict[str, Any]] = {}
        self.model_versions: dict[str, str] = {}
        self.config_version = 0
        self.updated_at = 0
        self.last_event_id: str | None = None
        self.events = 0

    # -- folding --------------------------------------------------------------
    def owned_by(self, site: str) -> bool:
        """Whether a record claiming `site` may fold into this study: it claims none (an override),
        the study has no site yet, or it is the same one."""
        return not site or not self.site or site == self.site

    def apply(self, kind: str, record: dict[str, Any]) -> None:
        self.events += 1
        self.site = self.site or record.get("site") or ""  # the first site owns the study (D-024)
        if record.get("expected_instances") is not None:
            self.expected_instances = record["expected_instances"]
        self.config_version = max(self.config_version, int(record.get("config_version") or 0))
        stamp = record.get("created_at") or record.get("arrived_at") or 0
        self.updated_at = max(self.updated_at, int(stamp))
        if kind == FINDINGS_OVERRIDES:
            current = self.overrides.get(record["finding_id"])
            if current is None or record["created_at"] >= current["at"]:
                self.overrides[record["finding_id"]] = override_view(record)
            return
        if kind == STUDY_RESULTS:
            self._apply_result(record)
            return
        img = self._image(record["sop_uid"], record.get("frame", 0), record.get("series_uid", ""))
        meta = record.get("metadata") or {}
        for name in ("modality", "body_part", "view_position", "rows", "columns"):
            if meta.get(name) is not None:
                img[name] = meta[name]
        if record.get("display"):
            self.displays[image_key(record["sop_uid"], record.get("frame", 0))] = record["display"]
            img["has_display"] = True
        if kind == IMAGE_DECODED:
            img["decoded"] = True
            if record.get("pixels"):
                self.pixels[image_key(record["sop_uid"], record.get("frame", 0))] = (
                    record["pixels"], record.get("pixel_transform"))
                img["has_pixels"] = True
        elif kind == INFERENCE_RESULTS:
            model = record["model"]
            img["models"][model["name"]] = {
                "version": model["version"], "task": model["task"],
                "detections": len(record.get("detections") or []),
                "classifications": dict(record.get("classifications") or {}),
            }
            self.model_versions[model["name"]] = model["version"]
        elif kind == FINDINGS_FUSED:
            img["fused_boxes"] = record["fused_boxes"]
            img["findings"] = record["findings"]
            img["classifier_outputs"] = record["classifier_outputs"]
            img["missing_models"] = record.get("missing_models", [])
            img["expected_models"] = record.get("expected_models", [])
            self.model_versions.update(record.get("model_versions") or {})

    def _image(self, sop_uid: str, frame: int, series_uid: str) -> dict[str, Any]:
        key = image_key(sop_uid, frame)
        if key not in self.images:
            self.images[key] = {
                "sop_uid": sop_uid, "frame": frame, "series_uid": series_uid, "decoded": False,
                "models": {}, "fused_boxes": None, "findings": None, "classifier_outputs": None,
                "missing_models": [], "expected_models": [], "status": None, "qc_flags": [],
                "has_display": False, "has_pixels": False,
            }
        return self.images[key]

    def _apply_result(self, result: dict[str, Any]) -> None:
        self.result = result
        self.model_versions.update(result.get("model_versions") or {})
        for r in result["images"]:
            img = self._image(r["sop_uid"], r["frame"], r["series_uid"])
            img.update(status=r["status"], qc_flags=list(r["qc_flags"]), fused_boxes=r["fused_boxes"],
                       findings=r["findings"], classifier_outputs=r["classifier_outputs"],
                       missing_models=r.get("missing_models", []))
            for name in ("modality", "body_part", "view_position"):
                if r.get(name) is not None:
                    img[name] = r[name]

    # -- views ----------------------------------------------------------------
    @property
    def status(self) -> str:
        if self.result is not None:
            return "final" if self.result.get("final") else "partial"
        if any(img["findings"] is not None for img in self.images.values()):
            return "fused"
        if any(img["models"] for img in self.images.values()):
            return "analysing"
        return "received"

    def facets(self) -> Facets:
        modalities = {img["modality"] for img in self.images.values() if img.get("modality")}
        flags = {f for img in self.images.values() for f in img["qc_flags"]}
        labels = {f["label"] for img in self.images.values() for f in (img["findings"] or [])}
        return Facets(frozenset(modalities), frozenset(flags), frozenset(labels))

    def summary(self) -> dict[str, Any]:
        facets = self.facets()
        images = self.images.values()
        return {
            "study_uid": self.study_uid,
            "site": self.site,
            "status": self.status,
            "completion": self.result["completion"] if self.result else None,
            "images": len(self.images),
            "expected_instances": self.expected_instances,
            "not_analysable": sum(1 for img in images if img["status"] == "NOT_ANALYSABLE"),
            "findings": sum(len(img["findings"] or []) for img in images),
            "overridden": sum(1 for img in images for f in img["findings"] or []
                              if f.get("finding_id") in self.overrides),
            "modalities": sorted(facets.modalities),
            "labels": sorted(facets.labels),
            "qc_flags": sorted(facets.qc_flags),
            "config_version": self.config_version,
            "updated_at": self.updated_at,
        }

    def as_json(self) -> dict[str, Any]:
        images = []
        for key, img in sorted(self.images.items()):
            out = dict(img)
            if img["findings"]:
                out["findings"] = [self._with_override(f) for f in img["findings"]]
            if key in self.displays:
                out["image_url"] = image_url(self.study_uid, img["sop_uid"], img["frame"])
            images.append(out)
        return {
            **self.summary(),
            "model_versions": dict(sorted(self.model_versions.items())),
            "last_event_id": self.last_event_id,
            "events": self.events,
            "images": images,
            "image_count": len(images),
        }

    def _with_override(self, finding: dict[str, Any]) -> dict[str, Any]:
        override = self.overrides.get(finding.get("finding_id") or "")
        return {**finding, "override": override} if override else finding

    def display_ref(self, sop_uid: str, frame: int) -> dict[str, Any] | None:
        return self.displays.get(image_key(sop_uid, frame))

    def pixels_ref(self, sop_uid: str, frame: int) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
        """The pixel blob's ref and the event's pixel_transform (None: the blob is the model frame)."""
        return self.pixels.get(image_key(sop_uid, frame))

    def has_finding(self, finding_id: str) -> bool:
        """Whether the study's current view has this finding (a verdict may name only those)."""
        return any(f.get("finding_id") == finding_id for img in self.images.values() for f in img["findings"] or [])


def image_url(study_uid: str, sop_uid: str, frame: int) -> str:
    url = f"/studies/{quote(study_uid, safe='')}/images/{quote(sop_uid, safe='')}.png"
    return url + (f"?frame={frame}" if frame else "")
