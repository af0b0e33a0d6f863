"""The one backoff policy: delays double from the base, stop at the cap, and the attempts are bounded."""

from __future__ import annotations

import pytest

from radstream.domain.retry import RetryPolicy


def test_delays_double_from_the_base() -> None:
    policy = RetryPolicy(max_attempts=4, base_s=0.2)
    assert [policy.delay(n) for n in (1, 2, 3)] == [0.2, 0.4, 0.8]
    assert policy.delay(30) == 0.2 * 2 ** 29  # no cap unless one is given


def test_the_cap_bounds_every_delay() -> None:
    policy = RetryPolicy(max_attempts=6, base_s=0.5, cap_s=3.0)
    assert [policy.delay(n) for n in policy.attempts()] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]


@pytest.mark.parametrize("max_attempts", [1, 3])
def test_attempts_are_bounded(max_attempts: int) -> None:
    policy = RetryPolicy(max_attempts, 0.1)
    assert list(policy.attempts()) == list(range(1, max_attempts + 1))
    assert [policy.retries_after(n) for n in policy.attempts()] == [True] * (max_attempts - 1) + [False]


def test_a_loop_driven_by_the_policy_sleeps_between_attempts_only() -> None:
    policy, sleeps, tries = RetryPolicy(3, 0.25), [], []
    for attempt in policy.attempts():
        tries.append(attempt)
        if policy.retries_after(attempt):
            sleeps.append(policy.delay(attempt))
    assert tries == [1, 2, 3] and sleeps == [0.25, 0.5]
