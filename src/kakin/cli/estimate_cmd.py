"""``kakin estimate``, ``scenario``, ``image-job`` and ``breakeven``: costs before spending.

The commands only read input files and turn flags into calls of kakin.estimate; every
figure is computed there. The report builders are public so that ``kakin demo`` (and later
the dashboard) print the same tables.
"""

from __future__ import annotations

from decimal import Decimal, localcontext
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kakin.cli.inputs import (
    check_mode,
    given_flags,
    parse_at,
    read_chat_request,
    read_text_file,
    read_toml_file,
    require_exactly_one,
)
from kakin.cli.output import (
    AtOption,
    Column,
    CurrencyOption,
    FormatOption,
    ModeOption,
    OutputFormat,
    ProviderOption,
    Report,
    configured_rates,
    emit,
    load_catalog,
    resolve_currency,
)
from kakin.errors import InvalidInput

if TYPE_CHECKING:
    from kakin.estimate import BreakEven, ImageJobEstimate, RequestEstimate, ScenarioComparison


def register(app: typer.Typer) -> None:
    app.command("estimate")(estimate)
    app.command("scenario")(scenario)
    app.command("image-job")(image_job)
    app.command("breakeven")(breakeven)


# --------------------------------------------------------------------------- estimate


def estimate(
    model: Annotated[str, typer.Argument(help="Model id, e.g. gpt-4o-mini.")],
    text: Annotated[str | None, typer.Argument(help="Prompt text (or use --file / --messages).")] = None,
    file: Annotated[str | None, typer.Option("--file", help="Prompt text from this UTF-8 file.")] = None,
    messages: Annotated[
        str | None,
        typer.Option(
            "--messages",
            help="Chat request JSON: a list of messages, or a body with messages/tools/max_tokens.",
        ),
    ] = None,
    max_tokens: Annotated[
        str | None, typer.Option("--max-tokens", help="Output limit (default: the request's, else 1024).")
    ] = None,
    expected_output: Annotated[
        str | None,
        typer.Option("--expected-output", help="Expected output tokens (default: half of max_tokens)."),
    ] = None,
    cached: Annotated[
        str, typer.Option("--cached", help="Input tokens expected from the prompt cache.")
    ] = "0",
    mode: ModeOption = "standard",
    at: AtOption = None,
    provider: ProviderOption = None,
    fmt: FormatOption = OutputFormat.table,
    currency: CurrencyOption = None,
) -> None:
    """Cost of one request before sending it: expected and worst case (output up to max_tokens)."""
    from kakin.estimate import estimate_request

    require_exactly_one(
        (("TEXT", text), ("--file", file), ("--messages", messages)),
        "give the prompt as exactly one of TEXT, --file or --messages",
    )
    fx = resolve_currency(currency)
    prompt: dict[str, Any] = {}
    if messages is not None:
        body = read_chat_request(messages)
        prompt = {"messages": body["messages"], "tools": body.get("tools")}
        if max_tokens is None and "max_tokens" in body:
            max_tokens = body["max_tokens"]
    else:
        prompt = {"text": read_text_file(file, "prompt file") if file is not None else text}
    result = estimate_request(
        model,
        **prompt,
        max_tokens=1024 if max_tokens is None else max_tokens,
        expected_output_tokens=expected_output,
        cached_tokens=cached,
        provider=provider,
        at=parse_at(at),
        mode=check_mode(mode),
        catalog=load_catalog(),
    )
    emit(request_report(result), fmt, fx)


def request_report(result: RequestEstimate) -> Report:
    counted = result.input
    rows = [
        {
            "case": "expected",
            "input_tokens": counted.tokens,
            "cached_tokens": result.cached_tokens,
            "output_tokens": result.expected_output_tokens,
            "input_cost": result.expected.input,
            "output_cost": result.expected.output,
            "cost": result.expected.total,
        },
        {
            "case": "worst",
            "input_tokens": counted.upper_bound,
            "cached_tokens": result.cached_tokens,
            "output_tokens": result.max_tokens,
            "input_cost": result.worst.input,
            "output_cost": result.worst.output,
            "cost": result.worst.total,
        },
    ]
    if counted.exact:
        notes = [f"input counted exactly ({counted.method})"]
    else:
        notes = [
            f"input tokens are an ESTIMATE ({counted.tokens:,}); the real count is at most {counted.upper_bound:,}",
            f"method: {counted.method}",
        ]
    notes.append(
        f"output: expected {result.expected_output_tokens:,} tokens, at most max_tokens = {result.max_tokens:,}"
    )
    return Report(
        title=f"One request on {result.provider}/{result.model} ({result.expected.mode}), tokens and cost",
        columns=[
            Column("case", "case"),
            Column("input_tokens", "input", "int"),
            Column("cached_tokens", "cached", "int"),
            Column("output_tokens", "output", "int"),
            Column("input_cost", "in cost", "rate"),
            Column("output_cost", "out cost", "rate"),
            Column("cost", "cost", "rate"),
        ],
        rows=rows,
        notes=notes,
        extra={
            "model": result.model,
            "provider": result.provider,
            "input_exact": counted.exact,
            "input_method": counted.method,
        },
    )


