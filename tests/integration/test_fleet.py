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

from appliance import inventory
from appliance.errors import (
    BadCommand,
    EventNotAllowed,
    HandlerFailed,
    RequestTimeout,
    TransientError,
    UnknownAgentType,
    UnknownJob,
)
from appliance.events import Event, JobContext, Started, TopicRef, TypeRef
from appliance.fleet import placing, subjects, typecards, wire
from appliance.fleet.config import FleetSettings
from appliance.fleet.link import FleetLink
from appliance.runtime import Agent, Context, Runtime, Store, running
from appliance.runtime.fanout import FanOut
from appliance.scope import Scope
from tests.integration.broker import broker, cluster, free_port, seeds

pytestmark = pytest.mark.integration

JOB = JobContext("job-fleet", "cmd-fleet")
LOST_AFTER_S = 1.0
DEVICES = {"alpha": "127.1.0.0/24", "beta": "127.2.0.0/24", "gamma": "127.3.0.0/24"}
# beta and gamma both reach 127.2.0.0/24: where a task placed on beta goes when beta is lost
SCOPES = {**{n: [s] for n, s in DEVICES.items()}, "gamma": ["127.2.0.0/24", "127.3.0.0/24"]}


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


class Probe(Event, frozen=True, tag="fleettest.probe"):
    target: str
    sleep_s: float = 0.0


class Prober(Agent):
    """Work that must run where its target is reachable (``reach``): says where it ran."""

    name = "prober"
    description = "Probes a target from a device whose scope covers it."
    reach = "target"

    def __init__(self, device: str) -> None:
        self.device = device
        self.scope = Scope(SCOPES.get(device, ["127.9.0.0/24"]))

    async def on_probe(self, event: Probe, ctx: Context[msgspec.Struct]) -> Answer:
        self.scope.check(event.target)  # as every agent that touches a target does
        await asyncio.sleep(event.sleep_s)
        return Answer(device=self.device, n=int(event.target.rsplit(".", 1)[1]))


class Survey(Event, frozen=True, tag="fleettest.survey"):
    targets: list[str]
    sleep_s: float = 0.0


class Surveyor(Agent):
    """A parent that fans its targets out to probers: the coordinator's shape."""

    name = "surveyor"
    description = "Fans a survey out to probers, one per target."
    handler_timeout_s = 60.0

    async def on_survey(self, event: Survey, ctx: Context[msgspec.Struct]) -> list[str]:
        outcomes = await ctx.fan_out(
            "prober", [(t, Probe(target=t, sleep_s=event.sleep_s)) for t in event.targets]
        )
        return [
            f"{o.result_as(Answer).device}:{o.result_as(Answer).n}" if o.ok else o.detail
            for o in outcomes
        ]


class Note(Event, frozen=True, tag="fleettest.note"):
    n: int


NOTED: list[tuple[str, str | None, int]] = []  # (device, sender, n): what every Tally took


class Tally(Agent):
    """Takes one-way notes and keeps who took each, from whom."""

    name = "tally"
    description = "Keeps the notes sent to it."

    def __init__(self, device: str) -> None:
        self.device = device

    async def on_note(self, event: Note, ctx: Context[msgspec.Struct]) -> None:
        NOTED.append((self.device, ctx.envelope.sender, event.n))


class Keeper(Where):
    """A type only beta runs: the others ask it without knowing its result type."""

    name = "keeper"
    description = "Answers like where, on beta alone, and keeps notes."

    async def on_note(self, event: Note, ctx: Context[msgspec.Struct]) -> None:
        NOTED.append((self.device, ctx.envelope.sender, event.n))

    async def on_start(self, event: Started, ctx: Context[msgspec.Struct]) -> str:
        if event.objective.startswith("refuse"):
            raise BadCommand(f"keeper does not take {event.objective!r}")
        return f"kept {event.objective!r} on {self.device}"


class Anywhere(Where):
    """Answers an Ask from what it carries alone: it may run where there is room."""

    name = "anywhere"
    description = "Answers like where, on any device with room."
    anywhere = (Ask,)

    async def on_probe(self, event: Probe, ctx: Context[msgspec.Struct]) -> Answer:
        return Answer(device=self.device, n=0)


