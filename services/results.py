"""`radstream results`: the simplest downstream consumer of `study.results`.

Drops redeliveries by idempotency key, so a reader sees each result once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from radstream.streams.kafka.reader import read_events
from radstream.streams.kafka.settings import KafkaSettings
from radstream.streams.kafka.topics import STUDY_RESULTS


def study_results(settings: KafkaSettings, follow: bool = False, study: str | None = None,
                  idle_timeout_s: float | None = None, final_only: bool = True) -> Iterator[dict]:
    """Study results, each once; incremental (non-final) updates only with `final_only=False`."""
    seen: set[str] = set()
    for _, result in read_events(settings, STUDY_RESULTS, follow=follow, idle_timeout_s=idle_timeout_s):
        if result["idempotency_key"] in seen or (study and result["study_uid"] != study):
            continue
        if final_only and not result["final"]:
            continue
        seen.add(result["idempotency_key"])
        yield result


def summary_line(result: dict) -> str:
    """One human line per study result."""
    parts = []
    for img in result["images"]:
        if img["status"] == "NOT_ANALYSABLE":
            parts.append(f"...{img['sop_uid'][-10:]}: not analysable ({'; '.join(img['qc_flags'])})")
        else:
            top = sorted(img["findings"], key=lambda f: f["confidence"], reverse=True)
            shown = ", ".join(f"{f['label']} {f['confidence']:.2f} [{f['rule_id']}]"
                              + (f" ({f['override']['verdict']} by {f['override']['by']})" if "override" in f else "")
                              for f in top[:3])
            more = f" (+{len(top) - 3} more)" if len(top) > 3 else ""
            parts.append(f"...{img['sop_uid'][-10:]}: {shown + more if top else 'no findings'}")
    return (f"{'study' if result['final'] else 'update'} {result['study_uid']} ({len(result['images'])} image(s), "
            f"{result['completion']}, "
            f"config v{result['config_version']}): " + " | ".join(parts))


def as_json(result: dict) -> str:
    return json.dumps(result, sort_keys=True)
