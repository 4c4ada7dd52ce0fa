"""The reader's currency and language: chosen with the toggles at the top of every page and
kept in cookies (the language falls back to the browser's ``Accept-Language``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from kakin.web import i18n
from kakin.web.responses import SECURITY_HEADERS, base_path

CURRENCIES = ("USD", "JPY")
CURRENCY_COOKIE = "kakin_currency"
LANGUAGE_COOKIE = "kakin_lang"
KEPT_SECONDS = 365 * 86400


def currency(request: Request) -> str:
    chosen = request.cookies.get(CURRENCY_COOKIE, "USD")
    return chosen if chosen in CURRENCIES else "USD"


def language(request: Request) -> str:
    return i18n.choose(request.cookies.get(LANGUAGE_COOKIE), request.headers.get("accept-language"))


def remember(request: Request) -> Response:
    """The toggles' target: keep the choice, then back to the page (a dashboard page only,
    so the link cannot send the reader elsewhere)."""
    target = request.query_params.get("next", "")
    base = base_path(request)
    if not target.startswith(base + "/") or "//" in target or "\\" in target:
        target = base + "/"
    response = RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
    chosen_currency = request.query_params.get("currency")
    if chosen_currency in CURRENCIES:
        response.set_cookie(
            CURRENCY_COOKIE, chosen_currency, max_age=KEPT_SECONDS, path=base or "/", samesite="strict"
        )
    chosen_language = request.query_params.get("lang")
    if chosen_language in i18n.LANGUAGES:
        response.set_cookie(
            LANGUAGE_COOKIE, chosen_language, max_age=KEPT_SECONDS, path=base or "/", samesite="strict"
        )
    return response