LOADS: dict[str, int] = {}  # each device's load as its link says it


class Listener(Tally):
    """Keeps what comes on a fleet-wide topic and on one of this device's own."""

    name = "listener"
    description = "Keeps the notes on #fleet.alerts and #alerts."
    topics = ("fleet.alerts", "alerts")


class Inside(Agent):
    """An internal type: only its own appliance may send it anything."""

    name = "inside"
    description = "Keeps a secret for its own appliance."
    internal = True

    async def on_secret(self, event: Secret, ctx: Context[msgspec.Struct]) -> str:
        return "leaked"


async def device(
    stack: AsyncExitStack,
    root: Path,
    name: str,
    seed: bytes,
    servers: list[str],
    lost_after_s: float = LOST_AFTER_S,
) -> FleetLink:
    store = Store(root / name / "qey.db")
    stack.callback(store.close)
    rt = Runtime(store)
    rt.register(Where, lambda: Where(name))
    rt.register(Prober, lambda: Prober(name))
    rt.register(Surveyor)
    rt.register(Inside)
    rt.register(Tally, lambda: Tally(name))
    rt.register(Listener, lambda: Listener(name))
    rt.register(Anywhere, lambda: Anywhere(name))
    if name == "beta":
        rt.register(Keeper, lambda: Keeper(name))
    await stack.enter_async_context(running(rt))
    link = FleetLink(
        FleetSettings(servers=servers, name=name, heartbeat_s=0.2, lost_after_s=lost_after_s),
        seed,
        rt,
        version="test",
        scope=lambda: SCOPES.get(name, ["127.9.0.0/24"]),
        health=lambda: "ok",
        load=lambda: LOADS.get(name, 0),
    )
    await link.start()
    stack.push_async_callback(link.close)
    return link


async def join(
    stack: AsyncExitStack,
    root: Path,
    keys: dict[str, bytes],
    *servers: str,
    lost_after_s: float = LOST_AFTER_S,
) -> dict[str, FleetLink]:
    """The three devices, each hearing the other two."""
    links = {n: await device(stack, root, n, keys[n], list(servers), lost_after_s) for n in DEVICES}
    for link in links.values():
        await link.wait_connected(10)
    await until(lambda: all(len(link.status().devices) == 3 for link in links.values()))
    return links


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[dict[str, FleetLink]]:
    keys = seeds(tmp_path, *DEVICES)
    with broker(tmp_path, keys) as url:
        async with AsyncExitStack() as stack:
            yield await join(stack, tmp_path, keys, url)


# an event for the internal type, forged onto a served type's subject
FORGED = msgspec.msgpack.encode(
    {
        "event": {"kind": "fleettest.secret"},
        "job": JOB,
        "target": {"to": "type", "agent_type": "inside"},
    }
)


async def as_alpha(fleet: dict[str, FleetLink], tmp_path: Path) -> nats.NATS:
    """A raw client with alpha's key, to send what alpha's link never would."""
    return await nats.connect(
        fleet["alpha"].settings.servers,
        nkeys_seed_str=(tmp_path / "alpha" / "fleet.nkey").read_text().strip(),
        inbox_prefix=subjects.inbox("alpha"),
    )


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
    assert {d.name: d.scope for d in status.devices} == SCOPES
    assert [d.name for d in status.devices if d.this] == ["alpha"]
    assert all(d.state == "up" for d in status.devices)
    types = {d.name: d.types for d in status.devices}
    everywhere = ["anywhere", "listener", "prober", "surveyor", "tally", "where"]
    assert types["beta"] == sorted([*everywhere, "keeper"])
    assert types["alpha"] == types["gamma"] == everywhere


async def test_a_request_to_a_type_is_answered_typed_by_devices_across_the_fleet(
    fleet: dict[str, FleetLink],
) -> None:
    answers = await asyncio.gather(
        *(fleet["alpha"].request("where", Ask(n=i), job=JOB) for i in range(90))
    )
    assert all(type(a) is Answer for a in answers)
    assert [a.n for a in answers] == list(range(90))
    assert {a.device for a in answers} == set(DEVICES)  # the queue group spread them


