"""What the monitor reads from one study result (pure; streams/monitoring.py keeps the state): each image's drift features and the
groups it is watched in, and each finding with what produced it."""

from __future__ import annotations

from typing import Any

from radstream.domain.agreement import iso_week

# Input features (decode's exposure statistics; the profiles' pre-normalisation mean and std) and
# output features (each classifier's probability, fused boxes per image, the not-analysable rate).
PIXEL_FEATURES = ("pixel_mean", "pixel_std", "pixel_p01", "pixel_p99")


def image_features(image: dict[str, Any]) -> dict[str, float]:
    """feature -> value for one ImageResult; a not-analysable image has no model outputs."""
    features = {"not_analysable": 1.0 if image["status"] == "NOT_ANALYSABLE" else 0.0}
    stats = image.get("image_stats")
    if stats:
        features.update({name: float(stats[name]) for name in PIXEL_FEATURES})
        for profile in stats.get("profiles") or []:
            features[f"profile:{profile['profile']}:mean"] = float(profile["mean"])
            features[f"profile:{profile['profile']}:std"] = float(profile["std"])
    if image["status"] == "ANALYSED":
        features["boxes"] = float(len(image["fused_boxes"]))
        for output in image["classifier_outputs"]:
            features[f"prob:{output['model']}/{output['label']}"] = float(output["probability"])
    return features


def site_group(site: str) -> str:
    return f"site:{site or '(none)'}"


def device_group(image: dict[str, Any]) -> str:
    """`device:MANUFACTURER/MODEL`: a vendor's exposure scale is per device, not per site."""
    return f"device:{image.get('manufacturer') or '(unknown)'}/{image.get('manufacturer_model') or '(unknown)'}"


def finding_models(image: dict[str, Any], finding: dict[str, Any]) -> list[str]:
    """The models whose outputs a finding read: its box's sources, and each classifier in its inputs."""
    models = {key.split("/", 1)[0] for key in finding["inputs"] if "/" in key and not key.startswith("fused")}
    if finding.get("box") is not None:
        for box in image["fused_boxes"]:
            if box["label"] == finding["label"] and [round(v, 3) for v in box["box"]] == \
                    [round(v, 3) for v in finding["box"]]:
                models |= {source["model"] for source in box["sources"]}
                break
    return sorted(models)


def result_findings(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per finding of a study result: id, rule, models, site, ISO week, time."""
    week = iso_week(result["created_at"])
    return [{"finding_id": f["finding_id"], "rule": f["rule_id"], "label": f["label"],
             "models": finding_models(image, f), "site": result.get("site") or "", "week": week,
             "study_uid": result["study_uid"], "at": result["created_at"]}
            for image in result["images"] for f in image["findings"] if f.get("finding_id")]
