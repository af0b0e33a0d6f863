"""`bench --compare`'s own arithmetic and its blob timing, on real file stores (no broker: the
comparison runs themselves are benchmarks, recorded in docs/benchmarks.md, not tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from radstream.services.bench_compare import blob_latency, summarise
from radstream.services.cli import build_parser
from radstream.streams.blobstore import open_blob_store


def _run(setup: str, rate: float, p50: float) -> dict:
    return {"setup": setup, "streamed_images_per_s": rate, "p50_ms": p50}


def test_summary_is_the_median_per_setup_and_the_second_over_the_first() -> None:
    runs = [_run("file", 10.0, 1000), _run("s3", 8.0, 1500), _run("file", 12.0, 900),
            _run("s3", 6.0, 1800), _run("file", 11.0, 950), _run("s3", 7.0, 1600)]
    s = summarise(runs, "file", "s3")
    assert s["file"] == {"runs": 3, "streamed_images_per_s": 11.0, "p50_ms": 950}
    assert s["s3"] == {"runs": 3, "streamed_images_per_s": 7.0, "p50_ms": 1600}
    assert s["ratio"]["streamed_images_per_s"] == pytest.approx(7 / 11)
    assert s["ratio"]["p50_ms"] == pytest.approx(1600 / 950)


def test_a_setup_without_runs_is_refused() -> None:
    with pytest.raises(ValueError, match="no run of 'durable'"):
        summarise([_run("memory", 1.0, 1.0)], "memory", "durable")


def test_blob_latency_writes_a_new_blob_every_time_so_no_put_is_skipped(tmp_path: Path) -> None:
    stores = {"a": open_blob_store(str(tmp_path / "a")), "b": open_blob_store(str(tmp_path / "b"))}
    rows = blob_latency(stores, sizes_mb=(1,), reps=2, say=lambda m: None)
    assert [r["size_mb"] for r in rows] == [1]
    assert set(rows[0]) == {"size_mb", "a_put_ms", "a_get_ms", "b_put_ms", "b_get_ms"}
    assert all(rows[0][k] > 0 for k in rows[0] if k.endswith("_ms"))
    for store in stores.values():  # two distinct 1 MB arrays stored in each, read back through the hash check
        blobs = list(store.stored())
        assert len(blobs) == 2 and all(b.size_bytes >= 1 << 20 for b in blobs)


def test_the_cli_takes_compare_and_rounds() -> None:
    args = build_parser().parse_args(["bench", "--compare", "broker", "--rounds", "2", "--images", "20"])
    assert (args.compare, args.rounds, args.images) == ("broker", 2, 20)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--compare", "tape"])
