"""Webhook signatures: HMAC-SHA256 over ``"<timestamp>.<body>"``.

The header is ``Kakin-Signature: t=<unix seconds>,v1=<hex digest>``. Signing the timestamp
with the body lets a receiver refuse replays: it checks the digest *and* that ``t`` is recent
(5 minutes by default). Each retry is signed afresh with its own timestamp. Several ``v1=``
values may appear while a channel's secret is being rotated; any one matching is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from kakin.errors import KakinError

HEADER = "Kakin-Signature"
DEFAULT_TOLERANCE_SECONDS = 300


class SignatureInvalid(KakinError):
    status = 400
    code = "invalid_signature"


def new_secret() -> str:
    """A fresh signing secret for a webhook channel."""
    return "whsec_" + secrets.token_urlsafe(32)


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The ``Kakin-Signature`` header value for ``body`` sent at ``timestamp``."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={ts},v1={_digest(secret, ts, body)}"


def verify(
    secret: str,
    header: str,
    body: bytes,
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> int:
    """Check a received ``Kakin-Signature``; return its timestamp or raise SignatureInvalid."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureInvalid(f"{HEADER} header is malformed: expected 't=<unix seconds>,v1=<hex>'")
    age = (time.time() if now is None else now) - timestamp
    if abs(age) > tolerance_seconds:
        raise SignatureInvalid(
            f"{HEADER} timestamp is {int(abs(age))} s away from now (tolerance {tolerance_seconds} s): "
            "possible replay, or check the receiver's clock"
        )
    expected = _digest(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise SignatureInvalid(f"{HEADER} does not match the body: wrong secret or the body was altered")
    return timestamp


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
