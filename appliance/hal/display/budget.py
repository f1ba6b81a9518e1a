"""What fits in a frame: text cut by bytes, names split over frames, a display's claims bounded.

What the display shows comes from outside: commands typed in the panel, agent and event names,
and the display's own Capabilities. None of it may make a message that cannot be sent (a frame
over the display's ``max_body`` once stopped the display service for good), nor reach the
display as something other than text: a command's control characters (a terminal's clear
screen, a right-to-left override) could otherwise paint over the setup token shown below it.
So text is cleaned and cut by its encoded size at a character boundary, a ``Names`` too large
for one frame goes out as several, and a display that claims 65,535 lines gets the lines that
fit in one frame. See hw/display-protocol.md ("Sizes").
"""

from __future__ import annotations

import re
from typing import NamedTuple

import msgspec

from appliance.hal.display.framing import MAX_BODY
from appliance.hal.display.messages import Capabilities, Names, payload_size

MIN_BODY = 256
"""The smallest ``max_body`` believed: one cut Text row, one cut job name and a frame of a
dozen lines fit in it. A display that claims less is sent frames of this size."""
FRAME_OVERHEAD = 5  # version, type and seq before the payload, the CRC after it
LINE_MAX = (
    17  # an AgentLine's largest msgpack: array 1, three u16 3 each, two u8 2, status 1, hits 2
)
FRAME_HEAD_MAX = 12  # a Frame's array 1, t_ms u32 5, total u16 3, the lines' array16 header 3
_LIST_GROWTH = 6  # Names' three lists may each outgrow a 1-byte array header into a 3-byte one

TEXT_CHARS, TEXT_BYTES = 80, 160
"""A status row: what the display's width shows, and what a Text frame always has room for."""
COMMAND_CHARS, COMMAND_BYTES = 48, 96
"""A job's command in Names: 48 characters, and no more than 96 bytes (48 emoji are 192)."""
NAME_BYTES = 48
"""An agent type's or event kind's name in Names."""

# C0 and C1 controls, line and paragraph separators, bidirectional marks, overrides and
# isolates, and lone surrogates (which UTF-8 cannot even encode)
_HIDDEN = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
_REPLACEMENT = "\ufffd"


class Limits(NamedTuple):
    """What the service sends a display: frames of at most ``max_body`` bytes, ``lines``
    agent lines in each."""

    max_body: int
    lines: int


def limits_of(capabilities: Capabilities) -> Limits:
    """The display's claims held to what the protocol can carry: ``max_body`` within
    MIN_BODY..MAX_BODY, ``lines`` within 1..what such a frame holds at worst."""
    max_body = min(max(capabilities.max_body, MIN_BODY), MAX_BODY)
    fit = (max_body - FRAME_OVERHEAD - FRAME_HEAD_MAX) // LINE_MAX
    return Limits(max_body, min(max(capabilities.lines, 1), fit))


def shown(text: str) -> str:
    """``text`` with every character that is not for showing (controls, bidirectional
    overrides, lone surrogates) replaced by U+FFFD, which shows that something was there."""
    return _HIDDEN.sub(_REPLACEMENT, text)


def cut(text: str, max_bytes: int, max_chars: int | None = None) -> str:
    """``text`` cleaned (``shown``) and cut to at most ``max_chars`` characters and
    ``max_bytes`` bytes of UTF-8, at a character boundary: never half a character."""
    text = shown(text)[:max_chars]
    data = text.encode()
    if len(data) <= max_bytes:
        return text
    # the bytes up to the cut are valid UTF-8 but for a last character cut short: drop it
    return data[:max_bytes].decode(errors="ignore")


def split_names(names: Names, max_body: int) -> list[Names]:
    """``names`` as messages that each fit a frame of ``max_body`` bytes, in order: the first
    keeps ``reset``, the others add to the tables (``reset`` false), as the protocol allows.
    An entry too big for any frame (not possible for cut names) travels alone, and the
    sender drops that frame."""
    room = max_body - FRAME_OVERHEAD
    if payload_size(names) <= room:
        return [names]
    base = payload_size(Names(reset=names.reset)) + _LIST_GROWTH
    batches = [_Batch(names.reset, base)]

    def batch_for(entry: tuple[int, str] | tuple[int, bool, str]) -> _Batch:
        cost = len(_encode(entry))
        if batches[-1].used + cost > room and batches[-1].used > base:
            batches.append(_Batch(False, base))
        batches[-1].used += cost
        return batches[-1]

    for agent in names.agents:
        batch_for(agent).agents.append(agent)
    for event in names.events:
        batch_for(event).events.append(event)
    for job in names.jobs:
        batch_for(job).jobs.append(job)
    return [batch.message() for batch in batches]


class _Batch:
    """The Names entries gathered for one frame, and the bytes they will take."""

    def __init__(self, reset: bool, used: int) -> None:
        self.reset = reset
        self.used = used
        self.agents: list[tuple[int, str]] = []
        self.events: list[tuple[int, str]] = []
        self.jobs: list[tuple[int, bool, str]] = []

    def message(self) -> Names:
        return Names(reset=self.reset, agents=self.agents, events=self.events, jobs=self.jobs)


_encode = msgspec.msgpack.Encoder().encode