# --------------------------------------------------------------------------- scenario


def scenario(
    file: Annotated[
        str | None, typer.Argument(help="Scenario TOML file (flags override its values).")
    ] = None,
    model: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="Model to compare (repeat).")
    ] = None,
    requests_per_day: Annotated[
        str | None, typer.Option("--requests-per-day", "-r", help="Requests per day.")
    ] = None,
    input_tokens: Annotated[
        str | None, typer.Option("--input", "-i", help="Average input tokens per request.")
    ] = None,
    output_tokens: Annotated[
        str | None, typer.Option("--output", "-o", help="Average output tokens per request.")
    ] = None,
    sample: Annotated[
        list[str] | None,
        typer.Option("--sample", help="A sample prompt file; input tokens = mean count per model (repeat)."),
    ] = None,
    cached_share: Annotated[
        str | None, typer.Option("--cached-share", help="Share of input from the prompt cache: 0.3 or 30%.")
    ] = None,
    retry_factor: Annotated[
        str | None, typer.Option("--retry-factor", help="Billed attempts per request, e.g. 1.05 (1–10).")
    ] = None,
    buffer: Annotated[
        str | None, typer.Option("--buffer", help="Safety margin 0–100%, e.g. 20% (default 20%).")
    ] = None,
    peak_factor: Annotated[
        str | None, typer.Option("--peak-factor", help="Peak traffic × average, 1–20 (default 4).")
    ] = None,
    days: Annotated[
        str | None, typer.Option("--days", help="Days per month: calendar (30), working (22) or a number.")
    ] = None,
    mode: Annotated[
        str | None, typer.Option("--mode", help="Pricing mode: standard, batch, flex, priority.")
    ] = None,
    at: AtOption = None,
    fmt: FormatOption = OutputFormat.table,
    currency: CurrencyOption = None,
) -> None:
    """Monthly cost of a workload, low / expected / peak, compared across models."""
    from kakin.estimate import compare_models, scenario_from_mapping

    fx = resolve_currency(currency)
    document: dict[str, Any] = read_toml_file(file, "scenario file") if file is not None else {}
    table = dict(document.get("scenario", document))
    flags = {
        "models": model or None,
        "requests_per_day": requests_per_day,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cached_share": cached_share,
        "retry_factor": retry_factor,
        "buffer": buffer,
        "peak_factor": peak_factor,
        "days": days,
        "mode": mode,
    }
    table.update({key: value for key, value in flags.items() if value is not None})
    if sample:
        table["sample_prompts"] = [read_text_file(path, "sample prompt file") for path in sample]
        if input_tokens is None:
            table.pop("input_tokens", None)  # samples replace the file's average
    if "mode" in table:
        check_mode(str(table["mode"]))
    plan, models = scenario_from_mapping(table, where=file or "scenario")
    if not models:
        raise InvalidInput("name the models to compare with --model (repeat) or 'models = [...]' in the file")
    comparison = compare_models(plan, models, at=parse_at(at), catalog=load_catalog())
    emit(scenario_report(comparison), fmt, fx)


