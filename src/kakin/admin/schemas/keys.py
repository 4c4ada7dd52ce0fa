"""Virtual API keys: created (plaintext shown once), listed, rotated, revoked, suspended."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from kakin.admin.fields import Moment, Name, text
from kakin.admin.schemas.common import TIME_EXAMPLE, Strict, example, maybe_utc, utc
from kakin.ledger.records import KeyRecord

ModelName = text(200, examples=["gpt-4o-mini"])
Reason = text(500, examples=["spend spike under investigation"])
MAX_RATE = 10**12


class KeyCreate(Strict):
    name: Name = Field(description="what the key is for", examples=["production"])
    expires_at: Moment | None = Field(None, description="the key stops working at this time (future)")
    models: list[ModelName] | None = Field(
        None, min_length=1, max_length=200, description="models the key may use; omit to allow all"
    )
    rpm: int | None = Field(None, ge=1, le=MAX_RATE, description="requests per minute for this key")
    tpm: int | None = Field(None, ge=1, le=MAX_RATE, description="tokens per minute for this key")

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"name": "production", "models": ["gpt-4o-mini"], "rpm": 60}]},
    )


class KeyRotate(Strict):
    grace_seconds: int = Field(
        86400, ge=0, le=30 * 86400, description="how long the old key keeps working (at most 30 days)"
    )

    model_config = example(grace_seconds=3600)


class KeySuspend(Strict):
    reason: Reason = Field(description="shown to callers of the suspended key")

    model_config = example(reason="spend spike under investigation")


class KeyOut(BaseModel):
    """A key as stored: never its secret or hash; ``prefix`` identifies it safely."""

    id: str = Field(examples=["key_01hx3k9v2a7bq4c8m0zp"])
    org_id: str
    project_id: str
    name: str = Field(examples=["production"])
    prefix: str = Field(description="public part of the key (kk-<prefix>-…)", examples=["7m2k9d4q1x8b"])
    status: Literal["active", "expired", "revoked", "suspended"]
    created_at: datetime = Field(examples=[TIME_EXAMPLE])
    expires_at: datetime | None
    revoked_at: datetime | None
    suspended_at: datetime | None
    suspend_reason: str | None
    models: list[str] | None = Field(examples=[["gpt-4o-mini"]])
    rpm: int | None = Field(examples=[60])
    tpm: int | None = Field(examples=[None])
    rotated_from: str | None
    replaced_by: str | None

    @classmethod
    def of(cls, key: KeyRecord, now: datetime) -> KeyOut:
        return cls(
            id=key.id,
            org_id=key.org_id,
            project_id=key.project_id,
            name=key.name,
            prefix=key.prefix,
            status=key.status(now),  # type: ignore[arg-type]
            created_at=utc(key.created_at),
            expires_at=maybe_utc(key.expires_at),
            revoked_at=maybe_utc(key.revoked_at),
            suspended_at=maybe_utc(key.suspended_at),
            suspend_reason=key.suspend_reason,
            models=None if key.models is None else list(key.models),
            rpm=key.rpm,
            tpm=key.tpm,
            rotated_from=key.rotated_from,
            replaced_by=key.replaced_by,
        )


class KeyCreated(BaseModel):
    key: KeyOut
    plaintext: str = Field(
        description="the secret key; shown in this response only, store it now",
        examples=["kk-7m2k9d4q1x8b-Jx0v…"],
    )


class KeyRotated(KeyCreated):
    previous: KeyOut = Field(description="the old key, now expiring at the end of the grace period")
