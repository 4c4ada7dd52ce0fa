"""The live part of ``kakin demo``: real traffic through the gateway, then a spend report.

It starts the gateway on an embedded SQLite ledger with the built-in simulated provider,
sets up an organisation the way a new customer would (free-trial credit, a monthly budget,
a project and a key), sends a few hundred requests through the official ``openai`` SDK —
some streamed, some answered from the response cache, and a batch job that runs into its
project's hard cap — and prints what was spent, by model, in USD and a local currency.
Nothing is left running unless ``--keep-running`` is given; the demo's ledger stays in
``kakin-data/demo/kakin.db`` for the CLI to look into (the next demo starts a new one).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sys
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.rule import Rule
from rich.table import Table

from kakin.money import FxRate, format_amount

DEMO_DIR = "kakin-data/demo"  # relative to the directory the demo runs in
MODELS = ("gpt-4o-mini", "gpt-4.1-mini", "gpt-4o")
QUESTIONS = (
    "請求書の再発行をお願いできますか?",
    "How do I rotate an API key without downtime?",
    "プランの変更はいつ反映されますか?",
    "Summarise our refund policy in two sentences.",
    "Why was my card charged twice this month?",
    "解約手続きの方法を教えてください。",
    "What is the difference between the Pro and Team plans?",
    "API の利用上限を引き上げたいです。",
)
FAQ = "Where can I download last month's invoice?"


async def _traffic(url: str, key: str, batch_key: str, total: int, console: Console) -> dict[str, Any]:
    import openai

    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
    batch = openai.AsyncOpenAI(base_url=url + "/v1", api_key=batch_key, max_retries=0)
    rng = random.Random(7)
    stats: dict[str, Any] = {"streamed": 0, "cached": 0, "refused": None, "errors": 0}
    gate = asyncio.Semaphore(8)

    async def one(i: int) -> None:
        model = MODELS[i % len(MODELS)] if i % 7 else "gpt-4o"
        async with gate:
            try:
                if i % 5 == 0:  # the FAQ everybody asks: served from the cache after the first time
                    await client.chat.completions.create(
                        model="gpt-4o-mini",
                        messages=[{"role": "user", "content": FAQ}],
                        max_tokens=120,
                        extra_headers={"x-kakin-cache": "on"},
                    )
                    stats["cached"] += 1
                elif i % 4 == 0:
                    stream = await client.chat.completions.create(
                        model=model,
                        messages=[{"role": "user", "content": rng.choice(QUESTIONS) + f" (#{i})"}],
                        max_tokens=200,
                        stream=True,
                    )
                    async for _ in stream:
                        pass
                    stats["streamed"] += 1
                else:
                    await client.chat.completions.create(
                        model=model,
                        messages=[
                            {
                                "role": "system",
                                "content": "You are a polite support agent for a SaaS billing desk.",
                            },
                            {"role": "user", "content": rng.choice(QUESTIONS) + f" (#{i})"},
                        ],
                        max_tokens=rng.choice((150, 300, 500)),
                    )
            except openai.APIError:
                stats["errors"] += 1

    with Progress(
        TextColumn("[bold]requests"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task("traffic", total=total)

        async def tracked(i: int) -> None:
            await one(i)
            progress.advance(task)

        await asyncio.gather(*(tracked(i) for i in range(total)))

    # A nightly batch job with its own small hard cap: it is stopped before it overspends.
    for i in range(100):
        try:
            await batch.chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": f"Translate product description #{i} into Japanese."}],
                max_tokens=4096,
            )
        except openai.APIStatusError as refused:
            stats["refused"] = (i, refused.status_code, _message(refused))
            break
    await client.close()
    await batch.close()
    return stats


def _message(error: Any) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(error)


def run_live_demo(console: Console, fx: FxRate, *, requests: int = 300, keep_running: bool = False) -> None:
    from kakin.config import load_settings
    from kakin.ledger import Ledger
    from kakin.server import start_in_thread

    workdir = Path(DEMO_DIR).resolve()  # kept afterwards, for the CLI to look at; the next demo starts afresh
    workdir.mkdir(parents=True, exist_ok=True)
    database = workdir / "kakin.db"
    for stale in workdir.glob("kakin.db*"):
        stale.unlink()
    settings = load_settings(env={"KAKIN_DATABASE_URL": f"sqlite:///{database}"})
    ledger = Ledger.open(settings.database.url)

    console.print(Rule("kakin — the metering gateway, live"))
    org = ledger.create_org("demo-co", currency="JPY", timezone="Asia/Tokyo", phone="+81 90-1234-5678")
    support = ledger.create_project(org.id, "support-bot")
    nightly = ledger.create_project(org.id, "nightly-batch")
    ledger.grant(
        org.id, "free_trial", Decimal("5"), idempotency_key="demo-trial", expires_in=timedelta(days=90)
    )
    ledger.set_budget(org.id, limit=Decimal("3"), name="monthly org budget")
    ledger.set_budget(
        org.id,
        scope="project",
        scope_ref=nightly.id,
        limit=Decimal("0.05"),
        hard_cap=True,
        name="nightly cap",
    )
    _, key = ledger.create_key(support.id, "support-bot prod")
    _, batch_key = ledger.create_key(nightly.id, "nightly job")
    console.print(
        f"organisation [bold]{org.name}[/] (Asia/Tokyo): free trial $5 for 90 days, "
        "monthly budget $3, project 'nightly-batch' hard-capped at $0.05"
    )

    running = start_in_thread(settings, ledger)
    try:
        console.print(f"gateway on {running.url} → built-in simulated provider; sending {requests} requests")
        stats = asyncio.run(_traffic(running.url, key, batch_key, requests, console))
        running.gateway.settled()  # the last charges reach the ledger a moment after their answers
        _report(console, fx, ledger, org.id, stats)
        # Commands are printed on one line each, never wrapped, so that they can be pasted.
        ledger_url = f"sqlite:///{database}"
        console.print(f"\nThe demo's ledger is {database}; look into it with:")
        _command(console, f"KAKIN_DATABASE_URL={ledger_url} {_installed('kakin')} ledger show demo-co")
        if keep_running:
            console.print(f"\nThe gateway keeps running on [bold]{running.url}[/]. Try:")
            _command(
                console,
                f"OPENAI_BASE_URL={running.url}/v1 OPENAI_API_KEY={key} {_installed('python')} -c "
                "\"import openai; print(openai.OpenAI().chat.completions.create(model='gpt-4o-mini', "
                "messages=[{'role':'user','content':'hi'}]).choices[0].message.content)\"",
            )
            console.print("Press Ctrl-C to stop.")
            with contextlib.suppress(KeyboardInterrupt):
                running._thread.join()
    finally:
        running.stop()
        ledger.close()


def _command(console: Console, line: str) -> None:
    console.print("  " + line, soft_wrap=True, markup=False, highlight=False)


def _installed(program: str) -> str:
    """``program`` from the environment kakin runs in (``.venv/bin/kakin`` after ``make demo``)."""
    path = Path(sys.executable).parent / program
    if not path.exists():
        return program
    return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)


def _report(console: Console, fx: FxRate, ledger: Any, org_id: str, stats: dict[str, Any]) -> None:
    rows: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(lambda: Decimal(0)))
    saved = Decimal(0)
    hits = 0
    for record in ledger.usage(org_id):
        row = rows[record.model]
        row["requests"] += 1
        row["input"] += record.input_tokens
        row["output"] += record.output_tokens
        row["cost"] += record.cost
        if record.cache_hit:
            hits += 1
            saved += record.cache_saved
    table = Table(title="Spend by model (this month)")
    for column in ("model", "requests", "input tokens", "output tokens", "USD", fx.currency):
        # Folded, never cut short with an ellipsis, when the terminal is narrow.
        table.add_column(column, justify="left" if column == "model" else "right", overflow="fold")
    total = Decimal(0)
    for model, row in sorted(rows.items(), key=lambda item: -item[1]["cost"]):
        total += row["cost"]
        table.add_row(
            model,
            f"{row['requests']:,}",
            f"{row['input']:,}",
            f"{row['output']:,}",
            format_amount(row["cost"]),
            format_amount(fx.convert(row["cost"]), fx.currency),
        )
    table.add_row(
        "[bold]total",
        "",
        "",
        "",
        f"[bold]{format_amount(total)}",
        f"[bold]{format_amount(fx.convert(total), fx.currency)}",
    )
    console.print(table)
    balance = ledger.balance(org_id)
    console.print(f"rate: {fx.describe()}")
    console.print(
        f"streamed: {stats['streamed']}   cache hits: {hits} (saved {format_amount(saved)} = "
        f"{format_amount(fx.convert(saved), fx.currency)})   upstream errors: {stats['errors']}"
    )
    console.print(
        f"free-trial credit left: {format_amount(balance.available)} "
        f"({format_amount(fx.convert(balance.available), fx.currency)}); held now: {format_amount(balance.held)}"
    )
    for status in ledger.budget_statuses(org_id):
        console.print(
            f"budget {status.budget.name!r}: {format_amount(status.spent)} of {format_amount(status.limit)} "
            f"({status.percent:.1f} %)"
        )
    if stats["refused"]:
        index, code, message = stats["refused"]
        console.print(f"[yellow]nightly batch stopped at request #{index + 1} with HTTP {code}:[/] {message}")
    reconciled = ledger.reconcile(org_id)
    console.print(f"ledger reconciles: {'yes' if getattr(reconciled, 'ok', True) else 'NO'}")
