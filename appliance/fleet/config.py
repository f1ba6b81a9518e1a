"""The ``[fleet]`` table of config.toml: which broker, under which name, how often to say so.

Fleet mode is off until ``servers`` names a broker: the single device is the default and
connects to nothing.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Annotated
from urllib.parse import urlsplit

import msgspec

DEVICE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
"""A device's name is a token of NATS subjects (no dot, no wildcard) and a label people read."""

SCHEMES = ("nats", "tls")


class FleetServer(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The fleet-server role: this device also runs the broker (nats-server) for the site.

    ``devices`` maps each device's name to its public key (``qey fleet key`` on that device
    prints it): the broker lets in those keys alone, each under its own name. With
    ``routes``, it is one node of a cluster of brokers that carry on when one of them fails."""

    listen: str = "0.0.0.0:4222"
    devices: dict[str, str] = msgspec.field(default_factory=dict)
    # a cluster of brokers (each one's own config.toml): where this one listens for the
    # others' routes and where they are; the routes' secret is the file
    # fleet-cluster.secret in the data directory, the same on every broker
    cluster_listen: str = ""
    routes: list[str] = msgspec.field(default_factory=list)


class FleetSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    servers: list[str] = msgspec.field(default_factory=list)  # empty: fleet mode off
    name: str = ""  # this device's name in the fleet; empty: from its host name
    heartbeat_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 2.0
    # a device not heard from for this long is shown as lost (and no work is placed on it)
    lost_after_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 10.0
    server: FleetServer | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.servers)

    def broker_addresses(self) -> list[str]:
        """The brokers named by address: what the image's egress policy lets the appliance
        reach for the fleet (a broker named by host name needs its address in egress_allow:
        the appliance looks nothing up)."""
        found = []
        for url in self.servers:
            host = urlsplit(url).hostname or ""
            try:
                found.append(str(ipaddress.ip_address(host)))
            except ValueError:
                continue
        return found


def checked(fleet: FleetSettings, hostname: str | None = None) -> FleetSettings:
    """``fleet`` with its name filled in, or ValueError naming the bad field."""
    for url in fleet.servers:
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES or not parts.hostname:
            raise ValueError(
                f"fleet.servers: {url!r} is not a broker address; write nats://HOST:PORT "
                "(or tls://HOST:PORT)"
            )
        try:
            parts.port  # noqa: B018 (a port that is not a number raises here)
        except ValueError:
            raise ValueError(f"fleet.servers: {url!r} has a bad port") from None
    name = fleet.name or _from_hostname(hostname or socket.gethostname())
    if not DEVICE_NAME.fullmatch(name):
        raise ValueError(
            f"fleet.name: {name!r} is not a device name: 1 to 32 lowercase letters, digits "
            "and hyphens, starting with a letter or digit"
        )
    if fleet.server is not None:
        for device, key in fleet.server.devices.items():
            if not DEVICE_NAME.fullmatch(device):
                raise ValueError(f"fleet.server.devices: {device!r} is not a device name")
            if not (key.startswith("U") and len(key) == 56):
                raise ValueError(
                    f"fleet.server.devices.{device}: {key!r} is not a device's public key "
                    "(56 characters starting with U: what `qey fleet key` prints on it)"
                )
    return msgspec.structs.replace(fleet, name=name)


def _from_hostname(hostname: str) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", hostname.split(".")[0].lower()).strip("-")
    return name[:32] or "qey"
