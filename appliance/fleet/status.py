"""The fleet as one device sees it: what ``qey fleet status``, the API and the panel show."""

from __future__ import annotations

import msgspec


class DeviceStatus(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    this: bool  # the device answering
    state: str  # "up"; "lost" when unheard for lost_after_s; "unknown" while cut off
    last_seen_s: float  # seconds since it was heard
    version: str
    health: str
    scope: list[str]
    types: list[str]
    load: int


class FleetStatus(msgspec.Struct, frozen=True, kw_only=True):
    enabled: bool
    name: str = ""
    connected: bool = False
    server: str = ""  # the broker this device is connected to
    problem: str = ""  # why it is not connected, if it is not
    key: str = ""  # this device's public key: what the broker's [fleet.server] enrols
    devices: list[DeviceStatus] = msgspec.field(default_factory=list)
