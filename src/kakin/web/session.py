"""Who is signed in: the admin (every organisation) or one project's key (that project only).

The session cookie holds who signed in, never the key: ``admin`` or the key's id, when, and
an HMAC over both with the server's secret. The key behind a project session is looked up on
every request, so a key revoked or expired after sign-in ends its session at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from kakin.errors import KakinError
from kakin.ledger import Ledger

COOKIE = "kakin_session"
LIFETIME_SECONDS = 12 * 3600
_ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in reader. ``org_id``/``project_id`` are set for a project key."""

    admin: bool
    org_id: str | None = None
    project_id: str | None = None
    key_id: str | None = None


class SignIn:
    """Checks keys and issues and reads the signed session cookie."""

    def __init__(self, ledger: Ledger, admin_key: str) -> None:
        self.ledger = ledger
        self._admin_key = admin_key.encode()
        # Sessions signed with a secret derived from the admin key survive a restart and end
        # when the admin key changes; without an admin key, a secret of this process.
        seed = self._admin_key or secrets.token_bytes(32)
        self._secret = hmac.new(seed, b"kakin dashboard session", hashlib.sha256).digest()

    def check_key(self, key: str) -> Viewer | None:
        """The viewer ``key`` signs in as, or None for a wrong, revoked or expired key."""
        key = key.strip()
        if not key:
            return None
        if self._admin_key and hmac.compare_digest(key.encode(), self._admin_key):
            return Viewer(admin=True)
        if not key.startswith("kk-"):
            return None
        try:
            record = self.ledger.verify_key(key)
        except KakinError:
            return None
        return Viewer(admin=False, org_id=record.org_id, project_id=record.project_id, key_id=record.id)

    def cookie_for(self, viewer: Viewer, now: float | None = None) -> str:
        who = _ADMIN if viewer.admin else str(viewer.key_id)
        body = f"{who}|{int(now if now is not None else time.time())}"
        return f"{_b64(body.encode())}.{_b64(self._sign(body))}"

    def viewer(self, cookie: str | None, now: float | None = None) -> Viewer | None:
        """The viewer a session cookie stands for, or None when it is forged, old or its key
        can no longer be used."""
        if not cookie or "." not in cookie:
            return None
        encoded, _, signature = cookie.partition(".")
        try:
            body = _unb64(encoded).decode()
            given = _unb64(signature)
        except (ValueError, UnicodeDecodeError):
            return None
        if not hmac.compare_digest(given, self._sign(body)):
            return None
        who, _, issued = body.partition("|")
        if not issued.isdigit() or (now if now is not None else time.time()) - int(issued) > LIFETIME_SECONDS:
            return None
        if who == _ADMIN:
            return Viewer(admin=True) if self._admin_key else None
        try:
            key = self.ledger.get_key(who)
        except KakinError:
            return None
        if key.status(self.ledger.now()) != "active":  # as at sign-in: revoked, expired, suspended end it
            return None
        return Viewer(admin=False, org_id=key.org_id, project_id=key.project_id, key_id=key.id)

    def _sign(self, body: str) -> bytes:
        return hmac.new(self._secret, body.encode(), hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
