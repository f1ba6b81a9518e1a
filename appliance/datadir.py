"""The data directory is one appliance's, and no one else's to read.

One appliance at a time: a second ``qey run`` on the same directory once said ``qey ready``,
replaced the first one's control socket, shared its database and, on the way out, unlinked
the socket, leaving the first unreachable. So the appliance holds an exclusive ``flock`` on
``qey.lock`` in the directory for its whole life (the kernel lets go when the process dies,
however it dies: no stale lock to clean up), and writes its PID there for the message a second
one prints. A control socket is removed only by the process that bound it.

No one else's to read: jobs and findings are a map of the network's weak points. The
directory is made (or tightened to) 0700 and every file the appliance creates in it is 0600:
``write_atomic`` gives its files a mode from the first byte, and ``private_files`` covers what
a library creates (SQLite's database and its -wal and -shm, the control socket).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from appliance.errors import ApplianceError

log = logging.getLogger(__name__)

LOCK_NAME = "qey.lock"


class DataDirInUse(ApplianceError):
    """Another process holds the data directory's lock: an appliance already runs on it."""


class DataDirLock:
    """An exclusive lock on a data directory, held until ``release`` or the process ends."""

    def __init__(self, data_dir: Path, fd: int) -> None:
        self.data_dir = data_dir
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, data_dir: Path) -> DataDirLock:
        """Take the lock, or raise DataDirInUse naming the directory and who holds it."""
        try:
            fd = _open_lock(data_dir)
        except OSError as err:  # not ours, read-only: say which, not a traceback
            raise ApplianceError(f"cannot lock {data_dir}: {err.strerror or err}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise DataDirInUse(
                f"{data_dir} is in use by another qey ({holder}); stop it first, or set "
                "QEY_DATA_DIR to another directory"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(data_dir, fd)

    def release(self) -> None:
        """Let the directory go (closing the file drops the lock); a second call does nothing."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def holder_of(data_dir: Path) -> str | None:
    """Who holds ``data_dir``'s lock ("pid 1234"), or None when no appliance runs on it.
    Only looks: a lock it takes to find out is let go at once."""
    if not (data_dir / LOCK_NAME).exists():
        return None
    try:
        lock = DataDirLock.acquire(data_dir)
    except DataDirInUse:
        fd = _open_lock(data_dir)
        try:
            return _holder(fd)
        finally:
            os.close(fd)
    lock.release()
    return None


def _open_lock(data_dir: Path) -> int:
    with private_files():
        return os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def _holder(fd: int) -> str:
    text = os.pread(fd, 32, 0).decode("ascii", errors="replace").strip()
    return f"pid {text}" if text.isdigit() else "a process that has not said its pid yet"


def private_dir(path: Path) -> None:
    """Make ``path`` (and its parents) if missing, 0700; an existing one that we own and
    others may enter is tightened to 0700 (one we do not own is left, with a warning)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = path.stat()
    if st.st_mode & 0o077 == 0:
        return
    if st.st_uid != os.geteuid():
        log.warning("%s is open to others (%o) and not ours to tighten", path, st.st_mode & 0o777)
        return
    log.warning("%s was open to others (%o); making it owner-only", path, st.st_mode & 0o777)
    path.chmod(0o700)


def tighten(*paths: Path) -> None:
    """Make existing files among ``paths`` owner-only (0600 or less); missing ones are skipped."""
    for path in paths:
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        if st.st_mode & 0o077 and st.st_uid == os.geteuid():
            log.warning(
                "%s was readable by others (%o); making it owner-only", path, st.st_mode & 0o777
            )
            path.chmod(st.st_mode & 0o700)


@contextlib.contextmanager
def private_files(umask: int = 0o077) -> Iterator[None]:
    """Files (and sockets) created inside get no group or other permissions, whatever mode
    the library that creates them asks for. The umask is the process's: keep the block short."""
    old = os.umask(umask)
    try:
        yield
    finally:
        os.umask(old)


def unlink_if_same(path: Path, bound: os.stat_result) -> None:
    """Remove ``path`` only if it is still the file that was ``bound`` (same device and
    inode): never a socket or file someone else has put there since."""
    try:
        now = path.lstat()
    except FileNotFoundError:
        return
    if (now.st_dev, now.st_ino) == (bound.st_dev, bound.st_ino):
        path.unlink(missing_ok=True)
    else:
        log.warning("%s is no longer the socket this process bound; leaving it", path)
