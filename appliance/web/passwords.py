"""Password hashing with scrypt: memory-hard, in the standard library, tunable per device.

A hash is stored as one self-describing string, ``scrypt$n$r$p$salt$hash`` (salt and hash in
base64), so the cost can be raised later without breaking the hashes already stored: each
one says how it was made. Verification compares in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from appliance.errors import ApplianceError

# 2**14 x 8 x 1 costs ~16 MiB and a few tens of ms: slow for a guesser, fine for a login.
DEFAULT_N = 2**14
DEFAULT_R = 8
DEFAULT_P = 1
_KEY_LEN = 32
MIN_PASSWORD_LEN = 10
MAX_PASSWORD_LEN = 1024  # scrypt hashes any length; this only bounds what a request can cost


class WeakPassword(ApplianceError, ValueError):
    """A new password that is too short (or absurdly long) to accept."""


def check_new_password(password: str) -> None:
    """Refuse a password the admin should not be allowed to set; say why."""
    if len(password) < MIN_PASSWORD_LEN:
        raise WeakPassword(f"the password needs at least {MIN_PASSWORD_LEN} characters")
    if len(password) > MAX_PASSWORD_LEN:
        raise WeakPassword(f"the password may have at most {MAX_PASSWORD_LEN} characters")


def hash_password(
    password: str, *, n: int = DEFAULT_N, r: int = DEFAULT_R, p: int = DEFAULT_P
) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, n, r, p)
    return "$".join(["scrypt", str(n), str(r), str(p), _b64(salt), _b64(digest)])


def verify_password(password: str, stored: str) -> bool:
    """True if ``password`` made ``stored``; False for a wrong password or a malformed hash."""
    if len(password) > MAX_PASSWORD_LEN:
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        want = base64.b64decode(digest)
        got = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(got, want)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        maxmem=256 * 1024 * 1024,
        dklen=_KEY_LEN,
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