async def test_a_type_only_another_device_runs_answers_as_plain_data(
    fleet: dict[str, FleetLink],
) -> None:
    await until(lambda: any("keeper" in p.heartbeat.types for p in fleet["alpha"].peers_up()))
    answer = await fleet["alpha"].request("keeper", Ask(n=5), job=JOB)
    assert answer == {"device": "beta", "n": 5}
    typed = await fleet["beta"].request("keeper", Ask(n=6), job=JOB)  # beta knows its type
    assert typed == Answer(device="beta", n=6)


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


async def test_one_way_events_to_a_type_spread_over_the_devices_that_serve_it(
    fleet: dict[str, FleetLink], tmp_path: Path
) -> None:
    NOTED.clear()
    for i in range(90):
        await fleet["alpha"].send("tally", Note(n=i), job=JOB)
    await until(lambda: len(NOTED) == 90)
    assert sorted(n for _, _, n in NOTED) == list(range(90))
    assert {device for device, _, _ in NOTED} == set(DEVICES)  # the queue group spread them
    assert {sender for _, sender, _ in NOTED} == {"alpha"}
    with pytest.raises(UnknownAgentType, match="no device in the fleet serves 'nobody'"):
        await fleet["alpha"].send("nobody", Note(n=0), job=JOB)

    # what a device may not send, or cannot decode, is refused at the edge and counted
    nc = await as_alpha(fleet, tmp_path)
    try:
        for _ in range(3):  # one to each device, whichever the broker picks
            await nc.publish(subjects.event("tally", "alpha"), FORGED)
            await nc.publish(subjects.event("tally", "alpha"), b"\x93junk")
        await nc.flush()
    finally:
        await nc.close()
    await until(lambda: sum(link.events_refused for link in fleet.values()) == 6)
    NOTED.clear()
    await fleet["beta"].send("tally", Note(n=1000), job=JOB)
    await until(lambda: len(NOTED) == 1)
    assert NOTED[0][1:] == ("beta", 1000)


async def test_an_agent_reaches_a_type_only_another_device_runs_as_if_it_ran_here(
    fleet: dict[str, FleetLink],
) -> None:
    """What a handler's ctx.request and ctx.send do (they are the runtime's): a type this
    device does not run goes to a device that does; a type nobody runs is refused at once."""
    NOTED.clear()
    alpha = runtime_of(fleet["alpha"])
    await until(lambda: fleet["alpha"].serves("keeper"))
    assert await alpha.request(TypeRef("keeper"), Ask(n=8), job=JOB) == {"device": "beta", "n": 8}
    await alpha.send(TypeRef("keeper"), Note(n=41), job=JOB)
    alpha.publish_nowait(TypeRef("keeper"), Note(n=42), job=JOB)
    await until(lambda: len(NOTED) == 2)
    assert sorted(NOTED) == [("beta", "alpha", 41), ("beta", "alpha", 42)]
    with pytest.raises(UnknownAgentType):
        alpha.publish_nowait(TypeRef("nobody"), Note(n=1), job=JOB)
    with pytest.raises(UnknownAgentType):
        await alpha.send(TypeRef("nobody"), Note(n=1), job=JOB)
    with pytest.raises(UnknownAgentType):
        await alpha.request(TypeRef("nobody"), Ask(n=1), job=JOB)
    # a type this device runs stays here, though others run it too
    assert (await alpha.request(TypeRef("where"), Ask(n=9), job=JOB)).device == "alpha"


