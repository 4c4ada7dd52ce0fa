"""``kakin models`` and ``kakin price``: what the catalog knows, and what a usage costs.

``price`` shows every line of the cost with where its rate comes from (genai-prices, kakin's
data files or the user's overrides), the context tier applied and the date the rate took
effect, because a figure nobody can trace is a figure nobody trusts.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import typer

from kakin.cli.inputs import check_mode, parse_at
from kakin.cli.output import (
    AtOption,
    Column,
    CurrencyOption,
    FormatOption,
    ModeOption,
    OutputFormat,
    ProviderOption,
    Report,
    emit,
    load_catalog,
    resolve_currency,
)
from kakin.errors import InvalidInput

if TYPE_CHECKING:
    from kakin.pricing import Cost

MAX_COUNT = Decimal(10**13)


def register(app: typer.Typer) -> None:
    app.command("models")(models)
    app.command("price")(price_usage)


def models(
    provider: ProviderOption = None,
    kind: Annotated[str | None, typer.Option("--kind", help="chat, image, audio or embedding.")] = None,
    search: Annotated[
        str | None, typer.Option("--search", "-s", help="Only models whose id contains this.")
    ] = None,
    at: AtOption = None,
    fmt: FormatOption = OutputFormat.table,
    currency: CurrencyOption = None,
) -> None:
    """List catalogued models with their token prices per 1M tokens."""
    fx = resolve_currency(currency)
    when = parse_at(at)
    catalog = load_catalog()
    rows = []
    for entry in catalog.models(provider):
        if kind and kind.lower() not in entry.kinds:
            continue
        if search and search.lower() not in entry.model.lower() and search.lower() not in entry.name.lower():
            continue
        try:
            rates = entry.rates_per_million(when)
        except InvalidInput:  # no price yet at that date
            continue
        rows.append(
            {
                "provider": entry.provider,
                "model": entry.model,
                "name": entry.name,
                "kinds": ",".join(entry.kinds),
                "input": rates.get("input"),
                "cache_read": rates.get("cache_read"),
                "output": rates.get("output"),
                "context": entry.context_window,
                "source": entry.source,
            }
        )
    if not rows:
        raise InvalidInput("no model matches those filters; try without --kind/--search")
    report = Report(
        title=f"Models ({len(rows)}), {fx.currency} per 1M tokens",
        columns=[
            Column("provider", "provider"),
            Column("model", "model", wrap=True),
            Column("name", "name", table=False),
            Column("kinds", "kinds", table=False),
            Column("input", "input", "rate"),  # a price: $0.075 must not read $0.08
            Column("cache_read", "cached", "rate"),
            Column("output", "output", "rate"),
            Column("context", "context", "int"),
            Column("source", "source", table=False),
        ],
        rows=rows,
    )
    emit(report, fmt, fx)


def _count(raw: str | None, flag: str) -> int:
    if raw is None:
        return 0
    from kakin.estimate.inputs import Limit, whole

    return whole(raw, flag, Limit(Decimal(0), MAX_COUNT, whole=True))


def price_usage(
    model: Annotated[str, typer.Argument(help="Model id, e.g. gpt-4o or claude-sonnet-4-5.")],
    input_tokens: Annotated[
        str | None, typer.Option("--input", "-i", help="Input tokens (cached included).")
    ] = None,
    output_tokens: Annotated[str | None, typer.Option("--output", "-o", help="Output tokens.")] = None,
    cached: Annotated[
        str | None, typer.Option("--cached", help="Of the input, tokens read from cache.")
    ] = None,
    cache_write: Annotated[
        str | None, typer.Option("--cache-write", help="Of the input, tokens written to cache.")
    ] = None,
    reasoning: Annotated[
        str | None, typer.Option("--reasoning", help="Of the output, reasoning tokens.")
    ] = None,
    images: Annotated[str | None, typer.Option("--images", help="Generated images billed per image.")] = None,
    size: Annotated[str | None, typer.Option("--size", help="Image size, e.g. 1024x1024.")] = None,
    quality: Annotated[
        str | None, typer.Option("--quality", help="Image quality, e.g. low, medium, high, hd.")
    ] = None,
    audio_seconds: Annotated[
        str | None, typer.Option("--audio-seconds", help="Seconds of audio billed by duration.")
    ] = None,
    requests: Annotated[
        str | None, typer.Option("--requests", help="Number of requests (per-request fees).")
    ] = None,
    mode: ModeOption = "standard",
    at: AtOption = None,
    provider: ProviderOption = None,
    fmt: FormatOption = OutputFormat.table,
    currency: CurrencyOption = None,
) -> None:
    """Price a usage on a model: itemised, with source, tier and effective date of each rate."""
    from kakin.estimate.inputs import Limit, number
    from kakin.pricing import Usage, price

    fx = resolve_currency(currency)
    seconds = (
        Decimal(0)
        if audio_seconds is None
        else number(audio_seconds, "--audio-seconds", Limit(Decimal(0), Decimal(10**9)))
    )
    usage = Usage(
        input_tokens=_count(input_tokens, "--input"),
        output_tokens=_count(output_tokens, "--output"),
        cache_read_tokens=_count(cached, "--cached"),
        cache_write_tokens=_count(cache_write, "--cache-write"),
        output_reasoning_tokens=_count(reasoning, "--reasoning"),
        images=_count(images, "--images"),
        image_size=size,
        image_quality=quality,
        audio_seconds=seconds,
        requests=1 if requests is None else _count(requests, "--requests"),
    )
    if usage.is_empty:
        raise InvalidInput("nothing to price: give --input/--output tokens, --images or --audio-seconds")
    cost = price(
        usage, model, provider=provider, at=parse_at(at), mode=check_mode(mode), catalog=load_catalog()
    )
    emit(cost_report(cost), fmt, fx)


def cost_report(cost: Cost, title: str | None = None) -> Report:
    """An itemised Cost as a report. The table names each line's source by a footnote;
    JSON and CSV carry it on every line."""
    sources = list(dict.fromkeys(item.source for item in cost.items))
    rows = [
        {
            "component": item.component,
            "quantity": item.quantity,
            "amount_of": f"{_quantity(item.quantity)} {item.unit}",
            "unit": item.unit,
            "unit_price": item.unit_price,
            "amount": item.amount,
            "tier": item.tier or "base",
            "effective_from": item.effective_from,
            "source": item.source,
            "ref": f"[{sources.index(item.source) + 1}]",
            "mode": item.mode,
        }
        for item in cost.items
    ]
    return Report(
        title=title
        or f"{cost.provider}/{cost.model} ({_mode(cost)}), priced at {cost.priced_at:%Y-%m-%d %H:%M} UTC",
        columns=[
            Column("component", "component"),
            Column("quantity", "quantity", "decimal", table=False),
            Column("amount_of", "quantity", export=False),
            Column("unit", "unit", table=False),
            Column("unit_price", "unit price", "rate"),
            Column("amount", "amount", "rate"),
            Column("tier", "tier", wrap=True),
            Column("effective_from", "since"),
            Column("ref", "src", export=False),
            Column("source", "source", table=False),
            Column("mode", "mode", table=False),
        ],
        rows=rows,
        total={"component": "total", "amount": cost.total},
        notes=[f"[{n}] {source}" for n, source in enumerate(sources, start=1)] + _mode_notes(cost),
        extra={
            "model": cost.model,
            "provider": cost.provider,
            "mode": cost.mode,
            "billed_mode": cost.billed_mode,
            "priced_at": cost.priced_at,
        },
    )


def _mode(cost: Cost) -> str:
    return cost.mode if cost.billed_mode == cost.mode else f"{cost.mode} asked, {cost.billed_mode} rates"


def _mode_notes(cost: Cost) -> list[str]:
    """Say so when the mode asked for has no rate of its own (its standard rates were used)."""
    if cost.billed_mode == cost.mode:
        return []
    return [
        f"{cost.provider}/{cost.model} has no {cost.mode} rate in the catalog on "
        f"{cost.priced_at:%Y-%m-%d}: the {cost.billed_mode} rates are shown"
    ]


def _quantity(value: Decimal) -> str:
    return f"{value:,}" if value == value.to_integral_value() else f"{value.normalize():,f}"
