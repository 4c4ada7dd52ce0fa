"""Real receivers on 127.0.0.1 for delivery tests: an HTTP server that answers a scripted
sequence of statuses, and an SMTP server (aiosmtpd) that keeps what it receives."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from conftest import free_port


@dataclass
class Received:
    at: float
    headers: dict[str, str]
    body: bytes


@dataclass
class ScriptedReceiver:
    statuses: list[int]
    received: list[Received] = field(default_factory=list)
    url: str = ""


def start_http_receiver(statuses: list[int]) -> tuple[ScriptedReceiver, ThreadingHTTPServer]:
    state = ScriptedReceiver(list(statuses))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.received.append(Received(time.monotonic(), dict(self.headers.items()), body))
            status = state.statuses.pop(0) if state.statuses else 200
            payload = b"nope" if status >= 300 else b"ok"
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    return state, server


class SmtpInbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd handler hook
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


def start_smtp() -> tuple[SmtpInbox, Controller]:
    inbox = SmtpInbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    return inbox, controller
