"""Shared accounting with holds in Redis, through separate ``kakin serve`` processes on one
PostgreSQL ledger: a hard cap holds across them under concurrency; Redis flushed in the middle
of a load costs no overspend and admission resumes once the state is rebuilt; a key revoked or
a budget changed through one process is honoured by the other on its very next request."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import openai
import pytest
import redis

from conftest import REDIS_UP, REDIS_URL, delete_redis_keys, new_redis_prefix
from kakin.ledger import Ledger

from .conftest import random_phone
from .test_crash import free_port, start_serving, wait_healthy

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX processes"),
]

ADMIN = "admin-" + uuid.uuid4().hex


class Gateways:
    """``count`` ``kakin serve`` processes sharing one ledger and one Redis."""

    def __init__(self, database_url: str, redis_url: str, prefix: str, tmp: Path, count: int = 2) -> None:
        self.processes: list[subprocess.Popen] = []
        self.urls: list[str] = []
        try:
            for i in range(count):
                port = free_port()
                env = {
                    **os.environ,
                    "KAKIN_DATABASE_URL": database_url,
                    "KAKIN_REDIS_URL": redis_url,
                    "KAKIN_REDIS__PREFIX": prefix,
                    "KAKIN_GATEWAY__JOURNAL_DIR": str(tmp / "journals"),
                    "KAKIN_GATEWAY__REDIS_REBUILD_GRACE_SECONDS": "0.5",
                    "KAKIN_PORT": str(port),
                    "KAKIN_ADMIN_KEY": ADMIN,
                    "KAKIN_LOG_LEVEL": "warning",
                }
                workdir = tmp / f"gateway-{i}"
                workdir.mkdir()
                self.processes.append(start_serving(env, workdir))
                self.urls.append(f"http://127.0.0.1:{port}")
            for url, process in zip(self.urls, self.processes, strict=True):
                wait_healthy(url, process, timeout=90)  # a loaded machine starts slowly
        except BaseException:
            # The test never gets the object to stop: left running, a gateway would keep
            # writing under the prefix after the test's cleanup.
            self.stop()
            raise

    def stop(self) -> str:
        logs = []
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                _, err = process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                _, err = process.communicate()
            logs.append(err or "")
        return "\n".join(logs)


def make_org(ledger: Ledger, cap: Decimal | None) -> tuple[str, str, str]:
    """(org id, key id, plaintext) of a new organisation with $5 credit and a hard cap."""
    org = ledger.create_org("redis-" + uuid.uuid4().hex[:8], phone=random_phone())
    project = ledger.create_project(org.id, "p")
    key, plaintext = ledger.create_key(project.id, "k")
    ledger.grant(org.id, "prepaid", Decimal("5"), idempotency_key="p")
    if cap is not None:
        ledger.set_budget(org.id, period="month", limit=cap, hard_cap=True)
    return org.id, key.id, plaintext


def all_posted(ledger: Ledger, org_id: str, served: int, timeout: float = 20) -> list:
    """The usage records once every served request's charge is posted from the journals."""
    deadline = time.monotonic() + timeout
    while True:
        records = ledger.usage(org_id, limit=100_000)
        if len(records) >= served or time.monotonic() > deadline:
            return records
        time.sleep(0.05)


async def fire(url: str, key: str, count: int, max_tokens: int = 100) -> list[object]:
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=30)

    async def one(i: int) -> object:
        try:
            return await client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": f"request {i}"}],
                max_tokens=max_tokens,
                extra_headers={"x-kakin-simulate": "latency=30ms"},
            )
        except openai.APIStatusError as refused:
            return refused

    try:
        return await asyncio.gather(*(one(i) for i in range(count)))
    finally:
        await client.close()


@pytest.fixture(scope="module")
def pair(
    gateway_pg_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Gateways, str, str]]:
    """(gateways, redis_url, key_prefix): two ``kakin serve`` processes on the shared Redis under
    a key prefix of this module's own, shared by the tests that never flush it (each makes
    organisations of its own). The prefix's keys are deleted after."""
    if not REDIS_UP:
        pytest.skip("Redis is not reachable at 127.0.0.1:6379 (start it to run these tests)")
    prefix = new_redis_prefix(__name__)
    gateways = Gateways(gateway_pg_url, REDIS_URL, prefix, tmp_path_factory.mktemp("pair"))
    try:
        yield gateways, REDIS_URL, prefix
    finally:
        gateways.stop()
        delete_redis_keys(prefix)