async def test_a_fleet_wide_topic_reaches_every_devices_subscribers_once_and_a_local_one_stays(
    fleet: dict[str, FleetLink], tmp_path: Path
) -> None:
    NOTED.clear()
    for link in fleet.values():
        runtime_of(link).spawn("listener", JOB, "listen")
    alpha = runtime_of(fleet["alpha"])
    await alpha.send(TopicRef("fleet.alerts"), Note(n=1), job=JOB)
    alpha.publish_nowait(TopicRef("fleet.alerts"), Note(n=2), job=JOB)
    await alpha.send(TopicRef("alerts"), Note(n=3), job=JOB)  # this device's own topic
    await until(lambda: len(NOTED) >= 7)
    await asyncio.sleep(0.5)  # an echo carried round again would have come by now
    # here from the runtime itself (no sender); elsewhere from alpha, as the subject says
    assert sorted(NOTED, key=str) == sorted(
        [("alpha", None, 1), ("alpha", None, 2), ("alpha", None, 3)]
        + [(d, "alpha", n) for d in ("beta", "gamma") for n in (1, 2)],
        key=str,
    )
    with pytest.raises(EventNotAllowed, match="one word"):
        await alpha.send(TopicRef("fleet.a.b"), Note(n=4), job=JOB)

    # a topic's event as another device, or of a kind no client may send, is refused
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
        NOTED.clear()
        await nc.publish(subjects.topic("alerts", "beta"), b"")
        await nc.publish(subjects.topic("alerts", "alpha"), FORGED)
        await nc.flush()
        await until(lambda: len(errors) >= 1)
        assert all("ermissions" in e for e in errors), errors
        await until(lambda: fleet["beta"].events_refused + fleet["gamma"].events_refused >= 2)
        assert NOTED == []
    finally:
        await nc.close()


async def test_a_device_answers_for_the_devices_its_scans_found(
    fleet: dict[str, FleetLink],
) -> None:
    """What the owner's pages in a fleet list: every other device's inventory, asked at once."""
    beta = runtime_of(fleet["beta"])
    inventory.record_scan(
        beta.knowledge,
        job_id="job-beta",
        at=beta.clock.now(),
        probed={"127.2.0.7", "127.2.0.8"},
        found={"127.2.0.7": [23]},
        findings=[],
    )
    got = await fleet["alpha"].inventories()
    assert sorted(got.devices) == ["beta", "gamma"] and not got.unanswered
    assert [(d.address, d.open_ports) for d in got.devices["beta"]] == [("127.2.0.7", [23])]
    assert got.devices["gamma"] == []


async def test_an_internal_type_is_never_reached_from_another_device(
    fleet: dict[str, FleetLink], tmp_path: Path
) -> None:
    # not served as a queue group at all ...
    with pytest.raises(UnknownAgentType):
        await fleet["alpha"].request("inside", Secret(), job=JOB)
    # ... and a request forged onto a served type's subject is refused at the edge
    nc = await as_alpha(fleet, tmp_path)
    try:
        msg = await nc.request(subjects.request("where", "alpha"), FORGED, timeout=5)
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


def runtime_of(link: FleetLink) -> Runtime:
    return link._runtime


async def test_work_runs_on_a_device_that_reaches_its_target_and_the_graph_says_which(
    fleet: dict[str, FleetLink],
) -> None:
    alpha = runtime_of(fleet["alpha"])
    job = alpha.open_job("survey three segments")
    root = alpha.spawn(
        "surveyor",
        job,
        "survey",
        start=Survey(targets=["127.1.0.5", "127.2.0.7", "127.3.0.9", "127.4.0.1"]),
    )
    outcome = await asyncio.wait_for(alpha.wait_task(root), 20)
    assert outcome.ok, outcome
    here, beta, gamma, nowhere = outcome.result
    assert (here, beta, gamma) == ("alpha:5", "beta:7", "gamma:9")  # beta before gamma: load tie
    assert "outside" in nowhere  # no device reaches it: refused here, by the type's own check
    await alpha.commit()
    tree = await alpha.graph.tree(job.job_id)
    placed = {n.objective: (n.device, n.status) for n in tree.tasks if n.agent_type == "prober"}
    assert placed == {
        "127.1.0.5": (None, "done"),
        "127.2.0.7": ("beta", "done"),
        "127.3.0.9": ("gamma", "done"),
        "127.4.0.1": (None, "failed"),
    }
    # the device that ran it holds the same task, under the placing task, in its own graph
    beta_rt = runtime_of(fleet["beta"])
    await beta_rt.commit()
    theirs = await beta_rt.graph.tree(job.job_id)
    mine = next(n for n in tree.tasks if n.objective == "127.2.0.7")
    node = next(n for n in theirs.tasks if n.task_id == mine.task_id)
    assert (node.parent_task_id, node.status, node.device) == (root.task_id, "done", None)
    assert theirs.command == "survey three segments"  # the command, whatever came first
    # its task done, the job's instances on beta retire: a receiver does not grow per job
    await until(lambda: not beta_rt.instances("prober"))


