"""kakin's settings: one TOML file plus environment variables.

The file is ``$KAKIN_CONFIG`` or ``./kakin.toml`` (optional: every setting has a default
that runs the embedded mode — SQLite and the built-in simulated provider). Environment
variables ``KAKIN_<SECTION>__<FIELD>`` override the file, e.g. ``KAKIN_DATABASE__URL``;
the common ones also have short names (``KAKIN_DATABASE_URL``, ``KAKIN_REDIS_URL``,
``KAKIN_ADMIN_KEY``). Provider API keys are never written in the file: a provider names
the environment variable that holds its key. Every field is documented in docs/config.md.
"""

from __future__ import annotations

import os
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kakin.errors import InvalidInput

ProviderKind = Literal["openai", "anthropic", "google", "azure", "simulator"]
ApiFamily = Literal["openai", "anthropic", "google", "azure"]
API_FAMILIES: tuple[ApiFamily, ...] = ("openai", "anthropic", "google", "azure")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8787, ge=0, le=65535)
    max_body_bytes: int = Field(25 * 1024 * 1024, gt=0, description="larger request bodies get 413")
    access_log: bool = Field(
        False, description="one line per request on the kakin.access logger (method, path, status, duration)"
    )


class LoggingSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="least severe message kakin (and its web server) prints"
    )
    format: Literal["text", "json"] = Field("text", description="json: one JSON object per line")

    @field_validator("level", "format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


class DatabaseSettings(_Section):
    url: str = "sqlite:///kakin-data/kakin.db"


class RedisSettings(_Section):
    url: str = Field("", description="empty: counters and cache live in the gateway process")
    prefix: str = "kakin:"


class CurrencySettings(_Section):
    display: str = "USD"
    rates: dict[str, Decimal] = Field(default_factory=dict, description="units per 1 USD, e.g. JPY = '150'")


class ProviderSettings(_Section):
    """One upstream. ``serves`` says which API families it answers (a simulator serves all)."""

    name: str
    kind: ProviderKind
    base_url: str
    api_key_env: str = ""
    serves: tuple[ApiFamily, ...] = ()
    api_version: str = Field("", description="Azure api-version to send upstream")
    deployments: dict[str, str] = Field(default_factory=dict, description="Azure deployment → catalog model")

    @model_validator(mode="after")
    def _default_serves(self) -> ProviderSettings:
        if not self.serves:
            object.__setattr__(self, "serves", API_FAMILIES if self.kind == "simulator" else (self.kind,))
        return self

    def api_key(self) -> str:
        return os.environ.get(self.api_key_env, "") if self.api_key_env else ""

    def missing_key(self) -> str:
        """Why requests to this provider would go without a key ("" when they would not).
        The simulator needs none."""
        if self.kind == "simulator" or self.base_url in ("", "builtin") or self.api_key():
            return ""
        where = f"provider {self.name!r} ({self.kind}, {self.base_url})"
        if not self.api_key_env:
            return (
                f"{where} has no api_key_env: requests are forwarded without a provider key; "
                "name the environment variable that holds its key"
            )
        return (
            f"{where}: api_key_env names {self.api_key_env}, which is not set or empty: requests are "
            f"forwarded without a provider key until it is; set {self.api_key_env} and restart"
        )


class RouteRule(_Section):
    """Send requests for ``alias`` to the cheapest of ``cheapest_of`` (same API family)."""

    alias: str
    cheapest_of: tuple[str, ...]
    assume_input_tokens: int = Field(1000, gt=0)
    assume_output_tokens: int = Field(500, gt=0)


class CacheSettings(_Section):
    enabled: bool = Field(False, description="cache for every project; otherwise per request header")
    ttl_seconds: int = Field(3600, gt=0)
    max_entries: int = Field(10_000, gt=0)
    max_entry_bytes: int = Field(1024 * 1024, gt=0)


class GatewaySettings(_Section):
    default_max_output_tokens: int = Field(
        4096, gt=0, description="the output held for each answer of a request that sets no limit"
    )
    output_limit: Literal["enforce", "hold_only"] = Field(
        "enforce",
        description="enforce: a request that sets no output limit is sent upstream with the one held "
        "(default_max_output_tokens), so no answer costs more than its hold; hold_only: it is forwarded "
        "unchanged and its answer may pass the hold, so under a cap such requests run one at a time per "
        "organisation (the others get a 429 with Retry-After)",
    )
    allow_unpriced_models: bool = False
    hold_seconds: int = Field(900, gt=0, description="a reservation never settled is released after this")
    upstream_timeout_seconds: float = Field(600, gt=0)
    aliases: dict[str, str] = Field(default_factory=dict)
    routes: tuple[RouteRule, ...] = ()
    commit_max_batch: int = Field(256, gt=0)
    ledger_writer: Literal["process", "thread"] = Field(
        "process",
        description="process: ledger writes run in a child process beside the event loop (fastest); "
        "thread: in a thread of the gateway process",
    )
    charge_journal: bool = Field(
        True,
        description="local accounting on SQLite: make each charge durable in a journal file next to the "
        "ledger, applied to the ledger by the writer process moments later (lowest latency)",
    )
    accounting: Literal["auto", "local", "shared"] = Field(
        "auto",
        description="local: one gateway process decides holds in memory (fastest); shared: holds are "
        "ledger reservations seen by every process; auto: local on SQLite, shared on PostgreSQL",
    )

    shared_holds: Literal["auto", "redis", "ledger"] = Field(
        "auto",
        description="where shared accounting keeps holds: redis (decided by a Lua script, no database "
        "round trip; needs redis.url), ledger (a reservation per request); auto: redis when redis.url is set",
    )
    redis_unavailable: Literal["closed", "open"] = Field(
        "closed",
        description="with holds in Redis, while Redis is unreachable or its state is being rebuilt: "
        "closed refuses requests (503), open admits them without a shared hold (caps may be passed)",
    )
    redis_rebuild_grace_seconds: float = Field(
        1.0,
        gt=0,
        description="after Redis lost its state, how long every gateway has to put back what it knows",
    )
    redis_wait_seconds: float = Field(5.0, gt=0, description="how long a request waits for a rebuild")
    journal_dir: str = Field(
        "",
        description="shared accounting with Redis holds: where each gateway process keeps its charge "
        "journal (a directory of its own inside); empty: next to an SQLite ledger, else kakin-data/journals",
    )

    def accounting_mode(self, database_url: str) -> str:
        if self.accounting != "auto":
            return self.accounting
        return "local" if database_url.startswith("sqlite") else "shared"

    def holds_in_redis(self, database_url: str, redis_url: str) -> bool:
        """Whether shared accounting keeps its holds in Redis."""
        if self.accounting_mode(database_url) != "shared" or self.shared_holds == "ledger":
            return False
        if self.shared_holds == "redis" and not redis_url:
            raise InvalidInput('gateway.shared_holds = "redis" needs redis.url (KAKIN_REDIS_URL)')
        return bool(redis_url)

    def journal_base(self, database_url: str) -> str:
        if self.journal_dir:
            return self.journal_dir
        if database_url.startswith("sqlite:///") and len(database_url) > len("sqlite:///"):
            return str(Path(database_url.removeprefix("sqlite:///")).resolve()) + ".journals"
        return "kakin-data/journals"


class MetricsSettings(_Section):
    enabled: bool = Field(True, description="count requests, tokens, cost, latencies; serve them at /metrics")
    public: bool = Field(
        False,
        description="serve /metrics without the admin key (only where nothing but the scraper reaches it)",
    )


class IssuerSettings(_Section):
    """Who issues the invoices: printed at the top of every invoice and credit note."""

    name: str = Field("kakin", description="the issuing company's name")
    address: str = Field("", description="postal address, lines separated by newlines")
    email: str = Field("", description="billing contact")
    registration: str = Field(
        "",
        description="tax registration number, e.g. a Japanese qualified invoice issuer number T1234567890123",
    )


class BillingSettings(_Section):
    """Monthly billing cycles and their invoices (docs/billing.md)."""

    invoice_prefix: str = Field("INV-", max_length=20, description="put before each invoice's number")
    credit_note_prefix: str = Field("CN-", max_length=20, description="put before each credit note's number")
    grace_hours: int = Field(
        24,
        ge=0,
        le=24 * 31,
        description="a cycle's draft absorbs late charges this long after the cycle ends",
    )
    payment_terms_days: int = Field(30, ge=0, le=365, description="due date = issue date + this many days")
    auto_close: bool = Field(True, description="kakin serve issues each cycle's invoices once its grace ends")
    close_interval_seconds: int = Field(
        300, gt=0, description="how often kakin serve looks for cycles to close"
    )
    issuer: IssuerSettings = IssuerSettings()


class Settings(_Section):
    server: ServerSettings = ServerSettings()
    logging: LoggingSettings = LoggingSettings()
    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    currency: CurrencySettings = CurrencySettings()
    providers: tuple[ProviderSettings, ...] = ()
    gateway: GatewaySettings = GatewaySettings()
    cache: CacheSettings = CacheSettings()
    metrics: MetricsSettings = MetricsSettings()
    billing: BillingSettings = BillingSettings()
    admin_key: str = Field("", repr=False, description="admin API key; prefer KAKIN_ADMIN_KEY")
    catalog: dict[str, Any] = Field(default_factory=dict, description="price overrides, see docs/pricing.md")
    source: str = "defaults"

    @field_validator("providers")
    @classmethod
    def _unique_names(cls, providers: tuple[ProviderSettings, ...]) -> tuple[ProviderSettings, ...]:
        names = [p.name for p in providers]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"provider names must be unique, repeated: {', '.join(sorted(dupes))}")
        return providers

    def provider_for(self, family: str) -> ProviderSettings | None:
        """The upstream that answers an API family ("openai", "anthropic", "google", "azure")."""
        for provider in self.providers:
            if family in provider.serves:
                return provider
        return None


