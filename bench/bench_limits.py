"""Rate-limit check cost: in-process memory and Redis, each against a baseline measured in
the same run (a bare locked dict increment; a bare Redis PING round trip).

    .venv/bin/python bench/bench_limits.py [--redis redis://127.0.0.1:6379/0] [--quick]

Every check carries four limits (key rpm + tpm, org tier rpm + tpm), as the gateway's would,
with limits high enough that every check is admitted (the admitted path writes; it is the
slower one). The Redis part is skipped with a note when Redis is not reachable.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
import uuid

from kakin.limits import MemoryRateLimiter, RedisRateLimiter, build_limits


def _limits(i: int = 0):
    return build_limits(
        key_id=f"key_{i}",
        key_prefix="kk_bench",
        key_rpm=10**9,
        key_tpm=10**12,
        org_id="org_bench",
        tier_name="bench",
        tier_rpm=10**9,
        tier_tpm=10**12,
    )


def _per_op(fn, n: int) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        fn(n)
        best = min(best, (time.perf_counter() - started) / n)
    return best


def bench_memory(n: int) -> None:
    counts: dict[str, int] = {}
    lock = threading.Lock()

    def baseline(k: int) -> None:
        for _ in range(k):
            with lock:
                counts["key_0"] = counts.get("key_0", 0) + 1

    limiter = MemoryRateLimiter()
    limits = _limits()

    def check(k: int) -> None:
        for _ in range(k):
            limiter.check_and_consume(limits, requests=1, tokens=500)

    many = [_limits(i) for i in range(1000)]

    def check_many_keys(k: int) -> None:
        for i in range(k):
            limiter.check_and_consume(many[i % 1000], requests=1, tokens=500)

    base = _per_op(baseline, n)
    one = _per_op(check, n)
    spread = _per_op(check_many_keys, n)
    print("memory backend")
    print(f"  baseline: locked dict increment       {base * 1e6:8.3f} µs")
    print(
        f"  check_and_consume, 4 limits, one key  {one * 1e6:8.3f} µs  {1 / one:>12,.0f} checks/s  {one / base:6.1f}x baseline"
    )
    print(
        f"  same, spread over 1,000 keys          {spread * 1e6:8.3f} µs  {1 / spread:>12,.0f} checks/s  {spread / base:6.1f}x baseline"
    )


def bench_redis(url: str, n: int) -> None:
    import redis
    import redis.asyncio

    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.ConnectionError:
        print(f"redis backend: skipped, {url} not reachable")
        return
    prefix = f"kakin-bench:{uuid.uuid4().hex[:8]}:"
    limiter = RedisRateLimiter(client=client, prefix=prefix)
    limits = _limits()
    try:
        limiter.check_and_consume(limits)  # load the script

        def ping(k: int) -> None:
            for _ in range(k):
                client.ping()

        def check(k: int) -> None:
            for _ in range(k):
                limiter.check_and_consume(limits, requests=1, tokens=500)

        base = _per_op(ping, n)
        one = _per_op(check, n)
        print(f"redis backend ({url}, sequential, one connection)")
        print(f"  baseline: PING round trip             {base * 1e6:8.1f} µs")
        print(
            f"  check_and_consume, 4 limits           {one * 1e6:8.1f} µs  {1 / one:>12,.0f} checks/s  {one / base:6.2f}x PING"
        )

        async def concurrent(tasks: int) -> tuple[float, float]:
            aclient = redis.asyncio.Redis.from_url(url, max_connections=tasks)
            alimiter = RedisRateLimiter(async_client=aclient, prefix=prefix)
            per_task = max(1, n // tasks)

            async def pings() -> None:
                for _ in range(per_task):
                    await aclient.ping()

            async def checks() -> None:
                for _ in range(per_task):
                    await alimiter.acheck_and_consume(limits, requests=1, tokens=500)

            await alimiter.acheck_and_consume(limits)
            results = []
            for work in (pings, checks):
                started = time.perf_counter()
                await asyncio.gather(*(work() for _ in range(tasks)))
                results.append(per_task * tasks / (time.perf_counter() - started))
            await aclient.aclose()
            return results[0], results[1]

        ping_rate, check_rate = asyncio.run(concurrent(32))
        print("redis backend, asyncio, 32 concurrent tasks")
        print(f"  baseline: PING                        {ping_rate:>12,.0f} ops/s")
        print(
            f"  acheck_and_consume, 4 limits          {check_rate:>12,.0f} checks/s  {check_rate / ping_rate:6.2f}x PING throughput"
        )
    finally:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    args = parser.parse_args()
    bench_memory(20_000 if args.quick else 200_000)
    bench_redis(args.redis, 1_000 if args.quick else 10_000)


if __name__ == "__main__":
    main()
