"""Card numbers cannot be tried at speed: a token bucket of misses per credential."""

from __future__ import annotations

import pytest

from service.api.lookup import MissLimiter
from service.errors import TooManyRequests


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_credential_has_its_burst_of_misses_then_one_per_interval() -> None:
    clock = Clock()
    limiter = MissLimiter(per_second=0.5, burst=3, clock=clock)
    for _ in range(3):
        limiter.admit("till-1")
        limiter.miss("till-1")
    with pytest.raises(TooManyRequests) as refused:
        limiter.admit("till-1")
    assert refused.value.retry_after_s == pytest.approx(2.0)
    limiter.admit("till-2")  # another credential has its own bucket
    clock.now += 1.9
    with pytest.raises(TooManyRequests):
        limiter.admit("till-1")
    clock.now += 0.2  # one miss earned back (0.5 a second)
    limiter.admit("till-1")
    limiter.miss("till-1")
    with pytest.raises(TooManyRequests):
        limiter.admit("till-1")


def test_a_bucket_refills_to_its_burst_and_no_further() -> None:
    clock = Clock()
    limiter = MissLimiter(per_second=10, burst=2, clock=clock)
    limiter.miss("app")
    clock.now += 3600
    for _ in range(2):
        limiter.admit("app")
        limiter.miss("app")
    with pytest.raises(TooManyRequests):
        limiter.admit("app")
