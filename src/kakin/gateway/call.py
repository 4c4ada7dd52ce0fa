"""One request's state as it moves through the gateway: who asked, for what, routed where,
what was held for it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kakin.config import ProviderSettings
from kakin.gateway.accounting import Ticket
from kakin.gateway.keys import Caller
from kakin.gateway.routing import Route
from kakin.ledger.records import Scope
from kakin.providers import ParsedRequest


@dataclass(slots=True)
class Call:
    """Made by admission; the hold, the relay and the settlement fill in the rest."""

    api: str
    caller: Caller
    parsed: ParsedRequest
    provider: ProviderSettings
    route: Route
    entry: Any  # catalog ModelEntry, or None for an explicitly allowed unpriced model
    started: datetime
    request_id: str
    bound_tokens: int = 0  # what the rate limiter was charged before forwarding
    ticket: Ticket | None = None  # the hold, until it is charged or released
    idempotency_key: str = ""
    extra_headers: list[tuple[str, str]] = field(default_factory=list)
    forwarded: bool = False  # the request was (being) sent upstream

    @property
    def model(self) -> str:
        """The model the request is billed and budgeted as: the catalog's name for the one it
        is sent to (``gpt-4o`` for ``gpt-4o-2024-08-06``, which the catalog prices as it), so
        that no other spelling of a model escapes a budget on it."""
        return self.entry.model if self.entry is not None else self.route.model

    @property
    def scope(self) -> Scope:
        key = self.caller.key
        return Scope(org_id=key.org_id, project_id=key.project_id, key_id=key.id, model=self.model)
