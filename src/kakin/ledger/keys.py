"""Virtual API keys: shown once, stored as a hash, looked up by a public prefix.

A key reads ``kk-<prefix>-<secret>``: 12 base32 characters of prefix (unique, indexed, safe
to show and log) and 43 characters of secret (256 random bits). Only the SHA-256 of the whole
key is stored. A slow password hash (bcrypt, scrypt) protects low-entropy secrets from
guessing after a database leak; a 256-bit random secret cannot be guessed at any speed, so a
fast hash loses nothing and keeps verification cheap on every request. Comparison is
constant-time (``hmac.compare_digest``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import Connection, insert, select, update

from kakin.errors import Conflict, InvalidInput, NotFound
from kakin.ledger import schema as s
from kakin.ledger import validate as v
from kakin.ledger.errors import InvalidKey, KeyExpired, KeyRevoked, KeySuspended
from kakin.ledger.ids import new_id, random_token
from kakin.ledger.records import KeyRecord
from kakin.ledger.work import Row

KEY_PREFIX = "kk-"


def shown_key(prefix: str) -> str:
    """How a key appears in messages and listings: its public prefix, never the secret."""
    return f"{KEY_PREFIX}{prefix}-…"


PREFIX_LENGTH = 12
MAX_GRACE = timedelta(days=30)


def secret_hash(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def _new_plaintext() -> tuple[str, str]:
    prefix = random_token(PREFIX_LENGTH)
    return prefix, f"{KEY_PREFIX}{prefix}-{secrets.token_urlsafe(32)}"


def _limits(models: object, rpm: object, tpm: object) -> tuple[list[str] | None, int | None, int | None]:
    clean_models = None
    if models is not None:
        if isinstance(models, str) or not hasattr(models, "__iter__"):
            raise InvalidInput(f"models must be a list of model names, got {models!r}")
        clean_models = sorted({v.text(m, "model name") for m in models})  # type: ignore[attr-defined]
        if not clean_models:
            raise InvalidInput("models must name at least one model (or be omitted to allow all)")
    for name, value in (("rpm", rpm), ("tpm", tpm)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 10**12
        ):
            raise InvalidInput(f"{name} must be a positive whole number, got {value!r}")
    return clean_models, rpm, tpm  # type: ignore[return-value]


def create(
    conn: Connection,
    now: datetime,
    project_id: str,
    name: str,
    *,
    expires_at: object = None,
    models: object = None,
    rpm: object = None,
    tpm: object = None,
    rotated_from: str | None = None,
) -> tuple[Row, str]:
    project = conn.execute(select(s.projects).where(s.projects.c.id == project_id)).first()
    if project is None:
        raise NotFound(f"no project with id {project_id!r} (see `kakin project list`)")
    clean_name = v.text(name, "key name")
    expiry = None if expires_at is None else v.moment(expires_at, "key expires_at")
    if expiry is not None and expiry <= now:
        raise InvalidInput(f"key expires_at {expiry.isoformat()} is in the past; give a future time")
    clean_models, clean_rpm, clean_tpm = _limits(models, rpm, tpm)
    prefix, plaintext = _new_plaintext()
    row = {
        "id": new_id("key"),
        "org_id": project.org_id,
        "project_id": project.id,
        "name": clean_name,
        "prefix": prefix,
        "secret_hash": secret_hash(plaintext),
        "created_at": now,
        "expires_at": expiry,
        "revoked_at": None,
        "suspended_at": None,
        "suspend_reason": None,
        "models": clean_models,
        "rpm": clean_rpm,
        "tpm": clean_tpm,
        "rotated_from": rotated_from,
        "replaced_by": None,
    }
    conn.execute(insert(s.api_keys), [row])
    return row, plaintext


def get(conn: Connection, key_id: object) -> Row:
    if not isinstance(key_id, str):
        raise NotFound(f"key id must be text, got {key_id!r}")
    row = conn.execute(select(s.api_keys).where(s.api_keys.c.id == key_id)).first()
    if row is None:
        raise NotFound(f"no key with id {key_id!r} (see `kakin keys list`)")
    return dict(row._mapping)


def verify(conn: Connection, now: datetime, plaintext: object) -> Row:
    """The key's row if ``plaintext`` is a usable key; a precise error otherwise."""
    if not isinstance(plaintext, str) or not plaintext.startswith(KEY_PREFIX):
        raise InvalidKey("not a kakin API key (kakin keys start with 'kk-'); check the Authorization header")
    parts = plaintext.split("-", 2)
    if len(parts) != 3 or len(parts[1]) != PREFIX_LENGTH or not parts[2]:
        raise InvalidKey("malformed kakin API key (expected kk-<12 characters>-<secret>); copy the whole key")
    prefix = parts[1]
    row = conn.execute(select(s.api_keys).where(s.api_keys.c.prefix == prefix)).first()
    # Hash and compare even when the prefix is unknown, so timing says nothing about the secret.
    stored = row.secret_hash if row is not None else "0" * 64
    if not hmac.compare_digest(secret_hash(plaintext), stored) or row is None:
        raise InvalidKey(f"unknown API key {shown_key(prefix)}; create one with `kakin keys create`")
    key = dict(row._mapping)
    shown = shown_key(prefix)
    if key["revoked_at"] is not None and key["revoked_at"] <= now:
        raise KeyRevoked(f"API key {shown} was revoked at {key['revoked_at'].isoformat()}; use a new key")
    if key["expires_at"] is not None and key["expires_at"] <= now:
        how = (
            f"its rotation grace period ended (replaced by {key['replaced_by']})"
            if key["replaced_by"]
            else "it reached its expiry"
        )
        raise KeyExpired(
            f"API key {shown} expired at {key['expires_at'].isoformat()}: {how}; use a current key"
        )
    if key["suspended_at"] is not None:
        raise KeySuspended(
            f"API key {shown} is suspended since {key['suspended_at'].isoformat()}: {key['suspend_reason']}. "
            f"An administrator can lift it with `kakin keys unsuspend {key['id']}`"
        )
    return key


def rotate(conn: Connection, now: datetime, key_id: str, grace: object) -> tuple[Row, str]:
    """Issue a successor key; the old one keeps working until now + grace."""
    if isinstance(grace, bool) or not isinstance(grace, timedelta | int):
        raise InvalidInput(f"grace must be a duration (timedelta or seconds), got {grace!r}")
    span = timedelta(seconds=grace) if isinstance(grace, int) else grace
    if span < timedelta(0) or span > MAX_GRACE:
        raise InvalidInput(f"grace {span} must be between 0 and {MAX_GRACE}")
    old = get(conn, key_id)
    if old["revoked_at"] is not None:
        raise Conflict(f"key {key_id} is revoked; create a new key instead of rotating it")
    if old["replaced_by"] is not None:
        raise Conflict(f"key {key_id} was already rotated to {old['replaced_by']}; rotate that key instead")
    if old["expires_at"] is not None and old["expires_at"] <= now:
        raise Conflict(f"key {key_id} expired at {old['expires_at'].isoformat()}; create a new key instead")
    new, plaintext = create(
        conn,
        now,
        old["project_id"],
        old["name"],
        expires_at=old["expires_at"],
        models=old["models"],
        rpm=old["rpm"],
        tpm=old["tpm"],
        rotated_from=old["id"],
    )
    until = now + span
    if old["expires_at"] is not None:
        until = min(until, old["expires_at"])
    _set(conn, key_id, expires_at=until, replaced_by=new["id"])
    return new, plaintext


def revoke(conn: Connection, now: datetime, key_id: str) -> Row:
    key = get(conn, key_id)
    if key["revoked_at"] is None:
        _set(conn, key_id, revoked_at=now)
    return get(conn, key_id)


def suspend(conn: Connection, now: datetime, key_id: str, reason: object) -> Row:
    why = v.text(reason, "suspension reason", max_length=500)
    key = get(conn, key_id)
    if key["revoked_at"] is not None:
        raise Conflict(f"key {key_id} is revoked; suspending it changes nothing")
    if key["suspended_at"] is None:
        _set(conn, key_id, suspended_at=now, suspend_reason=why)
    return get(conn, key_id)


def unsuspend(conn: Connection, key_id: str) -> Row:
    get(conn, key_id)
    _set(conn, key_id, suspended_at=None, suspend_reason=None)
    return get(conn, key_id)


def _set(conn: Connection, key_id: str, **values: object) -> None:
    conn.execute(update(s.api_keys).where(s.api_keys.c.id == key_id).values(**values))


def to_record(row: Row) -> KeyRecord:
    return KeyRecord(
        id=row["id"],
        org_id=row["org_id"],
        project_id=row["project_id"],
        name=row["name"],
        prefix=row["prefix"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        suspended_at=row["suspended_at"],
        suspend_reason=row["suspend_reason"],
        models=tuple(row["models"]) if row["models"] is not None else None,
        rpm=row["rpm"],
        tpm=row["tpm"],
        rotated_from=row["rotated_from"],
        replaced_by=row["replaced_by"],
    )
