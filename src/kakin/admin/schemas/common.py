"""Pieces shared by the response models: list wrappers and exact conversions."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from kakin.money import decimal_str

T = TypeVar("T")

USD_EXAMPLE = "12.5"
TIME_EXAMPLE = "2025-05-01T09:30:00Z"


def money(value: Decimal) -> str:
    return decimal_str(value)


def maybe_money(value: Decimal | None) -> str | None:
    return None if value is None else decimal_str(value)


def utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def maybe_utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


class Items(BaseModel, Generic[T]):
    """A list response; ``items`` is in the order the description of the route gives."""

    items: list[T]


def example(**fields: Any) -> ConfigDict:
    """Configuration of a request body: unknown fields refused, one documented example."""
    return ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [fields]})


class Strict(BaseModel):
    """Request bodies refuse unknown fields, so a typo is an error rather than ignored, and
    take JSON types as documented: ``"5"`` is not an integer and ``1`` is not ``true``."""

    model_config = ConfigDict(extra="forbid", strict=True)


def usd_field(description: str, example: str = USD_EXAMPLE) -> Any:
    return Field(description=f"{description} (USD, decimal string)", examples=[example])
