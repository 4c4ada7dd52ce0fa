"""Admin key check, before routing and before the body is read.

A pure ASGI middleware rather than a FastAPI dependency: dependencies run after the body is
parsed, so a request without the key could learn from a 422 what the API expects. Here an
unauthenticated request gets 401 whatever its path, method or body. The comparison is
constant-time (:func:`hmac.compare_digest`). With no admin key configured the API answers
503 to everything except its OpenAPI document, which holds no data.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection

from starlette.types import ASGIApp, Receive, Scope, Send

from kakin.admin.errors import error_response

NO_KEY_MESSAGE = (
    "the admin API is disabled because no admin key is configured; set KAKIN_ADMIN_KEY "
    "(or admin_key in kakin.toml) to a long random secret and restart"
)


class AdminKeyMiddleware:
    def __init__(self, app: ASGIApp, *, admin_key: str, public_paths: Collection[str]) -> None:
        self.app = app
        self._key = admin_key.encode()
        self._public = frozenset(public_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _route_path(scope) in self._public:
            await self.app(scope, receive, send)
            return
        if not self._key:
            await error_response(503, "admin_api_disabled", NO_KEY_MESSAGE)(scope, receive, send)
            return
        problem = self._problem(scope)
        if problem is not None:
            response = error_response(
                401, "invalid_admin_key", problem, headers={"WWW-Authenticate": 'Bearer realm="kakin-admin"'}
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _problem(self, scope: Scope) -> str | None:
        """Why the request is not authenticated, or None when it is."""
        values = [value for name, value in scope.get("headers", ()) if name == b"authorization"]
        if not values:
            return "missing admin key: send `Authorization: Bearer <KAKIN_ADMIN_KEY>`"
        scheme, _, token = values[0].partition(b" ")
        if scheme.lower() != b"bearer" or not token.strip():
            return "the Authorization header must be `Bearer <KAKIN_ADMIN_KEY>`"
        if not hmac.compare_digest(token.strip(), self._key):
            return "wrong admin key: check KAKIN_ADMIN_KEY"
        return None


def _route_path(scope: Scope) -> str:
    """The path below the mount point (Starlette keeps the mount prefix in ``root_path``)."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root) :] or "/"
    return path
