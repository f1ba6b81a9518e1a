"""An emulator of the Neur Lines display: the other end of the serial link, in software.

It speaks the display's side of the protocol (answers Hello with Capabilities, Acks frames,
Nacks what it cannot use) on one of:

- ``pty``: a new pseudo-terminal pair; the appliance opens the printed slave path (``--link``
  also makes a stable symlink to it, as udev does for the real adapter);
- ``listen://HOST:PORT``: a TCP server, one connection at a time: the far end of the sim
  profile's ``socket://`` port, or of QEMU's ``-serial tcp:HOST:PORT``;
- any pyserial port or URL (``/dev/ttyUSB1``, ``socket://HOST:PORT`` for a QEMU chardev
  server); ``loop://`` plays a demo through the real encoder and decodes it back.

What the display would show goes to a PNG and, live, to the terminal. A lost connection is
waited out: the emulator serves the next one, like a display that stays powered.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import select
import socket
import sys
import time
import tty
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from appliance.events import (
    Envelope,
    Event,
    JobContext,
    JobSubmitted,
    Started,
    TaskRef,
    TaskSpawned,
    TaskStatusChanged,
)
from appliance.hal.display.link import FdLink, Link, SerialLink
from appliance.hal.display.messages import (
    NACK_CRC,
    Hello,
    Message,
    MessageReader,
    Nack,
    Text,
    encode_message,
)
from appliance.hal.display.render import render_png, render_text
from appliance.hal.display.scene import Scene
from appliance.hal.display.screen import Screen
from appliance.hal.display.session import WireSession
from appliance.hal.errors import DisplayUnavailable

log = logging.getLogger(__name__)


class EndpointClosed(DisplayUnavailable):
    """The emulator's own endpoint was closed: there is nothing more to serve."""


class Endpoint(Protocol):
    """Where the emulator waits for the appliance; ``accept`` blocks until it is there."""

    description: str

    def accept(self) -> Link: ...

    def close(self) -> None: ...


class PtyEndpoint:
    """A pty pair; the emulator holds the master, and keeps the slave open too, so the
    appliance may close and reopen the slave path without ending the emulator."""

    def __init__(self, link_path: Path | None = None) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no newline translation: bytes pass unchanged
        self.path = os.ttyname(self._slave)
        self._link_path = link_path
        if link_path is not None:
            link_path.unlink(missing_ok=True)
            link_path.symlink_to(self.path)
        self.description = f"pty {self.path}" + (f" (link {link_path})" if link_path else "")
        self._link = FdLink(self._master, self.path)
        self._closed = False

    def accept(self) -> Link:
        if self._closed:
            raise EndpointClosed(f"{self.path} was closed")
        return self._link

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._link_path is not None:
            self._link_path.unlink(missing_ok=True)
        self._link.close()
        os.close(self._slave)


class ListenEndpoint:
    """A TCP server that takes one connection at a time."""

    def __init__(self, host: str, port: int) -> None:
        self._server = socket.create_server((host, port))
        self.address: tuple[str, int] = self._server.getsockname()[:2]
        self.description = f"listening on {self.address[0]}:{self.address[1]}"
        self._closed = False

    def accept(self) -> Link:
        """Wait for a connection, looking up every 0.2 s so ``close`` ends the wait."""
        while not self._closed:
            try:
                ready, _, _ = select.select([self._server], [], [], 0.2)
                if ready:
                    conn, peer = self._server.accept()
                    log.info("display emulator: connection from %s:%s", *peer[:2])
                    return FdLink(conn.fileno(), f"tcp {peer[0]}:{peer[1]}", owned=conn)
            except OSError as err:
                if self._closed:
                    break
                raise DisplayUnavailable(f"listening socket: {err}") from err
        raise EndpointClosed("the listening socket was closed")

    def close(self) -> None:
        self._closed = True
        self._server.close()


class PortEndpoint:
    """A pyserial port or URL the emulator opens itself, again after each failure."""

    def __init__(self, url: str, baud: int) -> None:
        self._url, self._baud = url, baud
        self.description = f"port {url}"

    def accept(self) -> Link:
        return SerialLink.open(self._url, self._baud)

    def close(self) -> None:
        pass


def open_endpoint(spec: str, *, baud: int = 115200, link_path: Path | None = None) -> Endpoint:
    if spec == "pty":
        return PtyEndpoint(link_path)
    if spec.startswith("listen://"):
        host, _, port = spec.removeprefix("listen://").rpartition(":")
        return ListenEndpoint(host or "127.0.0.1", int(port))
    return PortEndpoint(spec, baud)


