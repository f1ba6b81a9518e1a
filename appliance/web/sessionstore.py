"""The panel's sessions on disk, so that restarting the appliance keeps people signed in.

One small SQLite database in the data directory (WAL, ``synchronous=FULL``: a sign-out that
was answered stays done through a power cut), owner-only (0600, and SQLite gives its -wal and
-shm files the same mode). It holds no secret: a session is stored under the SHA-256 of its
random id, and the id itself is only in the browser's cookie, so a copy of the data directory
signs nobody in. Times are wall-clock seconds (they must outlive the process).

Blocking: the panel calls it through ``asyncio.to_thread``; a lock keeps the one connection to
one thread at a time. ``qey passwd`` opens it directly when no appliance is running.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

SESSIONS_FILE = "web-sessions.db"


class SessionRow:
    __slots__ = ("created", "key", "last_seen")

    def __init__(self, key: str, created: float, last_seen: float) -> None:
        self.key = key
        self.created = created
        self.last_seen = last_seen


class SessionStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.fchmod(fd, 0o600)  # an older file made with a laxer mode is tightened
        finally:
            os.close(fd)
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS sessions "
            "(key TEXT PRIMARY KEY, created REAL NOT NULL, last_seen REAL NOT NULL)"
        )

    def load(self, *, now: float, idle_s: float, max_age_s: float) -> list[SessionRow]:
        """The sessions still valid at ``now``, least recently seen first; the expired are
        deleted on the way."""
        with self._lock:
            self._conn.execute(
                "DELETE FROM sessions WHERE ? - last_seen > ? OR ? - created > ?",
                (now, idle_s, now, max_age_s),
            )
            rows = self._conn.execute(
                "SELECT key, created, last_seen FROM sessions ORDER BY last_seen"
            ).fetchall()
        return [SessionRow(*row) for row in rows]

    def add(self, row: SessionRow, *, evict: Iterable[str] = ()) -> None:
        """Store a new session and delete ``evict`` (the oldest, past the limit) with it."""
        with self._lock, self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany("DELETE FROM sessions WHERE key = ?", [(k,) for k in evict])
            self._conn.execute(
                "INSERT OR REPLACE INTO sessions (key, created, last_seen) VALUES (?, ?, ?)",
                (row.key, row.created, row.last_seen),
            )

    def touch(self, key: str, last_seen: float) -> None:
        with self._lock:
            self._conn.execute("UPDATE sessions SET last_seen = ? WHERE key = ?", (last_seen, key))

    def remove(self, keys: Iterable[str]) -> None:
        with self._lock, self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany("DELETE FROM sessions WHERE key = ?", [(k,) for k in keys])

    def remove_all_but(self, keep: str | None) -> None:
        """Every session but ``keep`` (None: every one) ends."""
        with self._lock:
            self._conn.execute("DELETE FROM sessions WHERE key IS NOT ?", (keep,))

    def close(self) -> None:
        with self._lock:
            self._conn.close()
