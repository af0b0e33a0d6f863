"""The watchdog's policy (`decide`): observations plus a clock in, alerts and kills out."""

from __future__ import annotations

from radstream.services.watchdog import Alert, Forget, Kill, Observation, Policy, decide, lag_of

POLICY = Policy(warn_after_s=3, restart_after_s=6)


def ok(lag: int | None = 0, processed: int = 0, key: str = "preprocess-10", pid: int = 10) -> Observation:
    return Observation(key, "preprocess", pid, pid_alive=True, answered=True, lag=lag, processed=processed)


def silent(key: str = "preprocess-10", pid: int = 10) -> Observation:
    return Observation(key, "preprocess", pid, pid_alive=True, answered=False, error="timed out")


def run(samples: list[tuple[float, list[Observation]]], policy: Policy = POLICY) -> list[tuple[float, object]]:
    tracks: dict = {}
    out = []
    for now, observations in samples:
        tracks, actions = decide(tracks, observations, now, policy)
        out += [(now, a) for a in actions]
    return out


def kinds(actions: list[tuple[float, object]]) -> list[tuple[float, str]]:
    return [(t, a.kind if isinstance(a, Alert) else type(a).__name__) for t, a in actions]


def test_idle_stage_without_lag_is_never_alerted() -> None:
    assert run([(t, [ok(lag=0, processed=5)]) for t in range(0, 100, 1)]) == []


def test_unknown_lag_counts_as_no_backlog() -> None:
    assert run([(t, [ok(lag=None)]) for t in range(20)]) == []


def test_stage_that_keeps_processing_with_lag_is_fine() -> None:
    assert run([(t, [ok(lag=50, processed=t)]) for t in range(20)]) == []


def test_stalled_with_lag_is_warned_then_killed_once() -> None:
    acts = run([(t, [ok(lag=7, processed=3)]) for t in range(12)])
    assert kinds(acts) == [(3, "stalled"), (6, "restarting"), (6, "Kill")]
    kill = acts[-1][1]
    assert isinstance(kill, Kill) and kill.pid == 10
    assert "lag 7" in acts[0][1].text and "preprocess (pid 10)" in acts[0][1].text


def test_stall_is_measured_from_the_last_look_with_an_empty_backlog() -> None:
    samples = [(t, [ok(lag=0)]) for t in range(10)] + [(t, [ok(lag=4)]) for t in range(10, 20)]
    assert kinds(run(samples))[:2] == [(12, "stalled"), (15, "restarting")]


def test_progress_after_a_warning_sends_recovered() -> None:
    samples = [(t, [ok(lag=7, processed=3)]) for t in range(5)] + [(5, [ok(lag=7, processed=4)])]
    assert kinds(run(samples)) == [(3, "stalled"), (5, "recovered")]


def test_no_restart_mode_escalates_without_killing() -> None:
    acts = run([(t, [ok(lag=7)]) for t in range(12)], Policy(3, 6, restart=False))
    assert kinds(acts) == [(3, "stalled"), (6, "escalated")]
    assert "--no-restart" in acts[1][1].text


def test_unresponsive_process_is_alerted_then_killed() -> None:
    samples = [(0, [ok()]), (1, [ok()])] + [(t, [silent()]) for t in range(2, 12)]
    acts = run(samples)
    assert kinds(acts) == [(5, "unresponsive"), (8, "restarting"), (8, "Kill")]
    assert "does not answer (timed out)" in acts[0][1].text


def test_a_hang_interrupted_by_one_answer_starts_counting_again() -> None:
    samples = [(0, [silent()]), (2, [silent()]), (2.5, [ok()]), (3, [silent()]), (5, [silent()]), (6, [silent()])]
    assert kinds(run(samples)) == [(6, "unresponsive")]


def test_unhealthy_answer_is_treated_like_no_answer() -> None:
    bad = Observation("qc-3", "qc", 3, pid_alive=True, answered=True, healthy=False)
    assert kinds(run([(t, [bad]) for t in range(7)])) == [(3, "unhealthy"), (6, "restarting"), (6, "Kill")]


def test_dead_process_is_reported_once_and_its_registration_forgotten() -> None:
    dead = Observation("decode-7", "decode", 7, pid_alive=False, answered=False)
    tracks, actions = decide({}, [dead], 0.0, POLICY)
    assert [type(a) for a in actions] == [Alert, Forget]
    assert actions[0].kind == "dead" and "stale" in actions[0].text
    assert tracks == {}


def test_process_we_killed_is_forgotten_without_a_dead_alert() -> None:
    acts = run([(t, [silent()]) for t in range(7)] + [(7, [Observation("preprocess-10", "preprocess", 10, False, False)])])
    assert kinds(acts) == [(3, "unresponsive"), (6, "restarting"), (6, "Kill"), (7, "Forget")]


def test_processes_are_tracked_separately_and_dropped_when_unregistered() -> None:
    a, b = ok(lag=5, key="infer-1", pid=1), ok(lag=0, key="infer-2", pid=2)
    tracks, _ = decide({}, [a, b], 0, POLICY)
    tracks, actions = decide(tracks, [a, b], 4, POLICY)
    assert [(x.kind, x.pid) for x in actions] == [("stalled", 1)]
    tracks, _ = decide(tracks, [b], 5, POLICY)
    assert set(tracks) == {"infer-2"}


def test_target_without_pid_is_never_killed() -> None:
    obs = Observation("http://h:8080", "http://h:8080", None, pid_alive=True, answered=False)
    assert kinds(run([(t, [obs]) for t in range(8)])) == [(3, "unresponsive"), (6, "escalated")]


METRICS = """# HELP radstream_consumer_lag High watermark minus committed offset
# TYPE radstream_consumer_lag gauge
radstream_consumer_lag{partition="0",stage="preprocess"} 4.0
radstream_consumer_lag{partition="1",stage="preprocess"} 0.0
radstream_consumer_lag{partition="2",stage="preprocess"} 9.0
# TYPE radstream_messages_processed_total counter
radstream_messages_processed_total{stage="preprocess"} 12.0
"""


def test_lag_counts_only_assigned_partitions() -> None:
    assert lag_of(METRICS, [0, 1]) == 4  # partition 2 was revoked: its gauge is stale
    assert lag_of(METRICS, []) is None
    assert lag_of("", [0]) is None
