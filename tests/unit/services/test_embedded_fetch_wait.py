"""The embedded broker's stages fetch with a 20 ms wait (D-061), unless the environment says otherwise."""

from __future__ import annotations

from radstream.services.broker import FETCH_WAIT_MAX_MS
from radstream.services.stack import embedded_fetch_wait
from radstream.streams.kafka.settings import KafkaSettings


def test_stages_of_the_embedded_broker_wait_20_ms_for_a_fetch() -> None:
    env = {"RADSTREAM_BOOTSTRAP": "127.0.0.1:9092", **embedded_fetch_wait({})}
    assert FETCH_WAIT_MAX_MS == 20
    assert KafkaSettings.from_env(env=env).consumer_config("g")["fetch.wait.max.ms"] == 20
    assert KafkaSettings.from_env(env={"RADSTREAM_BOOTSTRAP": "127.0.0.1:9092"}).consumer_config("g")["fetch.wait.max.ms"] == 50


def test_a_fetch_wait_the_environment_sets_is_kept() -> None:
    assert embedded_fetch_wait({"RADSTREAM_KAFKA_FETCH_WAIT_MAX_MS": "50"}) == {}
