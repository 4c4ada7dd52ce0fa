"""Organisations, projects and usage tiers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kakin.admin.fields import Name, text
from kakin.admin.schemas.common import TIME_EXAMPLE, Strict, example, maybe_money, maybe_utc, utc
from kakin.ledger.records import Org, Project, Tier, TierStatus

Currency = text(40, examples=["USD", "JPY"], description="3-letter ISO 4217 code for display")
Timezone = text(64, examples=["Asia/Tokyo", "UTC"], description="IANA timezone that budget periods follow")
Phone = text(40, examples=["+819012345678"], description="verified phone number with its country code")
Label = text(100, examples=["visa 4242"])
RulesName = text(
    64, examples=["openai"], description="tier rule set: a preset (openai, gemini) or a registered name"
)


class OrgCreate(Strict):
    name: Name = Field(description="unique organisation name (not starting with org_/prj_/key_)")
    currency: Currency = "USD"
    timezone: Timezone = "UTC"
    phone: Phone | None = None
    payment_method: Label | None = Field(
        None, description="label of a payment method on file; without one, usage stops when credit runs out"
    )
    tier_rules: RulesName | None = None

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {"name": "acme", "currency": "JPY", "timezone": "Asia/Tokyo", "phone": "+819012345678"}
            ]
        },
    )


class OrgUpdate(Strict):
    """Only the fields present change; ``null`` removes the phone number or tier rules."""

    currency: Currency | None = None
    timezone: Timezone | None = None
    phone: Phone | None = None
    tier_rules: RulesName | None = None

    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"examples": [{"timezone": "Europe/Paris"}]}
    )


class PaymentMethodSet(Strict):
    label: Label = Field(description="how the payment method is shown, e.g. card brand and last digits")

    model_config = example(label="visa 4242")


class OrgOut(BaseModel):
    id: str = Field(examples=["org_01hx3k9v2a7bq4c8m0zp"])
    name: str = Field(examples=["acme"])
    currency: str = Field(examples=["JPY"])
    timezone: str = Field(examples=["Asia/Tokyo"])
    phone: str | None = Field(examples=["+819012345678"])
    payment_method: bool = Field(description="a payment method is on file (postpaid billing continues)")
    payment_label: str | None = Field(examples=["visa 4242"])
    billing_since: datetime | None = Field(examples=[TIME_EXAMPLE])
    first_payment_at: datetime | None = Field(examples=[None])
    tier_rules: str | None = Field(examples=["openai"])
    tier: str | None = Field(examples=["Tier 1"])
    created_at: datetime = Field(examples=[TIME_EXAMPLE])

    @classmethod
    def of(cls, org: Org) -> OrgOut:
        return cls(
            id=org.id,
            name=org.name,
            currency=org.currency,
            timezone=org.timezone,
            phone=org.phone,
            payment_method=org.payment_method,
            payment_label=org.payment_label,
            billing_since=maybe_utc(org.billing_since),
            first_payment_at=maybe_utc(org.first_payment_at),
            tier_rules=org.tier_rules,
            tier=org.tier,
            created_at=utc(org.created_at),
        )


class ProjectCreate(Strict):
    name: Name = Field(description="unique within the organisation", examples=["chatbot"])

    model_config = example(name="chatbot")


class ProjectOut(BaseModel):
    id: str = Field(examples=["prj_01hx3k9v2a7bq4c8m0zp"])
    org_id: str = Field(examples=["org_01hx3k9v2a7bq4c8m0zp"])
    name: str = Field(examples=["chatbot"])
    created_at: datetime = Field(examples=[TIME_EXAMPLE])

    @classmethod
    def of(cls, project: Project) -> ProjectOut:
        return cls(
            id=project.id, org_id=project.org_id, name=project.name, created_at=utc(project.created_at)
        )


class TierOut(BaseModel):
    name: str = Field(examples=["Tier 1"])
    requests_per_minute: int | None = Field(examples=[500])
    tokens_per_minute: int | None = Field(examples=[200000])
    monthly_limit: str | None = Field(
        description="monthly spend ceiling (USD, decimal string)", examples=["100"]
    )
    requires: dict[str, Any] = Field(examples=[{"paid_usd": "5"}])

    @classmethod
    def of(cls, tier: Tier) -> TierOut:
        return cls(
            name=tier.name,
            requests_per_minute=tier.requests_per_minute,
            tokens_per_minute=tier.tokens_per_minute,
            monthly_limit=maybe_money(tier.monthly_limit),
            requires={k: str(v) if not isinstance(v, bool | int) else v for k, v in tier.requires.items()},
        )


class TierStatusOut(BaseModel):
    org_id: str
    rules: str | None = Field(examples=["openai"])
    tier: TierOut | None
    since: datetime | None = Field(examples=[TIME_EXAMPLE])
    next_tier: TierOut | None
    missing: list[str] = Field(
        description="what the next tier still needs, in words", examples=[["$50 paid in total (so far $5)"]]
    )

    @classmethod
    def of(cls, status: TierStatus) -> TierStatusOut:
        return cls(
            org_id=status.org_id,
            rules=status.rules,
            tier=None if status.tier is None else TierOut.of(status.tier),
            since=maybe_utc(status.since),
            next_tier=None if status.next_tier is None else TierOut.of(status.next_tier),
            missing=list(status.missing),
        )


class TierRulesSet(Strict):
    rules: RulesName | None = Field(description="rule set name; null removes tiers from the organisation")

    model_config = example(rules="openai")


class TierRulesRegister(Strict):
    name: RulesName
    toml: str = Field(
        min_length=1,
        max_length=65536,
        description="the rule set in the TOML form of the shipped presets ([[tiers]] tables)",
        examples=['[[tiers]]\nname = "Starter"\nmonthly_limit_usd = "50"\n'],
    )

    model_config = example(name="starter", toml='[[tiers]]\nname = "Starter"\nmonthly_limit_usd = "50"\n')


class TierRulesOut(BaseModel):
    name: str = Field(examples=["openai"])
    description: str
    tiers: list[TierOut]
