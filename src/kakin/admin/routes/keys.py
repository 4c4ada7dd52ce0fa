"""Virtual API keys: create (plaintext once), list, rotate with grace, revoke, suspend."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter

from kakin.admin.context import AdminContext
from kakin.admin.errors import declare
from kakin.admin.routes.params import FilterText, KeyId, OrgRef, ProjectId
from kakin.admin.schemas.common import Items
from kakin.admin.schemas.keys import KeyCreate, KeyCreated, KeyOut, KeyRotate, KeyRotated, KeySuspend
from kakin.ledger.records import KeyRecord


def router(ctx: AdminContext) -> APIRouter:
    api = APIRouter(tags=["keys"])
    ledger = ctx.ledger

    def out(record: KeyRecord) -> KeyOut:
        return KeyOut.of(record, ledger.now())

    @api.post(
        "/projects/{project_id}/keys",
        status_code=201,
        response_model=KeyCreated,
        summary="Create a key",
        description="A new virtual API key for the project. The plaintext is in this response only; kakin "
        "stores a hash. Optional expiry, allowed models and per-key rate limits.",
        responses=declare(404, 409),
    )
    def create_key(project_id: ProjectId, body: KeyCreate) -> KeyCreated:
        record, plaintext = ledger.create_key(
            project_id, body.name, expires_at=body.expires_at, models=body.models, rpm=body.rpm, tpm=body.tpm
        )
        ctx.changed("key", record.id)
        return KeyCreated(key=out(record), plaintext=plaintext)

    @api.get(
        "/orgs/{org}/keys",
        response_model=Items[KeyOut],
        summary="List keys",
        description="The organisation's keys, oldest first, optionally of one project. Never the plaintext "
        "or its hash.",
        responses=declare(404),
    )
    def list_keys(org: OrgRef, project_id: FilterText = None) -> Items[KeyOut]:
        return Items[KeyOut](items=[out(k) for k in ledger.list_keys(org, project_id=project_id)])

    @api.get(
        "/keys/{key_id}",
        response_model=KeyOut,
        summary="Get a key",
        description="The key's record and status (active, expired, revoked or suspended).",
        responses=declare(404),
    )
    def get_key(key_id: KeyId) -> KeyOut:
        return out(ledger.get_key(key_id))

    @api.post(
        "/keys/{key_id}/rotate",
        status_code=201,
        response_model=KeyRotated,
        summary="Rotate a key",
        description="Issue a successor key (same project, limits and expiry); the old key keeps working for "
        "`grace_seconds` (default 24 h, at most 30 days) so clients can switch without downtime.",
        responses=declare(404, 409),
    )
    def rotate_key(key_id: KeyId, body: KeyRotate | None = None) -> KeyRotated:
        grace = timedelta(seconds=(body or KeyRotate()).grace_seconds)
        record, plaintext = ledger.rotate_key(key_id, grace)
        ctx.changed("key", key_id)
        ctx.changed("key", record.id)
        return KeyRotated(key=out(record), plaintext=plaintext, previous=out(ledger.get_key(key_id)))

    @api.post(
        "/keys/{key_id}/revoke",
        response_model=KeyOut,
        summary="Revoke a key",
        description="Immediately and for good. Revoking a revoked key changes nothing.",
        responses=declare(404, 409),
    )
    def revoke_key(key_id: KeyId) -> KeyOut:
        record = ledger.revoke_key(key_id)
        ctx.changed("key", key_id)
        return out(record)

    @api.post(
        "/keys/{key_id}/suspend",
        response_model=KeyOut,
        summary="Suspend a key",
        description="Callers get 403 with the reason until the key is unsuspended. A revoked key cannot be "
        "suspended (409).",
        responses=declare(404, 409),
    )
    def suspend_key(key_id: KeyId, body: KeySuspend) -> KeyOut:
        record = ledger.suspend_key(key_id, body.reason)
        ctx.changed("key", key_id)
        return out(record)

    @api.post(
        "/keys/{key_id}/unsuspend",
        response_model=KeyOut,
        summary="Lift a suspension",
        description="The key works again (unless revoked or expired).",
        responses=declare(404, 409),
    )
    def unsuspend_key(key_id: KeyId) -> KeyOut:
        record = ledger.unsuspend_key(key_id)
        ctx.changed("key", key_id)
        return out(record)

    return api
