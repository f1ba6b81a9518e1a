"""Frames on the display's serial line: COBS, a CRC, and a reader that never gives up.

A frame is ``COBS(version | type | seq | payload | crc16) 0x00``. COBS leaves no zero byte
inside a frame, so ``0x00`` always ends one: after any garbage (line noise, a half frame from
before a reconnect, a display that rebooted mid-frame) the reader is back in step at the next
zero, having lost at most the frame it was in. The CRC (CRC-16/CCITT-FALSE, which small
microcontrollers compute cheaply and Python has in C as ``binascii.crc_hqx``) catches what
COBS cannot: flipped bits that still decode. See hw/display-protocol.md.
"""

from __future__ import annotations

import binascii
from collections import Counter
from typing import Literal, NamedTuple, TypeAlias

VERSION = 1
MAX_BODY = 1024
"""Largest decoded frame (header, payload and CRC) either side accepts."""
MAX_ENCODED = MAX_BODY + MAX_BODY // 254 + 2
"""Largest COBS-encoded frame without its delimiter: longer runs are garbage, not frames."""
_HEADER = 3
_CRC = 2

FrameError: TypeAlias = Literal["oversized", "cobs", "short", "crc", "version"]


class RawFrame(NamedTuple):
    type: int
    seq: int
    payload: bytes


class CobsError(ValueError):
    pass


class FrameTooLarge(ValueError):
    """A message that does not fit in one frame of the size the receiver takes."""


def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing: ``data`` with no zero byte, one byte per 254 more."""
    out = bytearray()
    for block in data.split(b"\x00"):
        while len(block) >= 254:
            out.append(255)
            out += block[:254]
            block = block[254:]
        out.append(len(block) + 1)
        out += block
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """The inverse of ``cobs_encode``; CobsError for what no encoder produces."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        end = i + code
        if code == 0 or end > n:
            raise CobsError(f"bad code {code} at {i} of {n}")
        block = data[i + 1 : end]
        if 0 in block:
            raise CobsError("zero byte inside a frame")
        out += block
        i = end
        if code < 255 and i < n:
            out.append(0)
    return bytes(out)


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF): 0x29B1 for b"123456789"."""
    return binascii.crc_hqx(data, 0xFFFF)


def encode_frame(type_: int, seq: int, payload: bytes, *, max_body: int = MAX_BODY) -> bytes:
    """One frame ready for the wire, delimiter included; FrameTooLarge past ``max_body``
    (the receiver's limit, never more than MAX_BODY)."""
    limit = min(max_body, MAX_BODY)
    body = bytes((VERSION, type_ & 0xFF, seq & 0xFF)) + payload
    body += crc16(body).to_bytes(2, "big")
    if len(body) > limit:
        raise FrameTooLarge(f"frame of {len(body)} bytes exceeds the {limit}-byte limit")
    return cobs_encode(body) + b"\x00"


class FrameReader:
    """Turns a byte stream into frames. ``feed`` never raises: what is not a frame is dropped,
    counted by reason in ``errors``, and the reader resumes at the next delimiter.
    ``max_body`` is the largest frame this end takes (a display may take less than the
    protocol's MAX_BODY, and says so in its Capabilities)."""

    def __init__(self, max_body: int = MAX_BODY) -> None:
        self._max_body = min(max_body, MAX_BODY)
        self._buffer = bytearray()
        self._skipping = False  # inside an oversized run: drop bytes until the next zero
        self.errors: Counter[FrameError] = Counter()
        self.frames = 0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def feed(self, data: bytes) -> list[RawFrame]:
        frames: list[RawFrame] = []
        start = 0
        while True:
            end = data.find(b"\x00", start)
            if end < 0:
                self._take(data[start:])
                return frames
            self._take(data[start:end])
            if self._skipping:
                self._skipping = False
            elif self._buffer:
                frame = self._parse(bytes(self._buffer))
                if frame is not None:
                    frames.append(frame)
            self._buffer.clear()
            start = end + 1

    def _take(self, chunk: bytes) -> None:
        if self._skipping or not chunk:
            return
        if len(self._buffer) + len(chunk) > MAX_ENCODED:
            self.errors["oversized"] += 1
            self._buffer.clear()
            self._skipping = True
            return
        self._buffer += chunk

    def _parse(self, encoded: bytes) -> RawFrame | None:
        try:
            body = cobs_decode(encoded)
        except CobsError:
            self.errors["cobs"] += 1
            return None
        if len(body) > self._max_body:
            self.errors["oversized"] += 1
            return None
        if len(body) < _HEADER + _CRC:
            self.errors["short"] += 1
            return None
        if crc16(body[:-_CRC]) != int.from_bytes(body[-_CRC:], "big"):
            self.errors["crc"] += 1
            return None
        if body[0] != VERSION:
            self.errors["version"] += 1
            return None
        self.frames += 1
        return RawFrame(body[1], body[2], body[_HEADER:-_CRC])
