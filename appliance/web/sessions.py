"""Signed session cookies, kept server-side too, and the CSRF tokens that go with them.

The cookie carries a random session id and an HMAC of it under the device's key: a forged
or guessed cookie fails the signature before any lookup. Sessions also live in this process
(bounded, idle and absolute expiry), so signing out, changing the password, or restarting the
appliance really ends them; a stolen cookie is not valid forever.

Each session has its own CSRF token (the synchronizer-token pattern): pages embed it, forms
post it back, scripts send it in ``X-CSRF-Token``. Before there is a session (the sign-in and
setup forms) a form token is the HMAC of a random nonce held in a short-lived cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections import OrderedDict

import msgspec

from appliance.runtime import Clock

SESSION_COOKIE = "qey_session"
FORM_COOKIE = "qey_form"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
# a session cookie as issued: url-safe base64 id, a dot, url-safe base64 signature
_COOKIE = re.compile(r"[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_-]{1,64}")
NONCE = re.compile(r"[A-Za-z0-9_-]{32}")  # a form nonce as new_nonce() makes it


class Session(msgspec.Struct):
    sid: str
    csrf: str
    created: float
    last_seen: float


class Sessions:
    def __init__(
        self,
        key: bytes,
        clock: Clock,
        *,
        idle_s: float = 2 * 3600.0,
        max_age_s: float = 12 * 3600.0,
        limit: int = 64,
    ) -> None:
        self._key = key
        self._clock = clock
        self.idle_s = idle_s
        self.max_age_s = max_age_s
        self._limit = limit
        self._live: OrderedDict[str, Session] = OrderedDict()

    def create(self) -> tuple[str, Session]:
        """A new session and the cookie value that names it; the oldest goes past the limit."""
        now = self._clock.monotonic()
        session = Session(secrets.token_urlsafe(24), secrets.token_urlsafe(32), now, now)
        self._live[session.sid] = session
        while len(self._live) > self._limit:
            self._live.popitem(last=False)
        return f"{session.sid}.{self._sign('session', session.sid)}", session

    def get(self, cookie: str | None) -> Session | None:
        """The live session a cookie names, or None (unsigned, unknown, expired)."""
        if not cookie or not _COOKIE.fullmatch(cookie):  # what we issue, nothing else
            return None
        sid, sig = cookie.split(".")
        if not hmac.compare_digest(sig.encode(), self._sign("session", sid).encode()):
            return None
        session = self._live.get(sid)
        if session is None:
            return None
        now = self._clock.monotonic()
        if now - session.last_seen > self.idle_s or now - session.created > self.max_age_s:
            del self._live[sid]
            return None
        session.last_seen = now
        self._live.move_to_end(sid)
        return session

    def end(self, sid: str) -> None:
        self._live.pop(sid, None)

    def end_others(self, keep: str | None) -> None:
        """After a password change, only the session that made it stays signed in."""
        for sid in [s for s in self._live if s != keep]:
            del self._live[sid]

    def __len__(self) -> int:
        return len(self._live)

    # -- tokens for forms shown before a session exists -----------------------------------

    @staticmethod
    def new_nonce() -> str:
        return secrets.token_urlsafe(24)

    def form_token(self, nonce: str) -> str:
        return self._sign("form", nonce)

    def check_form_token(self, nonce: str | None, token: str | None) -> bool:
        if not nonce or not token or not NONCE.fullmatch(nonce) or not token.isascii():
            return False
        return hmac.compare_digest(token.encode(), self.form_token(nonce).encode())

    def _sign(self, purpose: str, value: str) -> str:
        mac = hmac.new(self._key, f"{purpose}:{value}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def csrf_ok(session: Session, token: str | None) -> bool:
    return token is not None and hmac.compare_digest(token.encode(), session.csrf.encode())