def scenario_report(comparison: ScenarioComparison) -> Report:
    plan = comparison.scenario
    rows = []
    for row in comparison.rows:
        rows.append(
            {
                "label": f"{row.model} ★" if row.cheapest else row.model,
                "model": row.model,
                "provider": row.provider,
                "input_tokens": row.shape.input_tokens,
                "cached_tokens": row.shape.cached_tokens,
                "output_tokens": row.shape.output_tokens,
                "tokens_exact": row.tokens_exact,
                "per_request": row.per_request,
                "low": row.low,
                "expected": row.expected,
                "peak": row.peak,
                "expected_per_day": row.expected_per_day,
                "peak_day": row.peak_day,
                "times_cheapest": row.times_cheapest,
                "cheapest": row.cheapest,
            }
        )
    per_month = plan.requests_per_month
    notes = [
        f"{_num(plan.requests_per_day)} requests/day × {_num(plan.days_per_month)} days = {_num(per_month)} requests/month; "
        f"cached share {_pct(plan.cached_share)}, retry factor {_num(plan.retry_factor)}, "
        f"buffer {_pct(plan.buffer)}, peak {_num(plan.peak_factor)}×, mode {plan.mode}",
        "low = per request × requests/month · expected = low × retry factor × (1 + buffer) · "
        "peak = expected × peak factor",
    ]
    varying = len({(r.shape.input_tokens, r.shape.cached_tokens) for r in comparison.rows}) > 1
    shape = comparison.rows[0].shape
    inputs = "input tokens per model (column 'in')" if varying else f"{shape.input_tokens:,} input tokens"
    cached = "" if varying else f" ({shape.cached_tokens:,} cached)"
    notes.insert(0, f"each request: {inputs}{cached} + {shape.output_tokens:,} output tokens")
    if any(not row.tokens_exact for row in comparison.rows):
        notes.append("input tokens of models without an offline tokenizer are estimates from the samples")
    notes.append(
        "★ cheapest, vs ★ = expected ÷ the cheapest's; peak day = expected per day × peak factor (for daily caps); all figures in the JSON/CSV"
    )
    return Report(
        title=f"Monthly cost: {plan.name} (per month)",
        columns=[
            Column("label", "model", export=False),
            Column("model", "model", table=False),
            Column("provider", "provider", table=False),
            Column("input_tokens", "in", "int", table=varying),
            Column("cached_tokens", "cached", "int", table=False),
            Column("output_tokens", "out", "int", table=False),
            Column("tokens_exact", "tokens exact", table=False),
            Column("per_request", "per request", "rate"),
            Column("low", "low", "money"),
            Column("expected", "expected", "money"),
            Column("peak", "peak", "money"),
            Column("expected_per_day", "expected/day", "money", table=False),
            Column("peak_day", "peak day", "money", table=False),
            Column("times_cheapest", "vs ★", "factor"),
            Column("cheapest", "cheapest", table=False),
        ],
        rows=rows,
        notes=notes,
        extra={
            "scenario": {
                "name": plan.name,
                "requests_per_day": plan.requests_per_day,
                "days_per_month": plan.days_per_month,
                "requests_per_month": per_month,
                "cached_share": plan.cached_share,
                "retry_factor": plan.retry_factor,
                "buffer": plan.buffer,
                "peak_factor": plan.peak_factor,
                "mode": plan.mode,
            }
        },
        row_style=lambda row: "bold green" if row["cheapest"] else None,
    )


# --------------------------------------------------------------------------- image job


def image_job(
    model: Annotated[str, typer.Argument(help="Image model, e.g. gpt-image-1 or dall-e-3.")],
    finals: Annotated[str, typer.Option("--finals", "-n", help="Usable images the job needs.")],
    attempts: Annotated[
        str, typer.Option("--attempts", "--retries", help="Generations per usable image (1 = no rerolls).")
    ] = "1",
    size: Annotated[list[str] | None, typer.Option("--size", help="Image size (repeat to compare).")] = None,
    quality: Annotated[
        list[str] | None, typer.Option("--quality", help="Quality (repeat to compare).")
    ] = None,
    buffer: Annotated[str, typer.Option("--buffer", help="Safety margin 0–100%.")] = "20%",
    prompt_tokens: Annotated[str, typer.Option("--prompt-tokens", help="Input tokens of each prompt.")] = "0",
    mode: ModeOption = "standard",
    at: AtOption = None,
    provider: ProviderOption = None,
    fmt: FormatOption = OutputFormat.table,
    currency: CurrencyOption = None,
) -> None:
    """Cost of an image job: finals × attempts per final × per-image price, plus buffer."""
    from kakin.estimate import image_job as estimate_job

    fx = resolve_currency(currency)
    catalog = load_catalog()
    when = parse_at(at)
    check_mode(mode)
    results = [
        estimate_job(
            model,
            finals=finals,
            attempts_per_final=attempts,
            size=one_size,
            quality=one_quality,
            buffer=buffer,
            prompt_tokens=prompt_tokens,
            provider=provider,
            at=when,
            mode=mode,
            catalog=catalog,
        )
        for one_size in (size or [None])
        for one_quality in (quality or [None])
    ]
    emit(image_job_report(results), fmt, fx)


