"""Where alerts go: a webhook URL or e-mail addresses, and the code that sends one attempt.

A sender makes exactly one attempt and reports what happened; retrying, backoff and the
delivery log belong to :mod:`kakin.alerts.delivery`.
"""

from __future__ import annotations

import email.policy
import os
import smtplib
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Literal, Protocol

import httpx
import orjson

from kakin.alerts.model import Alert
from kakin.alerts.signing import HEADER, sign

ChannelKind = Literal["webhook", "email"]
USER_AGENT = "kakin-alerts/0.1"


@dataclass(frozen=True, slots=True)
class Channel:
    """A delivery target. ``target`` is the URL (webhook) or comma-separated addresses
    (e-mail). ``settings`` holds e-mail's SMTP server; ``kinds`` filters alert kinds (empty:
    all)."""

    id: str
    org_id: str
    kind: ChannelKind
    name: str
    target: str
    secret: str = field(default="", repr=False)
    settings: dict[str, Any] = field(default_factory=dict)
    kinds: tuple[str, ...] = ()

    def wants(self, alert: Alert) -> bool:
        return not self.kinds or alert.kind in self.kinds


@dataclass(frozen=True, slots=True)
class Outcome:
    """One attempt's result. ``response_code`` is HTTP status or SMTP reply code."""

    ok: bool
    response_code: int | None = None
    error: str | None = None
    duration_ms: int = 0


class Sender(Protocol):
    def send(
        self, channel: Channel, delivery_id: str, attempt: int, alert_id: str, alert: Alert
    ) -> Outcome: ...


class WebhookSender:
    """POSTs the alert's JSON with a fresh signature. Any 2xx is success."""

    def __init__(self, timeout_seconds: float = 10.0) -> None:
        self._client = httpx.Client(timeout=timeout_seconds, follow_redirects=False)

    def send(self, channel: Channel, delivery_id: str, attempt: int, alert_id: str, alert: Alert) -> Outcome:
        body = orjson.dumps(alert.payload(alert_id))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            HEADER: sign(channel.secret, body),
            "Kakin-Delivery": delivery_id,
            "Kakin-Attempt": str(attempt),
        }
        started = time.monotonic()
        try:
            response = self._client.post(channel.target, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return Outcome(False, None, f"{type(exc).__name__}: {exc}"[:500], _ms(started))
        if 200 <= response.status_code < 300:
            return Outcome(True, response.status_code, None, _ms(started))
        snippet = response.text[:200].strip()
        error = f"HTTP {response.status_code}" + (f": {snippet}" if snippet else "")
        return Outcome(False, response.status_code, error, _ms(started))

    def close(self) -> None:
        self._client.close()


# Headers unfolded up to the 998 characters a line may hold: folding a long subject at 78 can
# put the line break right after "Subject:", and some mail readers then show it empty.
_ONE_LINE_HEADERS = email.policy.default.clone(max_line_length=998)


class EmailSender:
    """Sends a plain-text e-mail over SMTP. Channel settings: ``host`` (127.0.0.1),
    ``port`` (25), ``sender`` (kakin@localhost), ``starttls`` (false), ``username`` and
    ``password_env`` (the environment variable holding the password; never stored)."""

    def __init__(self, timeout_seconds: float = 10.0) -> None:
        self._timeout = timeout_seconds

    def send(self, channel: Channel, delivery_id: str, attempt: int, alert_id: str, alert: Alert) -> Outcome:
        settings = channel.settings
        message = EmailMessage(policy=_ONE_LINE_HEADERS)
        message["From"] = settings.get("sender", "kakin@localhost")
        message["To"] = channel.target
        message["Subject"] = f"[kakin] {alert.title}"
        message["X-Kakin-Alert"] = alert_id
        message["X-Kakin-Delivery"] = delivery_id
        message.set_content(_email_text(alert_id, alert))
        started = time.monotonic()
        try:
            with smtplib.SMTP(
                settings.get("host", "127.0.0.1"), int(settings.get("port", 25)), timeout=self._timeout
            ) as smtp:
                if settings.get("starttls"):
                    smtp.starttls()
                if settings.get("username"):
                    smtp.login(settings["username"], os.environ.get(settings.get("password_env", ""), ""))
                refused = smtp.send_message(message)
        except smtplib.SMTPResponseException as exc:
            return Outcome(
                False, exc.smtp_code, f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"[:500], _ms(started)
            )
        except (smtplib.SMTPException, OSError) as exc:
            return Outcome(False, None, f"{type(exc).__name__}: {exc}"[:500], _ms(started))
        if refused:
            return Outcome(False, None, f"recipients refused: {', '.join(refused)}", _ms(started))
        return Outcome(True, 250, None, _ms(started))

    def close(self) -> None:
        return None


def _email_text(alert_id: str, alert: Alert) -> str:
    payload = alert.payload(alert_id)
    lines = [alert.message, "", f"kind: {alert.kind}", f"severity: {alert.severity}", f"org: {alert.org_id}"]
    if alert.scope_ref:
        lines.append(f"{alert.scope}: {alert.scope_ref}")
    lines.append(f"at: {payload['occurred_at']}")
    lines.extend(f"{name}: {value}" for name, value in payload["data"].items())
    lines += ["", f"alert id: {alert_id}"]
    return "\n".join(lines) + "\n"


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
