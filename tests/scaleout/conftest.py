"""Scale-out fixtures: a cluster of real ``kakin serve`` processes on PostgreSQL and Redis.

``cluster`` is four gateways shared by this directory's tests (each test makes tenants of its
own, so the ledger's numbers it reads are its own traffic only). Its database and Redis key
prefix are made for it and removed after it. The logs of every running gateway are attached
to the report of a failing test."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# tests/conftest.py: the shared PostgreSQL and Redis, and whether they answer.
from conftest import POSTGRES_UP, REDIS_UP, REDIS_URL, delete_redis_keys, fresh_pg_database, new_redis_prefix
from kakin.ledger import Ledger

from .cluster import Cluster, running_logs
from .tenants import Tenant, make_tenant

HOLD_SECONDS = 8  # gateway.hold_seconds of the shared cluster: a hold of a killed process lapses soon
HELD_OUTPUT = 32  # gateway.default_max_output_tokens: held for a request that sets no max_tokens


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        logs = running_logs()
        if logs:
            report.sections.append(("kakin serve logs (tails)", logs))


def need_databases() -> None:
    if not POSTGRES_UP:
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432 (start it to run the scale-out tests)")
    if not REDIS_UP:
        pytest.skip("Redis is not reachable at 127.0.0.1:6379 (start it to run the scale-out tests)")


@pytest.fixture(scope="package")
def scaleout_database() -> Iterator[str]:
    """A PostgreSQL database of the scale-out tests' own on the shared server, dropped after."""
    need_databases()
    with fresh_pg_database("kakin_scaleout") as url:
        yield url


@pytest.fixture(scope="package")
def redis_key_prefix() -> Iterator[str]:
    """A Redis key prefix of the scale-out tests' own; its keys are deleted after."""
    need_databases()
    prefix = new_redis_prefix("tests/scaleout", namespace="kakin-scaleout")
    yield prefix
    delete_redis_keys(prefix)


def start_cluster(
    workdir: Path, database_url: str, redis_prefix: str, *, size: int, **settings: dict
) -> Cluster:
    cluster = Cluster(
        workdir,
        size=size,
        database_url=database_url,
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
        admin_key=secrets.token_urlsafe(24),
        settings=settings,
    )
    cluster.start()
    return cluster


@pytest.fixture(scope="package")
def scaleout(
    scaleout_database: str, redis_key_prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Ledger, Cluster]]:
    """The test's own ledger (migrated before any gateway starts) and four gateways over it.

    The accounting mode is not set: the default for PostgreSQL with Redis is what is proven.
    ``output_limit = "hold_only"`` lets requests without max_tokens pass their hold (only
    those tests send such requests)."""
    ledger = Ledger.open(scaleout_database)
    try:
        cluster = start_cluster(
            tmp_path_factory.mktemp("scaleout"),
            scaleout_database,
            redis_key_prefix,
            size=4,
            gateway={
                "hold_seconds": HOLD_SECONDS,
                "output_limit": "hold_only",
                "default_max_output_tokens": HELD_OUTPUT,
            },
        )
        try:
            yield ledger, cluster
        finally:
            cluster.close()
    finally:
        ledger.close()


MakeTenant = Callable[..., Tenant]


@pytest.fixture()
def tenant_of(scaleout: tuple[Ledger, Cluster]) -> MakeTenant:
    """``tenant_of(credit="5", payment_method=False)``: a new organisation on the cluster."""
    ledger, cluster = scaleout

    def make(credit: str | None = "5", *, payment_method: bool = False) -> Tenant:
        return make_tenant(ledger, cluster, credit, payment_method=payment_method)

    return make
