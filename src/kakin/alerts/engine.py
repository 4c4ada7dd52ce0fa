"""The alert engine: called on every settle, decides in memory, does the rest in background.

On the request path (``on_settle``) it only adds the charge to rolling spend windows, turns
the budget thresholds the ledger reported into alerts, and asks the runaway detectors —
microseconds, no I/O. Everything that touches the database or the network runs on the
dispatcher's pool: recording the fired alert (the unique dedupe key makes it "once per
period" across processes), suspending a runaway key through the ``suspend`` callback,
creating one delivery per channel and sending them with retries. Credit checks (one balance
read per org per minute at most) and the expiring-credit sweep (hourly) run there too.

Rules are cached and refreshed in the background every ``rules_refresh_seconds``. An org with
no rule of a kind gets kakin's defaults: runaway per key (no auto-suspend), credit low at
fewer than 3 days of burn, credit expiring within 7 days.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Protocol

from kakin.alerts.credit import CreditLowParams, ExpiringParams, credit_low_alert, expiring_alerts
from kakin.alerts.delivery import Dispatcher
from kakin.alerts.model import Alert
from kakin.alerts.runaway import RunawayDetector, RunawayFinding, RunawayParams
from kakin.alerts.store import AlertStore, Rule
from kakin.alerts.thresholds import threshold_alerts
from kakin.alerts.windows import SpendWindows
from kakin.ledger.records import Balance, Scope, Settlement, ThresholdCrossed, UsageDetail
from kakin.money import format_amount, from_pico, to_pico

log = logging.getLogger("kakin.alerts")

_DEFAULT = "default"
_LOCAL_MEMORY = 100_000  # dedupe keys remembered in process before the set is cleared


class KeySuspender(Protocol):
    """Suspends a key (the ledger's ``suspend_key``); kakin.alerts needs nothing else of it."""

    def __call__(self, key_id: str, reason: str) -> object: ...


BalanceSource = Callable[[str], Balance]


@dataclass(frozen=True, slots=True)
class SettleEvent:
    """What the engine needs from one settled request."""

    org_id: str
    project_id: str
    key_id: str | None
    model: str
    cost: Decimal
    tokens: int
    at: datetime
    thresholds: tuple[ThresholdCrossed, ...] = ()
    key_label: str = ""  # the key's public prefix, for messages

    @classmethod
    def from_settlement(
        cls, scope: Scope, settlement: Settlement, usage: UsageDetail, at: datetime, key_label: str = ""
    ) -> SettleEvent:
        return cls(
            scope.org_id,
            scope.project_id,
            scope.key_id,
            scope.model,
            settlement.charged,
            usage.tokens,
            at,
            settlement.thresholds,
            key_label,
        )


@dataclass(slots=True)
class _RunawayWatch:
    rule: Rule | None  # None: the built-in default
    detector: RunawayDetector

    @property
    def rule_id(self) -> str:
        return self.rule.id if self.rule else _DEFAULT

    def scope_of(self, event: SettleEvent) -> tuple[str, str] | None:
        scope = self.rule.scope if self.rule else "key"
        ref = event.key_id if scope == "key" else event.project_id if scope == "project" else event.org_id
        if ref is None or (self.rule and self.rule.scope_ref and self.rule.scope_ref != ref):
            return None
        return scope, ref


class AlertEngine:
    def __init__(
        self,
        store: AlertStore,
        dispatcher: Dispatcher,
        *,
        suspend: KeySuspender | None = None,
        balance: BalanceSource | None = None,
        default_runaway: RunawayParams | None = None,
        default_credit_low: CreditLowParams | None = None,
        default_expiring: ExpiringParams | None = None,
        rules_refresh_seconds: float = 30.0,
        credit_check_seconds: float = 60.0,
        sweep_seconds: float = 3600.0,
    ) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self._suspend = suspend
        self._balance = balance
        self._default_runaway = _RunawayWatch(None, RunawayDetector(default_runaway))
        self._default_credit_low = default_credit_low or CreditLowParams()
        self._default_expiring = default_expiring or ExpiringParams()
        self._refresh_every = rules_refresh_seconds
        self._credit_every = credit_check_seconds
        self._sweep_every = sweep_seconds
        self._lock = threading.Lock()
        self._org_spend = SpendWindows(recent_minutes=60, history_hours=24)
        self._local_fired: set[str] = set()
        self._credit_checked: dict[str, float] = {}
        self._orgs_seen: set[str] = set()
        self._last_sweep = time.monotonic()
        self._rules_loaded = 0.0
        self._refreshing = False
        self._watches: dict[str, _RunawayWatch] = {}
        self._runaway_by_org: dict[str, list[_RunawayWatch]] = {}
        self._rules_by_org: dict[str, list[Rule]] = {}
        self.reload_rules()

    # -- the request path ---------------------------------------------------------------

    def on_settle(self, event: SettleEvent) -> list[Alert]:
        """Evaluate one settled request; returns the alerts it raised (already queued)."""
        return self.on_settled((event,))

    def on_settled(self, events: Sequence[SettleEvent]) -> list[Alert]:
        """Evaluate settled requests (the gateway hands over each batch the ledger posted);
        returns the alerts they raised (already queued). Spend windows take each scope's sum
        once per batch; a threshold crossed is reported for the request that crossed it."""
        alerts: list[Alert] = []
        spent: list[tuple[SettleEvent, int]] = []
        for event in events:
            if event.thresholds:
                alerts += threshold_alerts(event.thresholds, event.at)
            pico = to_pico(event.cost)
            if pico:
                spent.append((event, pico))
        with self._lock:
            self._orgs_seen.update(event.org_id for event in events)
            by_org: dict[str, list] = {}  # org id → [spend, the batch's last request]
            for event, pico in spent:
                entry = by_org.setdefault(event.org_id, [0, event])
                entry[0] += pico
                entry[1] = event
            for org_id, (pico, last) in by_org.items():
                self._org_spend.add(org_id, last.at, pico)
            for watch, where, pico, last in self._runaway_spend(spent):
                finding = watch.detector.observe(f"{where[0]}:{where[1]}", last.at, pico)
                if finding is not None:
                    alerts.append(self._runaway_alert(watch, where, finding, last))
            alerts = [alert for alert in alerts if self._first_here(alert.dedupe_key, alert.org_id)]
        for alert in alerts:
            self.dispatcher.call_soon(lambda alert=alert: self.fire(alert))
        for last in {event.org_id: event for event in events}.values():
            self._background_chores(last)
        return alerts

    def _runaway_spend(self, spent: list[tuple[SettleEvent, int]]) -> Iterable[list]:
        """[watch, (scope, ref), spend, last request] of each scope a runaway watch sees in
        ``spent``."""
        summed: dict[tuple[int, str, str], list] = {}
        for event, pico in spent:
            for watch in self._runaway_by_org.get(event.org_id) or (self._default_runaway,):
                where = watch.scope_of(event)
                if where is not None:
                    entry = summed.setdefault((id(watch), *where), [watch, where, 0, event])
                    entry[2] += pico
                    entry[3] = event
        return summed.values()

    # -- background work ------------------------------------------------------------------

    def fire(self, alert: Alert) -> str | None:
        """Record, suspend if asked, deliver. Returns the alert id, or None if this alert
        (its dedupe key) had already fired, here or in another process."""
        alert_id = self.store.record_fired(alert)
        if alert_id is None:
            return None
        if alert.suspend_key:
            alert = self._suspend_key(alert_id, alert)
        channels = [channel for channel in self.store.channels(alert.org_id) if channel.wants(alert)]
        for delivery_id, channel in zip(
            self.store.create_deliveries(alert_id, channels), channels, strict=True
        ):
            self.dispatcher.submit(delivery_id, channel, alert_id, alert)
        return alert_id

    def check_credit(self, org_id: str, at: datetime | None = None) -> list[Alert]:
        """Credit-low check for one org (a balance read). Fires what it finds."""
        if self._balance is None:
            return []
        at = at or datetime.now(UTC)
        balance = self._balance(org_id)
        burn = from_pico(self._org_spend.last_hours_pico(org_id, at, 24))
        rules = [r for r in self._rules_by_org.get(org_id, []) if r.kind == "credit_low"]
        found = []
        for rule_id, params in [(r.id, r.credit_low_params()) for r in rules] or [
            (_DEFAULT, self._default_credit_low)
        ]:
            alert = credit_low_alert(balance, burn, params, at, rule_id)
            if alert is not None and self._first_here(alert.dedupe_key, org_id):
                found.append(alert)
        return [alert for alert in found if self.fire(alert)]

    def sweep(self, at: datetime | None = None, org_ids: set[str] | None = None) -> list[Alert]:
        """Expiring-credit check for orgs seen on settles and orgs with rules."""
        if self._balance is None:
            return []
        at = at or datetime.now(UTC)
        fired = []
        for org_id in sorted(org_ids if org_ids is not None else self._orgs_seen | set(self._rules_by_org)):
            rules = [r for r in self._rules_by_org.get(org_id, []) if r.kind == "credit_expiring"]
            params = [r.expiring_params() for r in rules] or [self._default_expiring]
            grants = self._balance(org_id).grants
            for p in params:
                for alert in expiring_alerts(org_id, grants, p, at):
                    if self._first_here(alert.dedupe_key, org_id) and self.fire(alert):
                        fired.append(alert)
        return fired

    def reload_rules(self) -> None:
        rules = self.store.rules()
        by_org: dict[str, list[Rule]] = {}
        for rule in rules:
            by_org.setdefault(rule.org_id, []).append(rule)
        watches: dict[str, _RunawayWatch] = {}
        runaway: dict[str, list[_RunawayWatch]] = {}
        for rule in rules:
            if rule.kind != "runaway":
                continue
            watch = self._watches.get(rule.id)
            if watch is None or watch.rule != rule:
                watch = _RunawayWatch(rule, RunawayDetector(rule.runaway_params()))
            watches[rule.id] = watch
            runaway.setdefault(rule.org_id, []).append(watch)
        with self._lock:
            self._watches, self._runaway_by_org, self._rules_by_org = watches, runaway, by_org
        self._rules_loaded = time.monotonic()
        self._refreshing = False

    def warm_up(self, now: datetime | None = None) -> int:
        """Feed recent usage from the ledger into the spend windows (after a restart), so
        baselines are not empty. Returns how many usage records were read."""
        now = now or datetime.now(UTC)
        hours = max([w.detector.params.baseline_hours for w in self._watches.values()] + [168])
        count = 0
        for org_id, project_id, key_id, at, pico in self.store.recent_usage(now - timedelta(hours=hours)):
            event = SettleEvent(org_id, project_id, key_id, "", Decimal(0), 0, at)
            with self._lock:
                self._org_spend.add(org_id, at, pico)
                for watch in self._runaway_by_org.get(org_id) or (self._default_runaway,):
                    where = watch.scope_of(event)
                    if where is not None:
                        watch.detector.windows.add(f"{where[0]}:{where[1]}", at, pico)
            count += 1
        return count

    def resume_deliveries(self) -> int:
        """Queue deliveries a previous process left unfinished. Returns how many."""
        pending = self.store.unfinished_deliveries()
        for item in pending:
            self.dispatcher.submit(
                item.delivery_id, item.channel, item.alert_id, item.alert, attempt=item.next_attempt
            )
        return len(pending)

    def close(self) -> None:
        self.dispatcher.close()

    # -- helpers ------------------------------------------------------------------------

    def _first_here(self, dedupe_key: str, org_id: str) -> bool:
        key = f"{org_id}|{dedupe_key}"
        if key in self._local_fired:
            return False
        if len(self._local_fired) >= _LOCAL_MEMORY:
            self._local_fired.clear()  # the database still refuses a second firing
        self._local_fired.add(key)
        return True

    def _background_chores(self, event: SettleEvent) -> None:
        now = time.monotonic()
        if not self._refreshing and now - self._rules_loaded >= self._refresh_every:
            self._refreshing = True
            self.dispatcher.call_soon(self.reload_rules)
        if self._balance is not None:
            if now - self._credit_checked.get(event.org_id, -1e18) >= self._credit_every:
                self._credit_checked[event.org_id] = now
                self.dispatcher.call_soon(lambda: self.check_credit(event.org_id, event.at))
            if now - self._last_sweep >= self._sweep_every:
                self._last_sweep = now
                self.dispatcher.call_soon(self.sweep)

    def _runaway_alert(
        self, watch: _RunawayWatch, where: tuple[str, str], finding: RunawayFinding, event: SettleEvent
    ) -> Alert:
        scope, ref = where
        who = f"key {event.key_label}…" if scope == "key" and event.key_label else f"{scope} {ref}"
        if finding.ratio is not None:
            usual = f"{finding.ratio}x its usual rate of {format_amount(finding.baseline_per_hour)}/hour"
        else:
            usual = "with no spending history yet"
        suspend = scope == "key" and watch.rule is not None and watch.rule.auto_suspend
        message = (
            f"{who} spent {format_amount(finding.recent)} in the last {finding.window_minutes} minutes "
            f"({format_amount(finding.recent_per_hour)}/hour), {usual}"
        )
        return Alert(
            kind="runaway",
            org_id=event.org_id,
            scope=scope,
            scope_ref=ref,
            dedupe_key=f"runaway:{watch.rule_id}:{scope}:{ref}:{event.at:%Y-%m-%d}",
            title=f"runaway spend on {who}",
            message=message,
            occurred_at=event.at,
            severity="critical",
            data={
                "recent": finding.recent,
                "window_minutes": finding.window_minutes,
                "recent_per_hour": finding.recent_per_hour,
                "baseline_per_hour": finding.baseline_per_hour,
                "baseline_hours": finding.history_hours,
                "ratio": finding.ratio,
                "rule_id": watch.rule_id,
                "auto_suspend": suspend,
            },
            suspend_key=ref if suspend else None,
        )

    def _suspend_key(self, alert_id: str, alert: Alert) -> Alert:
        key_id = alert.suspend_key or ""
        data = dict(alert.data)
        if self._suspend is None:
            data["key_suspended"] = False
            data["suspend_error"] = "no suspend callback configured"
            return replace(alert, data=data)
        try:
            self._suspend(key_id, f"runaway spend: {alert.message}"[:500])
        except Exception as exc:
            log.exception("suspending key %s after runaway alert %s failed", key_id, alert_id)
            data["key_suspended"] = False
            data["suspend_error"] = f"{type(exc).__name__}: {exc}"[:300]
            return replace(alert, data=data)
        data["key_suspended"] = True
        alert = replace(alert, data=data, message=alert.message + "; the key has been suspended")
        self.store.mark_suspended(alert_id, key_id, data)
        return alert