async def test_work_for_a_type_only_another_device_runs_is_placed_there(
    fleet: dict[str, FleetLink],
) -> None:
    alpha = runtime_of(fleet["alpha"])
    await until(lambda: fleet["alpha"].serves("keeper"))
    job = alpha.open_job("ask the keeper")
    fan = FanOut(alpha, job, caller=None)
    [outcome] = await asyncio.wait_for(fan.run("keeper", [("ask", Ask(n=3))]), 20)
    assert outcome.ok, outcome
    assert outcome.result_as(Answer) == Answer(device="beta", n=3)
    await alpha.commit()
    tree = await alpha.graph.tree(job.job_id)
    assert [(n.agent_type, n.device, n.status) for n in tree.tasks] == [("keeper", "beta", "done")]
    with pytest.raises(UnknownAgentType):  # nobody runs it: refused here, as before
        await fan.run("nobody", [("ask", Ask(n=4))])


async def test_a_command_for_a_type_only_another_device_runs_is_its_job_there(
    fleet: dict[str, FleetLink],
) -> None:
    """``qey submit --agent keeper`` on alpha: the job is alpha's, its root runs on beta,
    which makes the command into keeper's start event itself."""
    alpha = runtime_of(fleet["alpha"])
    await until(lambda: fleet["alpha"].serves("keeper"))
    job, root = alpha.submit("keep the logs", "keeper")
    outcome = await asyncio.wait_for(alpha.wait_task(root), 20)
    assert (outcome.status, outcome.result) == ("done", "kept 'keep the logs' on beta")
    tree = await alpha.graph.tree(job.job_id)
    assert tree.command == "keep the logs"
    assert [(n.agent_type, n.device, n.parent_task_id) for n in tree.tasks] == [
        ("keeper", "beta", None)
    ]
    # what keeper's own handler refuses comes back as the task's failure, saying why
    job, root = alpha.submit("refuse this", "keeper")
    failed = await asyncio.wait_for(alpha.wait_task(root), 20)
    assert failed.status == "failed" and "does not take 'refuse this'" in failed.detail, failed
    with pytest.raises(UnknownAgentType):
        alpha.submit("keep it", "nobody")


class Archivist(Agent):
    """A type beta comes to run later (an extension installed while it runs)."""

    name = "archivist"
    description = "Archives the configuration of network devices."
    examples = ("archive the router's configuration",)

    async def on_start(self, event: Started, ctx: Context[msgspec.Struct]) -> str:
        return "archived"


async def test_a_device_learns_the_routable_types_only_others_run_and_forgets_a_lost_ones(
    fleet: dict[str, FleetLink],
) -> None:
    """What a router needs of a type it does not run: its card, from the device that does.
    A type run here too is this device's own; an internal one never leaves its device."""
    told: list[tuple[list[str], list[str]]] = []
    fleet["alpha"].types.on_change(
        lambda came, went: told.append(([c.name for c in came], [*went]))
    )
    await until(lambda: fleet["alpha"].types.names == ["keeper"])
    card = fleet["alpha"].types.card("keeper")
    assert card is not None and card.description == Keeper.description
    assert told == [(["keeper"], [])]
    assert fleet["beta"].types.names == [] and fleet["gamma"].types.names == ["keeper"]
    # beta comes to run another type: its heartbeat's digest changes, and alpha asks again
    runtime_of(fleet["beta"]).register(Archivist)
    await until(lambda: fleet["alpha"].types.names == ["archivist", "keeper"])
    assert told[-1] == (["archivist"], [])
    # alpha comes to run it itself: no longer routed away, and its own phrases stay
    runtime_of(fleet["alpha"]).register(Archivist)
    await until(lambda: fleet["alpha"].types.names == ["keeper"])
    assert told[-1] == (["archivist"], [])  # nothing said: the router holds alpha's own
    await fleet["beta"].close()  # beta drops off: what only it ran is routed to no more
    await until(lambda: fleet["alpha"].types.names == [])
    assert told[-1] == ([], ["keeper"])


