"""The display service: runtime events in, frames at a fixed rate out, whatever the link does.

Three loops share one scene. ``_follow`` takes every watched envelope into the scene (cheap,
so the watch never overflows in practice, and if it did the runtime still would not wait).
``_tick`` turns the scene into one frame per 1/fps when something changed (or once a second
as a heartbeat) and queues it. ``_connection`` keeps the port open and writes the queue.

A frame is the whole picture, so the queue keeps only the newest ``queue_frames``: when the
link is slower than the frame rate the oldest frame is dropped and counted, never waited on.
Name tables (``Names``) are not frames: they are never dropped, and go out before the frame
that needs them. On a link that does not pace itself (a pty, a socket, ``loop://``) the
writer waits as long as the bytes would take at the profile's baud rate, so what reaches an
emulator is what a real 115200-baud UART would carry.

When the port fails the service closes it and retries with backoff (``poke`` retries at
once, for the hot-plug monitor to call when the adapter comes back); the runtime never
notices. Blocking port calls run in threads (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections import deque
from collections.abc import Callable

import msgspec

from appliance.events import HandlerCrashed, JobSubmitted, TaskSpawned, TaskStatusChanged
from appliance.hal.board import DisplayConfig
from appliance.hal.display.budget import TEXT_BYTES, TEXT_CHARS, cut, limits_of, split_names
from appliance.hal.display.framing import MAX_BODY, VERSION, FrameTooLarge
from appliance.hal.display.link import Link, SerialLink, resolve_port
from appliance.hal.display.messages import (
    Ack,
    Button,
    Capabilities,
    Hello,
    Message,
    MessageReader,
    Nack,
    Text,
    encode_message,
)
from appliance.hal.display.render import render_image
from appliance.hal.display.scene import JobView, Scene, Snapshot
from appliance.hal.display.screen import Screen
from appliance.hal.display.session import WireSession
from appliance.hal.errors import DisplayUnavailable
from appliance.runtime import Clock, Runtime, Watch

log = logging.getLogger(__name__)

DEFAULT_LINES = 16
HEARTBEAT_S = 1.0
RECORD_TYPES = (TaskSpawned, TaskStatusChanged, HandlerCrashed, JobSubmitted)
RECORD_KINDS = tuple(str(t.__struct_config__.tag) for t in RECORD_TYPES)
BACKOFF_S = (0.25, 0.5, 1.0, 2.0, 5.0)


class DisplayStats(msgspec.Struct):
    """What the service did, for the panel and the benchmark."""

    events: int = 0
    records_dropped: int = 0  # spawns and ends the scene missed (reconciled once a second)
    traffic_dropped: int = 0  # deliveries it missed: activity counts a little low, no more
    frames_built: int = 0
    frames_sent: int = 0
    frames_dropped: int = 0
    frames_unsendable: int = 0  # messages no frame the display takes could hold: dropped
    bytes_sent: int = 0
    connects: int = 0
    acks: int = 0
    nacks: int = 0
    buttons: int = 0
    rx_errors: int = 0


class _Lost(Exception):
    """The port failed: leave the connection's TaskGroup and reconnect."""


