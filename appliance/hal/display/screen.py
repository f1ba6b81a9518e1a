"""What the Neur Lines display holds: its name tables, the last frame, the status rows.

This is the display's side of the protocol, kept apart from any port so the emulator, the
tests and the renderers share it. ``apply`` takes one message and returns the reply the real
display would send (Capabilities for Hello, Ack or Nack for a Frame), or None.
"""

from __future__ import annotations

import msgspec

from appliance.hal.display.framing import MAX_BODY
from appliance.hal.display.messages import (
    Ack,
    AgentLine,
    Capabilities,
    Frame,
    Hello,
    Message,
    Nack,
    Names,
    Status,
    Text,
)
from appliance.hal.display.session import UNKNOWN

NACK_UNKNOWN_NAME = 3

DEFAULT_CAPABILITIES = Capabilities(
    name="neur-lines-emulator",
    firmware="emu-1",
    width=480,
    height=320,
    lines=16,
    max_body=MAX_BODY,
)


class ShownLine(msgspec.Struct, frozen=True):
    """One agent line as the display draws it: names resolved, depth in the job tree."""

    slot: int
    depth: int
    job: str
    autonomous: bool
    agent: str
    event: str
    status: Status
    hits: int


class Screen:
    def __init__(self, capabilities: Capabilities = DEFAULT_CAPABILITIES) -> None:
        self.capabilities = capabilities
        self.agents: dict[int, str] = {}
        self.events: dict[int, str] = {}
        self.jobs: dict[int, tuple[bool, str]] = {}
        self.texts: dict[int, str] = {}
        self.hello: Hello | None = None
        self.frame: Frame | None = None
        self.frames = 0
        self.unknown = 0

    def apply(self, message: Message, seq: int) -> Message | None:
        if type(message) is Frame:
            if not self._known(message):
                self.unknown += 1
                return Nack(seq=seq, reason=NACK_UNKNOWN_NAME)
            self.frame = message
            self.frames += 1
            return Ack(seq=seq)
        if type(message) is Names:
            if message.reset:
                self.agents.clear()
                self.events.clear()
                self.jobs.clear()
            self.agents.update(message.agents)
            self.events.update(message.events)
            self.jobs.update((j, (auto, command)) for j, auto, command in message.jobs)
        elif type(message) is Text:
            self.texts[message.row] = message.text
        elif type(message) is Hello:
            self.hello = message
            self.frame = None
            return self.capabilities
        return None

    def _known(self, frame: Frame) -> bool:
        return all(
            (line.agent == UNKNOWN or line.agent in self.agents)
            and (line.event == UNKNOWN or line.event in self.events)
            and line.job in self.jobs
            for line in frame.lines
        )

    def lines(self) -> list[ShownLine]:
        """The last frame's lines as they are drawn, at most as many as the display has."""
        if self.frame is None:
            return []
        parents = {line.slot: line.parent for line in self.frame.lines}
        return [self._shown(line, parents) for line in self.frame.lines[: self.capabilities.lines]]

    def _shown(self, line: AgentLine, parents: dict[int, int]) -> ShownLine:
        depth, parent = 0, line.parent
        while parent and parent in parents and depth < 8:
            depth, parent = depth + 1, parents[parent]
        autonomous, command = self.jobs.get(line.job, (False, "?"))
        return ShownLine(
            slot=line.slot,
            depth=depth,
            job=command,
            autonomous=autonomous,
            agent=self.agents.get(line.agent, "?"),
            event=self.events.get(line.event, "?"),
            status=line.status,
            hits=line.hits,
        )
