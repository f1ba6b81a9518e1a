"""The display protocol's messages: msgspec Structs encoded as msgpack arrays.

A compact event encoding for a slow serial line: agents and events travel as small numbers,
announced once in a ``Names`` message, never as strings in every frame. Payloads are
``array_like`` msgpack, which the project's rule against array-like structs does not cover:
nothing here is stored, and the protocol is versioned by its version byte, so fields may be
appended (with defaults) but never reordered. The type byte, not a tag, says which message a
payload is. See hw/display-protocol.md for the byte layout and the budget.
"""

from __future__ import annotations

import enum
from collections import Counter
from typing import Any, Final, TypeAlias

import msgspec

from appliance.hal.display.framing import MAX_BODY, FrameReader, encode_frame


class Status(enum.IntEnum):
    """What an agent line's instance is doing."""

    IDLE = 0  # alive, no handler running
    HANDLING = 1  # a handler is running or events arrived this frame
    DONE = 2
    FAILED = 3
    CANCELLED = 4
    CRASHED = 5  # a handler crashed; the instance lives on


class _Wire(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=False):
    """Base of every payload; unknown trailing fields from a newer peer are ignored."""


class Hello(_Wire, frozen=True):
    """Appliance -> display, first after connecting: who is talking, at what rate."""

    protocol: int
    appliance: str
    board: str
    fps: float


class Capabilities(_Wire, frozen=True):
    """Display -> appliance, in answer to Hello: what it can show."""

    name: str
    firmware: str
    width: int
    height: int
    lines: int
    max_body: int = 1024


class Names(_Wire, frozen=True):
    """Appliance -> display: numbers for agent types, event kinds and jobs. ``reset`` says
    the tables start over (after Hello or a Nack); otherwise entries add to what it has."""

    reset: bool
    agents: list[tuple[int, str]] = []
    events: list[tuple[int, str]] = []
    jobs: list[tuple[int, bool, str]] = []  # id, autonomous, command (cut to 48 characters)


class AgentLine(_Wire, frozen=True):
    """One live instance: its slot, its parent's slot (0: a job's root), its job, agent type
    and last event (ids from Names), what it is doing, and the events it saw this frame."""

    slot: int
    parent: int
    job: int
    agent: int
    event: int
    status: Status
    hits: int


class Frame(_Wire, frozen=True):
    """Appliance -> display: the whole picture, so a lost frame costs nothing but a moment.
    ``total`` counts live instances, of which the display got the ``lines`` that fit."""

    t_ms: int
    total: int
    lines: list[AgentLine]


class Text(_Wire, frozen=True):
    """Appliance -> display: a status line (row 0: state and counts)."""

    row: int
    text: str


class Ack(_Wire, frozen=True):
    """Display -> appliance: the last frame it used."""

    seq: int


class Nack(_Wire, frozen=True):
    """Display -> appliance: it got something it could not use since ``seq``; the appliance
    answers with a reset Names and a full frame."""

    seq: int
    reason: int


class Button(_Wire, frozen=True):
    """Display -> appliance: a button was pressed (1) or held (2)."""

    button: int
    action: int


Message: TypeAlias = Hello | Capabilities | Names | Frame | Text | Ack | Nack | Button

TYPE_OF: Final[dict[type[Message], int]] = {
    Hello: 0x01,
    Capabilities: 0x02,
    Names: 0x03,
    Frame: 0x10,
    Text: 0x11,
    Ack: 0x20,
    Nack: 0x21,
    Button: 0x30,
}
_DECODERS: Final[dict[int, msgspec.msgpack.Decoder[Any]]] = {
    code: msgspec.msgpack.Decoder(cls) for cls, code in TYPE_OF.items()
}
_encoder = msgspec.msgpack.Encoder()

NACK_CRC = 1
NACK_UNDECODABLE = 2


def encode_message(message: Message, seq: int, *, max_body: int = MAX_BODY) -> bytes:
    """A message as one frame on the wire; FrameTooLarge if it needs more than ``max_body``."""
    return encode_frame(TYPE_OF[type(message)], seq, _encoder.encode(message), max_body=max_body)


def payload_size(message: Message) -> int:
    """Bytes of a message's payload: what it costs of a frame's ``max_body``."""
    return len(_encoder.encode(message))


class MessageReader:
    """Bytes in, messages out. ``feed`` never raises: frames that fail (bad framing, CRC,
    version, unknown type, bad payload) are dropped and counted in ``errors`` by reason."""

    def __init__(self, max_body: int = MAX_BODY) -> None:
        self._frames = FrameReader(max_body)
        self._errors: Counter[str] = Counter()
        self.last_seq = -1

    @property
    def errors(self) -> Counter[str]:
        merged: Counter[str] = Counter(self._frames.errors)
        merged.update(self._errors)
        return merged

    @property
    def error_count(self) -> int:
        return self._frames.error_count + sum(self._errors.values())

    def feed(self, data: bytes) -> list[Message]:
        return [message for _seq, message in self.feed_numbered(data)]

    def feed_numbered(self, data: bytes) -> list[tuple[int, Message]]:
        """Like ``feed``, with each message's sequence number (what an Ack names)."""
        out: list[tuple[int, Message]] = []
        for raw in self._frames.feed(data):
            decoder = _DECODERS.get(raw.type)
            if decoder is None:
                self._errors["type"] += 1
                continue
            try:
                message: Message = decoder.decode(raw.payload)
            except (msgspec.DecodeError, ValueError):
                self._errors["payload"] += 1
                continue
            self.last_seq = raw.seq
            out.append((raw.seq, message))
        return out
