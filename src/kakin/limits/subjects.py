"""The limits a key is held to, read from the ledger's records: the key's own ``rpm`` /
``tpm`` and its organisation's usage tier. The gateway builds this once per key (and again
when the key or the tier changes) and passes it to every check."""

from __future__ import annotations

from kakin.ledger.keys import shown_key
from kakin.ledger.records import KeyRecord, Tier
from kakin.limits.types import LimitSet, build_limits


def limits_for_key(
    key: KeyRecord,
    tier: Tier | None = None,
    *,
    project_rpm: int | None = None,
    project_tpm: int | None = None,
) -> LimitSet:
    """Key limits + project limits (when the deployment sets them) + the org tier's limits."""
    return build_limits(
        key_id=key.id,
        key_prefix=shown_key(key.prefix),  # "key kk-ab12cd34ef56-…", as in every other message
        key_rpm=key.rpm,
        key_tpm=key.tpm,
        project_id=key.project_id,
        project_rpm=project_rpm,
        project_tpm=project_tpm,
        org_id=key.org_id,
        tier_name=tier.name if tier else None,
        tier_rpm=tier.requests_per_minute if tier else None,
        tier_tpm=tier.tokens_per_minute if tier else None,
    )