@pytest.fixture()
def own_redis(tmp_path: Path) -> Iterator[str]:
    """A Redis server of this test's own (it gets flushed), on a free port, nothing saved."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    client.close()
    yield url
    process.terminate()
    process.wait(timeout=10)


def test_gateway_processes_never_pass_a_hard_cap_together(
    gateway_pg_url: str, pair: tuple[Gateways, str, str]
) -> None:
    gateways, url, prefix = pair
    ledger = Ledger.open(gateway_pg_url)
    cap = Decimal("0.0006")  # room for a fraction of the 60 requests below
    org_id, _, key = make_org(ledger, cap)
    try:

        async def both() -> list[object]:
            batches = await asyncio.gather(*(fire(u, key, 30) for u in gateways.urls))
            return [r for batch in batches for r in batch]

        results = asyncio.run(both())
        served = [r for r in results if not isinstance(r, openai.APIStatusError)]
        refused = [r for r in results if isinstance(r, openai.APIStatusError)]
        assert served and refused, "the cap should let some requests through and stop others"
        assert {r.status_code for r in refused} == {402}
        assert all("has no room" in r.message for r in refused)
        records = all_posted(ledger, org_id, len(served))
        assert len(records) == len(served)
        balance = ledger.balance(org_id)
        assert balance.spent <= cap and balance.held == 0
        assert sum(Decimal(r.headers["x-kakin-cost-usd"]) for r in served) == balance.spent  # type: ignore[attr-defined]
        assert ledger.reconcile(org_id).ok
        client = redis.Redis.from_url(url)
        assert client.exists(f"{prefix}acct:{{{org_id}}}:s"), "the holds were decided in Redis"
        assert client.hlen(f"{prefix}acct:{{{org_id}}}:h") == 0  # no hold left behind
        client.close()
    finally:
        ledger.close()


def test_redis_flushed_mid_load_no_overspend_and_admission_resumes(
    gateway_pg_url: str, own_redis: str, tmp_path: Path
) -> None:
    ledger = Ledger.open(gateway_pg_url)
    cap = Decimal("0.004")  # about 300 of the requests below: reached well after the flush
    org_id, _, key = make_org(ledger, cap)
    gateways = Gateways(gateway_pg_url, own_redis, "kakin:", tmp_path)
    statuses: list[tuple[float, int]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def work(url: str, worker: int) -> None:
        headers = {"Authorization": f"Bearer {key}", "x-kakin-simulate": "latency=20ms"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            n = 0
            while not stop.is_set():
                n += 1
                body = {
                    "model": "gpt-4o-mini",
                    "messages": [{"role": "user", "content": f"w{worker} {n}"}],
                    "max_tokens": 60,
                }
                status = client.post("/v1/chat/completions", json=body).status_code
                with lock:
                    statuses.append((time.monotonic(), status))

    threads = [threading.Thread(target=work, args=(gateways.urls[i % 2], i), daemon=True) for i in range(8)]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # a load under way
            time.sleep(0.1)
            with lock:
                if sum(1 for _, s in statuses if s == 200) >= 40:
                    break
        redis.Redis.from_url(own_redis).flushall()  # a Redis restart without persistence, mid-load
        flushed = time.monotonic()
        deadline = flushed + 60
        while time.monotonic() < deadline:  # until the cap stops the load
            time.sleep(0.2)
            with lock:
                if sum(1 for _, s in statuses[-20:] if s == 402) >= 20:
                    break
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        with lock:
            before = [s for t, s in statuses if t < flushed]
            after = [s for t, s in statuses if t > flushed + 0.1]
        assert before.count(200) >= 40, before
        assert after.count(200) > 0, "admission resumed after the rebuild"
        assert 402 in after, "the load ran into the cap after the flush"
        assert set(after) <= {200, 402, 503}
        served = sum(1 for _, s in statuses if s == 200)
        records = all_posted(ledger, org_id, served)
        assert len(records) == served
        balance = ledger.balance(org_id)
        assert balance.spent <= cap, f"overspend: {balance.spent} > {cap}"
        assert balance.held == 0
        assert ledger.reconcile(org_id).ok
    finally:
        stop.set()
        gateways.stop()
        ledger.close()


def test_changes_through_one_process_are_honoured_by_the_other_at_once(
    gateway_pg_url: str, pair: tuple[Gateways, str, str]
) -> None:
    gateways, _, _ = pair
    ledger = Ledger.open(gateway_pg_url)
    org_id, key_id, key = make_org(ledger, None)
    first, second = gateways.urls
    admin = {"Authorization": f"Bearer {ADMIN}"}
    try:
        other = openai.OpenAI(base_url=second + "/v1", api_key=key, max_retries=0)

        def ask() -> object:
            try:
                return other.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=20
                )
            except openai.APIStatusError as refused:
                return refused

        assert not isinstance(ask(), openai.APIStatusError)  # the second process knows the key now

        # A hard cap set through the first process's admin API: the second refuses at once.
        spent = all_posted(ledger, org_id, 1)[0].cost
        budget = httpx.post(
            f"{first}/admin/orgs/{org_id}/budgets",
            headers=admin,
            json={"period": "month", "limit": str(spent), "hard_cap": True},
        )
        assert budget.status_code in (200, 201), budget.text
        refused = ask()
        assert isinstance(refused, openai.APIStatusError) and refused.status_code == 402
        removed = httpx.delete(f"{first}/admin/budgets/{budget.json()['id']}", headers=admin)
        assert removed.status_code in (200, 204), removed.text
        assert not isinstance(ask(), openai.APIStatusError)  # and lifting it applies at once too

        # The key revoked through the first process: the second refuses its very next request.
        revoked = httpx.post(f"{first}/admin/keys/{key_id}/revoke", headers=admin)
        assert revoked.status_code == 200, revoked.text
        refused = ask()
        assert isinstance(refused, openai.APIStatusError) and refused.status_code == 401
        assert "revoked" in refused.message

        # Credit granted outside any gateway (as the CLI does, on the ledger itself): every gateway
        # picks it up when its state is next refreshed, within about 5 s.
        broke = ledger.create_org("broke-" + uuid.uuid4().hex[:8], phone=random_phone())
        project = ledger.create_project(broke.id, "p")
        _, broke_key = ledger.create_key(project.id, "k")
        poor = openai.OpenAI(base_url=second + "/v1", api_key=broke_key, max_retries=0)
        request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}
        with pytest.raises(openai.APIStatusError) as no_credit:
            poor.chat.completions.create(**request)
        assert no_credit.value.status_code == 402 and "out of credit" in no_credit.value.message
        ledger.grant(broke.id, "prepaid", Decimal("5"), idempotency_key="later")
        granted = time.monotonic()
        while True:
            try:
                poor.chat.completions.create(**request)
                break
            except openai.APIStatusError as still:
                assert still.status_code == 402
                assert time.monotonic() - granted < 10, "the grant was not seen within 10 s"
                time.sleep(0.2)
    finally:
        ledger.close()


def test_a_key_past_its_replay_window_is_refused_by_every_process(
    gateway_pg_url: str, pair: tuple[Gateways, str, str]
) -> None:
    """The claim of an Idempotency-Key and its answer live in Redis for the replay window only;
    past it (here: both deleted), a retry with the key on another process is refused — not
    served again at the provider's cost for a charge the ledger already holds under that key."""
    gateways, redis_url, prefix = pair
    ledger = Ledger.open(gateway_pg_url)
    org_id, key_id, key = make_org(ledger, None)
    idem = "order-" + uuid.uuid4().hex
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "once"}], "max_tokens": 20}
    try:
        first, second = (openai.OpenAI(base_url=u + "/v1", api_key=key, max_retries=0) for u in gateways.urls)
        served = first.chat.completions.with_raw_response.create(
            **body, extra_headers={"Idempotency-Key": idem}
        )
        assert len(all_posted(ledger, org_id, 1)) == 1
        client = redis.Redis.from_url(redis_url)
        gone = client.delete(
            f"{prefix}replay:{key_id}:{idem}", f"{prefix}acct:{{{org_id}}}:i:{key_id}:{idem}"
        )
        client.close()
        assert gone == 2  # the answer and the claim, as once the window has passed
        with pytest.raises(openai.ConflictError) as refused:
            second.chat.completions.create(**body, extra_headers={"Idempotency-Key": idem})
        assert "already served and billed once" in refused.value.message
        time.sleep(0.3)  # a charge, had there been one, would be posted by now
        assert [r.request_id for r in ledger.usage(org_id)] == [served.headers["x-kakin-request-id"]]
        assert ledger.reconcile(org_id).ok
    finally:
        ledger.close()
