"""Image jobs: how much a batch of generated images really costs.

The price list gives a price per image; a job pays for every *attempt*. Creative work
rerolls: a usable final often takes several generations (drift, a wrong detail, a variant
the client rejects). So:

    generations = finals × attempts_per_final
    subtotal    = generations × price per generation
    total       = subtotal × (1 + buffer)

The price per generation is the catalog's per-image price for the model, size and quality
(published per-image prices, or the documented output tokens per image × the model's output
rate; for a model whose provider documents no tokens per image, kakin's upper bound of them,
so the estimate is an upper bound too), plus the prompt's input tokens when given.
``attempts_per_final`` may be fractional (2.5 = half the finals take a third try);
``generations`` is then an expected count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, localcontext

from kakin.catalog import Catalog
from kakin.errors import InvalidInput
from kakin.estimate.inputs import ATTEMPTS, BUFFER, IMAGES, TOKENS_PER_REQUEST, number, settle, whole
from kakin.estimate.shape import resolve_model
from kakin.money import EXACT
from kakin.pricing import Cost, Usage, price


@dataclass(frozen=True, slots=True)
class ImageJobEstimate:
    model: str
    provider: str
    size: str
    quality: str
    finals: int
    attempts_per_final: Decimal
    generations: Decimal
    prompt_tokens: int
    per_generation: Decimal
    """One generation: the image plus its prompt's input tokens."""
    per_image_price: Decimal
    """The catalog's price of the image alone (what a price list shows)."""
    naive: Decimal
    """finals × per-image price: the estimate that forgets retries and prompts."""
    subtotal: Decimal
    buffer: Decimal
    buffer_amount: Decimal
    total: Decimal
    per_final: Decimal
    """total ÷ finals: what one usable image really costs."""
    cost: Cost
    """The itemised cost of one generation."""
    image_tokens: int | None
    """Output tokens per image when the price derives from them."""
    upper_bound: bool
    """The per-image price is kakin's bound of the output tokens, not a published figure."""


def image_job(
    model: str,
    *,
    finals: object,
    attempts_per_final: object = 1,
    size: str | None = None,
    quality: str | None = None,
    buffer: object = "0.2",
    prompt_tokens: object = 0,
    provider: str | None = None,
    at: datetime | None = None,
    mode: str = "standard",
    catalog: Catalog | None = None,
) -> ImageJobEstimate:
    """Cost of ``finals`` usable images at ``attempts_per_final`` generations each, plus buffer."""
    count = whole(finals, "number of final images", IMAGES)
    attempts = number(attempts_per_final, "attempts per final image", ATTEMPTS)
    margin = number(buffer, "buffer", BUFFER)
    prompt = whole(prompt_tokens, "prompt tokens per generation", TOKENS_PER_REQUEST)
    entry = resolve_model(model, provider, catalog)
    period = entry.period(at, mode)
    if period.images is None:
        priced = ", ".join(per_image_models(catalog)) or "none"
        raise InvalidInput(f"{entry.key} has no per-image prices in the catalog; models with them: {priced}")
    chosen = period.images.lookup(entry.model, size, quality)
    image_only = price(
        Usage(images=1, image_size=chosen.size, image_quality=chosen.quality), entry, at=at, mode=mode
    )
    cost = price(
        Usage(images=1, image_size=chosen.size, image_quality=chosen.quality, input_tokens=prompt),
        entry,
        at=at,
        mode=mode,
    )
    with localcontext(EXACT):
        generations = count * attempts
        subtotal = generations * cost.total
        buffer_amount = subtotal * margin
        total = subtotal + buffer_amount
        return ImageJobEstimate(
            model=entry.model,
            provider=entry.provider,
            size=chosen.size,
            quality=chosen.quality,
            finals=count,
            attempts_per_final=attempts,
            generations=generations,
            prompt_tokens=prompt,
            per_generation=cost.total,
            per_image_price=image_only.total,
            naive=count * image_only.total,
            subtotal=subtotal,
            buffer=margin,
            buffer_amount=buffer_amount,
            total=total,
            per_final=settle(total / count),
            cost=cost,
            image_tokens=chosen.tokens,
            upper_bound=chosen.upper_bound,
        )


def per_image_models(catalog: Catalog | None = None, at: datetime | None = None) -> list[str]:
    """Models the catalog has per-image prices for (by size and quality)."""
    found = []
    for entry in (catalog or Catalog.default()).models():
        if "image" not in entry.kinds:
            continue
        try:
            if entry.period(at).images is not None:
                found.append(entry.model)
        except InvalidInput:  # not priced at that date
            continue
    return found


def image_options(
    model: str,
    *,
    provider: str | None = None,
    at: datetime | None = None,
    mode: str = "standard",
    catalog: Catalog | None = None,
) -> list[tuple[str, str, Decimal]]:
    """Every (size, quality, price per image) the catalog has for an image model."""
    entry = resolve_model(model, provider, catalog)
    table = entry.period(at, mode).images
    if table is None:
        return []
    return sorted(((p.size, p.quality, p.price) for p in table.prices.values()), key=lambda t: (t[2], t[0]))