class DisplayEmulator:
    def __init__(
        self,
        endpoint: Endpoint,
        *,
        screen: Screen | None = None,
        on_update: Callable[[Screen], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.screen = screen or Screen()
        self._on_update = on_update
        self.rx_errors = 0
        self.connections = 0

    async def run(self) -> None:
        """Serve connection after connection until cancelled."""
        while True:
            try:
                link = await asyncio.to_thread(self.endpoint.accept)
            except EndpointClosed:
                return
            except DisplayUnavailable as err:
                log.info("display emulator: %s; retrying", err)
                await asyncio.sleep(0.5)
                continue
            self.connections += 1
            try:
                await self.serve(link)
            except DisplayUnavailable as err:
                log.info("display emulator: link ended: %s", err)
            finally:
                if not isinstance(self.endpoint, PtyEndpoint):
                    await asyncio.to_thread(link.close)

    async def serve(self, link: Link) -> None:
        reader = MessageReader(self.screen.capabilities.max_body)  # drops what it can't take
        while True:
            data = await asyncio.to_thread(link.read)
            replies = self.take(reader, data)
            if replies:
                await asyncio.to_thread(link.write, b"".join(replies))

    def take(self, reader: MessageReader, data: bytes) -> list[bytes]:
        """Bytes from the appliance in, reply frames out; the screen updates on the way."""
        errors = reader.error_count
        replies: list[bytes] = []
        changed = False
        for seq, message in reader.feed_numbered(data):
            reply = self.screen.apply(message, seq)
            changed = True
            if reply is not None:
                replies.append(encode_message(reply, seq))
        if reader.error_count > errors:
            self.rx_errors = reader.error_count
            replies.append(encode_message(Nack(seq=reader.last_seq & 0xFF, reason=NACK_CRC), 0))
        if changed and self._on_update is not None:
            self._on_update(self.screen)
        return replies


def demo_messages(steps: int = 40) -> Iterator[Message]:
    """A made-up posture job, through the real scene and encoder: what ``loop://`` shows."""
    scene, session = Scene(), WireSession()
    job = JobContext("job-demo", "cmd-demo")
    yield Hello(protocol=1, appliance="demo", board="loop", fps=10.0)
    yield Text(row=0, text="qEY-0 demo · 1 job · 4 agents")
    yield Text(row=1, text="> analyze network security posture of demo")

    def note(event: Event, target: TaskRef | None = None, t: float = 0.0) -> None:
        ref = target or TaskRef("?", "?")
        scene.note(Envelope(event=event, job=job, target=ref), t)

    note(JobSubmitted(job_id=job.job_id, command_id="c", command="analyze posture of demo"))
    note(TaskSpawned(job_id=job.job_id, task_id="t0", agent_type="coordinator", objective="x"))
    for i in range(1, 4):
        note(
            TaskSpawned(
                job_id=job.job_id,
                task_id=f"t{i}",
                agent_type="data_collector",
                objective=f"127.0.0.{i}",
                parent_task_id="t0",
            )
        )
    for step, i in zip(range(steps), itertools.cycle(range(1, 4)), strict=False):
        for _ in range(i):
            note(Started(objective="probe"), TaskRef("data_collector", f"t{i}"), step * 0.1)
        if step == steps // 2:
            note(
                TaskStatusChanged(
                    job_id=job.job_id, task_id="t3", agent_type="data_collector", status="done"
                ),
                t=step * 0.1,
            )
        names, frame = session.encode(scene.snapshot(step * 0.1, 16), step * 100)
        if names is not None:
            yield names
        yield frame


def run_demo(screen: Screen) -> bytes:
    """Encode the demo, decode it through the display's reader into ``screen``."""
    wire = b"".join(encode_message(m, i) for i, m in enumerate(demo_messages()))
    reader = MessageReader()
    for seq, message in reader.feed_numbered(wire):
        screen.apply(message, seq)
    return wire


class Painter:
    """Redraws the terminal and the PNG, each at most ``every_s`` apart (and once at the end)."""

    def __init__(self, png: Path | None, terminal: bool, every_s: float = 0.2) -> None:
        self._png, self._terminal, self._every_s = png, terminal, every_s
        self._last = float("-inf")
        self.painted = 0

    def __call__(self, screen: Screen, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self._every_s:
            return
        self._last = now
        self.painted += 1
        if self._png is not None:
            render_png(screen, self._png)
        if self._terminal:
            sys.stdout.write("\x1b[H\x1b[2J" + render_text(screen) + "\n")
            sys.stdout.flush()


async def emulate(
    spec: str,
    *,
    png: Path | None,
    terminal: bool,
    baud: int = 115200,
    link_path: Path | None = None,
    frames: int = 0,
) -> Screen:
    """``qey display-emulator``: serve ``spec`` until cancelled, or until ``frames`` frames."""
    painter = Painter(png, terminal)
    screen = Screen()
    if spec.startswith("loop://"):
        wire = run_demo(screen)
        painter(screen, force=True)
        print(f"demo: {len(wire)} bytes, {screen.frames} frames decoded", file=sys.stderr)
        return screen
    endpoint = open_endpoint(spec, baud=baud, link_path=link_path)
    print(f"display emulator: {endpoint.description}", file=sys.stderr, flush=True)
    done = asyncio.Event()

    def update(s: Screen) -> None:
        painter(s)
        if frames and s.frames >= frames:
            done.set()

    emulator = DisplayEmulator(endpoint, screen=screen, on_update=update)
    try:
        async with asyncio.TaskGroup() as tg:
            serving = tg.create_task(emulator.run())
            await done.wait()
            serving.cancel()
    finally:
        painter(screen, force=True)
        endpoint.close()
    return screen