class DisplayService:
    def __init__(
        self,
        runtime: Runtime,
        display: DisplayConfig,
        *,
        clock: Clock,
        board: str = "",
        appliance_version: str = "",
        open_link: Callable[[], Link] | None = None,
        queue_frames: int = 2,
        on_button: Callable[[Button], None] | None = None,
    ) -> None:
        self._runtime = runtime
        self._display = display
        self._clock = clock
        self._board = board
        self._version = appliance_version
        self._open_link = open_link or (
            lambda: SerialLink.open(resolve_port(display), display.baud)
        )
        self._on_button = on_button
        self._frame_s = 1.0 / display.fps
        self._byte_s = 10.0 / display.baud  # 8N1: ten bits on the line per byte
        self.scene = Scene()
        self.stats = DisplayStats()
        self.lines = DEFAULT_LINES
        self.max_body = MAX_BODY  # until the display says (and within bounds: budget.py)
        self.capabilities: Capabilities | None = None
        self.connected = asyncio.Event()
        self._session = WireSession()
        self._control: list[bytes] = []
        self._frames: deque[bytes] = deque(maxlen=queue_frames)
        self._work = asyncio.Event()
        self._poke = asyncio.Event()
        self._seq = 0
        self._texts: list[str] = []
        self._notice = ""
        # what the status line adds after the counts (the open serious findings): app.py's
        self.status_extra: Callable[[], str] = lambda: ""
        self._warned_unsendable = False
        # What the display shows, rebuilt here from the very bytes sent to it, so the panel
        # can show the picture without asking the display (which has no way to answer).
        self.mirror = Screen()
        self._mirror_reader = MessageReader()

    def poke(self) -> None:
        """Retry the port now (the adapter is back) instead of at the end of the backoff."""
        self._poke.set()

    async def run(self) -> None:
        """Two watches: every record (spawns, ends, crashes, jobs: few, and the scene needs
        them all) in a deep buffer, and the delivered traffic (many, only counted for
        activity) in a shallow one that may drop when the runtime is flooded."""
        runtime = self._runtime
        with (
            runtime.watch(kinds=RECORD_KINDS, limit=100_000) as records,
            runtime.watch(traffic=True, limit=2_000) as traffic,
        ):
            self.scene.seed(runtime.instances(), self._clock.monotonic())
            # the jobs of instances older than the watch (their JobSubmitted went by unseen)
            self.scene.know_jobs(
                JobView(row["job_id"], row["command"], bool(row["autonomous"]))
                for row in await runtime.graph.jobs()
            )
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._follow(records, traffic=False))
                tg.create_task(self._follow(traffic, traffic=True))
                tg.create_task(self._tick())
                tg.create_task(self._connection())

    # -- events into the scene ------------------------------------------------------------

    async def _follow(self, watch: Watch, *, traffic: bool) -> None:
        clock, scene, stats = self._clock, self.scene, self.stats
        async for env in watch:
            if traffic:
                if type(env.event) in RECORD_TYPES:
                    continue  # the records watch has it
                stats.traffic_dropped = watch.dropped
            else:
                stats.records_dropped = watch.dropped
            scene.note(env, clock.monotonic())
            stats.events += 1

    # -- the scene into frames ------------------------------------------------------------

    async def _tick(self) -> None:
        last = float("-inf")
        while True:
            now = self._clock.monotonic()
            heartbeat = now - last >= HEARTBEAT_S
            if heartbeat:
                self.scene.reconcile(self._runtime.instances(), now)
                last = now
            if self.connected.is_set() and (self.scene.changed or heartbeat):
                try:
                    self._queue_frame(self.scene.snapshot(now, self.lines), now)
                except Exception as err:  # a frame lost costs a moment; the service runs on
                    self._unsendable("a frame", err)
            await self._clock.sleep(self._frame_s)

    def _queue_frame(self, snapshot: Snapshot, now: float) -> None:
        names, frame = self._session.encode(snapshot, int(now * 1000))
        if names is not None:
            for part in split_names(names, self.max_body):
                self._queue_control(part)
        self._queue_texts(snapshot)
        encoded = self._encode(frame)
        if encoded is not None:
            if len(self._frames) == self._frames.maxlen:
                self.stats.frames_dropped += 1
            self._frames.append(encoded)
            self.stats.frames_built += 1
        self._work.set()

    def _queue_control(self, message: Message) -> None:
        encoded = self._encode(message)
        if encoded is not None:
            self._control.append(encoded)

    def _queue_texts(self, snapshot: Snapshot) -> None:
        state = "busy" if self._runtime.busy else "ready"
        newest = list(snapshot.jobs.values())[-1] if snapshot.jobs else None
        extra = self.status_extra()
        texts = [
            f"qEY-0 {state} · {_count(len(snapshot.jobs), 'job')} · "
            f"{_count(snapshot.total, 'agent')}{' · ' + extra if extra else ''}",
            (("* " if newest.autonomous else "> ") + newest.command[:60]) if newest else "",
            self._notice,
        ]
        texts = [cut(text, TEXT_BYTES, TEXT_CHARS) for text in texts]
        for row, text in enumerate(texts):
            if row >= len(self._texts) or self._texts[row] != text:
                self._queue_control(Text(row=row, text=text))
        self._texts = texts

    def show_notice(self, text: str) -> None:
        """A line for whoever stands at the device (the one-time setup token, say); ``""``
        clears it. Goes out with the next frame (a second at most: the heartbeat)."""
        self._notice = cut(text, TEXT_BYTES, TEXT_CHARS)

    def latest_png(self) -> bytes | None:
        """The display's picture as last sent, or None before anything was."""
        if self.mirror.frame is None and not self.mirror.texts:
            return None
        buffer = io.BytesIO()
        render_image(self.mirror).save(buffer, format="PNG")
        return buffer.getvalue()

    def _encode(self, message: Message) -> bytes | None:
        """The message as a frame, or None (counted, logged once) if the display's
        ``max_body`` cannot hold it: a message dropped, never the service."""
        try:
            encoded = encode_message(message, (self._seq + 1) & 0xFF, max_body=self.max_body)
        except FrameTooLarge as err:
            self._unsendable(type(message).__name__, err)
            return None
        self._seq = (self._seq + 1) & 0xFF
        return encoded

    def _unsendable(self, what: str, err: Exception) -> None:
        self.stats.frames_unsendable += 1
        if not self._warned_unsendable:  # once: a display that keeps refusing floods no log
            self._warned_unsendable = True
            log.warning(
                "display: dropped %s that cannot be sent (counted from now on): %s: %s",
                what,
                type(err).__name__,
                err,
                exc_info=not isinstance(err, FrameTooLarge),
            )

    # -- the port -------------------------------------------------------------------------

    async def _connection(self) -> None:
        failures = 0
        while True:
            try:
                link = await asyncio.to_thread(self._open_link)
            except DisplayUnavailable as err:
                if failures == 0:
                    log.warning("display not available, retrying: %s", err)
                await self._backoff(failures)
                failures += 1
                continue
            failures = 0
            try:
                await self._serve(link)
            except* _Lost as lost:
                log.warning("display link lost, reconnecting: %s", lost.exceptions[0])
            except* Exception as failed:  # whatever broke the link, the display comes back
                first = failed.exceptions[0]
                log.error("display link failed, reconnecting: %s", first, exc_info=first)
            finally:
                self.connected.clear()
                await asyncio.to_thread(link.close)
            await self._backoff(0)

    async def _backoff(self, failures: int) -> None:
        self._poke.clear()
        delay = BACKOFF_S[min(failures, len(BACKOFF_S) - 1)]
        async with asyncio.TaskGroup() as tg:
            sleeper = tg.create_task(self._clock.sleep(delay))
            poked = tg.create_task(self._poke.wait())
            await asyncio.wait((sleeper, poked), return_when=asyncio.FIRST_COMPLETED)
            sleeper.cancel()
            poked.cancel()

    async def _serve(self, link: Link) -> None:
        """One connection's life: greet the display, then write and read until it fails."""
        self.stats.connects += 1
        self.lines, self.max_body = DEFAULT_LINES, MAX_BODY  # until this display says
        self._session.reset()
        self._texts = []
        self._frames.clear()
        hello = Hello(
            protocol=VERSION, appliance=self._version, board=self._board, fps=self._display.fps
        )
        greeting = self._encode(hello) or b""  # a Hello fits: the version and board are short
        self._control = [b"\x00" + greeting]  # a lone 0x00 ends any half frame
        self._work.set()
        self.connected.set()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._writer(link))
            tg.create_task(self._reader(link))

    async def _writer(self, link: Link) -> None:
        while True:
            await self._work.wait()
            self._work.clear()
            while self._control or self._frames:
                chunks = self._control
                self._control = []
                if self._frames:
                    chunks.append(self._frames.popleft())
                    self.stats.frames_sent += 1
                data = b"".join(chunks)
                started = self._clock.monotonic()
                try:
                    await asyncio.to_thread(link.write, data)
                except DisplayUnavailable as err:
                    raise _Lost(str(err)) from err
                self.stats.bytes_sent += len(data)
                for seq, message in self._mirror_reader.feed_numbered(data):
                    self.mirror.apply(message, seq)
                # pace to the baud rate where the link did not (pty, socket, loop://)
                left = len(data) * self._byte_s - (self._clock.monotonic() - started)
                if left > 0:
                    await self._clock.sleep(left)

    async def _reader(self, link: Link) -> None:
        reader = MessageReader()
        while True:
            try:
                data = await asyncio.to_thread(link.read)
            except DisplayUnavailable as err:
                raise _Lost(str(err)) from err
            for message in reader.feed(data):
                self._received(message)
            self.stats.rx_errors = reader.error_count

    def _received(self, message: Message) -> None:
        if type(message) is Ack:
            self.stats.acks += 1
        elif type(message) is Nack:
            self.stats.nacks += 1
            self._session.reset()  # the next frame re-announces every name it uses
            self._texts = []
            self.stats.frames_dropped += len(self._frames)  # they use the old names
            self._frames.clear()
        elif type(message) is Capabilities:
            self.capabilities = message
            self.max_body, self.lines = limits_of(message)
            log.info(
                "display %s %s: %d lines, frames up to %d bytes (it says %d, %d)",
                message.name,
                message.firmware,
                self.lines,
                self.max_body,
                message.lines,
                message.max_body,
            )
        elif type(message) is Button:
            self.stats.buttons += 1
            if self._on_button is not None:
                self._on_button(message)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
