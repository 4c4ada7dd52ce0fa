"""Alerts fired and their webhook and e-mail deliveries."""

from __future__ import annotations

from starlette.responses import Response

from kakin.reports.queries import key_label
from kakin.web.dashboard import Context, Dashboard

SHOWN = 100


def alerts_page(board: Dashboard, ctx: Context) -> Response:
    fired, deliveries = [], []
    if board.alerts is not None:
        fired = [
            (alert_id, alert)
            for alert_id, alert in board.alerts.fired(ctx.org.id, limit=SHOWN)
            if ctx.scope.sees(alert.scope, alert.scope_ref)
        ]
        ids = {alert_id for alert_id, _ in fired}
        deliveries = [d for d in board.alerts.deliveries(ctx.org.id, limit=SHOWN) if d.alert_id in ids]
    names = {p.id: p.name for p in board.ledger.list_projects(ctx.org.id)}
    names |= {k.id: key_label(k.name, k.prefix) for k in ctx.scope.keys}
    return board.render(ctx, "alerts.html", active="alerts", fired=fired, deliveries=deliveries, names=names)
