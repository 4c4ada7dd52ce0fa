"""Shared fixtures: real PostgreSQL and Redis when reachable, a printed skip reason when not."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

PG_ADMIN_URL = os.environ.get("KAKIN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("KAKIN_TEST_REDIS", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    """A TCP port nothing listens on now, for a server the test starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def kakin_command(*args: str) -> list[str]:
    """The ``kakin`` console script of this interpreter's environment, with ``args``."""
    script = Path(sys.executable).with_name("kakin")
    if script.exists():
        return [str(script), *args]
    found = shutil.which("kakin")
    if found:
        return [found, *args]
    return [sys.executable, "-c", "from kakin.cli import main; main()", *args]


def schema_drift(conn: Any, metadata: Any, tables: Iterable[str]) -> list[Any]:
    """What differs between the database on ``conn`` and ``metadata`` in ``tables`` alone
    (columns, types, indexes): each package's migration test checks its own tables."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    names = set(tables)

    def ours(obj, name, type_, reflected, compare_to) -> bool:  # type: ignore[no-untyped-def]
        table = obj if type_ == "table" else getattr(obj, "table", None)
        return table is None or table.name in names

    context = MigrationContext.configure(conn, opts={"include_object": ours, "compare_type": True})
    return compare_metadata(context, metadata)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


POSTGRES_UP = _reachable("127.0.0.1", 5432)
REDIS_UP = _reachable("127.0.0.1", 6379)


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [
        "PostgreSQL 127.0.0.1:5432: "
        + ("reachable, PostgreSQL tests run" if POSTGRES_UP else "NOT reachable, PostgreSQL tests skip"),
        "Redis 127.0.0.1:6379: "
        + ("reachable, Redis tests run" if REDIS_UP else "NOT reachable, Redis tests skip"),
    ]


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``make test``'s scheduling (``-n 2 --dist loadgroup``): xdist's own loadgroup reads
    ``xdist_group`` marks into test ids, which pytest 9 no longer lets it change, so the groups
    are made here from the ids. A module's tests run on one worker, so the servers a
    module-scoped fixture starts are started once; the scale-out package's tests share one
    cluster; every test parametrized on PostgreSQL is in one group, so that worker's
    PostgreSQL tests and the other's rarely meet at the lock below."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByModule(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path, _, rest = nodeid.partition("::")
            if "postgres" in rest.partition("[")[2]:
                return "postgresql"
            return "tests/scaleout" if path.startswith("tests/scaleout/") else path

    return ByModule(config, log)


def uses_postgresql(item: pytest.Item) -> bool:
    """Whether ``item`` runs on the shared PostgreSQL server: a fixture of it in its closure,
    the ``postgres`` mark, or a parameter naming it (a backend fixture's "postgres(ql)")."""
    if item.get_closest_marker("postgres") or {"pg_database_url", "scaleout_database"} & set(
        getattr(item, "fixturenames", ())
    ):
        return True
    callspec = getattr(item, "callspec", None)
    return callspec is not None and any(
        isinstance(value, str) and "postgres" in value for value in callspec.params.values()
    )


@pytest.fixture(autouse=True)
def one_postgresql_test_at_a_time(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Under xdist, a test on the shared PostgreSQL holds a lock shared by the workers: two at
    once could pass the server's connection limit (100 by default; one test alone opens 50)."""
    if not os.environ.get("PYTEST_XDIST_WORKER") or not uses_postgresql(request.node):
        yield
        return
    import fcntl

    # Each worker's base directory is in the run's own: the lock file is the run's.
    path = tmp_path_factory.getbasetemp().parent / "postgresql.lock"
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now

    def set(self, moment: datetime) -> datetime:
        self.now = moment
        return moment


@contextmanager
def fresh_pg_database(prefix: str) -> Iterator[str]:
    """A new database on the shared PostgreSQL server, dropped on leaving."""
    import psycopg

    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite ledger migrated to head once per session: tests copy it (``sqlite_copy``)
    rather than run every migration again for each new database."""
    from kakin.ledger import Ledger

    path = tmp_path_factory.mktemp("template") / "kakin.db"
    Ledger.open(f"sqlite:///{path}").close()
    return path


def sqlite_copy(template: Path, folder: Path, name: str = "kakin.db") -> str:
    """The URL of a fresh copy of ``template`` (see ``sqlite_template``) in ``folder``."""
    path = folder / name
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """A PostgreSQL database made for this test session and dropped after it."""
    if not POSTGRES_UP:
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432 (start it to run these tests)")
    with fresh_pg_database("kakin_test") as url:
        yield url


@pytest.fixture(scope="session")
def migrated_pg_schema(pg_database_url: str) -> Iterator[Callable[[str], str]]:
    """``make(prefix)`` gives the URL of a new schema in the session's database, migrated to the
    ledger's head; each area of tests takes one of its own so their rows never meet. Every
    schema made is dropped at the end of the session."""
    import psycopg

    from kakin.ledger.db import make_engine, migrate

    made: list[str] = []

    def make(prefix: str) -> str:
        schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(pg_database_url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        made.append(schema)
        url = f"{pg_database_url}?options=-csearch_path%3D{schema}"
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
        return url

    try:
        yield make
    finally:
        with psycopg.connect(pg_database_url, autocommit=True) as conn:
            for schema in made:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def emptied_schema(url: str) -> str:
    """``url`` (a schema made by ``migrated_pg_schema``) with every table emptied but Alembic's."""
    import psycopg

    base, options = url.split("?", 1)
    schema = options.rsplit("%3D", 1)[1]
    with psycopg.connect(base, autocommit=True) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename <> 'alembic_version'",
                (schema,),
            )
        ]
        if tables:
            conn.execute("TRUNCATE " + ", ".join(f'"{schema}"."{t}"' for t in tables) + " CASCADE")
    return url


