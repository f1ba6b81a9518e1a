"""The display protocol's framing and decoder, fuzzed: whatever arrives on the serial line,
the reader never raises, counts what it drops, and is back in step at the next frame."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from appliance.hal.display.framing import (
    MAX_BODY,
    MAX_ENCODED,
    FrameReader,
    cobs_decode,
    cobs_encode,
    crc16,
    encode_frame,
)
from appliance.hal.display.messages import (
    Ack,
    AgentLine,
    Button,
    Frame,
    Hello,
    Message,
    MessageReader,
    Names,
    Status,
    Text,
    encode_message,
)

u16 = st.integers(0, 0xFFFF)
u8 = st.integers(0, 0xFF)
lines = st.builds(
    AgentLine,
    slot=u16,
    parent=u16,
    job=u16,
    agent=u8,
    event=u8,
    status=st.sampled_from(Status),
    hits=u8,
)
messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(Frame, t_ms=st.integers(0, 2**32 - 1), total=u16, lines=st.lists(lines, max_size=40)),
    st.builds(Text, row=u8, text=st.text(max_size=64)),
    st.builds(Ack, seq=u8),
    st.builds(Button, button=u8, action=st.integers(1, 2)),
    st.builds(
        Hello,
        protocol=st.just(1),
        appliance=st.text(max_size=16),
        board=st.just("sim"),
        fps=st.floats(1, 60),
    ),
    st.builds(
        Names, reset=st.booleans(), agents=st.lists(st.tuples(u8, st.text(max_size=24)), max_size=8)
    ),
)
streams = st.lists(messages, min_size=1, max_size=6)
garbage = st.binary(max_size=3000)
fuzz = settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)


def wire(msgs: list[Message]) -> bytes:
    return b"".join(encode_message(m, i) for i, m in enumerate(msgs))


def test_crc_is_ccitt_false() -> None:
    assert crc16(b"123456789") == 0x29B1


@pytest.mark.property
@fuzz
@given(st.binary(max_size=2000))
def test_cobs_round_trips_without_zero_bytes(data: bytes) -> None:
    encoded = cobs_encode(data)
    assert 0 not in encoded and cobs_decode(encoded) == data
    assert len(encoded) <= len(data) + len(data) // 254 + 2


@pytest.mark.property
@fuzz
@given(garbage)
def test_random_bytes_never_raise(data: bytes) -> None:
    reader = MessageReader()
    reader.feed(data)
    reader.feed(b"\x00")  # whatever was buffered is judged too


@pytest.mark.property
@fuzz
@given(garbage, streams)
def test_after_garbage_and_a_delimiter_every_frame_arrives(
    junk: bytes, msgs: list[Message]
) -> None:
    reader = MessageReader()
    got = reader.feed(junk + b"\x00" + wire(msgs))
    assert got[-len(msgs) :] == msgs


@pytest.mark.property
@fuzz
@given(garbage, streams)
def test_garbage_without_a_delimiter_costs_at_most_the_first_frame(
    junk: bytes, msgs: list[Message]
) -> None:
    got = MessageReader().feed(junk + wire(msgs))
    assert got[len(got) - len(msgs) + 1 :] == msgs[1:]


@pytest.mark.property
@fuzz
@given(streams, st.lists(st.integers(1, 64), min_size=1))
def test_any_chunking_gives_the_same_messages(msgs: list[Message], cuts: list[int]) -> None:
    data = wire(msgs)
    reader, got, i = MessageReader(), [], 0
    for n in cuts * (len(data) // len(cuts) + 1):
        got += reader.feed(data[i : i + n])
        i += n
        if i >= len(data):
            break
    assert got == msgs and reader.error_count == 0


@pytest.mark.property
@fuzz
@given(messages, messages, st.data())
def test_a_corrupted_frame_is_counted_and_the_next_one_arrives(
    bad: Message, good: Message, data: st.DataObject
) -> None:
    frame = bytearray(encode_message(bad, 1))
    at = data.draw(st.integers(0, len(frame) - 2), label="at")
    flip = data.draw(st.integers(1, 255), label="xor")
    frame[at] ^= flip
    assume(frame[at] != 0)  # a new zero splits the frame: covered by the truncation test
    reader = MessageReader()
    got = reader.feed(bytes(frame) + encode_message(good, 2))
    assert got[-1] == good
    assert reader.error_count >= 1 or got[:-1] != [bad]


@pytest.mark.property
@fuzz
@given(messages, messages, st.data())
def test_a_truncated_frame_is_counted_and_the_next_one_arrives(
    cut: Message, good: Message, data: st.DataObject
) -> None:
    frame = encode_message(cut, 1)
    keep = data.draw(st.integers(1, len(frame) - 2), label="keep")
    reader = MessageReader()
    got = reader.feed(frame[:keep] + b"\x00" + encode_message(good, 2))
    assert got == [good] and reader.error_count == 1


@pytest.mark.property
@fuzz
@given(st.integers(MAX_ENCODED + 1, 3 * MAX_ENCODED), messages)
def test_an_oversized_run_is_dropped_whole(size: int, good: Message) -> None:
    reader = MessageReader()
    got = reader.feed(b"\x41" * size + b"\x00" + encode_message(good, 3))
    assert got == [good] and reader.errors == {"oversized": 1}


def test_a_wrong_crc_is_counted_as_crc() -> None:
    frame = cobs_decode(encode_message(Ack(seq=7), 1)[:-1])
    broken = cobs_encode(frame[:-1] + bytes([frame[-1] ^ 0xFF])) + b"\x00"
    reader = FrameReader()
    assert reader.feed(broken) == [] and reader.errors == {"crc": 1}


def test_wrong_version_unknown_type_and_bad_payload_are_counted() -> None:
    body = bytes((9, 0x20, 0)) + b"\x91\x07"
    wrong_version = cobs_encode(body + crc16(body).to_bytes(2, "big")) + b"\x00"
    reader = MessageReader()
    got = reader.feed(
        wrong_version
        + encode_frame(0x7E, 1, b"\x91\x07")  # no such type
        + encode_frame(0x20, 2, b"\xc1")  # not msgpack
        + encode_frame(0x20, 3, b"\x91\xa1x")  # Ack with a string seq
        + encode_message(Ack(seq=7), 4)
    )
    assert got == [Ack(seq=7)]
    assert reader.errors == {"version": 1, "type": 1, "payload": 2}
    assert reader.last_seq == 4


def test_a_frame_over_the_size_limit_is_refused_when_encoding() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        encode_frame(0x11, 0, b"x" * MAX_BODY)


def test_empty_frames_between_delimiters_are_not_errors() -> None:
    reader = MessageReader()
    assert reader.feed(b"\x00\x00" + encode_message(Ack(seq=1), 0) + b"\x00") == [Ack(seq=1)]
    assert reader.error_count == 0


def test_a_reader_drops_frames_larger_than_its_end_takes() -> None:
    """A display that says ``max_body`` 64 drops a bigger frame whole, then reads on."""
    reader = MessageReader(max_body=64)
    got = reader.feed(
        encode_message(Text(row=1, text="x" * 100), 1) + encode_message(Ack(seq=2), 2)
    )
    assert got == [Ack(seq=2)] and reader.errors == {"oversized": 1}
    with pytest.raises(ValueError, match="64-byte limit"):
        encode_message(Text(row=1, text="x" * 100), 1, max_body=64)
