"""The access log: one line per HTTP request on the ``kakin.access`` logger, when
``server.access_log`` is on (off, the middleware is not installed and costs nothing).

A line says who asked what and how it went: method, path (never the query string, where a
Gemini client may send its key), status, duration, the request id, and the organisation and
project of the key — by id, never the key. The gateway fills those in on the
:class:`AccessNote` it finds in the request's scope once it knows the caller.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from kakin.gateway.http import Receive, Send

log = logging.getLogger("kakin.access")

NOTE = "kakin.access_note"  # the scope key the note travels under


@dataclass(slots=True)
class AccessNote:
    """What only the gateway knows about a request, for its access line."""

    request_id: str = ""
    org_id: str = ""
    project_id: str = ""


def note_caller(scope: dict[str, Any], request_id: str, org_id: str, project_id: str) -> None:
    """Called by the gateway once it knows the caller; nothing to do with the access log off."""
    note = scope.get(NOTE)
    if note is not None:
        note.request_id, note.org_id, note.project_id = request_id, org_id, project_id


class AccessLog:
    """ASGI middleware around the gateway (and the admin API it mounts)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        note = scope[NOTE] = AccessNote()
        status = 0

        async def noting_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting_status)
            status = status or 499  # no answer: the client went away first (nginx's code)
        except BaseException:
            status = status or 500  # the server answers 500 for an app that raised first
            raise
        finally:
            _log(scope, note, status, (time.perf_counter() - started) * 1000)


def _log(scope: dict[str, Any], note: AccessNote, status: int, duration_ms: float) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    client = scope.get("client")
    fields = {
        "method": scope["method"],
        "path": scope["path"],
        "status": status,
        "duration_ms": round(duration_ms, 2),
        "request_id": note.request_id or None,
        "org_id": note.org_id or None,
        "project_id": note.project_id or None,
        "client": client[0] if client else None,
    }
    who = f" org={note.org_id} project={note.project_id}" if note.org_id else ""
    request = f" request_id={note.request_id}" if note.request_id else ""
    log.info(
        "%s %s %d %.1f ms%s%s",
        scope["method"],
        scope["path"],
        status,
        duration_ms,
        request,
        who,
        extra={"fields": fields},
    )