def image_job_report(results: list[ImageJobEstimate]) -> Report:
    results = sorted(results, key=lambda r: (r.total, r.size, r.quality))
    first = results[0]
    rows = [
        {
            "size": r.size,
            "quality": r.quality,
            "per_image": r.per_image_price,
            "per_generation": r.per_generation,
            "generations": r.generations,
            "naive": r.naive,
            "subtotal": r.subtotal,
            "buffer_amount": r.buffer_amount,
            "total": r.total,
            "per_final": r.per_final,
            "image_tokens": r.image_tokens,
            "upper_bound": r.upper_bound,
        }
        for r in results
    ]
    notes = [
        f"{first.finals:,} finals × {_num(first.attempts_per_final)} attempts = {_num(first.generations)} generations; "
        f"buffer {_pct(first.buffer)}"
        + (f"; each prompt {first.prompt_tokens:,} input tokens" if first.prompt_tokens else ""),
        "total = generations × per generation × (1 + buffer); naive = finals × per-image price "
        "(no retries, no buffer): what a price list alone suggests",
        *(f"price source: {item.source}" for item in first.cost.items if item.unit == "image"),
        "an upper bound: no output tokens per image are published for this model; a request is "
        "billed by the tokens the provider reports"
        if first.upper_bound
        else "",
    ]
    return Report(
        title=f"Image job on {first.provider}/{first.model}",
        columns=[
            Column("size", "size"),
            Column("quality", "quality"),
            Column("per_image", "per image", "rate"),
            Column("per_generation", "per generation", "rate", table=False),
            Column("generations", "generations", "decimal"),
            Column("naive", "naive", "money"),
            Column("subtotal", "subtotal", "money", table=False),
            Column("buffer_amount", "buffer", "money", table=False),
            Column("total", "total", "money"),
            Column("per_final", "per final", "rate"),
            Column("image_tokens", "image tokens", "int", table=False),
            Column("upper_bound", "upper bound", table=False),
        ],
        rows=rows,
        notes=[n for n in notes if n],
        extra={
            "model": first.model,
            "provider": first.provider,
            "finals": first.finals,
            "attempts_per_final": first.attempts_per_final,
            "buffer": first.buffer,
        },
    )


# --------------------------------------------------------------------------- break-even


def breakeven(
    model: Annotated[str, typer.Argument(help="Model used through the API, e.g. gpt-4o.")],
    plan_price: Annotated[str, typer.Option("--plan-price", help="Subscription price per month, e.g. 20.")],
    plan_currency: Annotated[
        str,
        typer.Option(
            "--plan-currency", help="Currency of --plan-price (converted to USD at the display rate)."
        ),
    ] = "USD",
    plan_name: Annotated[
        str, typer.Option("--plan-name", help="Name of the plan, for the report.")
    ] = "subscription",
    input_tokens: Annotated[str, typer.Option("--input", "-i", help="Input tokens per request.")] = "1000",
    output_tokens: Annotated[str, typer.Option("--output", "-o", help="Output tokens per request.")] = "500",
    cached_share: Annotated[
        str, typer.Option("--cached-share", help="Share of input from cache: 0.3 or 30%.")
    ] = "0",
    usage_month: Annotated[
        str | None, typer.Option("--usage", help="Your usage in requests per month, for a verdict.")
    ] = None,
    usage_day: Annotated[
        str | None, typer.Option("--usage-per-day", help="Your usage in requests per day.")
    ] = None,
    usage_tokens: Annotated[
        str | None, typer.Option("--usage-tokens", help="Your usage in tokens (input + output) per month.")
    ] = None,
    days: Annotated[
        str, typer.Option("--days", help="Days per month: calendar (30), working (22) or a number.")
    ] = "calendar",
    mode: ModeOption = "standard",
    at: AtOption = None,
    provider: ProviderOption = None,
    fmt: FormatOption = OutputFormat.table,
    currency: CurrencyOption = None,
) -> None:
    """Subscription vs API: the monthly usage where a flat plan starts to pay off."""
    from kakin.estimate import breakeven as compute
    from kakin.estimate.inputs import (
        PLAN_PRICE,
        REQUESTS_PER_DAY,
        REQUESTS_PER_MONTH,
        TOKENS_PER_MONTH,
        Limit,
        days_per_month,
        number,
        settle,
    )
    from kakin.money import EXACT, fx_rate

    fx = resolve_currency(currency)
    given = given_flags(
        (("--usage", usage_month), ("--usage-per-day", usage_day), ("--usage-tokens", usage_tokens))
    )
    if len(given) > 1:
        raise InvalidInput(f"give your usage once: {', '.join(given)} were all given")
    price_in = number(plan_price, "--plan-price", Limit(PLAN_PRICE.low, Decimal(10**9)))
    plan_fx = (
        fx if plan_currency.strip().upper() == fx.currency else fx_rate(plan_currency, configured_rates())
    )
    with localcontext(EXACT):
        plan_usd = price_in / plan_fx.per_usd
        usage: Decimal | None = None
        tokens: Decimal | None = None
        if usage_month is not None:
            usage = number(usage_month, "--usage (requests per month)", REQUESTS_PER_MONTH)
        elif usage_day is not None:
            usage = number(usage_day, "--usage-per-day", REQUESTS_PER_DAY) * days_per_month(days)
        elif usage_tokens is not None:
            tokens = number(usage_tokens, "--usage-tokens", TOKENS_PER_MONTH)
    result = compute(
        settle(plan_usd),
        model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_share=cached_share,
        usage_requests_per_month=usage,
        usage_tokens_per_month=tokens,
        plan_name=plan_name,
        days=days,
        provider=provider,
        at=parse_at(at),
        mode=check_mode(mode),
        catalog=load_catalog(),
    )
    emit(breakeven_report(result), fmt, fx)


