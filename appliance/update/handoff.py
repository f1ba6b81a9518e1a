"""An update asked for through the panel, handed to root.

The appliance writes the bundle and ``update/request.json`` in its data directory; root's
``qey-update.service`` (started by ``qey-update.path`` when the request appears) takes them
with ``qey update apply``: it reads both without following links (the appliance owns that
directory), installs, records the outcome either way, removes the request and the bundle,
and reboots if asked.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import msgspec

from appliance.errors import ApplianceError

INCOMING = Path("update") / "incoming.raucb"  # under the data directory
REQUEST = Path("update") / "request.json"


class UpdateRequest(msgspec.Struct, frozen=True):
    allow_downgrade: bool
    reboot: bool  # at once, when installed
    at: float
    size: int  # the bundle's bytes as uploaded
    reboot_at: str | None = None  # or at this local time of day (HH:MM), the next time it comes


_TIME_OF_DAY = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")


def time_of_day(text: str) -> str:
    """``text`` if it is a time of day as HH:MM (24-hour); ValueError in words if not."""
    if not _TIME_OF_DAY.fullmatch(text):
        raise ValueError(f"a reboot time is HH:MM (24-hour, the device's time), not {text!r}")
    return text


class BadHandOff(ApplianceError):
    """The request or its bundle is not what the appliance writes: nothing is installed."""


def read_request(data_dir: Path) -> UpdateRequest:
    try:
        raw = _read_plain(data_dir / REQUEST, limit=4096)
        wanted = msgspec.json.decode(raw, type=UpdateRequest)
        if wanted.reboot_at is not None:
            time_of_day(wanted.reboot_at)
        return wanted
    except (OSError, msgspec.DecodeError, ValueError) as err:
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
