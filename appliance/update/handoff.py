"""An update asked for through the panel, handed to root.

The appliance writes the bundle and ``update/request.json`` in its data directory; root's
``qey-update.service`` (started by ``qey-update.path`` when the request appears) takes them
with ``qey update apply``: it reads both without following links (the appliance owns that
directory), installs, records the outcome either way, removes the request and the bundle,
and reboots if asked.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import msgspec

from appliance.errors import ApplianceError

INCOMING = Path("update") / "incoming.raucb"  # under the data directory
REQUEST = Path("update") / "request.json"


class UpdateRequest(msgspec.Struct, frozen=True):
    allow_downgrade: bool
    reboot: bool
    at: float
    size: int  # the bundle's bytes as uploaded


class BadHandOff(ApplianceError):
    """The request or its bundle is not what the appliance writes: nothing is installed."""


def read_request(data_dir: Path) -> UpdateRequest:
    try:
        raw = _read_plain(data_dir / REQUEST, limit=4096)
        return msgspec.json.decode(raw, type=UpdateRequest)
    except (OSError, msgspec.DecodeError) as err:
        raise BadHandOff(f"{data_dir / REQUEST}: unreadable update request: {err}") from err


def bundle_path(data_dir: Path, wanted: UpdateRequest) -> Path:
    """The uploaded bundle, if it is a plain file of the size the request says."""
    path = data_dir / INCOMING
    try:
        info = os.lstat(path)
    except OSError as err:
        raise BadHandOff(f"{path}: no bundle: {err.strerror}") from err
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        raise BadHandOff(f"{path}: not a plain file")
    if info.st_size != wanted.size:
        raise BadHandOff(f"{path}: {info.st_size} bytes, the request says {wanted.size}")
    return path


def clear(data_dir: Path) -> None:
    for name in (REQUEST, INCOMING):
        (data_dir / name).unlink(missing_ok=True)


def _read_plain(path: Path, *, limit: int) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise BadHandOff(f"{path}: not a plain file")
        return os.read(fd, limit)
    finally:
        os.close(fd)
