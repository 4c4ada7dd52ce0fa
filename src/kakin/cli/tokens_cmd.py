"""``kakin tokens``: count a prompt's tokens for one or more models, offline.

Counts are exact for OpenAI encodings; for other providers they are estimates, shown with
the upper bound the real count never exceeds. ``--ratios`` prints kakin's measurement of
Japanese vs English token density, the figure behind "Japanese costs more tokens".
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import typer

from kakin.cli.inputs import parse_at, read_chat_request, read_text_file, require_exactly_one
from kakin.cli.output import (
    AtOption,
    Column,
    CurrencyOption,
    FormatOption,
    OutputFormat,
    Report,
    emit,
    resolve_currency,
)
from kakin.money import USD_RATE

DEFAULT_MODELS = ["gpt-4o"]


def register(app: typer.Typer) -> None:
    app.command("tokens")(tokens)


def tokens(
    text: Annotated[str | None, typer.Argument(help="Text to count (or use --file / --messages).")] = None,
    file: Annotated[str | None, typer.Option("--file", help="Count the text of this UTF-8 file.")] = None,
    messages: Annotated[
        str | None,
        typer.Option("--messages", help="Count a chat request: JSON list of messages or request body."),
    ] = None,
    model: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="Model to count for (repeat to compare).")
    ] = None,
    ratios: Annotated[
        bool, typer.Option("--ratios", help="Print measured Japanese vs English tokens per character.")
    ] = False,
    at: AtOption = None,
    fmt: FormatOption = OutputFormat.table,
    currency: CurrencyOption = None,
) -> None:
    """Count tokens of a text, a file or a chat request for one or more models, and their input cost."""
    fx = resolve_currency(currency)
    if ratios:
        emit(_ratios_reports(), fmt, USD_RATE)
        return
    require_exactly_one(
        (("TEXT", text), ("--file", file), ("--messages", messages)),
        "give exactly one of TEXT, --file or --messages (or --ratios)",
    )
    from kakin.catalog import Catalog
    from kakin.pricing import Usage, price
    from kakin.tokens import count_messages, count_text

    body = None
    if messages is not None:
        body = read_chat_request(messages)
    elif file is not None:
        text = read_text_file(file, "text file")
    names = list(dict.fromkeys(model or ([body["model"]] if body and "model" in body else DEFAULT_MODELS)))
    when = parse_at(at)
    rows = []
    for name in names:
        entry = Catalog.default().resolve(name)
        canonical = entry.model
        if body is not None:
            counted = count_messages(body["messages"], canonical, tools=body.get("tools"))
        else:
            counted = count_text(text or "", canonical)
        rows.append(
            {
                "model": canonical,
                "tokens": counted.tokens,
                "exact": counted.exact,
                "upper_bound": counted.upper_bound,
                "input_cost": price(Usage(input_tokens=counted.tokens), entry, at=when).total,
                "bound_cost": price(Usage(input_tokens=counted.upper_bound), entry, at=when).total,
                "method": counted.method,
            }
        )
    methods = list(dict.fromkeys(row["method"] for row in rows))
    for row in rows:
        row["ref"] = f"[{methods.index(row['method']) + 1}]"
    notes = [f"[{n}] {method}" for n, method in enumerate(methods, start=1)]
    if text is not None and body is None:
        notes.append(f"{len(text):,} characters, {len(text.encode('utf-8')):,} UTF-8 bytes")
    notes.append("as input = what these tokens cost as a prompt, at the model's input rate")
    if any(not row["exact"] for row in rows):
        notes.append(
            "exact = no: the count is an estimate; the provider never reports more than the upper bound"
        )
    report = Report(
        title="Tokens" + (" (chat request, framing included)" if body is not None else ""),
        columns=[
            Column("model", "model"),
            Column("tokens", "tokens", "int"),
            Column("exact", "exact"),
            Column("upper_bound", "upper bound", "int"),
            Column("input_cost", "as input", "rate"),
            Column("bound_cost", "at most", "rate", table=False),
            Column("method", "method", table=False),
            Column("ref", "method", export=False),
        ],
        rows=rows,
        notes=notes,
    )
    emit(report, fmt, fx)


def _ratios_reports() -> list[Report]:
    from kakin.tokens.ratios import ENCODINGS, language_ratios

    measured = language_ratios()
    rows = []
    for sample in measured.samples:
        for name in ENCODINGS:
            rows.append(
                {
                    "sample": sample.label,
                    "encoding": name,
                    "chars": sample.chars,
                    "tokens": sample.tokens[name],
                    "tokens_per_char": _four(sample.tokens_per_char(name)),
                    "chars_per_token": _four(sample.chars_per_token(name)),
                    "estimate_error": _four(sample.estimate_error(name)),
                }
            )
    labels = {s.label for s in measured.samples}
    notes = []
    summary = {}
    if {"ja", "en"} <= labels:
        for name in ENCODINGS:
            summary[name] = _four(measured.ja_over_en(name))
            notes.append(
                f"{name}: a Japanese character costs {summary[name]:.2f}× the tokens of an English one"
            )
    notes.append(
        "est. error: (character rule − exact) ÷ exact, the error of kakin's estimate for non-OpenAI models"
    )
    return [
        Report(
            title="Tokens per character, Japanese vs English (shipped sample corpus)",
            columns=[
                Column("sample", "sample"),
                Column("encoding", "encoding"),
                Column("chars", "chars", "int"),
                Column("tokens", "tokens", "int"),
                Column("tokens_per_char", "tok/char", "number"),
                Column("chars_per_token", "char/tok", "number"),
                Column("estimate_error", "est. error", "percent"),
            ],
            rows=rows,
            notes=notes,
            extra={"ja_over_en_tokens_per_char": summary},
        )
    ]


def _four(value: float) -> Decimal:
    """A measured ratio, to 4 decimal places (these are measurements, not money)."""
    return Decimal(repr(value)).quantize(Decimal("0.0001"))
