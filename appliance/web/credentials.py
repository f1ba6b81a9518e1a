"""The panel's secrets on disk: the device's signing key, the admin password, the setup token.

There is no default password. Until the admin sets one, each start makes a fresh one-time
setup token (printed on the console); only its hash is kept, so a copy of the data directory
does not reveal it. Whoever proves they saw the console (or the display) sets the password
with it, and the token is gone. Every file is written owner-only (0600) and replaced whole
(write, fsync, rename), so a crash never leaves half a key.
"""

from __future__ import annotations

import base64
import logging
import secrets
import threading
from pathlib import Path

from appliance.durable import write_atomic
from appliance.web.passwords import check_new_password, hash_password, verify_password

log = logging.getLogger(__name__)

KEY_FILE = "web-secret.key"
PASSWORD_FILE = "web-admin.hash"
SETUP_FILE = "web-setup.hash"
# The token has ~100 bits and is used once, so a cheaper scrypt than for passwords is enough.
_TOKEN_COST = {"n": 2**12, "r": 8, "p": 1}


class Credentials:
    def __init__(self, data_dir: Path) -> None:
        self._dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._setting = threading.Lock()  # one password change at a time, setup's included
        self.signing_key = self._load_or_make_key()

    @property
    def data_dir(self) -> Path:
        """Where the panel keeps its files (owner-only)."""
        return self._dir

    @property
    def configured(self) -> bool:
        """True once the admin password is set: from then on there is no setup token."""
        return (self._dir / PASSWORD_FILE).exists()

    def new_setup_token(self) -> str | None:
        """A fresh one-time token (its hash replaces any earlier one), or None when the
        password is already set. Called at each start, so an unused token dies with the
        process that printed it."""
        if self.configured:
            (self._dir / SETUP_FILE).unlink(missing_ok=True)
            return None
        raw = base64.b32encode(secrets.token_bytes(15)).decode("ascii")  # 24 chars, 120 bits
        token = "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))
        _write_private(self._dir / SETUP_FILE, hash_password(_normal(token), **_TOKEN_COST))
        return token

    def check_setup_token(self, token: str) -> bool:
        """Blocking (scrypt): call it in a thread."""
        path = self._dir / SETUP_FILE
        if self.configured or not path.exists():
            return False
        return verify_password(_normal(token), path.read_text(encoding="ascii").strip())

    def use_setup_token(self, token: str, password: str) -> bool:
        """Set the first admin password with the setup token, or return False (wrong or
        spent token). Check and set are one step: of many concurrent callers with the
        right token exactly one succeeds. Blocking (scrypt): call it in a thread."""
        check_new_password(password)
        with self._setting:
            if not self.check_setup_token(token):
                return False
            self._set(password)
            return True

    def set_password(self, password: str) -> None:
        """Set (or change) the admin password; the setup token is spent. Blocking (scrypt)."""
        check_new_password(password)
        with self._setting:
            self._set(password)

    def _set(self, password: str) -> None:
        _write_private(self._dir / PASSWORD_FILE, hash_password(password))
        (self._dir / SETUP_FILE).unlink(missing_ok=True)

    def verify(self, password: str) -> bool:
        """Blocking (scrypt): call it in a thread."""
        path = self._dir / PASSWORD_FILE
        if not path.exists():
            return False
        return verify_password(password, path.read_text(encoding="ascii").strip())

    def _load_or_make_key(self) -> bytes:
        path = self._dir / KEY_FILE
        if path.exists():
            _tighten(path)
            key = bytes.fromhex(path.read_text(encoding="ascii").strip())
            if len(key) >= 32:
                return key
            log.warning("%s is too short; making a new key (everyone signs in again)", path)
        key = secrets.token_bytes(32)
        _write_private(path, key.hex())
        return key


def _normal(token: str) -> str:
    """What a person types: any case, with or without the dashes and spaces."""
    return "".join(ch for ch in token.upper() if ch.isalnum())


def _tighten(path: Path) -> None:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("%s was readable by others (%o); making it owner-only", path, mode)
        path.chmod(0o600)


def _write_private(path: Path, text: str) -> None:
    write_atomic(path, (text + "\n").encode("ascii"))
