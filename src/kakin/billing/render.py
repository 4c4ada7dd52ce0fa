"""An invoice's faces: the HTML fragment (the dashboard's page and the PDF draw the same one),
the PDF (WeasyPrint, offline, in IPAexGothic so Japanese comes out right), CSV and JSON.

Amounts: USD is kakin's currency, shown exactly (down to the picodollar when a line is that
small); the display currency is converted at the rate the document records and rounded to its
minor unit, half up. The amount due in USD is also shown rounded to the cent: what is paid.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from kakin.billing.document import CreditNote, Invoice, Line
from kakin.errors import KakinError
from kakin.money import decimal_str, format_amount, from_pico

TEMPLATES = Path(__file__).parent / "templates"
FONT = Path("/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf")
LANGUAGES = ("en", "ja")

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "invoice": "Invoice", "draft": "Draft", "issued": "Issued", "number": "Number",
        "no_number": "(given when issued)", "period": "Billing period", "issue_date": "Issue date",
        "due_date": "Due date", "as_of": "Figures as of", "issuer": "From", "recipient": "Bill to",
        "honorific": "", "registration": "Registration no.", "amount_due": "Amount due",
        "rate": "Rate", "tax_note": "Amounts exclude tax.", "usage": "Usage this period",
        "prior": "Prior-period adjustments (charges posted after their cycle's invoice)",
        "month": "Cycle", "model": "Model", "item": "Item", "quantity": "Quantity",
        "unit_price": "Unit price (USD)", "amount": "Amount (USD)", "price_source": "Price source",
        "effective": "effective", "no_usage": "No usage in this period.", "charges": "Charges",
        "credit_applied": "Credit applied", "credits_total": "Credits applied, total",
        "postpaid": "postpaid", "exact_note": "USD amounts are exact; amounts in the display currency are converted at the rate shown and rounded to its minor unit.",
        "credit_notes": "Credit notes", "reason": "Reason", "settlement": "Settled by", "line": "line",
        "credit": "credit back", "refund": "refund", "free_trial": "free trial", "welcome": "welcome credit",
        "promotional": "promotional credit", "prepaid": "prepaid credit", "credit_note": "Credit note",
        "invoice_ref": "Corrects invoice",
        "input": "input tokens (uncached)", "cached_input": "cached input tokens",
        "cache_write": "cache write tokens", "output": "output tokens", "reasoning": "reasoning tokens",
        "images": "images", "audio": "audio", "requests": "requests", "other": "other (not itemised)",
        "cache_hits": "response cache hits (no charge)",
    },
    "ja": {
        "invoice": "請求書", "draft": "下書き", "issued": "発行済み", "number": "請求書番号",
        "no_number": "（発行時に採番）", "period": "請求期間", "issue_date": "発行日", "due_date": "お支払期限",
        "as_of": "集計時点", "issuer": "発行者", "recipient": "請求先", "honorific": "御中",
        "registration": "登録番号", "amount_due": "ご請求金額", "rate": "換算レート",
        "tax_note": "金額は税抜です。", "usage": "当期のご利用", "prior": "前期以前の調整（請求書発行後に計上された利用）",
        "month": "対象月", "model": "モデル", "item": "項目", "quantity": "数量", "unit_price": "単価（USD）",
        "amount": "金額（USD）", "price_source": "価格の出典", "effective": "適用開始",
        "no_usage": "当期のご利用はありません。", "charges": "ご利用金額", "credit_applied": "クレジット充当",
        "credits_total": "クレジット充当 合計", "postpaid": "後払い",
        "exact_note": "USD 金額は端数処理なしの正確な値です。表示通貨の金額は記載のレートで換算し、通貨の最小単位に四捨五入しています。",
        "credit_notes": "クレジットノート", "reason": "理由", "settlement": "精算方法", "line": "明細",
        "credit": "クレジット返還", "refund": "返金", "free_trial": "無料トライアル", "welcome": "ウェルカムクレジット",
        "promotional": "プロモーションクレジット", "prepaid": "前払いクレジット", "credit_note": "クレジットノート",
        "invoice_ref": "訂正対象の請求書",
        "input": "入力トークン（キャッシュなし）", "cached_input": "キャッシュ済み入力トークン",
        "cache_write": "キャッシュ書き込みトークン", "output": "出力トークン", "reasoning": "推論トークン",
        "images": "画像", "audio": "音声", "requests": "リクエスト", "other": "その他（明細なし）",
        "cache_hits": "レスポンスキャッシュからの応答（無料）",
        "measure:request": "リクエスト", "measure:image": "枚", "measure:second": "秒",
    },
}  # fmt: skip

_environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


class PdfUnavailable(KakinError):
    status = 503
    code = "pdf_unavailable"


def words(lang: str) -> dict[str, str]:
    return LABELS[lang if lang in LABELS else "en"]


def describe(line: Line, lang: str = "en") -> str:
    """What a line bills, in words: its unit, and the component when it says more (an image's
    size and quality, a cache's lifetime), the context tier and a mode other than standard."""
    t = words(lang)
    parts = [t.get(line.unit, line.unit)]
    if line.unit in ("images", "audio") or line.component.startswith("cache_write_"):
        parts.append(line.component)
    if line.tier:
        parts.append(line.tier)
    if line.mode != "standard":
        parts.append(line.mode)
    return " · ".join(parts)


def invoice_html(
    invoice: Invoice, lang: str = "en", *, notes: Sequence[CreditNote] = (), digest: str | None = None
) -> Markup:
    """The invoice as an HTML fragment (``<article class="invoice">``)."""
    t = words(lang)
    zone = ZoneInfo(invoice.timezone)
    last_day = (
        datetime.fromisoformat(invoice.cycle_end).astimezone(zone).date() - timedelta(days=1)
    ).isoformat()
    display = invoice.display
    text = _environment.get_template("invoice.html").render(
        inv=invoice,
        lang=lang,
        t=t,
        notes=notes,
        digest=digest,
        numbered=list(enumerate(invoice.lines, start=1)),
        last_day=last_day,
        issue_date=_local_date(invoice.issued_at, zone),
        as_of=datetime.fromisoformat(invoice.as_of).astimezone(zone).strftime("%Y-%m-%d %H:%M"),
        usd=lambda amount: format_amount(amount, "USD", significant=6),
        usd_rounded=lambda amount: format_amount(amount, "USD", significant=0),
        money_display=lambda pico: format_amount(display.convert(pico), display.currency, significant=0),
        describe=lambda line: describe(line, lang),
        quantity=lambda line: (
            f"{line.quantity:,f}" + ("" if line.measure in ("token", "") else f" {line.measure}")
        ),
        price=lambda line: "—" if line.unit_price is None else decimal_str(line.unit_price),
    )
    return Markup(text)


def standalone_html(
    invoice: Invoice, lang: str = "ja", *, notes: Sequence[CreditNote] = (), digest: str | None = None
) -> str:
    """The invoice as a page of its own (styles inside): the HTML export, and what the PDF is
    rendered from."""
    css = stylesheet() + (TEMPLATES / "invoice_print.css").read_text(encoding="utf-8")
    body = invoice_html(invoice, lang, notes=notes, digest=digest)
    return _environment.get_template("invoice_document.html").render(
        inv=invoice, t=words(lang), lang=lang, body=body, css=Markup(css)
    )


def invoice_pdf(
    invoice: Invoice, lang: str = "ja", *, notes: Sequence[CreditNote] = (), digest: str | None = None
) -> bytes:
    """The invoice as a PDF, from the same HTML, rendered offline (nothing is fetched)."""
    if not FONT.exists():
        raise PdfUnavailable(
            f"the invoice font {FONT} is missing: install fonts-ipaexfont-gothic (make browser) to render PDFs"
        )
    from weasyprint import HTML

    page = standalone_html(invoice, lang, notes=notes, digest=digest)
    return HTML(string=page, base_url=str(TEMPLATES) + "/", url_fetcher=_local_only).write_pdf()  # type: ignore[no-any-return]


def _local_only(url: str, timeout: int = 10, ssl_context: object = None) -> dict[str, object]:
    """WeasyPrint's fetcher, held to local files: the font and nothing else."""
    if not url.startswith("file://"):
        raise ValueError(f"an invoice fetches nothing from the network ({url})")
    from weasyprint.urls import default_url_fetcher

    return default_url_fetcher(url, timeout=timeout, ssl_context=ssl_context)  # type: ignore[no-any-return]


def stylesheet() -> str:
    return (TEMPLATES / "invoice.css").read_text(encoding="utf-8")


CSV_COLUMNS = (
    "invoice", "status", "month", "line", "section", "line_month", "model", "unit", "component", "tier",
    "mode", "quantity", "measure", "unit_price_usd", "amount_usd", "price_source", "effective_from",
)  # fmt: skip


def invoice_csv(invoice: Invoice) -> str:
    """One row per line, then one per grant's credit (section ``credit``, the grant in
    ``price_source``) and the totals (section ``total``): charges, credits, due."""
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    head = {"invoice": invoice.number or "", "status": invoice.status, "month": invoice.month}
    for n, line in enumerate(invoice.lines, start=1):
        writer.writerow(
            head
            | {
                "line": n,
                "section": line.section,
                "line_month": line.month,
                "model": line.model,
                "unit": line.unit,
                "component": line.component,
                "tier": line.tier or "",
                "mode": line.mode,
                "quantity": decimal_str(line.quantity),
                "measure": line.measure,
                "unit_price_usd": "" if line.unit_price is None else decimal_str(line.unit_price),
                "amount_usd": decimal_str(line.amount),
                "price_source": line.price_source,
                "effective_from": line.effective_from or "",
            }
        )
    for credit in invoice.credits:
        source = f"{credit.grant_id} {credit.note}".strip()
        writer.writerow(
            head
            | {
                "section": "credit",
                "component": credit.kind,
                "amount_usd": decimal_str(-credit.amount),
                "price_source": source,
            }
        )
    totals = (
        ("charges", invoice.charges_pico),
        ("credits", -invoice.credits_pico),
        ("due", invoice.due_pico),
    )
    for name, pico in totals:
        writer.writerow(
            head | {"section": "total", "component": name, "amount_usd": decimal_str(from_pico(pico))}
        )
    return out.getvalue()


def invoice_json(invoice: Invoice, digest: str | None = None) -> str:
    """The document itself (the issued snapshot, or the draft as it stands), plus readable totals."""
    data = invoice.to_dict()
    data["totals"] = {
        "charges": decimal_str(invoice.charges),
        "credits": decimal_str(invoice.credits_total),
        "due": decimal_str(invoice.due),
        "payable_usd": decimal_str(invoice.payable),
        "due_display": decimal_str(invoice.display.convert(invoice.due_pico)),
        "display_currency": invoice.display.currency,
    }
    if digest is not None:
        data["content_hash"] = digest
    return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()


def credit_note_json(note: CreditNote) -> str:
    return orjson.dumps(note.to_dict(), option=orjson.OPT_INDENT_2).decode()


def _local_date(iso: str | None, zone: ZoneInfo) -> str:
    if iso is None:
        return ""
    return datetime.fromisoformat(iso).astimezone(zone).date().isoformat()