# Every Redis key prefix handed out in this session → the test or module it was made for.
_REDIS_PREFIXES: dict[str, str] = {}


def new_redis_prefix(owner: str, namespace: str = "kakin-test") -> str:
    """A Redis key prefix of ``owner``'s own (a test's node id, a module's or a package's name).
    Its owner deletes its keys (:func:`delete_redis_keys`) when done; any found under it at the
    end of the session were written afterwards, by something the owner left running, and fail
    the session naming the owner."""
    prefix = f"{namespace}:{uuid.uuid4().hex[:12]}:"
    _REDIS_PREFIXES[prefix] = owner
    return prefix


def delete_redis_keys(prefix: str) -> int:
    """Delete every key under ``prefix``; how many there were."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
        return len(keys)
    finally:
        client.close()


def redis_keys(name: str) -> Iterator[tuple[str, str]]:
    """For a fixture: (redis_url, key_prefix) of a prefix of ``name``'s own, whose keys are
    deleted afterwards; skips when Redis is not reachable."""
    if not REDIS_UP:
        pytest.skip("Redis is not reachable at 127.0.0.1:6379 (start it to run these tests)")
    prefix = new_redis_prefix(name)
    yield REDIS_URL, prefix
    delete_redis_keys(prefix)


@pytest.fixture()
def redis_prefix(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(redis_url, key_prefix): keys under the prefix are deleted after the test."""
    yield from redis_keys(request.node.nodeid)


# What the xdist workers found left in Redis (their messages, read on the controller).
_LEFT_ON_WORKERS: list[str] = []


def pytest_testnodedown(node: Any, error: object) -> None:
    """xdist's controller: a worker has finished; keep what it found left in Redis."""
    message = getattr(node, "workeroutput", {}).get("redis_keys_left")
    if message:
        _LEFT_ON_WORKERS.append(message)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the session when keys are found under a prefix whose owner already deleted its
    keys (and delete them): a gateway, writer or task it started outlived it. An xdist worker
    hands its finding to the controller, which reports every worker's and fails the run."""
    messages = list(_LEFT_ON_WORKERS)
    if _REDIS_PREFIXES and REDIS_UP:
        left = {owner: n for prefix, owner in _REDIS_PREFIXES.items() if (n := delete_redis_keys(prefix))}
        if left:
            messages.append(
                "Redis keys written after their owner's cleanup (deleted now): "
                + "; ".join(f"{owner}: {n}" for owner, n in left.items())
            )
    if not messages:
        return
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: its own exit status is not the run's
        workeroutput["redis_keys_left"] = "\n".join(messages)
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write("\n")  # the progress line is still open
        reporter.write_sep("=", "Redis keys left behind", red=True)
        for message in messages:
            reporter.write_line(message, red=True)
    else:
        print("\n".join(messages), file=sys.stderr)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
