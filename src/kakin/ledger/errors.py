"""Errors the ledger raises, with the HTTP status the gateway and admin API answer with.

Key problems split the way providers do: an unknown, revoked or expired key is 401 (the
caller is not authenticated); a suspended key or a key used outside its project or model
list is 403 (authenticated, not allowed). Running out of credit or hitting a hard cap is 402:
retrying will not help until someone pays or the period resets, so it must not look like a
429 that SDKs retry automatically. A request without an output limit refused because another
is in flight (``output_limit = "hold_only"``) is a 429 with Retry-After: it passes once the
other ends, or at once with an output limit.
"""

from __future__ import annotations

from datetime import datetime

from kakin.errors import KakinError


class InvalidKey(KakinError):
    """The key is not a kakin key or no such key exists."""

    status = 401
    code = "invalid_api_key"


class KeyRevoked(InvalidKey):
    code = "api_key_revoked"


class KeyExpired(InvalidKey):
    code = "api_key_expired"


class KeySuspended(KakinError):
    status = 403
    code = "api_key_suspended"


class PermissionDenied(KakinError):
    """A key, project or model used outside what it is allowed to touch."""

    status = 403
    code = "permission_denied"


class CreditExhausted(KakinError):
    """No usable credit left and no payment method on file to continue on postpaid billing."""

    status = 402
    code = "insufficient_credit"


class BudgetExceeded(KakinError):
    """A hard-capped budget has no room left for this request in the current period."""

    status = 402
    code = "budget_exceeded"

    def __init__(self, message: str, *, budget_id: str, period_end: datetime | None) -> None:
        super().__init__(message)
        self.budget_id = budget_id
        self.period_end = period_end


class TierLimitExceeded(BudgetExceeded):
    """The organisation's usage tier caps monthly spend and this request would pass it."""

    code = "tier_limit_exceeded"


class UnboundedOutputBusy(KakinError):
    """A request without an output limit while another of the organisation's is in flight
    (``gateway.output_limit = "hold_only"`` under a cap): retry later, or set an output limit."""

    status = 429
    code = "unbounded_output_in_flight"
    kind = "requests"

    def __init__(self, message: str, *, retry_after_seconds: float) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds
