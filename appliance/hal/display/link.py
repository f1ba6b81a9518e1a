"""The byte pipe to the display: a pyserial port (device path or URL), or a pty's master end.

Every call here may block, so callers run them with ``asyncio.to_thread``. pyserial's and the
OS's errors become ``DisplayUnavailable`` here, at the edge, so the service has one thing to
catch when the port goes away.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
from typing import Protocol

import serial

from appliance.hal.board import DisplayConfig
from appliance.hal.errors import DisplayUnavailable

READ_TIMEOUT_S = 0.1
WRITE_TIMEOUT_S = 2.0


class Link(Protocol):
    def write(self, data: bytes) -> None:
        """Send all of ``data``; returns once it is on its way (drained, on a real UART)."""
        ...

    def read(self) -> bytes:
        """What has arrived, waiting at most a short timeout; b"" if nothing."""
        ...

    def close(self) -> None: ...


class SerialLink:
    """A pyserial port: ``/dev/ttyUSB0``, ``socket://127.0.0.1:7455``, ``loop://``..."""

    def __init__(self, port: serial.Serial) -> None:
        self._port = port

    @classmethod
    def open(cls, url: str, baud: int) -> SerialLink:
        try:
            port = serial.serial_for_url(
                url, baudrate=baud, timeout=READ_TIMEOUT_S, write_timeout=WRITE_TIMEOUT_S
            )
        except (serial.SerialException, OSError, ValueError) as err:
            raise DisplayUnavailable(f"cannot open display port {url}: {err}") from err
        return cls(port)

    def write(self, data: bytes) -> None:
        try:
            self._port.write(data)
            self._port.flush()  # tcdrain on a UART: we never queue more than one frame
        except (serial.SerialException, OSError) as err:
            raise DisplayUnavailable(f"display port {self._port.name}: {err}") from err

    def read(self) -> bytes:
        try:
            data = bytes(self._port.read(1))
            if data and self._port.in_waiting:
                data += self._port.read(self._port.in_waiting)
        except (serial.SerialException, OSError) as err:
            raise DisplayUnavailable(f"display port {self._port.name}: {err}") from err
        return data

    def close(self) -> None:
        with contextlib.suppress(serial.SerialException, OSError):  # a port already gone
            self._port.close()


class FdLink:
    """A raw file descriptor: the master end of a pty, or a connected socket (the emulator's
    side, where pyserial has no URL for "the other end")."""

    def __init__(self, fd: int, name: str, *, owned: socket.socket | None = None) -> None:
        self._fd = fd
        self.name = name
        self._sock = owned
        self._closed = False

    def _check_open(self) -> None:
        """A closed fd's number is soon reused (by the next pty): never touch it again."""
        if self._closed:
            raise DisplayUnavailable(f"{self.name}: closed")

    def write(self, data: bytes) -> None:
        self._check_open()
        view = memoryview(data)
        try:
            while view:
                _, ready, _ = select.select([], [self._fd], [], WRITE_TIMEOUT_S)
                if not ready:
                    raise DisplayUnavailable(f"{self.name}: write timed out")
                view = view[os.write(self._fd, view) :]
        except OSError as err:
            raise DisplayUnavailable(f"{self.name}: {err}") from err

    def read(self) -> bytes:
        self._check_open()
        try:
            ready, _, _ = select.select([self._fd], [], [], READ_TIMEOUT_S)
            if not ready:
                return b""
            data = os.read(self._fd, 4096)
        except OSError as err:  # EIO: the pty's other end closed
            raise DisplayUnavailable(f"{self.name}: {err}") from err
        if not data:
            raise DisplayUnavailable(f"{self.name}: closed by the other end")
        return data

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            if self._sock is not None:
                self._sock.close()
            else:
                os.close(self._fd)


def resolve_port(display: DisplayConfig) -> str:
    """The port to open: ``display.port``, or the device node of the adapter ``match`` finds."""
    if display.port:
        return display.port
    try:
        import pyudev

        props = dict(display.match)
        subsystem = props.pop("SUBSYSTEM", None)
        context = pyudev.Context()
        devices = context.list_devices(subsystem=subsystem) if subsystem else context.list_devices()
        for key, value in props.items():
            devices = devices.match_property(key, value)
        for device in devices:
            node = device.device_node
            if node:
                return str(node)
    except (ImportError, OSError) as err:
        raise DisplayUnavailable(f"cannot look the display up in udev: {err}") from err
    raise DisplayUnavailable(f"no device matches the display's udev properties {display.match}")
