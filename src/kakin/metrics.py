"""Prometheus metrics: what the gateway counts, and ``/metrics`` to scrape them.

Labels name only configured things — provider names, endpoint names, status classes,
error codes, token kinds — never a key, a key's prefix, an organisation or a model, so a
scrape reveals no tenant and the number of series stays small.

Money is exact: cost is added in integer picodollars and converted to a float number of
dollars only when a scrape renders it (:class:`ExactTotals`); Prometheus values are floats,
so the exported figure is the exact total rounded to a double, never a sum of rounded parts.

With several worker processes (``kakin serve --workers N``) the supervisor points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before starting them: prometheus-client then
keeps each worker's values in a file there, the exact totals are written beside them, and
any worker's ``/metrics`` answers for all of them (see docs/scaling.md).
"""

from __future__ import annotations

import asyncio
import enum
import hmac
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from kakin.money import from_pico

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds: from a fast upstream on the same machine to a long generation.
_UPSTREAM_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
# Seconds: a journal append takes microseconds, a PostgreSQL group commit milliseconds.
_WRITE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5)


class SharedState(enum.Enum):
    """Health of the state gateway processes share (Redis)."""

    HEALTHY = "healthy"
    REBUILDING = "rebuilding"  # being rebuilt from the ledger; answers may wait
    FAILING_CLOSED = "failing_closed"  # unreachable: metered requests are refused
    FAILING_OPEN = "failing_open"  # unreachable: requests pass on local decisions


def multiprocess_dir() -> Path | None:
    """The directory worker processes share their values in, when several serve together."""
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


