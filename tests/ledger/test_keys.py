"""Virtual keys: shown once, stored hashed, verified in constant time, rotated with grace,
revoked instantly, suspended and lifted, expired; never usable outside their project."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from kakin.errors import InvalidInput, NotFound
from kakin.ledger import (
    InvalidKey,
    KeyExpired,
    KeyRevoked,
    KeySuspended,
    Ledger,
    PermissionDenied,
    Scope,
)
from kakin.ledger import schema as s


def test_create_then_verify_returns_the_key_record(ledger: Ledger, setup) -> None:
    _org, project, _key, _scope = setup
    record, plaintext = ledger.create_key(
        project.id, "batch jobs", models=["gpt-4o-mini"], rpm=60, tpm=10_000
    )
    assert plaintext.startswith("kk-" + record.prefix + "-")
    verified = ledger.verify_key(plaintext)
    assert verified.id == record.id
    assert (verified.models, verified.rpm, verified.tpm) == (("gpt-4o-mini",), 60, 10_000)
    assert verified.project_id == project.id


def test_wrong_or_malformed_keys_are_401(ledger: Ledger, setup) -> None:
    _org, project, _key, _scope = setup
    _record, plaintext = ledger.create_key(project.id, "k")
    for bad in ["sk-not-kakin", "kk-short-x", plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B"), 42]:
        with pytest.raises(InvalidKey) as caught:
            ledger.verify_key(bad)  # type: ignore[arg-type]
        assert caught.value.status == 401
        assert plaintext not in str(caught.value)


def test_plaintext_is_stored_nowhere(ledger: Ledger, setup, db_url: str) -> None:
    _org, project, _key, _scope = setup
    record, plaintext = ledger.create_key(project.id, "secret one")
    secret_part = plaintext.split("-", 2)[2]
    if ledger.backend == "sqlite":
        database = Path(db_url.removeprefix("sqlite:///"))
        blobs = b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
        assert plaintext.encode() not in blobs and secret_part.encode() not in blobs
        assert record.prefix.encode() in blobs  # the file is the right one: the prefix is there
    else:
        with ledger.engine.connect() as conn:
            dump = " ".join(
                str(tuple(row)) for table in s.LEDGER_TABLES for row in conn.execute(select(table))
            )
        assert record.prefix in dump
        assert plaintext not in dump and secret_part not in dump
    with ledger.engine.connect() as conn:
        stored = conn.execute(select(s.api_keys.c.secret_hash).where(s.api_keys.c.id == record.id)).scalar()
    assert stored is not None and len(stored) == 64 and stored not in plaintext


def test_rotation_keeps_the_old_key_valid_for_the_grace_period(ledger: Ledger, setup, clock) -> None:
    _org, project, _key, _scope = setup
    old, old_plain = ledger.create_key(project.id, "rotating", rpm=5)
    new, new_plain = ledger.rotate_key(old.id, grace=timedelta(hours=1))
    assert new.rotated_from == old.id and new.rpm == 5 and new_plain != old_plain
    assert ledger.verify_key(old_plain).replaced_by == new.id
    clock.advance(minutes=59)
    assert ledger.verify_key(old_plain).id == old.id
    clock.advance(minutes=1)
    with pytest.raises(KeyExpired, match="grace period ended"):
        ledger.verify_key(old_plain)
    assert ledger.verify_key(new_plain).id == new.id
    with pytest.raises(Exception, match="already rotated"):
        ledger.rotate_key(old.id)


def test_revoke_is_instant_and_suspend_can_be_lifted(ledger: Ledger, setup) -> None:
    _org, project, _key, _scope = setup
    record, plaintext = ledger.create_key(project.id, "k")
    suspended = ledger.suspend_key(record.id, "spend spike: 40x baseline")
    assert suspended.suspend_reason == "spend spike: 40x baseline"
    with pytest.raises(KeySuspended, match="spend spike") as caught:
        ledger.verify_key(plaintext)
    assert caught.value.status == 403
    ledger.unsuspend_key(record.id)
    assert ledger.verify_key(plaintext).suspended_at is None
    ledger.revoke_key(record.id)
    with pytest.raises(KeyRevoked) as revoked:
        ledger.verify_key(plaintext)
    assert revoked.value.status == 401


def test_keys_expire_at_their_expiry(ledger: Ledger, setup, clock) -> None:
    _org, project, _key, _scope = setup
    record, plaintext = ledger.create_key(project.id, "short", expires_at=clock.now + timedelta(days=1))
    assert ledger.verify_key(plaintext).id == record.id
    clock.advance(days=1)
    with pytest.raises(KeyExpired):
        ledger.verify_key(plaintext)
    with pytest.raises(InvalidInput, match="in the past"):
        ledger.create_key(project.id, "late", expires_at=clock.now - timedelta(seconds=1))
    with pytest.raises(InvalidInput, match="no timezone"):
        ledger.create_key(project.id, "naive", expires_at="2030-01-01T00:00:00")


def test_a_key_cannot_spend_for_another_project_or_model(ledger: Ledger, setup) -> None:
    org, project, key, _scope = setup
    other = ledger.create_project(org.id, "other")
    rival = ledger.create_org("rival", payment_label="card")
    rival_project = ledger.create_project(rival.id, "theirs")
    with pytest.raises(PermissionDenied, match="does not belong to project"):
        ledger.reserve(Scope(org.id, other.id, key.id, "gpt-4o-mini"), "0.01", idempotency_key="a")
    with pytest.raises(PermissionDenied, match="does not belong to organisation"):
        ledger.reserve(Scope(org.id, rival_project.id, None, "gpt-4o-mini"), "0.01", idempotency_key="b")
    limited, _ = ledger.create_key(project.id, "mini only", models=["gpt-4o-mini"])
    with pytest.raises(PermissionDenied, match="may only use gpt-4o-mini"):
        ledger.reserve(Scope(org.id, project.id, limited.id, "gpt-4o"), "0.01", idempotency_key="c")
    assert ledger.balance(org.id).held == Decimal(0)


def test_revoked_or_suspended_keys_cannot_reserve(ledger: Ledger, setup) -> None:
    _org, _project, key, scope = setup
    ledger.suspend_key(key.id, "manual")
    with pytest.raises(KeySuspended):
        ledger.reserve(scope, "0.01", idempotency_key="s")
    ledger.unsuspend_key(key.id)
    ledger.reserve(scope, "0.01", idempotency_key="ok")
    ledger.revoke_key(key.id)
    with pytest.raises(KeyRevoked):
        ledger.reserve(scope, "0.01", idempotency_key="r")


def test_bad_key_input_is_refused(ledger: Ledger, setup) -> None:
    _org, project, _key, _scope = setup
    with pytest.raises(NotFound):
        ledger.create_key("prj_missing", "k")
    with pytest.raises(InvalidInput):
        ledger.create_key(project.id, "   ")
    with pytest.raises(InvalidInput, match="rpm"):
        ledger.create_key(project.id, "k", rpm=-1)
    with pytest.raises(InvalidInput, match="models"):
        ledger.create_key(project.id, "k", models="gpt-4o")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="grace"):
        ledger.rotate_key(ledger.list_keys(project_id=project.id)[0].id, grace=timedelta(days=-1))
    assert len(ledger.list_keys(project_id=project.id)) == 1
