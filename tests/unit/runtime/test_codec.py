from __future__ import annotations

import msgspec
import pytest

from appliance.errors import BadEvent, EventNotAccepted
from appliance.events import Envelope, JobContext
from appliance.runtime import Runtime
from tests.support import Add, Get, Unhandled

pytestmark = pytest.mark.unit


async def test_an_envelope_round_trips_through_the_one_decoder(
    runtime: Runtime, job: JobContext
) -> None:
    ref = runtime.spawn("counter", job, "count")
    wire = msgspec.json.encode(Envelope(event=Add(by=4), job=job, target=ref, sender="cli"))
    env = runtime.decode_envelope(wire)
    assert env.event == Add(by=4)
    runtime.deliver(env)
    assert await runtime.request(ref, Get(), job=job) == 4


@pytest.mark.parametrize(
    "wire",
    [
        b"not json",
        b"{}",
        b'{"event": {"kind": "no.such.kind"}, "job": {"job_id": "j", "command_id": "c"},'
        b' "target": {"to": "task", "agent_type": "counter", "task_id": "t"}}',
        b'{"event": {"kind": "test.add", "by": "three"}, "job": {"job_id": "j", "command_id": "c"},'
        b' "target": {"to": "task", "agent_type": "counter", "task_id": "t"}}',
    ],
)
def test_bad_bytes_at_an_edge_are_a_clear_bad_event(runtime: Runtime, wire: bytes) -> None:
    with pytest.raises(BadEvent):
        runtime.decode_envelope(wire)


async def test_a_decoded_event_the_target_does_not_accept_is_refused(
    runtime: Runtime, job: JobContext
) -> None:
    ref = runtime.spawn("echo", job, "x")
    wire = msgspec.json.encode(Envelope(event=Add(), job=job, target=ref))
    with pytest.raises(EventNotAccepted, match=r"'echo' does not accept 'test\.add'"):
        runtime.deliver(runtime.decode_envelope(wire))


def test_only_events_some_registered_type_accepts_decode(runtime: Runtime) -> None:
    assert runtime.decode_event(b'{"kind": "test.get"}') == Get()
    with pytest.raises(BadEvent, match=r"test\.unhandled"):
        runtime.decode_event(msgspec.json.encode(Unhandled()))
