"""The fleet as one device sees it: what ``qey fleet status``, the API and the panel show."""

from __future__ import annotations

import msgspec

from appliance.inventory import Device


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


class GraphStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The shared coordination graph (the broker's JetStream stream) as this device uses it."""

    available: bool = False  # the broker keeps the stream and this device follows it
    sent: int = 0  # records this device put on the stream since it started
    received: int = 0  # other devices' records it stored since it started
    waiting: int = 0  # records not sent yet (the broker away or slow)
    dropped: int = 0  # records the full outbox let go: a job's graph elsewhere misses them
    shared_jobs: int = 0  # jobs spanning devices this device takes part in (the last month)


class FleetStatus(msgspec.Struct, frozen=True, kw_only=True):
    enabled: bool
    name: str = ""
    connected: bool = False
    server: str = ""  # the broker this device is connected to
    problem: str = ""  # why it is not connected, if it is not
    key: str = ""  # this device's public key: what the broker's [fleet.server] enrols
    graph: GraphStatus = GraphStatus()
    devices: list[DeviceStatus] = msgspec.field(default_factory=list)
    # the agent types only other devices run, which a command typed here may be routed to
    routed_elsewhere: list[str] = msgspec.field(default_factory=list)


class FleetInventory(msgspec.Struct, frozen=True, kw_only=True):
    """The other devices' inventories, as each answered (what its own scans found)."""

    devices: dict[str, list[Device]]  # device name -> its inventory
    unanswered: list[str] = msgspec.field(default_factory=list)  # up, but not in time
