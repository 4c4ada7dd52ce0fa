"""What every admin route works with: the ledger, the alert store, the change hook and the
holds kept outside the ledger.

``changed(kind, id)`` runs after every successful mutation so the gateway can drop cached
state at once (a revoked key must stop working on the next request, not after a cache TTL).
A failing hook is logged and does not turn a committed change into an error response.

``holds`` gives the holds a gateway in local accounting keeps in memory (they never reach
the ledger), so balances and budget gauges read inside that gateway count requests in flight.

``budget_model`` is the gateway's answer to "which model would a budget on this name count?"
(its router: aliases resolved, names the gateway refuses refused); without a gateway, model
budgets are kept under the name given.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from kakin.alerts.engine import AlertEngine
from kakin.alerts.store import AlertStore
from kakin.ledger import Balance, BudgetStatus, Ledger
from kakin.ledger.views import NO_LIVE_HOLDS, LiveHolds

log = logging.getLogger("kakin.admin")

ChangeHook = Callable[[str, str], None]
BudgetModel = Callable[[str], str]


class HoldsProvider(Protocol):
    def live_holds(self, org_id: str) -> LiveHolds:
        """Holds of the organisation's requests in flight that the ledger does not count;
        called from the admin API's worker threads."""
        ...


@dataclass(frozen=True, slots=True)
class AdminContext:
    ledger: Ledger
    alert_store: AlertStore
    alert_engine: AlertEngine | None = None
    on_change: ChangeHook | None = None
    holds: HoldsProvider | None = None
    budget_model: BudgetModel | None = None

    def changed(self, kind: str, ident: str) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(kind, ident)
        except Exception:
            log.exception("admin on_change(%r, %r) failed; cached %s state may be stale", kind, ident, kind)

    def live_holds(self, org_id: str) -> LiveHolds:
        return NO_LIVE_HOLDS if self.holds is None else self.holds.live_holds(org_id)

    def balance(self, balance: Balance) -> Balance:
        """A ledger balance with the live holds counted in ``held`` and ``available``."""
        return self.live_holds(balance.org_id).on_balance(balance)

    def budget_status(self, status: BudgetStatus) -> BudgetStatus:
        """A ledger budget gauge with the live holds counted in ``held`` and ``remaining``."""
        return self.live_holds(status.budget.org_id).on_budget(status)

    def alert_rules_changed(self, org_id: str) -> None:
        """Rules are cached by the engine; reload them here and tell the gateway."""
        if self.alert_engine is not None:
            self.alert_engine.reload_rules()
        self.changed("alerts", org_id)