def breakeven_report(result: BreakEven) -> Report:
    shape = result.shape
    rows: list[dict[str, Any]] = [
        {"what": "one request", "requests": Decimal(1), "tokens": shape.tokens, "cost": result.per_request},
        {"what": result.plan_name, "requests": None, "tokens": None, "cost": result.plan_price},
    ]
    if result.requests_per_month is not None:
        rows.append(
            {
                "what": "break-even",
                "requests": Decimal(result.requests_per_month),
                "tokens": result.tokens_per_month,
                "cost": result.per_request * result.requests_per_month,
            }
        )
    verdict = result.verdict
    if verdict is not None:
        rows.append(
            {
                "what": "your usage",
                "requests": verdict.requests_per_month,
                "tokens": int(verdict.tokens_per_month),
                "cost": verdict.api_cost,
            }
        )
    notes = [
        f"request shape: {shape.input_tokens:,} input ({shape.cached_tokens:,} cached) + {shape.output_tokens:,} output tokens "
        f"on {result.provider}/{result.model}"
    ]
    if result.requests_per_month is None:
        notes.append("the model is free at this shape: the API always wins")
    else:
        notes.append(
            f"the API is cheaper below {result.requests_per_month:,} requests/month "
            f"(≈ {_num(result.requests_per_day or Decimal(0))}/day over {_num(result.days_per_month)} days); "
            f"at or above that, the {result.plan_name} costs as much or less"
        )
    extra: dict[str, Any] = {
        "plan_name": result.plan_name,
        "plan_price": result.plan_price,
        "per_request": result.per_request,
        # A count as an exact decimal string, as the rows and the per-day figure give it.
        "breakeven_requests_per_month": _count(result.requests_per_month),
        "breakeven_tokens_per_month": result.tokens_per_month,
        "breakeven_requests_per_day": result.requests_per_day,
    }
    money = {"plan_price", "per_request"}
    if verdict is not None:
        winner = {"api": "the API", "plan": result.plan_name, "either": "neither (same cost)"}[verdict.winner]
        notes.append(f"verdict at {_num(verdict.requests_per_month)} requests/month: {winner} wins")
        extra["verdict"] = {"winner": verdict.winner, "api_cost": verdict.api_cost, "saving": verdict.saving}
        rows.append({"what": "saving", "requests": None, "tokens": None, "cost": verdict.saving})
    return Report(
        title=f"{result.plan_name} vs API ({result.provider}/{result.model}), per month",
        columns=[
            Column("what", ""),
            Column("requests", "requests", "decimal"),
            Column("tokens", "tokens", "int"),
            Column("cost", "cost", "rate"),
        ],
        rows=rows,
        notes=notes,
        extra=extra,
        extra_money=frozenset(money | {"verdict"}),
    )


# --------------------------------------------------------------------------- helpers


def _count(value: int | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _num(value: Decimal) -> str:
    """A count or factor for reading: grouped thousands, no trailing zeros."""
    rounded = value.quantize(Decimal("0.01")) if value != value.to_integral_value() else value
    text = f"{rounded:,f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _pct(value: Decimal) -> str:
    return f"{_num(value * 100)}%"
