"""Hot-plug: udev's device events as runtime events (``device.changed``).

``UdevMonitor`` reads pyudev's netlink monitor on the event loop (its file descriptor is
non-blocking, so ``add_reader`` plus ``poll(0)`` never blocks); tests feed synthetic events
through the same ``DeviceMonitor`` protocol (tests/support.py), where there is no udev.
``HotplugService`` hands each event to a sink (the app publishes them on the runtime's
``hotplug`` topic) and tells the display service when the display's adapter comes back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, Protocol

import msgspec

from appliance.events import Event
from appliance.hal.errors import HardwareUnavailable

log = logging.getLogger(__name__)

HOTPLUG_TOPIC = "hotplug"
SETTLE_TIMEOUT_S = 120  # udev's own default for a settle
SUBSYSTEMS = ("net", "tty", "usb", "block")
KEPT_PROPERTIES = (
    "ID_VENDOR_ID",
    "ID_MODEL_ID",
    "ID_SERIAL_SHORT",
    "ID_BUS",
    "ID_FS_TYPE",
    "DEVTYPE",
    "INTERFACE",
    "IFINDEX",
)
"""What an event carries of a device's udev properties: enough to recognise it, no more."""


class DeviceChanged(Event, frozen=True, tag="device.changed"):
    """udev saw a device come, go or change (``action``: add, remove, change, move, ...)."""

    action: str
    subsystem: str
    sys_name: str
    device_node: str = ""
    properties: dict[str, str] = msgspec.field(default_factory=dict)
    at: float = 0.0

    def matches(self, match: Mapping[str, str]) -> bool:
        """True if every ``match`` entry holds (``SUBSYSTEM`` is the device's subsystem)."""
        if not match:
            return False
        return all(
            (self.subsystem if key == "SUBSYSTEM" else self.properties.get(key)) == value
            for key, value in match.items()
        )


class DeviceMonitor(Protocol):
    def events(self) -> AsyncIterator[DeviceChanged]:
        """Device events as they happen, until cancelled."""
        ...


async def udev_settled(timeout_s: int = SETTLE_TIMEOUT_S) -> None:
    """Wait until udev has handled every event queued so far (``udevadm settle``), or the
    timeout passes; at once where there is no udevadm (no udev to wait for)."""
    try:
        settle = await asyncio.create_subprocess_exec(
            "udevadm",
            "settle",
            f"--timeout={timeout_s}",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError:
        return
    if await settle.wait() != 0:
        log.warning("udev still busy after %d s; listening for devices anyway", timeout_s)


class UdevMonitor:
    """The kernel's device events through udev (netlink), on the event loop.

    It listens only once udev has settled: at boot the appliance starts while the root's
    coldplug still replays every device present ("add" for each), and those are not devices
    plugged in; a rescan or a hardware event on the record for them would be false.
    """

    def __init__(self, subsystems: Iterable[str] = SUBSYSTEMS, *, now: Callable[[], float]) -> None:
        self._subsystems = tuple(subsystems)
        self._now = now

    async def events(self) -> AsyncIterator[DeviceChanged]:
        await udev_settled()
        monitor = self._open()
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        fd = monitor.fileno()
        loop.add_reader(fd, readable.set)
        try:
            while True:
                await readable.wait()
                readable.clear()
                while (device := monitor.poll(0)) is not None:
                    yield self._event(device)
        finally:
            loop.remove_reader(fd)

    def _open(self) -> Any:
        try:
            import pyudev

            monitor = pyudev.Monitor.from_netlink(pyudev.Context())
            for subsystem in self._subsystems:
                monitor.filter_by(subsystem)
            monitor.start()
        except (ImportError, OSError) as err:
            raise HardwareUnavailable(f"cannot listen to udev: {err}") from err
        return monitor

    def _event(self, device: Any) -> DeviceChanged:
        props = device.properties
        return DeviceChanged(
            action=str(device.action or "change"),
            subsystem=str(device.subsystem or ""),
            sys_name=str(device.sys_name),
            device_node=str(device.device_node or ""),
            properties={k: str(props[k]) for k in KEPT_PROPERTIES if k in props},
            at=self._now(),
        )


class HotplugService:
    """Device events to the runtime, and a nudge to the display when its adapter returns."""

    def __init__(
        self,
        monitor: DeviceMonitor,
        sink: Callable[[DeviceChanged], None],
        *,
        display_match: Mapping[str, str] | None = None,
        on_display: Callable[[], None] | None = None,
    ) -> None:
        self._monitor = monitor
        self._sink = sink
        self._display_match = dict(display_match or {})
        self._on_display = on_display
        self.seen = 0
        self.undelivered = 0

    async def run(self) -> None:
        async for event in self._monitor.events():
            self.seen += 1
            log.info("device %s: %s/%s", event.action, event.subsystem, event.sys_name)
            added = event.action == "add" and event.matches(self._display_match)
            if added and self._on_display is not None:
                self._on_display()
            try:
                self._sink(event)
            except Exception as err:  # a full inbox must not end hot-plug
                self.undelivered += 1
                log.warning("device event not delivered: %s: %s", type(err).__name__, err)