# Short environment names for the settings people set most.
_SHORT_ENV = {
    "KAKIN_DATABASE_URL": ("database", "url"),
    "KAKIN_REDIS_URL": ("redis", "url"),
    "KAKIN_ADMIN_KEY": ("admin_key",),
    "KAKIN_HOST": ("server", "host"),
    "KAKIN_PORT": ("server", "port"),
    "KAKIN_CURRENCY": ("currency", "display"),
    "KAKIN_LOG_LEVEL": ("logging", "level"),
    "KAKIN_LOG_FORMAT": ("logging", "format"),
}


def load_settings(path: str | Path | None = None, *, env: dict[str, str] | None = None) -> Settings:
    """Read the TOML file (if any) and apply environment overrides.

    Raises InvalidInput with the offending field when the file or a variable is wrong."""
    env = dict(os.environ if env is None else env)
    file = Path(path or env.get("KAKIN_CONFIG") or "kakin.toml")
    data: dict[str, Any] = {}
    source = "defaults"
    if file.exists():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInput(f"{file}: not valid TOML ({exc})") from None
        source = str(file)
    elif path is not None:
        raise InvalidInput(f"config file {file} does not exist")
    for name, value in env.items():
        if name in _SHORT_ENV:
            _set(data, _SHORT_ENV[name], value)
        elif name.startswith("KAKIN_") and "__" in name:
            _set(data, tuple(part.lower() for part in name[len("KAKIN_") :].split("__")), value)
    data["source"] = source
    try:
        return Settings.model_validate(data)
    except ValueError as exc:
        raise InvalidInput(f"configuration ({source}) is invalid: {_first_error(exc)}") from None


def _set(data: dict[str, Any], path: tuple[str, ...], value: str) -> None:
    node = data
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"{where}: {first.get('msg')}"
    return str(exc)
