"""`radstream demo`: the whole pipeline on real radiographs (pydicom-data) and synthetic studies.

Exits 0 once every published study has a final result, 1 on timeout.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from radstream.services.publish import publish
from radstream.services.results import study_results, summary_line
from radstream.services.stack import Stack
from radstream.streams.blobstore import open_blob_store
from radstream.streams.config import Config
from radstream.streams.kafka.producer import EventPublisher

REAL_RADIOGRAPHS = ("RG1_UNCR.dcm", "RG1_J2KR.dcm", "RG3_UNCR.dcm", "RG3_J2KR.dcm")


def real_radiographs() -> list[Path]:
    """The CR radiographs shipped by the pydicom-data wheel (never downloaded at run time)."""
    try:
        import data_store
    except ImportError:
        raise RuntimeError("the demo needs the pydicom-data package: pip install 'radstream[data]'") from None
    folder = Path(data_store.__file__).parent / "data"
    paths = [folder / name for name in REAL_RADIOGRAPHS]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        raise RuntimeError(f"pydicom-data lacks {', '.join(missing)}")
    return paths


def run_demo(config: Config, bootstrap: str | None, synthetic_studies: int = 2, timeout_s: float = 300.0) -> int:
    from radstream.services.synthetic.studies import write_synthetic_study

    def say(msg: str) -> None:
        print(msg, flush=True)

    data_dir = config.home / "demo-data"
    paths = real_radiographs()
    for i in range(synthetic_studies):
        study_dir = data_dir / f"synthetic-{i}"
        if not study_dir.exists():
            write_synthetic_study(study_dir, n_images=2, seed=1000 + i)
        paths.append(study_dir)
    started = time.monotonic()
    with Stack(config, bootstrap) as stack:
        say(f"pipeline up on {stack.bootstrap}; stage logs in {stack.logs}")
        settings = config.kafka.with_bootstrap(stack.bootstrap)
        studies, errors = publish(EventPublisher(settings), open_blob_store(config.blob_url), paths, site="DEMO", log=say)
        for line in errors:
            say(f"skipped {line}")
        pending = set(studies)
        say(f"waiting for {len(pending)} study result(s)...")
        deadline = time.monotonic() + timeout_s
        for result in study_results(settings, follow=True, idle_timeout_s=timeout_s):
            stack.poll()
            if result["study_uid"] in pending:
                pending.discard(result["study_uid"])
                say(summary_line(result))
            if not pending or time.monotonic() > deadline:
                break
    if pending:
        print(f"radstream: error: {len(pending)} study result(s) did not land within {timeout_s:.0f}s; "
              f"see the stage logs in {config.home / 'logs'}", file=sys.stderr)
        return 1
    say(f"all {len(studies)} studies landed in {time.monotonic() - started:.1f}s")
    return 0
