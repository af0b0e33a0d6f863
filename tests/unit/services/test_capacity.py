"""`radstream plan` (services/capacity.py, services/commands/plan.py) on the real bench report the
docs' worked example uses (docs/evidence/capacity/): replicas are the fewest that carry the peak
at the target utilisation, partitions cover the largest group on each topic, and bad input is a
one-line error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from radstream.services.capacity import plan
from radstream.services.cli import main
from radstream.services.commands.plan import REFERENCE_BENCH, stage_input_topics

BENCH = json.loads(REFERENCE_BENCH.read_text())


def test_every_bench_stage_is_a_stage_with_its_input_topic() -> None:
    topics = stage_input_topics()
    assert topics["decode"] == "dicom.arrived" and topics["infer"] == "image.preprocessed"
    assert {row["stage"].split(":")[0] for row in BENCH["stages"]} <= set(topics)


@pytest.mark.parametrize("studies,images", [(10_000, 4), (100_000, 4), (100_000, 60)])
def test_replicas_are_the_fewest_that_carry_the_peak(studies: int, images: int) -> None:
    p = plan(BENCH, stage_input_topics(), studies, images_per_study=images, peak_factor=3, utilisation=0.7)
    assert p.peak_images_per_s == pytest.approx(studies * images * 3 / 86_400)
    rows = {r["stage"]: r for r in BENCH["stages"]}
    for s in p.stages:
        row = rows[s.stage]
        capacity = 1000 / row["wall_ms"] * 0.7  # one replica at 70 %
        load = p.peak_images_per_s * row["messages"] / BENCH["images"]
        assert s.replicas * capacity >= load and (s.replicas == 1 or (s.replicas - 1) * capacity < load), s
        assert p.partitions[s.input_topic] >= max(s.replicas, 3)
    for topic, n in p.partitions.items():
        assert n == max(3, *(s.replicas for s in p.stages if s.input_topic == topic))


def test_ten_times_the_studies_never_needs_fewer_replicas() -> None:
    small = plan(BENCH, stage_input_topics(), 10_000)
    large = plan(BENCH, stage_input_topics(), 100_000)
    assert all(b.replicas >= a.replicas for a, b in zip(small.stages, large.stages))
    assert sum(b.replicas for b in large.stages) > sum(a.replicas for a in small.stages)


def test_the_cli_prints_a_table_and_json_with_the_partitions_setting(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--studies-per-day", "100000", "--images-per-study", "60", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    expected = ",".join(f"{t}={n}" for t, n in sorted(out["partitions"].items()) if n > 3)
    assert out["RADSTREAM_TOPIC_PARTITIONS"] == expected and "image.preprocessed=" in expected
    from radstream.streams.kafka.topics import parse_topic_partitions

    assert parse_topic_partitions(expected) == {t: n for t, n in out["partitions"].items() if n > 3}
    assert main(["plan", "--studies-per-day", "10000"]) == 0
    table = capsys.readouterr().out
    assert "infer:demo-frcnn" in table and "every input topic fits the default 3 partitions" in table


@pytest.mark.parametrize("content,message", [
    ("not json", "not JSON"),
    ('{"images": 4}', "not a `radstream bench --json-out` report"),
    ('{"images": 4, "stages": [{"stage": "nope", "messages": 4, "wall_ms": 3}]}', "no stage this version knows"),
    ('{"images": 4, "stages": [{"stage": "decode", "messages": 4}]}', "needs stage, messages and wall_ms"),
])
def test_a_bad_bench_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str,
                                      message: str) -> None:
    bad = tmp_path / "bench.json"
    bad.write_text(content)
    assert main(["plan", "--studies-per-day", "10", "--bench", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_a_missing_file_and_bad_volumes_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--studies-per-day", "10", "--bench", str(tmp_path / "none.json")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["plan", "--studies-per-day", "0"]) == 2
    assert "studies per day > 0" in capsys.readouterr().err
