"""Signed session cookies, kept server-side too, and the CSRF tokens that go with them.

The cookie carries a random session id and an HMAC of it under the device's key: a forged
or guessed cookie fails the signature before any lookup. Sessions are kept server-side
(bounded, idle and absolute expiry), in this process and in SQLite (``sessionstore.py``,
under the hash of the id), so a restart of the appliance keeps people signed in while
signing out, changing the password, ``qey passwd`` or expiry really end them, durably; a
stolen cookie is not valid forever. Whoever streams on behalf of a session (the live
WebSocket) waits on ``wait_ended`` and stops when it ends.

Each session has its own CSRF token (the synchronizer-token pattern): pages embed it, forms
post it back, scripts send it in ``X-CSRF-Token``; it is an HMAC of the session id, so it
needs no storing. Before there is a session (the sign-in and setup forms) a form token is the
HMAC of a random nonce held in a short-lived cookie.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
from collections import OrderedDict

import msgspec

from appliance.runtime import Clock
from appliance.web.sessionstore import SessionRow, SessionStore

SESSION_COOKIE = "qey_session"
FORM_COOKIE = "qey_form"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
# a session cookie as issued: url-safe base64 id, a dot, url-safe base64 signature
_COOKIE = re.compile(r"[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_-]{1,64}")
NONCE = re.compile(r"[A-Za-z0-9_-]{32}")  # a form nonce as new_nonce() makes it
TOUCH_S = 60.0  # last_seen reaches the disk at most this often per session (idle expiry's grain)


class Session(msgspec.Struct):
    key: str  # the SHA-256 of the session id: its name in memory and on disk
    created: float  # wall-clock seconds (they outlive the process)
    last_seen: float
    csrf: str = ""
    stored_seen: float = 0.0  # the last_seen the disk has


class _Over(Exception):
    """The session ended: leave ``wait_ended``'s TaskGroup."""


class Sessions:
    def __init__(
        self,
        key: bytes,
        clock: Clock,
        store: SessionStore,
        *,
        idle_s: float = 2 * 3600.0,
        max_age_s: float = 12 * 3600.0,
        limit: int = 64,
    ) -> None:
        self._key = key
        self._clock = clock
        self._store = store
        self.idle_s = idle_s
        self.max_age_s = max_age_s
        self._limit = limit
        self._live: OrderedDict[str, Session] = OrderedDict()  # least recently seen first
        self._ended: dict[str, asyncio.Event] = {}
        rows = store.load(now=clock.now(), idle_s=idle_s, max_age_s=max_age_s)
        for row in rows[-limit:]:
            self._live[row.key] = Session(row.key, row.created, row.last_seen, "", row.last_seen)

    async def create(self) -> tuple[str, Session]:
        """A new session and the cookie value that names it; the least recently seen goes
        past the limit."""
        now = self._clock.now()
        sid = secrets.token_urlsafe(24)
        key = _hash(sid)
        session = Session(key, now, now, self._sign("csrf", sid), now)
        evict = list(self._live)[: max(0, len(self._live) + 1 - self._limit)]
        await asyncio.to_thread(self._store.add, SessionRow(key, now, now), evict=evict)
        self._forget(evict)
        self._live[key] = session
        return f"{sid}.{self._sign('session', sid)}", session

    async def get(self, cookie: str | None) -> Session | None:
        """The live session a cookie names, or None (unsigned, unknown, expired)."""
        if not cookie or not _COOKIE.fullmatch(cookie):  # what we issue, nothing else
            return None
        sid, sig = cookie.split(".")
        if not hmac.compare_digest(sig.encode(), self._sign("session", sid).encode()):
            return None
        key = _hash(sid)
        session = self._live.get(key)
        if session is None:
            return None
        now = self._clock.now()
        if self._left(session, now) <= 0:
            await self.end(key)
            return None
        session.last_seen = now
        session.csrf = session.csrf or self._sign("csrf", sid)  # loaded from disk: not yet
        self._live.move_to_end(key)
        if now - session.stored_seen >= TOUCH_S:
            session.stored_seen = now
            await asyncio.to_thread(self._store.touch, key, now)
        return session

    async def end(self, key: str) -> None:
        """Sign a session out (``key`` is ``Session.key``)."""
        self._forget([key])
        await asyncio.to_thread(self._store.remove, [key])

    async def end_others(self, keep: str | None) -> None:
        """After a password change, only the session that made it stays signed in (None:
        none does)."""
        self._forget([k for k in self._live if k != keep])
        await asyncio.to_thread(self._store.remove_all_but, keep)

    async def end_all(self) -> None:
        await self.end_others(None)

    async def wait_ended(self, key: str) -> None:
        """Return when the session ends: signed out, its password changed, or expired (idle
        or too old; another request may have renewed it in the meantime)."""
        if key not in self._live:
            return
        ended = self._ended.setdefault(key, asyncio.Event())

        async def expiry() -> None:
            while (session := self._live.get(key)) is not None:
                left = self._left(session, self._clock.now())
                if left <= 0:
                    await self.end(key)
                    return
                await self._clock.sleep(left)

        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(expiry())
                await ended.wait()
                raise _Over
        except* _Over:
            pass

    def __len__(self) -> int:
        return len(self._live)

    def close(self) -> None:
        self._store.close()

    def _left(self, session: Session, now: float) -> float:
        return min(session.last_seen + self.idle_s, session.created + self.max_age_s) - now

    def _forget(self, keys: list[str]) -> None:
        for key in keys:
            self._live.pop(key, None)
            ended = self._ended.pop(key, None)
            if ended is not None:
                ended.set()

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


def _hash(sid: str) -> str:
    return hashlib.sha256(sid.encode("ascii")).hexdigest()


def csrf_ok(session: Session, token: str | None) -> bool:
    return token is not None and hmac.compare_digest(token.encode(), session.csrf.encode())