class ExactTotals:
    """Counters of dollars kept in integer picodollars (Python ints: no rounding, no limit),
    rendered as a float number of dollars only at scrape time. In multi-process mode each
    process writes its totals to a file of its own beside prometheus-client's (at most every
    ``flush_seconds``, and at exit); a scrape sums every process's file, including those of
    processes that have exited, as counters must."""

    def __init__(
        self, name: str, documentation: str, labelnames: tuple[str, ...], flush_seconds: float = 0.1
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = labelnames
        self.flush_seconds = flush_seconds
        self._totals: dict[tuple[str, ...], int] = {}
        self._directory = multiprocess_dir()
        self._flush_pending = False

    def add(self, labels: tuple[str, ...], pico: int) -> None:
        self._totals[labels] = self._totals.get(labels, 0) + pico
        if self._directory is not None and not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_later(self.flush_seconds, self.flush)

    def flush(self) -> None:
        """Write this process's totals for the other processes' scrapes (multi-process mode)."""
        self._flush_pending = False
        if self._directory is None:
            return
        path = self._directory / f"exact_{self.name}_{os.getpid()}.json"
        temporary = path.with_suffix(".tmp")
        rows = [[list(labels), str(total)] for labels, total in self._totals.items()]
        temporary.write_text(json.dumps(rows))
        os.replace(temporary, path)

    def totals(self) -> dict[tuple[str, ...], int]:
        """Every process's totals summed (this process's alone when it serves by itself)."""
        if self._directory is None:
            return dict(self._totals)
        self.flush()
        summed: dict[tuple[str, ...], int] = {}
        for path in self._directory.glob(f"exact_{self.name}_*.json"):
            for labels, total in json.loads(path.read_text()):
                key = tuple(labels)
                summed[key] = summed.get(key, 0) + int(total)
        return summed

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, pico in sorted(self.totals().items()):
            family.add_metric(labels, float(from_pico(pico)))
        yield family


class Metrics:
    """The gateway's metrics. One instance per gateway; the recording methods are called on
    the request path and cost a dictionary lookup and an increment each."""

    enabled = True

    def __init__(self) -> None:
        multiprocess = multiprocess_dir() is not None
        # In multi-process mode values live in files, not in a registry; a scrape collects them.
        self.registry: CollectorRegistry | None = None if multiprocess else CollectorRegistry()
        reg = self.registry
        self._requests = Counter(
            "kakin_requests",
            "Requests answered, by provider, endpoint and status class",
            ("provider", "endpoint", "status"),
            registry=reg,
        )
        self._errors = Counter(
            "kakin_errors",
            "Requests kakin refused or could not complete, by API and error code",
            ("api", "code"),
            registry=reg,
        )
        self._tokens = Counter(
            "kakin_tokens",
            "Tokens billed, by provider and kind (input, output, cached, reasoning)",
            ("provider", "kind"),
            registry=reg,
        )
        self._holds = Gauge(
            "kakin_holds_in_flight",
            "Holds taken for requests not yet charged or released",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self._upstream = Histogram(
            "kakin_upstream_seconds",
            "Time from forwarding a request to the head of its provider's answer",
            ("provider",),
            buckets=_UPSTREAM_BUCKETS,
            registry=reg,
        )
        self._writes = Histogram(
            "kakin_ledger_write_seconds",
            "Time until a charge (and in shared accounting a hold) is durable: a ledger commit or a journal append",
            ("op", "mode"),
            buckets=_WRITE_BUCKETS,
            registry=reg,
        )
        self._shared = Gauge(
            "kakin_shared_state",
            "State shared between gateway processes (Redis): 1 for the current state",
            ("state",),
            registry=reg,
            multiprocess_mode="livemax",
        )
        self.cost = ExactTotals(
            "kakin_cost_usd",
            "Dollars charged, by provider: exact, converted to a float only when scraped",
            ("provider",),
        )
        if reg is not None:
            reg.register(self.cost)
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    # ------------------------------------------------------------------ recording

    def answered(self, provider: str, endpoint: str, status: int) -> None:
        self._child(self._requests, provider, endpoint, f"{status // 100}xx").inc()

    def refused(self, api: str, code: str) -> None:
        self._child(self._errors, api, code).inc()

    def billed(self, provider: str, pico: int, input: int, output: int, cached: int, reasoning: int) -> None:
        """A charge: its exact amount in picodollars and its tokens by kind."""
        self.cost.add((provider,), pico)
        for kind, count in (
            ("input", input),
            ("output", output),
            ("cached", cached),
            ("reasoning", reasoning),
        ):
            if count:
                self._child(self._tokens, provider, kind).inc(count)

    def held(self, change: int) -> None:
        self._holds.inc(change)

    def upstream(self, provider: str, seconds: float) -> None:
        self._child(self._upstream, provider).observe(seconds)

    def wrote(self, op: str, mode: str, seconds: float) -> None:
        self._child(self._writes, op, mode).observe(seconds)

    def shared_state(self, state: SharedState | None) -> None:
        """Set the shared state's health (None: no shared state configured: every state 0)."""
        for each in SharedState:
            self._child(self._shared, each.value).set(1 if each is state else 0)

    def close(self) -> None:
        """The process stops serving: write its exact totals a last time (multi-process mode)."""
        self.cost.flush()

    # ------------------------------------------------------------------ export

    def render(self) -> bytes:
        """The exposition text of every metric (every worker's, in multi-process mode)."""
        if self.registry is not None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        registry.register(self.cost)
        return generate_latest(registry)


class NoMetrics(Metrics):
    """``metrics.enabled = false``: nothing is recorded and ``/metrics`` is not served."""

    enabled = False

    def __init__(self) -> None:
        pass

    def answered(self, provider: str, endpoint: str, status: int) -> None:
        pass

    def refused(self, api: str, code: str) -> None:
        pass

    def billed(self, provider: str, pico: int, input: int, output: int, cached: int, reasoning: int) -> None:
        pass

    def held(self, change: int) -> None:
        pass

    def upstream(self, provider: str, seconds: float) -> None:
        pass

    def wrote(self, op: str, mode: str, seconds: float) -> None:
        pass

    def shared_state(self, state: SharedState | None) -> None:
        pass

    def close(self) -> None:
        pass

    def render(self) -> bytes:
        return b""


def make_metrics(enabled: bool) -> Metrics:
    return Metrics() if enabled else NoMetrics()


class MetricsEndpoint:
    """``GET /metrics``. Protected by the admin key (``Authorization: Bearer …``) unless
    ``metrics.public`` is set, e.g. behind a network that only the scraper reaches."""

    def __init__(self, metrics: Metrics, *, admin_key: str, public: bool) -> None:
        self.metrics = metrics
        self._key = admin_key.encode()
        self.public = public

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        status, body, content_type = self._answer(scope)
        headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="kakin-metrics"'))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _answer(self, scope: dict[str, Any]) -> tuple[int, bytes, str]:
        if scope["method"] not in ("GET", "HEAD"):
            return 405, b'{"error":"GET /metrics"}', "application/json"
        if not self.public:
            if not self._key:
                return (
                    503,
                    _error(
                        "/metrics needs the admin key, and none is configured: set KAKIN_ADMIN_KEY, "
                        "or metrics.public = true to serve it without one"
                    ),
                    "application/json",
                )
            token = _bearer(scope)
            if token is None or not hmac.compare_digest(token, self._key):
                return (
                    401,
                    _error("send `Authorization: Bearer <KAKIN_ADMIN_KEY>` to read /metrics"),
                    "application/json",
                )
        return 200, self.metrics.render(), CONTENT_TYPE


def _bearer(scope: dict[str, Any]) -> bytes | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            return token.strip() if scheme.lower() == b"bearer" else None
    return None


def _error(message: str) -> bytes:
    return json.dumps({"error": message}).encode()
