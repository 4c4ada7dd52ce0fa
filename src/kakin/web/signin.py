"""Signing in and out: the form, the key it posts, and the session cookie it sets."""

from __future__ import annotations

from urllib.parse import parse_qs

from jinja2 import Environment
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from kakin.web import i18n
from kakin.web.preferences import language
from kakin.web.responses import base_path, html, redirect
from kakin.web.session import COOKIE, LIFETIME_SECONDS, SignIn

BODY_LIMIT = 4096  # a key is short; nothing longer is read


class SignInPages:
    def __init__(self, signin: SignIn, templates: Environment) -> None:
        self.signin = signin
        self.templates = templates

    def form(self, request: Request) -> Response:
        return self._page(request, refused=False)

    async def submit(self, request: Request) -> Response:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > BODY_LIMIT:
                return self._page(request, refused=True, status=413)
        key = (parse_qs(body.decode("utf-8", "replace")).get("key") or [""])[0]
        viewer = await run_in_threadpool(self.signin.check_key, key)
        if viewer is None:
            return self._page(request, refused=True)
        response = redirect(request, "/")
        response.set_cookie(
            COOKIE,
            self.signin.cookie_for(viewer),
            max_age=LIFETIME_SECONDS,
            path=base_path(request) or "/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    def sign_out(self, request: Request) -> Response:
        response = redirect(request, "/signin")
        response.delete_cookie(COOKIE, path=base_path(request) or "/", httponly=True, samesite="strict")
        return response

    def _page(self, request: Request, *, refused: bool, status: int | None = None) -> Response:
        lang = language(request)
        text = self.templates.get_template("signin.html").render(
            base=base_path(request),
            t=i18n.STRINGS[lang],
            refused=refused,
            lang=lang,
            languages=i18n.LANGUAGES,
        )
        return html(text, status or (401 if refused else 200))
