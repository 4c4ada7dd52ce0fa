"""kakin — pay-as-you-go cost control for AI APIs.

The functions most scripts need are importable from the top level::

    import kakin

    cost = kakin.price(kakin.Usage(input_tokens=2_000, output_tokens=500), "gpt-4o")
    tokens = kakin.count_text("請求書を確認してください", "gpt-4o")
    plan = kakin.scenario(requests_per_day=3000, input_tokens=1500, output_tokens=400)
    rows = kakin.compare_models(plan, ["gpt-4o", "gpt-4o-mini"]).rows

They are loaded on first use (module ``__getattr__``), so ``import kakin`` stays instant
and a gateway process that never estimates never loads the estimator.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name → module that defines it
_EXPORTS: dict[str, str] = {
    # pricing and the catalog
    "price": "kakin.pricing",
    "Usage": "kakin.pricing",
    "Cost": "kakin.pricing",
    "CostItem": "kakin.pricing",
    "Catalog": "kakin.catalog",
    "ModelEntry": "kakin.catalog",
    # tokens
    "count_text": "kakin.tokens",
    "count_messages": "kakin.tokens",
    "image_tokens": "kakin.tokens",
    "TokenCount": "kakin.tokens",
    # estimates and forecasts
    "estimate_request": "kakin.estimate",
    "scenario": "kakin.estimate",
    "scenario_from_mapping": "kakin.estimate",
    "compare_models": "kakin.estimate",
    "image_job": "kakin.estimate",
    "breakeven": "kakin.estimate",
    "forecast_month": "kakin.estimate",
    "RequestEstimate": "kakin.estimate",
    "Scenario": "kakin.estimate",
    "ScenarioComparison": "kakin.estimate",
    "ImageJobEstimate": "kakin.estimate",
    "BreakEven": "kakin.estimate",
    "MonthForecast": "kakin.estimate",
    # money and errors
    "fx_rate": "kakin.money",
    "format_amount": "kakin.money",
    "KakinError": "kakin.errors",
    "InvalidInput": "kakin.errors",
    "UnknownModel": "kakin.errors",
}

# Spelled out for linters and IDEs; a test keeps it equal to _EXPORTS.
__all__ = [
    "BreakEven",
    "Catalog",
    "Cost",
    "CostItem",
    "ImageJobEstimate",
    "InvalidInput",
    "KakinError",
    "ModelEntry",
    "MonthForecast",
    "RequestEstimate",
    "Scenario",
    "ScenarioComparison",
    "TokenCount",
    "UnknownModel",
    "Usage",
    "__version__",
    "breakeven",
    "compare_models",
    "count_messages",
    "count_text",
    "estimate_request",
    "forecast_month",
    "format_amount",
    "fx_rate",
    "image_job",
    "image_tokens",
    "price",
    "scenario",
    "scenario_from_mapping",
]

if TYPE_CHECKING:
    from kakin.catalog import Catalog, ModelEntry
    from kakin.errors import InvalidInput, KakinError, UnknownModel
    from kakin.estimate import (
        BreakEven,
        ImageJobEstimate,
        MonthForecast,
        RequestEstimate,
        Scenario,
        ScenarioComparison,
        breakeven,
        compare_models,
        estimate_request,
        forecast_month,
        image_job,
        scenario,
        scenario_from_mapping,
    )
    from kakin.money import format_amount, fx_rate
    from kakin.pricing import Cost, CostItem, Usage, price
    from kakin.tokens import TokenCount, count_messages, count_text, image_tokens


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kakin' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
