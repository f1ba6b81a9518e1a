"""What fits in a display frame, for any text and any claim a display makes: text cut by
bytes at a character, Names split into frames that fit, Capabilities held to sane bounds."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.hal.display.budget import (
    MIN_BODY,
    limits_of,
    shown,
    split_names,
)
from appliance.hal.display.budget import (
    cut as cut_text,
)
from appliance.hal.display.framing import MAX_BODY
from appliance.hal.display.messages import (
    AgentLine,
    Capabilities,
    Frame,
    Names,
    Status,
    encode_message,
)
from appliance.hal.display.screen import DEFAULT_CAPABILITIES

pytestmark = pytest.mark.unit

u16 = st.integers(0, 0xFFFF)
names_text = st.text(max_size=60)


@pytest.mark.property
@given(st.text(max_size=200), st.integers(0, 300))
def test_text_is_cut_by_bytes_at_a_character(text: str, max_bytes: int) -> None:
    got = cut_text(text, max_bytes)
    clean = shown(text)
    assert clean.startswith(got)
    assert len(got.encode()) <= max_bytes
    if got != clean:  # as much as fits: the next character would not
        assert len(clean[: len(got) + 1].encode()) > max_bytes


def test_emoji_are_cut_whole_and_controls_are_shown_not_obeyed() -> None:
    assert cut_text("🔥" * 10, 9) == "🔥🔥"
    assert cut_text("ok\x1b[2J\r\n\u202eevil", 100) == "ok\ufffd[2J\ufffd\ufffd\ufffdevil"
    assert cut_text("\ud800x", 10) == "\ufffdx"  # a lone surrogate, which UTF-8 cannot encode


@pytest.mark.property
@settings(max_examples=60, deadline=None)
@given(
    st.booleans(),
    st.lists(
        st.tuples(st.integers(1, 255), names_text.map(lambda t: cut_text(t, 48))), max_size=60
    ),
    st.lists(
        st.tuples(st.integers(1, 255), names_text.map(lambda t: cut_text(t, 48))), max_size=60
    ),
    st.lists(
        st.tuples(u16, st.booleans(), names_text.map(lambda t: cut_text(t, 96, 48))), max_size=40
    ),
    st.integers(MIN_BODY, MAX_BODY),
)
def test_names_are_split_into_frames_that_fit_and_lose_nothing(
    reset: bool,
    agents: list[tuple[int, str]],
    events: list[tuple[int, str]],
    jobs: list[tuple[int, bool, str]],
    max_body: int,
) -> None:
    names = Names(reset=reset, agents=agents, events=events, jobs=jobs)
    parts = split_names(names, max_body)
    for part in parts:
        encode_message(part, 1, max_body=max_body)  # FrameTooLarge if it did not fit
    assert [p.reset for p in parts] == [reset] + [False] * (len(parts) - 1)
    assert [a for p in parts for a in p.agents] == agents
    assert [e for p in parts for e in p.events] == events
    assert [j for p in parts for j in p.jobs] == jobs


@pytest.mark.property
@given(u16, u16)
def test_any_claimed_size_gives_frames_the_protocol_can_carry(lines: int, max_body: int) -> None:
    caps: Capabilities = Capabilities(
        name="d", firmware="f", width=480, height=320, lines=lines, max_body=max_body
    )
    limits = limits_of(caps)
    assert MIN_BODY <= limits.max_body <= MAX_BODY
    assert 1 <= limits.lines <= max(lines, 1)
    if MIN_BODY <= max_body <= MAX_BODY:
        assert limits.max_body == max_body  # a sane claim is honoured as it is
    widest = AgentLine(
        slot=0xFFFF,
        parent=0xFFFF,
        job=0xFFFF,
        agent=255,
        event=255,
        status=Status.CRASHED,
        hits=255,
    )
    frame = Frame(t_ms=2**32 - 1, total=0xFFFF, lines=[widest] * limits.lines)
    encode_message(frame, 1, max_body=limits.max_body)  # FrameTooLarge if it did not fit


def test_the_emulators_own_claim_is_taken_as_it_is() -> None:
    assert limits_of(DEFAULT_CAPABILITIES) == (MAX_BODY, DEFAULT_CAPABILITIES.lines)
