"""``kakin demo``: what kakin answers before a single request is sent, then the gateway live.

A showcase, not a test: a Japanese customer-support bot priced across six models, an image
job with retries, a subscription-vs-API break-even and one prompt estimated before sending,
printed with Rich in USD and a second currency (JPY by default). ``run_showcase`` is a plain
function so that other parts (the gateway's live demo) can print it before their own part.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.rule import Rule

from kakin.cli.output import print_table
from kakin.money import USD_RATE, fx_rate

SUPPORT_BOT_MODELS = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1-mini",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
    "gemini-2.5-flash",
)
SAMPLE_QUESTION = (
    "お世話になっております。先月分の請求書について確認させてください。"
    "請求額が想定より高く、API の利用明細をモデル別に知りたいです。"
)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    currency: Annotated[str, typer.Option("--currency", help="Second display currency besides USD.")] = "JPY",
    requests: Annotated[
        int, typer.Option("--requests", min=10, max=100_000, help="Requests to send through the gateway.")
    ] = 300,
    keep_running: Annotated[
        bool, typer.Option("--keep-running", help="Leave the gateway running afterwards (Ctrl-C stops it).")
    ] = False,
    estimates_only: Annotated[
        bool, typer.Option("--estimates-only", help="Only the estimation showcase; start no gateway.")
    ] = False,
) -> None:
    """Estimates for a support bot, then live traffic through the gateway and a spend report."""
    from kakin.cli.live_demo import run_live_demo

    console = Console()
    run_showcase(console, currency=currency)
    if not estimates_only:
        run_live_demo(console, fx_rate(currency), requests=requests, keep_running=keep_running)


def run_showcase(console: Console, *, currency: str = "JPY") -> None:
    """Print the estimation showcase on ``console`` in USD and ``currency``."""
    from kakin.cli.estimate_cmd import breakeven_report, image_job_report, request_report, scenario_report
    from kakin.estimate import breakeven, compare_models, estimate_request, image_job, scenario

    local = fx_rate(currency)
    console.print(Rule("kakin — what will it cost before it runs?"))

    plan = scenario(
        name="Japanese customer-support bot",
        requests_per_day=3000,
        input_tokens=1500,
        output_tokens=400,
        cached_share="30%",
        retry_factor="1.05",
        buffer="20%",
        peak_factor=4,
        days="calendar",
    )
    comparison = compare_models(plan, SUPPORT_BOT_MODELS)
    report = scenario_report(comparison)
    print_table(report, USD_RATE, console)
    console.print()
    print_table(report, local, console)

    console.print(Rule("Image job: 40 product shots, 3 generations each"))
    jobs = [
        image_job(
            "gpt-image-1", finals=40, attempts_per_final=3, quality=quality, buffer="20%", prompt_tokens=120
        )
        for quality in ("low", "medium", "high")
    ]
    print_table(image_job_report(jobs), local, console)

    console.print(Rule("Subscription or API: a $20/month plan vs gpt-4o"))
    result = breakeven(
        20,
        "gpt-4o",
        input_tokens=1000,
        output_tokens=500,
        usage_requests_per_month=900,
        plan_name="$20/month plan",
    )
    print_table(breakeven_report(result), local, console)

    console.print(Rule("One prompt, before sending it"))
    for model in ("gpt-4o-mini", "claude-haiku-4-5"):
        estimate = estimate_request(model, text=SAMPLE_QUESTION, max_tokens=800, expected_output_tokens=400)
        print_table(request_report(estimate), local, console)
