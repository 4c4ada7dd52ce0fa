"""What every admin route works with: the ledger, the alert store, and the change hook.

``changed(kind, id)`` runs after every successful mutation so the gateway can drop cached
state at once (a revoked key must stop working on the next request, not after a cache TTL).
A failing hook is logged and does not turn a committed change into an error response.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from kakin.alerts.engine import AlertEngine
from kakin.alerts.store import AlertStore
from kakin.ledger import Ledger

log = logging.getLogger("kakin.admin")

ChangeHook = Callable[[str, str], None]


@dataclass(frozen=True, slots=True)
class AdminContext:
    ledger: Ledger
    alert_store: AlertStore
    alert_engine: AlertEngine | None = None
    on_change: ChangeHook | None = None

    def changed(self, kind: str, ident: str) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(kind, ident)
        except Exception:
            log.exception("admin on_change(%r, %r) failed; cached %s state may be stale", kind, ident, kind)

    def alert_rules_changed(self, org_id: str) -> None:
        """Rules are cached by the engine; reload them here and tell the gateway."""
        if self.alert_engine is not None:
            self.alert_engine.reload_rules()
        self.changed("alerts", org_id)
