"""Estimates before spending, forecasts after: pure functions over the catalog and tokens.

    from kakin.estimate import scenario, compare_models
    plan = scenario(requests_per_day=3000, input_tokens=1500, output_tokens=400, cached_share="30%")
    for row in compare_models(plan, ["gpt-4o", "gpt-4o-mini"]).rows:
        print(row.model, row.low, row.expected, row.peak)

Every amount is an exact ``Decimal`` in USD. Inputs are validated against realistic ranges
and refused with ``InvalidInput``; unknown models raise ``UnknownModel`` with the closest
names. Methods and formulas: docs/estimate.md.
"""

from kakin.estimate.breakeven import BreakEven, Verdict, breakeven
from kakin.estimate.forecast import MonthForecast, forecast_month, parse_daily_csv
from kakin.estimate.images import ImageJobEstimate, image_job, image_options, per_image_models
from kakin.estimate.request import RequestEstimate, estimate_request, request_from_json
from kakin.estimate.scenario import (
    Scenario,
    ScenarioComparison,
    ScenarioRow,
    compare_models,
    scenario,
    scenario_from_mapping,
)
from kakin.estimate.shape import RequestShape, price_shape, request_shape

__all__ = [
    "BreakEven",
    "ImageJobEstimate",
    "MonthForecast",
    "RequestEstimate",
    "RequestShape",
    "Scenario",
    "ScenarioComparison",
    "ScenarioRow",
    "Verdict",
    "breakeven",
    "compare_models",
    "estimate_request",
    "forecast_month",
    "image_job",
    "image_options",
    "parse_daily_csv",
    "per_image_models",
    "price_shape",
    "request_from_json",
    "request_shape",
    "scenario",
    "scenario_from_mapping",
]