def heard_load(link: FleetLink, device: str) -> int | None:
    peer = link.peer(device)
    return peer.heartbeat.load if peer is not None else None


async def test_a_device_answers_for_the_cards_asked_and_a_bad_question_with_none(
    fleet: dict[str, FleetLink], tmp_path: Path
) -> None:
    nc = await as_alpha(fleet, tmp_path)
    try:

        async def ask(payload: bytes) -> list[str]:
            answer = await nc.request(subjects.types("beta", "alpha"), payload, timeout=5)
            cards, problems = typecards.decode(answer.data)
            assert problems == []
            return [c.name for c in cards]

        assert await ask(msgspec.msgpack.encode(["keeper", "nobody"])) == ["keeper"]
        assert "keeper" in await ask(b"") and "where" in await ask(b"")  # no names: all
        assert await ask(b"\xc1 not msgpack") == []
        assert await ask(msgspec.msgpack.encode({"keeper": 1})) == []
    finally:
        await nc.close()


async def test_work_that_may_run_anywhere_goes_to_a_less_busy_device_only_when_busy(
    fleet: dict[str, FleetLink],
) -> None:
    alpha = runtime_of(fleet["alpha"])
    job = alpha.open_job("ask anywhere")
    fan = FanOut(alpha, job, caller=None)

    async def ran_on(event: Event) -> str:
        [outcome] = await asyncio.wait_for(fan.run("anywhere", [("ask", event)]), 20)
        assert outcome.ok, outcome
        return outcome.result_as(Answer).device

    LOADS.clear()
    try:
        assert await ran_on(Ask(n=1)) == "alpha"  # not busy: here
        LOADS.update(alpha=placing.BUSY, beta=40, gamma=20)
        await until(lambda: heard_load(fleet["alpha"], "gamma") == 20)
        assert await ran_on(Ask(n=2)) == "gamma"  # the least busy, under half alpha's load
        assert await ran_on(Probe(target="127.1.0.9")) == "alpha"  # not an event it may move
        LOADS.update(gamma=placing.BUSY // 2)
        await until(lambda: heard_load(fleet["alpha"], "gamma") == placing.BUSY // 2)
        assert await ran_on(Ask(n=3)) == "alpha"  # beta 40 and gamma 32: not much less busy
    finally:
        LOADS.clear()
    await alpha.commit()
    tree = await alpha.graph.tree(job.job_id)
    assert [n.device for n in tree.tasks] == [None, "gamma", None, None]


async def test_every_device_holds_the_whole_of_a_job_that_spans_devices(
    fleet: dict[str, FleetLink],
) -> None:
    """Through the graph's stream: beta and gamma see alpha's job whole, each task marked
    with the device that ran it, as alpha does; a job that stays on alpha is not shared."""
    alpha = runtime_of(fleet["alpha"])
    alone = alpha.open_job("stays here")
    alpha.spawn("surveyor", alone, "survey", start=Survey(targets=["127.1.0.5"]))
    job = alpha.open_job("survey two segments")
    root = alpha.spawn(
        "surveyor", job, "survey", start=Survey(targets=["127.1.0.5", "127.2.0.7", "127.3.0.9"])
    )
    assert (await asyncio.wait_for(alpha.wait_task(root), 20)).ok
    await alpha.commit()
    whole = await alpha.graph.tree(job.job_id)
    expected = sorted((n.task_id, n.device, n.status) for n in whole.tasks)
    assert [d for _t, d, _s in expected].count(None) == 2  # the surveyor and alpha's probe

    async def seen_by(name: str) -> list[tuple[str, str | None, str]]:
        rt = runtime_of(fleet[name])
        await rt.commit()
        try:
            tree = await rt.graph.tree(job.job_id)
        except UnknownJob:
            return []
        return sorted((n.task_id, n.device, n.status) for n in tree.tasks)

    # who ran each task, by name; in a device's own graph, its own tasks carry no device
    mine = [(t, d or "alpha", s) for t, d, s in expected]
    for name in ("beta", "gamma"):
        deadline = asyncio.get_running_loop().time() + 10
        while (seen := await seen_by(name)) != [
            (t, None if d == name else d, s) for t, d, s in mine
        ]:
            assert asyncio.get_running_loop().time() < deadline, (name, seen, mine)
            await asyncio.sleep(0.1)
        tree = await runtime_of(fleet[name]).graph.tree(job.job_id)
        assert tree.command == "survey two segments"
        # trace-back (qey tasks chain) from the probe gamma ran, on any device, to the command
        gammas = [n.task_id for n in whole.tasks if n.device == "gamma"]
        graph = fleet[name].status().graph
        assert graph.available and graph.received >= len(mine) - 1 and not graph.dropped
        traced, chain = await runtime_of(fleet[name]).graph.chain(gammas[0])
        assert [n.task_id for n in chain] == [gammas[0], root.task_id]
        assert traced.command == "survey two segments"
        with pytest.raises(UnknownJob):
            await runtime_of(fleet[name]).graph.tree(alone.job_id)


async def test_a_device_lost_mid_task_has_its_task_placed_again_on_another(
    fleet: dict[str, FleetLink],
) -> None:
    alpha = runtime_of(fleet["alpha"])
    job = alpha.open_job("survey while beta dies")
    root = alpha.spawn("surveyor", job, "survey", start=Survey(targets=["127.2.0.7"], sleep_s=3.0))
    await until(lambda: bool(runtime_of(fleet["beta"]).instances("prober")))
    await fleet["beta"].close()  # beta drops off the broker: its heartbeats stop
    outcome = await asyncio.wait_for(alpha.wait_task(root), 30)
    assert outcome.result == ["gamma:7"]
    await alpha.commit()
    tree = await alpha.graph.tree(job.job_id)
    tried = [(n.device, n.status, n.detail) for n in tree.tasks if n.agent_type == "prober"]
    assert tried[0][:2] == ("beta", "failed") and "lost mid-task; placed again" in tried[0][2]
    assert tried[1][:2] == ("gamma", "done")
    assert {n.parent_task_id for n in tree.tasks if n.agent_type == "prober"} == {root.task_id}


async def test_a_placement_is_held_to_the_receivers_rules(
    fleet: dict[str, FleetLink], tmp_path: Path
) -> None:
    """Forged placements onto beta: an internal type, a target beta does not reach, junk."""
    nc = await nats.connect(
        fleet["alpha"].settings.servers,
        nkeys_seed_str=(tmp_path / "alpha" / "fleet.nkey").read_text().strip(),
        inbox_prefix=subjects.inbox("alpha"),
    )

    def placement(agent_type: str, start: Event) -> bytes:
        return wire.encode(
            wire.Placement(
                job=JOB,
                command="forged",
                task_id="task-forged",
                agent_type=agent_type,
                objective="x",
                parent=None,
                start=msgspec.Raw(wire.encode(start)),
            )
        )

    try:
        for payload, error in (
            (placement("inside", Secret()), "InternalAgentType"),
            (placement("prober", Probe(target="127.3.0.9")), "OutOfScope"),
            (placement("prober", Secret()), "EventNotAllowed"),
            (b"\x93junk", "BadEvent"),
        ):
            msg = await nc.request(subjects.place("beta", "alpha"), payload, timeout=5)
            reply = wire.reply_decoder.decode(msg.data)
            assert not reply.ok and reply.error == error, reply
    finally:
        await nc.close()
    assert not runtime_of(fleet["beta"]).instances("prober")


async def test_a_broker_restart_mid_job_loses_nothing_and_moves_nothing(tmp_path: Path) -> None:
    """The broker goes away while beta runs a task alpha placed: nobody is judged lost for
    it (alpha was cut off too), every device reconnects, and beta's end reaches alpha."""
    keys = seeds(tmp_path, *DEVICES)
    port = free_port()
    async with AsyncExitStack() as stack:
        with broker(tmp_path, keys, port=port) as url:
            links = await join(stack, tmp_path, keys, url)
            alpha = runtime_of(links["alpha"])
            job = alpha.open_job("survey across a broker restart")
            root = alpha.spawn(
                "surveyor", job, "survey", start=Survey(targets=["127.2.0.7"], sleep_s=4.0)
            )
            await until(lambda: bool(runtime_of(links["beta"]).instances("prober")))
        await until(lambda: not links["alpha"].connected)
        assert {d.state for d in links["alpha"].status().devices} == {"unknown"}
        await asyncio.sleep(2.0)  # longer than lost_after_s: still nobody is lost
        with broker(tmp_path, keys, port=port):
            outcome = await asyncio.wait_for(alpha.wait_task(root), 30)
            assert outcome.result == ["beta:7"]
            await alpha.commit()
            tree = await alpha.graph.tree(job.job_id)
            probers = [(n.device, n.status) for n in tree.tasks if n.agent_type == "prober"]
            assert probers == [("beta", "done")]
            await until(lambda: all(link.connected for link in links.values()))


async def test_a_three_node_broker_cluster_loses_a_node_and_the_fleet_only_reconnects(
    tmp_path: Path,
) -> None:
    keys = seeds(tmp_path, *DEVICES)
    with cluster(tmp_path, keys) as nodes:
        async with AsyncExitStack() as stack:
            # a lost node costs its devices one reconnection (about a second): the default
            # lost_after_s (10 s) is far above it; 3 s here
            links = await join(stack, tmp_path, keys, *(n.url for n in nodes), lost_after_s=3.0)
            alpha = links["alpha"]
            server = alpha.status().server
            [alphas] = [n for n in nodes if n.url == f"nats://{server}"]
            seen_lost: set[str] = set()

            async def watch() -> None:
                while True:
                    for link in links.values():
                        seen_lost.update(
                            f"{link.name} saw {d.name} lost"
                            for d in link.status().devices
                            if d.state == "lost"
                        )
                    await asyncio.sleep(0.05)

            watcher = asyncio.create_task(watch())
            alphas.kill()  # the node alpha is connected to
            # to another node, by itself (so fast that the gap is rarely seen)
            await until(lambda: alpha.connected and alpha.status().server not in ("", server))
            await until(lambda: all(link.connected for link in links.values()))
            answers = await asyncio.gather(
                *(alpha.request("where", Ask(n=i), job=JOB) for i in range(30))
            )
            assert {a.device for a in answers} == set(DEVICES)
            await asyncio.sleep(3.0)  # heartbeats flow again, all round
            watcher.cancel()
            assert not seen_lost, seen_lost


async def test_what_a_device_shared_reaches_the_fleet_even_if_it_restarts_before_sending(
    tmp_path: Path,
) -> None:
    """Records waiting for the broker die with the process; the jobs a device shared are kept
    in its store, and after a restart it sends them again from its graph."""
    keys = seeds(tmp_path, *DEVICES)
    port = free_port()
    async with AsyncExitStack() as fleet_stack:
        with broker(tmp_path, keys, port=port) as url:
            others = {
                n: await device(fleet_stack, tmp_path, n, keys[n], [url])
                for n in DEVICES
                if n != "alpha"
            }
            first = AsyncExitStack()
            alpha = await device(first, tmp_path, "alpha", keys["alpha"], [url])
            await alpha.wait_connected(10)
            await until(lambda: len(alpha.status().devices) == 3)
            rt = runtime_of(alpha)
            job = rt.open_job("shared, then more while the broker is away")
            root = rt.spawn("surveyor", job, "survey", start=Survey(targets=["127.2.0.7"]))
            assert (await asyncio.wait_for(rt.wait_task(root), 20)).ok
        await until(lambda: not alpha.connected)
        late = rt.spawn("prober", job, "127.1.0.9", caller=root, start=Probe(target="127.1.0.9"))
        assert (await asyncio.wait_for(rt.wait_task(late), 10)).ok
        await first.aclose()  # alpha stops with that record still unsent: lost with it
        with broker(tmp_path, keys, port=port):
            again = await device(fleet_stack, tmp_path, "alpha", keys["alpha"], [url])
            await again.wait_connected(10)
            beta = runtime_of(others["beta"])

            async def beta_has_it() -> bool:
                await beta.commit()
                tree = await beta.graph.tree(job.job_id)
                return any(n.task_id == late.task_id and n.device == "alpha" for n in tree.tasks)

            deadline = asyncio.get_running_loop().time() + 15
            while not await beta_has_it():
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.1)
