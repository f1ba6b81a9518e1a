"""Writing a small file so that a crash or a power cut leaves either the old one or the new.

Write a temporary file beside it, fsync it, rename it over the old one, then fsync the
directory: without that last step the rename itself may not survive a power cut (ext4 commits
metadata every few seconds), and a password set just before would be gone.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data``; the file has ``mode`` from its first byte."""
    tmp = path.with_name(f".{path.name}.{os.urandom(4).hex()}.tmp")  # secrets.token_hex's source
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
