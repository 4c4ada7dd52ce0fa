"""Each limiter behaviour test runs on both backends: process memory and real Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kakin.limits import MemoryRateLimiter, RateLimiter, RedisRateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "redis"])
def limiter(request: pytest.FixtureRequest) -> Iterator[RateLimiter]:
    if request.param == "memory":
        yield MemoryRateLimiter()
        return
    url, prefix = request.getfixturevalue("redis_prefix")
    backend = RedisRateLimiter(url, prefix=prefix)
    yield backend
    backend.close()
