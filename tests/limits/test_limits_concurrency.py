"""Many callers hammering one limit never get more than the limit (plus what refills while
they hammer): threads and asyncio tasks on both backends, and two processes sharing Redis."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time

from kakin.limits import MemoryRateLimiter, RedisRateLimiter, build_limits

RPM = 120  # two per second refill, so a short run adds at most a few


def _bound(elapsed: float) -> int:
    return RPM + int(elapsed * RPM / 60) + 1


def test_threads_never_exceed_the_limit(limiter):
    limits = build_limits(key_id="hot", key_rpm=RPM, key_tpm=RPM * 10)
    admitted = []
    start_gate = threading.Barrier(8)

    def hammer() -> None:
        start_gate.wait()
        admitted.append(sum(limiter.check_and_consume(limits, tokens=10).allowed for _ in range(60)))

    started = time.monotonic()
    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = sum(admitted)
    assert RPM <= total <= _bound(time.monotonic() - started)


async def test_asyncio_tasks_never_exceed_the_limit(limiter):
    limits = build_limits(key_id="hot", project_id="p", project_rpm=RPM)

    async def hammer() -> int:
        return sum([(await limiter.acheck_and_consume(limits)).allowed for _ in range(25)])

    started = time.monotonic()
    total = sum(await asyncio.gather(*(hammer() for _ in range(20))))
    assert RPM <= total <= _bound(time.monotonic() - started)
    if isinstance(limiter, RedisRateLimiter):
        await limiter.aclose()


def test_memory_threads_with_mixed_token_sizes_respect_both_limits():
    limiter = MemoryRateLimiter()
    limits = build_limits(key_id="k", key_rpm=10_000, key_tpm=50_000)
    taken = []
    lock = threading.Lock()

    def hammer(size: int) -> None:
        for _ in range(400):
            if limiter.check_and_consume(limits, tokens=size).allowed:
                with lock:
                    taken.append(size)

    started = time.monotonic()
    threads = [threading.Thread(target=hammer, args=(size,)) for size in (7, 100, 333, 1000)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    assert sum(taken) <= 50_000 + elapsed * 50_000 / 60 + 1000
    assert len(taken) <= 10_000


_WORKER = textwrap.dedent(
    """
    import sys
    from kakin.limits import RedisRateLimiter, build_limits
    url, prefix, rpm = sys.argv[1], sys.argv[2], int(sys.argv[3])
    limiter = RedisRateLimiter(url, prefix=prefix)
    limits = build_limits(key_id="shared", key_rpm=rpm, org_id="o", tier_tpm=1000000)
    limiter.check_and_consume(build_limits(key_id="warm-up", key_rpm=1))
    print("ready", flush=True)
    sys.stdin.readline()  # wait for "go", so both processes hammer at the same time
    print(sum(limiter.check_and_consume(limits, tokens=5).allowed for _ in range(rpm)), flush=True)
    """
)


SHARED_RPM = 600  # each process alone needs tens of ms to exhaust it, so both get a share


def test_two_processes_sharing_redis_never_exceed_the_limit(redis_prefix):
    url, prefix = redis_prefix
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, url, prefix, str(SHARED_RPM)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"
    started = time.monotonic()
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    counts = [int(proc.communicate(timeout=60)[0].strip()) for proc in procs]
    elapsed = time.monotonic() - started
    assert SHARED_RPM <= sum(counts) <= SHARED_RPM + int(elapsed * SHARED_RPM / 60) + 1
    assert all(count > 0 for count in counts), counts  # both really competed
