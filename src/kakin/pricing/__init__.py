"""Pricing: a usage × the catalog → an exact, itemised cost.

    from kakin.pricing import Usage, price
    cost = price(Usage(input_tokens=2_000, output_tokens=500), "gpt-4o", provider="openai")
    cost.total, cost.items, cost.explain()

The rules (decomposition of inclusive counts, context tiers, dated prices, modes) are
described in docs/pricing.md.
"""

from kakin.catalog.prices import image_dimensions
from kakin.pricing.cost import Cost, CostItem, CostItems
from kakin.pricing.engine import cost_of, price
from kakin.pricing.usage import Usage

__all__ = ["Cost", "CostItem", "CostItems", "Usage", "cost_of", "image_dimensions", "price"]
