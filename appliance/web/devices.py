"""Device cookies (OWASP's defence against lockout by guessers): a browser that signed in
with the right password gets a long-lived cookie naming it, signed with the device's key.

Its sign-in attempts are then throttled in a lane of their own (``throttle.py``), so an
attacker's flood of wrong passwords, which exhausts the per-address backoff and the global
budget, never makes the owner wait. The cookie is no credential: it opens nothing, only
keeps its holder's throttle apart. It is sent to the sign-in page alone (``Path=/login``),
HttpOnly, SameSite=Strict, Secure over TLS.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from aiohttp import web

DEVICE_COOKIE = "qey_device"
DEVICE_PATH = "/login"
MAX_AGE_S = 400 * 24 * 3600  # the longest a browser keeps a cookie
_SHAPE = re.compile(r"[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}")


class DeviceCookies:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def issue(self) -> str:
        """A new device's cookie value: its random id and the id's signature."""
        device = secrets.token_urlsafe(16)
        return f"{device}.{self._sign(device)}"

    def device_of(self, cookie: str | None) -> str | None:
        """The device a cookie names, or None (none, misshapen, or not signed by us)."""
        if not cookie or not _SHAPE.fullmatch(cookie):
            return None
        device, sig = cookie.split(".")
        if not hmac.compare_digest(sig.encode(), self._sign(device).encode()):
            return None
        return device

    def set_cookie(self, request: web.Request, response: web.StreamResponse) -> None:
        """Keep the device this request came from, or name it now if it has no cookie."""
        if self.device_of(request.cookies.get(DEVICE_COOKIE)) is not None:
            return
        response.set_cookie(
            DEVICE_COOKIE,
            self.issue(),
            max_age=MAX_AGE_S,
            path=DEVICE_PATH,
            httponly=True,
            samesite="Strict",
            secure=request.secure,
        )

    def _sign(self, device: str) -> str:
        mac = hmac.new(self._key, f"device:{device}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")
