"""The firewall, changed by root for an appliance that may not change it itself.

On the image the appliance runs as user ``qey`` without CAP_NET_ADMIN: with it, the process
the egress policy polices could also delete that policy. So it writes the entries it wants
to ``actions/firewall.json`` in its data directory, and root's ``qey-actions.service`` (started
by ``qey-actions.path`` whenever that file changes) runs ``qey firewall-apply``: it reads the
file without following links, checks every entry is one IP address, loads only the
``qey_actions`` table (``firewall.load``), and writes the digest of what it loaded to
``/run/qey/actions-applied``, a file only root can write. The appliance waits for that digest
before it calls an action applied; no answer in time is a failure, recorded as such.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from appliance.actions import firewall
from appliance.durable import write_atomic
from appliance.errors import ActionFailed

REQUEST = Path("actions") / "firewall.json"  # under the data directory
STAMP = Path("/run/qey/actions-applied")
UNIT = Path("/etc/systemd/system/qey-actions.path")  # where the image installs the root side


def digest(entries: firewall.Entries) -> str:
    return hashlib.sha256(msgspec.json.encode(entries)).hexdigest()


class HandOff:
    """``load_firewall`` for ``Actions``: hand the entries to root and wait for its word."""

    def __init__(self, data_dir: Path, *, stamp: Path = STAMP, timeout_s: float = 90.0) -> None:
        self._request = data_dir / REQUEST
        self._stamp = stamp
        self._timeout_s = timeout_s

    def __call__(self, entries: firewall.Entries) -> None:
        wanted = digest(entries)
        self._request.parent.mkdir(mode=0o700, exist_ok=True)
        write_atomic(self._request, msgspec.json.encode(entries), mode=0o644)
        deadline = time.monotonic() + self._timeout_s
        while time.monotonic() < deadline:
            try:
                if self._stamp.read_text().strip() == wanted:
                    return
            except OSError:
                pass  # not written yet
            time.sleep(0.2)
        raise ActionFailed(
            f"the firewall service did not load the change within {self._timeout_s:.0f} s "
            "(journalctl -u qey-actions)"
        )


def apply_request(
    data_dir: Path,
    *,
    stamp: Path = STAMP,
    load: Callable[[firewall.Entries], None] = firewall.load,
) -> firewall.Entries:
    """Root's side (``qey firewall-apply``): load what the appliance asked for, if it is only
    addresses; ActionFailed (and nothing loaded) for anything else."""
    entries = _read(data_dir)
    for address in (*entries.blocked, *entries.quarantined, *entries.allowed):
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise ActionFailed(f"{address!r} in {REQUEST} is not an IP address") from None
    load(entries)
    stamp.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    write_atomic(stamp, digest(entries).encode() + b"\n", mode=0o644)
    return entries


def _read(data_dir: Path) -> firewall.Entries:
    """The request, opened without following a link at either step: the data directory
    belongs to the appliance's user, and root must not be led to read another file."""
    try:
        folder = os.open(data_dir / REQUEST.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            fd = os.open(REQUEST.name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=folder)
        finally:
            os.close(folder)
        with os.fdopen(fd, "rb") as f:
            body = f.read(1024 * 1024)
    except FileNotFoundError:
        return firewall.Entries()  # nothing asked for yet: an empty table
    except OSError as err:
        raise ActionFailed(f"cannot read {REQUEST}: {err}") from None
    try:
        return msgspec.json.decode(body, type=firewall.Entries)
    except msgspec.DecodeError as err:
        raise ActionFailed(f"{REQUEST} is not a list of entries: {err}") from None


def loader_for(data_dir: Path) -> Callable[[firewall.Entries], None]:
    """Root loads the table itself; an appliance user on the image hands it to root's unit."""
    if os.geteuid() != 0 and UNIT.exists():
        return HandOff(data_dir)
    return firewall.load
