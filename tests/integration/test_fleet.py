"""Several devices as one fleet over a real nats-server on loopback (issue 16's first part):
each device hears the others, a request to a type goes to whichever device the broker picks
and comes back typed, failures come back as the requester's own errors, and the broker lets
no device in without its enrolled key nor lets one speak for another."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import msgspec
import nats
import nats.errors
import pytest

from appliance.errors import (
    HandlerFailed,
    RequestTimeout,
    TransientError,
    UnknownAgentType,
)
from appliance.events import Event, JobContext
from appliance.fleet import subjects, wire
from appliance.fleet.config import FleetSettings
from appliance.fleet.link import FleetLink
from appliance.runtime import Agent, Context, Runtime, Store, running
from tests.integration.broker import broker, seeds

pytestmark = pytest.mark.integration

JOB = JobContext("job-fleet", "cmd-fleet")
DEVICES = {"alpha": "127.1.0.0/24", "beta": "127.2.0.0/24", "gamma": "127.3.0.0/24"}


class Ask(Event, frozen=True, tag="fleettest.ask"):
    n: int
    fail: bool = False
    sleep_s: float = 0.0


class Secret(Event, frozen=True, tag="fleettest.secret"):
    pass


class Answer(msgspec.Struct, frozen=True):
    device: str
    n: int


class Where(Agent):
    """Says which device answered: the test's window onto the broker's choice."""

    name = "where"
    description = "Answers with the name of the device it runs on."

    def __init__(self, device: str) -> None:
        self.device = device

    async def on_ask(self, event: Ask, ctx: Context[msgspec.Struct]) -> Answer:
        if event.sleep_s:
            await asyncio.sleep(event.sleep_s)
        if event.fail:
            raise ValueError(f"asked to fail on {self.device}")
        return Answer(device=self.device, n=event.n)


class Inside(Agent):
    """An internal type: only its own appliance may send it anything."""

    name = "inside"
    description = "Keeps a secret for its own appliance."
    internal = True

    async def on_secret(self, event: Secret, ctx: Context[msgspec.Struct]) -> str:
        return "leaked"


async def device(stack: AsyncExitStack, root: Path, name: str, seed: bytes, url: str) -> FleetLink:
    store = Store(root / name / "qey.db")
    stack.callback(store.close)
    rt = Runtime(store)
    rt.register(Where, lambda: Where(name))
    rt.register(Inside)
    await stack.enter_async_context(running(rt))
    link = FleetLink(
        FleetSettings(servers=[url], name=name, heartbeat_s=0.2),
        seed,
        rt,
        version="test",
        scope=lambda: [DEVICES.get(name, "127.9.0.0/24")],
        health=lambda: "ok",
        load=lambda: 0,
    )
    await link.start()
    stack.push_async_callback(link.close)
    return link


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[dict[str, FleetLink]]:
    keys = seeds(tmp_path, *DEVICES)
    with broker(tmp_path, keys) as url:
        async with AsyncExitStack() as stack:
            links = {n: await device(stack, tmp_path, n, keys[n], url) for n in DEVICES}
            for link in links.values():
                await link.wait_connected(10)
            await until(lambda: all(len(link.status().devices) == 3 for link in links.values()))
            yield links


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the condition did not come true in time")
        await asyncio.sleep(0.05)


async def test_each_device_hears_every_other_with_its_scope(
    fleet: dict[str, FleetLink],
) -> None:
    status = fleet["alpha"].status()
    assert status.connected and status.name == "alpha" and not status.problem
    assert {d.name: d.scope for d in status.devices} == {n: [s] for n, s in DEVICES.items()}
    assert [d.name for d in status.devices if d.this] == ["alpha"]
    assert all(d.state == "up" and d.types == ["where"] for d in status.devices)


async def test_a_request_to_a_type_is_answered_typed_by_devices_across_the_fleet(
    fleet: dict[str, FleetLink],
) -> None:
    answers = await asyncio.gather(
        *(fleet["alpha"].request("where", Ask(n=i), job=JOB) for i in range(90))
    )
    assert all(type(a) is Answer for a in answers)
    assert [a.n for a in answers] == list(range(90))
    assert {a.device for a in answers} == set(DEVICES)  # the queue group spread them


async def test_failures_come_back_as_the_requesters_own_errors(
    fleet: dict[str, FleetLink],
) -> None:
    with pytest.raises(HandlerFailed, match="asked to fail on"):
        await fleet["beta"].request("where", Ask(n=1, fail=True), job=JOB)
    with pytest.raises(RequestTimeout):
        await fleet["beta"].request("where", Ask(n=2, sleep_s=2), job=JOB, timeout=0.3)
    with pytest.raises(UnknownAgentType, match="no device in the fleet serves 'nobody'"):
        await fleet["beta"].request("nobody", Ask(n=3), job=JOB)
    # the devices keep answering after all of that
    assert (await fleet["beta"].request("where", Ask(n=4), job=JOB)).n == 4


async def test_an_internal_type_is_never_reached_from_another_device(
    fleet: dict[str, FleetLink], tmp_path: Path
) -> None:
    # not served as a queue group at all ...
    with pytest.raises(UnknownAgentType):
        await fleet["alpha"].request("inside", Secret(), job=JOB)
    # ... and a request forged onto a served type's subject is refused at the edge
    nc = await nats.connect(
        fleet["alpha"].settings.servers,
        nkeys_seed_str=(tmp_path / "alpha" / "fleet.nkey").read_text().strip(),
        inbox_prefix=subjects.inbox("alpha"),
    )
    try:
        forged = msgspec.msgpack.encode(
            {
                "event": {"kind": "fleettest.secret"},
                "job": JOB,
                "target": {"to": "type", "agent_type": "inside"},
            }
        )
        msg = await nc.request(subjects.request("where", "alpha"), forged, timeout=5)
        reply = wire.reply_decoder.decode(msg.data)
        assert not reply.ok and reply.error == "EventNotAllowed", reply
        garbage = await nc.request(subjects.request("where", "alpha"), b"\x93junk", timeout=5)
        assert wire.reply_decoder.decode(garbage.data).error == "BadEvent"
    finally:
        await nc.close()


async def test_a_device_without_an_enrolled_key_is_refused(
    fleet: dict[str, FleetLink], tmp_path: Path
) -> None:
    mallory = seeds(tmp_path, "mallory")["mallory"]
    store = Store(tmp_path / "mallory" / "qey.db")
    rt = Runtime(store)
    rt.register(Where, lambda: Where("mallory"))
    async with running(rt):
        link = FleetLink(
            FleetSettings(servers=fleet["alpha"].settings.servers, name="mallory"),
            mallory,
            rt,
            version="test",
            scope=lambda: [],
            health=lambda: "ok",
            load=lambda: 0,
        )
        await link.start()
        try:
            await until(lambda: "uthorization" in link.status().problem)
            assert not link.status().connected
            with pytest.raises(TransientError, match="not reachable"):
                await link.request("where", Ask(n=1), job=JOB)
        finally:
            await link.close()
    store.close()
    assert "mallory" not in {d.name for d in fleet["alpha"].status().devices}


async def test_no_device_can_speak_for_another_or_read_its_replies(
    fleet: dict[str, FleetLink], tmp_path: Path
) -> None:
    errors: list[str] = []

    async def on_error(err: Exception) -> None:
        errors.append(str(err))

    nc = await nats.connect(
        fleet["alpha"].settings.servers,
        nkeys_seed_str=(tmp_path / "alpha" / "fleet.nkey").read_text().strip(),
        inbox_prefix=subjects.inbox("alpha"),
        error_cb=on_error,
    )
    try:
        forged = wire.Heartbeat(
            version="forged", health="ok", scope=["0.0.0.0/0"], types=[], load=0, started_at=0
        )
        await nc.publish(subjects.heartbeat("beta"), wire.encode(forged))
        await nc.publish(subjects.request("where", "beta"), b"")
        await nc.subscribe(f"{subjects.inbox('beta')}.>")
        await nc.flush()
        await until(lambda: len(errors) >= 3)
        assert all("ermissions" in e for e in errors), errors
        await asyncio.sleep(0.6)  # three of beta's own heartbeats
        beta = next(d for d in fleet["gamma"].status().devices if d.name == "beta")
        assert beta.version == "test" and beta.scope == [DEVICES["beta"]]
    finally:
        await nc.close()
