"""One device's link to the fleet: heartbeats, the peers it hears, and requests across devices.

Each agent type a device serves is a queue group on the broker, so a request to a type goes
to one device of all that serve it, the broker spreading them. The device that takes one
hands it to its own runtime with the same rules as its HTTP API (only what a client may
send) and the requester's timeout.

The link never stops the device from working alone: it connects in the background, and
while the broker is away the appliance runs its own jobs and the link keeps trying.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

import msgspec

from appliance import errors, inventory
from appliance.errors import RequestTimeout, UnknownAgentType
from appliance.events import (
    FLEET_TOPIC,
    Envelope,
    Event,
    JobContext,
    Target,
    TaskRef,
    TopicRef,
    TypeRef,
    is_fleet_topic,
)
from appliance.fleet import subjects, typecards, wire
from appliance.fleet.config import FleetSettings
from appliance.fleet.graphshare import GraphShare
from appliance.fleet.keys import public_key
from appliance.fleet.placing import FleetPlacement
from appliance.fleet.status import DeviceStatus, FleetInventory, FleetStatus
from appliance.inventory import Device
from appliance.runtime.cancel import cancel_and_wait
from appliance.scope import Network, parse_network

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg

    from appliance.runtime import Agent, Runtime

log = logging.getLogger(__name__)

TIMEOUT_HEADER = "Qey-Timeout"
BAD_TOPIC = "not a fleet-wide topic: its name after 'fleet.' is one word (letters, digits, _, -)"
RETRY_S = (0.5, 1.0, 2.0, 5.0)  # between failed first connections, then the last for ever


class Peer(msgspec.Struct, frozen=True, kw_only=True):
    """A device as this one last heard it."""

    name: str
    heartbeat: wire.Heartbeat
    seen: float  # this device's monotonic clock when it was heard


class FleetLink:
    def __init__(
        self,
        settings: FleetSettings,
        seed: bytes,
        runtime: Runtime,
        *,
        version: str,
        scope: Callable[[], list[str]],
        health: Callable[[], str],
        load: Callable[[], int],
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self._seed = seed
        self._public_key = public_key(seed)
        self._runtime = runtime
        self._version = version
        self._scope = scope
        self._health = health
        self._load = load
        self._nc: Client | None = None
        self._peers: dict[str, Peer] = {}
        self._served: set[str] = set()
        self._topics: set[str] = set()  # the fleet-wide topics this device's types take
        self._answering: set[asyncio.Task[None]] = set()
        self.events_refused = 0  # one-way events from other devices that were not delivered
        self._refusals_said: set[tuple[str, str]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._problem = "not connected yet"
        self._started_at = time.time()
        self._connected = asyncio.Event()  # set while connected to a broker
        self._joined = False  # connected at least once
        self._heard_since = 0.0  # when the broker connection last (re)started
        self._closing = False
        self.placement = FleetPlacement(self, runtime)
        self.graph = GraphShare(runtime, self.name)
        # the routable types only other devices run, from their cards; and this one's cards
        self.types = typecards.FleetTypes(lambda: [cls.name for cls in runtime.agent_types])
        self._cards: list[typecards.TypeCard] = []
        self._cards_digest = ""
        self._asking: set[str] = set()  # devices whose cards are being asked for
        self._problems_of: dict[str, str] = {}  # the last problem said of each device

    # -- lifetime ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Begin connecting (in the background: a missing broker never holds the start);
        from now on the runtime may place tasks on the devices heard."""
        self._runtime.place_elsewhere(self.placement)
        self._runtime.reach_beyond(self)
        self._tasks.append(asyncio.create_task(self._connect(), name="qey-fleet-connect"))

    async def wait_connected(self, timeout: float) -> None:
        """Until connected to a broker; TimeoutError after ``timeout``."""
        async with asyncio.timeout(timeout):
            await self._connected.wait()

    async def close(self) -> None:
        self._closing = True
        # cancelled again if one carries on: the NATS client can lose a cancellation
        await cancel_and_wait([*self._tasks, *self._answering])
        if self._nc is not None and not self._nc.is_closed:
            # while the broker is away the client still flushes on close, into a lost
            # connection: a device stopping then must stop all the same
            with contextlib.suppress(OSError):
                await self._nc.close()
        self._connected.clear()

    async def _connect(self) -> None:
        import nats  # only in fleet mode: a single device never loads the client

        attempt = 0
        while True:
            try:
                self._nc = await nats.connect(
                    servers=self.settings.servers,
                    name=self.name,
                    nkeys_seed_str=self._seed.decode(),
                    inbox_prefix=subjects.inbox(self.name),
                    connect_timeout=2,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=1,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                )
                break
            except Exception as err:  # any failure: said, and tried again
                await self._on_error(err)
                await asyncio.sleep(RETRY_S[min(attempt, len(RETRY_S) - 1)])
                attempt += 1
        self._problem = ""
        await self._nc.subscribe(subjects.HEARTBEATS, cb=self._on_heartbeat)
        for subject, answer in (
            (subjects.place(self.name, "*"), self.placement.on_place),
            (subjects.ended(self.name, "*"), self.placement.on_ended),
            (subjects.inventory(self.name, "*"), self._answer_inventory),
            (subjects.types(self.name, "*"), self._answer_types),
        ):
            await self._nc.subscribe(subject, cb=self._apart(answer))
        self._runtime.on_agent_type(self._serve_later)
        await self._nc.flush()
        log.info("fleet: %s joined through %s", self.name, self._nc.connected_url)
        self._joined = True
        self._heard_since = time.monotonic()
        self._connected.set()
        self._tasks.append(asyncio.create_task(self._beat(), name="qey-fleet-heartbeat"))
        self._tasks.append(asyncio.create_task(self.graph.run(self._nc), name="qey-fleet-graph"))

    async def _on_error(self, err: Exception) -> None:
        """Said once per change, not per retry: the client retries every second."""
        if self._joined:
            problem = _said(err)
        else:
            problem = f"cannot connect to {', '.join(self.settings.servers)}: {_said(err)}"
        self._said(problem)

    async def _on_disconnected(self) -> None:
        self._connected.clear()
        if self._closing:
            return
        self._said("the broker connection is lost; reconnecting")

    def _said(self, problem: str) -> None:
        if problem != self._problem:
            log.warning("fleet: %s", problem)
        self._problem = problem

    async def _on_reconnected(self) -> None:
        self._heard_since = time.monotonic()  # peers get lost_after_s to be heard again
        self._connected.set()
        self._problem = ""
        log.info("fleet: reconnected to %s", self._nc.connected_url if self._nc else "?")

    # -- heartbeats and peers ---------------------------------------------------------------

    async def _beat(self) -> None:
        assert self._nc is not None
        while True:
            beat = wire.Heartbeat(
                version=self._version,
                health=self._health(),
                scope=self._scope(),
                types=sorted(self._served),
                load=self._load(),
                started_at=self._started_at,
                cards=self._cards_digest,
            )
            if self._nc.is_connected:
                await self._nc.publish(subjects.heartbeat(self.name), wire.encode(beat))
            self._reconcile_types()  # the lost go
            await asyncio.sleep(self.settings.heartbeat_s)

    async def _on_heartbeat(self, msg: Msg) -> None:
        name = subjects.sender_of(msg.subject)  # the broker ties the subject to the key
        try:
            beat = wire.heartbeat_decoder.decode(msg.data)
        except msgspec.DecodeError as err:
            log.warning("fleet: a bad heartbeat from %s: %s", name, err)
            return
        self._peers[name] = Peer(name=name, heartbeat=beat, seen=time.monotonic())
        if name == self.name:
            return
        wanted = [] if name in self._asking else self.types.wanted(name, beat.cards, beat.types)
        if wanted:
            self._asking.add(name)
            task = asyncio.create_task(self._learn_types(name, beat.cards, wanted))
            self._answering.add(task)
            task.add_done_callback(self._answering.discard)

    async def _learn_types(self, name: str, said: str, wanted: list[str]) -> None:
        """A device's cards of the types ``wanted`` (those it runs and this one does not),
        asked for because its heartbeat said its cards changed. One that does not answer is
        asked again at its next heartbeat; what it answered is kept even if some cards were
        out of bounds (those are said, once per change)."""
        request = msgspec.msgpack.encode(wanted)
        try:
            cards, problems = typecards.decode(
                await self.ask(subjects.types(name, self.name), request, timeout=2.0)
            )
        except asyncio.CancelledError:
            raise
        except Exception as err:  # any failure: said once, and asked again next heartbeat
            self._said_of(name, f"its agent types are not known: {_said(err)}")
            return
        finally:
            self._asking.discard(name)
        if problems:
            self._said_of(name, f"type cards left out: {'; '.join(problems)}")
        else:
            self._problems_of.pop(name, None)  # the next problem is news again
        peer = self._peers.get(name)
        self.types.learned(name, said, cards, peer.heartbeat.types if peer else [])
        self._reconcile_types()

    def _reconcile_types(self) -> None:
        """The fleet's types as the devices up now run them (each heartbeat this device
        sends; and when cards come, or a type comes to run here)."""
        self.types.reconcile(p.name for p in self.peers_up(others=True))

    def _said_of(self, device: str, problem: str) -> None:
        """A problem with one device, logged when it is not the one last said of it."""
        if self._problems_of.get(device) != problem:
            log.warning("fleet: %s: %s", device, problem)
        self._problems_of[device] = problem

    def load(self) -> int:
        """This device's events queued and in flight now (what its heartbeat says)."""
        return self._load()

    def peer(self, name: str) -> Peer | None:
        return self._peers.get(name)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def is_up(self, peer: Peer) -> bool:
        """Heard within ``lost_after_s``. While this device is cut off from the broker it
        cannot tell, so nobody is judged lost; after a reconnection each peer has
        ``lost_after_s`` to be heard again."""
        if not self.connected:
            return True
        heard = max(peer.seen, self._heard_since)
        return time.monotonic() - heard <= self.settings.lost_after_s

    def peers_up(self, *, others: bool = False) -> list[Peer]:
        """The devices heard within ``lost_after_s`` (``others``: not this one)."""
        return [
            p
            for p in self._peers.values()
            if self.is_up(p) and not (others and p.name == self.name)
        ]

    def scope_covers(self, net: Network) -> bool:
        """Whether this device's own scope covers ``net``."""
        for entry in self._scope():
            scope = parse_network(entry)
            if scope.version == net.version and net.subnet_of(scope):  # type: ignore[arg-type]
                return True
        return False

    async def ask(self, subject: str, payload: bytes, timeout: float) -> bytes:
        """A request to one device's own subject; its answer's bytes."""
        if self._nc is None or not self._nc.is_connected:
            raise errors.TransientError(f"the fleet is not reachable: {self._problem}")
        import nats.errors

        try:
            msg = await self._nc.request(subject, payload, timeout=timeout)
        except nats.errors.NoRespondersError:
            raise errors.UnknownDevice(f"nobody answers on {subject}") from None
        return bytes(msg.data)

    def status(self) -> FleetStatus:
        now = time.monotonic()
        devices = [
            DeviceStatus(
                name=p.name,
                this=p.name == self.name,
                state=("up" if self.is_up(p) else "lost") if self.connected else "unknown",
                last_seen_s=round(now - p.seen, 1),
                version=p.heartbeat.version,
                health=p.heartbeat.health,
                scope=p.heartbeat.scope,
                types=p.heartbeat.types,
                load=p.heartbeat.load,
            )
            for p in sorted(self._peers.values(), key=lambda p: p.name)
        ]
        nc = self._nc
        connected = nc is not None and nc.is_connected
        return FleetStatus(
            enabled=True,
            name=self.name,
            connected=connected,
            server=str(nc.connected_url.netloc) if connected and nc and nc.connected_url else "",
            problem=self._problem,
            key=self._public_key,
            graph=self.graph.status(),
            devices=devices,
            routed_elsewhere=self.types.names,
        )

    # -- serving this device's types ----------------------------------------------------------

    def _serve_later(self, cls: type[Agent]) -> None:
        """Serve a type (its queue group) once registered, and take the fleet-wide topics it
        subscribes to: internal types never leave."""
        if cls.internal or cls.name in self._served:
            return
        self._served.add(cls.name)
        self._cards = typecards.cards_of(self._runtime.agent_types)
        self._cards_digest = typecards.digest(self._cards)
        self._reconcile_types()  # now run here too
        self._tasks.append(asyncio.create_task(self._serve(cls.name)))
        for topic in cls.topics:
            if not is_fleet_topic(topic) or topic in self._topics:
                continue
            name = subjects.topic_name(topic)
            if name is None:
                log.warning("fleet: %s takes #%s, %s", cls.name, topic, BAD_TOPIC)
                continue
            self._topics.add(topic)
            self._tasks.append(asyncio.create_task(self._listen(name)))

    async def _listen(self, name: str) -> None:
        """Every device's events on a fleet-wide topic (no queue group: each device takes
        each one, for its own subscribers)."""
        assert self._nc is not None
        await self._nc.subscribe(subjects.topic_events(name), cb=self._take_topic)

    async def _serve(self, agent_type: str) -> None:
        assert self._nc is not None
        await self._nc.subscribe(
            subjects.requests_for(agent_type), queue=agent_type, cb=self._apart(self._answer)
        )
        await self._nc.subscribe(subjects.events_for(agent_type), queue=agent_type, cb=self._take)

    def _apart(
        self, answer: Callable[[Msg], Coroutine[Any, Any, None]]
    ) -> Callable[[Msg], Awaitable[None]]:
        """A subscription's callbacks run one after another: each message gets a task of its
        own, so a slow handler (or a placed task's whole run) never holds those behind it."""

        async def callback(msg: Msg) -> None:
            task = asyncio.create_task(answer(msg))
            self._answering.add(task)
            task.add_done_callback(self._answering.discard)

        return callback

    def _from_edge(self, msg: Msg, sender: str, target: Target) -> Envelope[Event]:
        """A request's or an event's envelope, decoded with the runtime's registry; its target
        must be the one its subject names, and its sender is the subject's."""
        env = self._runtime.decode_packed_envelope(msg.data)
        if env.target != target:
            raise errors.EventNotAllowed(f"the target {env.target} is not what its subject names")
        return msgspec.structs.replace(env, sender=sender)

    async def _answer(self, msg: Msg) -> None:
        sender = subjects.sender_of(msg.subject)
        try:
            timeout = float((msg.headers or {}).get(TIMEOUT_HEADER, "5"))
            env = self._from_edge(msg, sender, TypeRef(subjects.type_of(msg.subject)))
            result = await self._runtime.request_from_edge(env, timeout=timeout)
            reply = wire.Reply(ok=True, result=msgspec.Raw(wire.encode(result)))
        except asyncio.CancelledError:
            raise
        except Exception as err:  # every failure goes back as an answer
            reply = wire.Reply(ok=False, error=type(err).__name__, detail=str(err))
        if msg.reply:
            await msg.respond(wire.encode(reply))

    async def _take(self, msg: Msg) -> None:
        """A one-way event: queued here at once, or, when the instance's inbox is full, this
        subscription waits for room, so the backlog stays on the broker's side of the link."""
        sender = subjects.sender_of(msg.subject)
        try:
            env = self._from_edge(msg, sender, TypeRef(subjects.type_of(msg.subject)))
            try:
                self._runtime.deliver(env)
            except errors.InboxFull:
                await self._runtime.send_from_edge(env)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            self._refused(sender, err)

    async def _take_topic(self, msg: Msg) -> None:
        """A fleet-wide topic's event, for this device's subscribers; this device's own came
        back from the broker too, and is let go: its subscribers had it when it was sent."""
        sender = subjects.sender_of(msg.subject)
        if sender == self.name:
            return
        try:
            topic = TopicRef(FLEET_TOPIC + subjects.type_of(msg.subject))
            await self._runtime.topic_from_edge(self._from_edge(msg, sender, topic))
        except asyncio.CancelledError:
            raise
        except Exception as err:
            self._refused(sender, err)

    def _refused(self, sender: str, err: Exception) -> None:
        """A one-way event not delivered: nobody to answer, so counted, and said once per
        sender and kind."""
        self.events_refused += 1
        said = (sender, type(err).__name__)
        if said not in self._refusals_said:
            self._refusals_said.add(said)
            log.warning("fleet: an event from %s refused: %s: %s", sender, said[1], err)

    async def _answer_types(self, msg: Msg) -> None:
        """The cards of the types asked for (all of this device's, for no names)."""
        try:
            names = set(typecards.asked(msg.data)) if msg.data else None
        except msgspec.DecodeError:
            names = set()  # not a list of names: nothing answers it, and nothing breaks
        cards = [c for c in self._cards if names is None or c.name in names]
        await msg.respond(typecards.encode(cards))

    async def _answer_inventory(self, msg: Msg) -> None:
        found = inventory.devices(self._runtime.knowledge)
        await msg.respond(msgspec.msgpack.encode(found))

    # -- asking the fleet -------------------------------------------------------------------

    async def inventories(self, timeout: float = 1.5) -> FleetInventory:
        """What every other device heard has found, asked of all at once; those that do not
        answer within ``timeout`` are named, so a page shows what it misses."""

        async def of(name: str) -> list[Device]:
            data = await self.ask(subjects.inventory(name, self.name), b"", timeout)
            return msgspec.msgpack.decode(data, type=list[Device])

        names = sorted(p.name for p in self.peers_up(others=True))
        answers = await asyncio.gather(*(of(n) for n in names), return_exceptions=True)
        devices: dict[str, list[Device]] = {}
        unanswered = []
        for name, answer in zip(names, answers, strict=True):
            if isinstance(answer, BaseException):
                if isinstance(answer, asyncio.CancelledError):
                    raise answer
                unanswered.append(name)
            else:
                devices[name] = answer
        return FleetInventory(devices=devices, unanswered=unanswered)

    def _envelope(
        self, agent_type: str, event: Event, job: JobContext, caller: TaskRef | None
    ) -> Envelope[Event]:
        """What crosses the broker to a type's queue group, from this device."""
        return Envelope(
            event=event,
            job=job,
            target=TypeRef(agent_type),
            sender=self.name,
            caller_task_id=caller.task_id if caller else None,
            caller_agent=caller.agent_type if caller else None,
        )

    async def send(
        self,
        agent_type: str,
        event: Event,
        *,
        job: JobContext,
        caller: TaskRef | None = None,
    ) -> None:
        """One-way ``Runtime.send`` to one device serving ``agent_type`` (this one included),
        the broker spreading events over the type's queue group. At most once, as the broker
        delivers (a device lost with events queued loses them): what must not be lost goes as
        a request, or as a task placed on a device. UnknownAgentType when no device heard
        serves the type, since the broker drops an event nobody takes without a word."""
        await self.carry(self._envelope(agent_type, event, job, caller))

    def serves(self, agent_type: str) -> bool:
        """Whether a device heard (this one included) serves ``agent_type``."""
        return any(agent_type in p.heartbeat.types for p in self.peers_up())

    async def carry(self, env: Envelope[Event]) -> None:
        """A one-way event onto the broker as this device's: for a type, to one device
        serving it (UnknownAgentType when none is heard); for a fleet-wide topic
        (``fleet.<name>``), to every other device's subscribers."""
        if self._nc is None or not self._nc.is_connected:
            raise errors.TransientError(f"the fleet is not reachable: {self._problem}")
        target = env.target
        if type(target) is TypeRef:
            if not self.serves(target.agent_type):
                raise UnknownAgentType(f"no device in the fleet serves {target.agent_type!r}")
            subject = subjects.event(target.agent_type, self.name)
        elif type(target) is TopicRef and is_fleet_topic(target.topic):
            name = subjects.topic_name(target.topic)
            if name is None:
                raise errors.EventNotAllowed(f"#{target.topic}: {BAD_TOPIC}")
            subject = subjects.topic(name, self.name)
        else:
            raise errors.EventNotAllowed(f"{target} stays on this device")
        await self._nc.publish(subject, wire.encode(msgspec.structs.replace(env, sender=self.name)))

    async def request(
        self,
        agent_type: str,
        event: Event,
        *,
        job: JobContext,
        caller: TaskRef | None = None,
        timeout: float = 5.0,
    ) -> Any:
        """``Runtime.request`` to any device serving ``agent_type`` (this one included): the
        handler's typed result (plain data for a type this device does not run itself),
        HandlerFailed if it failed, RequestTimeout past ``timeout``."""
        import nats.errors

        if self._nc is None or not self._nc.is_connected:
            raise errors.TransientError(f"the fleet is not reachable: {self._problem}")
        env = self._envelope(agent_type, event, job, caller)
        try:
            msg = await self._nc.request(
                subjects.request(agent_type, self.name),
                wire.encode(env),
                timeout=timeout,
                headers={TIMEOUT_HEADER: repr(timeout)},
            )
        except nats.errors.NoRespondersError:
            raise UnknownAgentType(f"no device in the fleet serves {agent_type!r}") from None
        except nats.errors.TimeoutError:
            raise RequestTimeout(f"{agent_type}/* did not reply within {timeout}s") from None
        reply = wire.reply_decoder.decode(msg.data)
        if not reply.ok:
            raise wire.error_of(reply)
        try:
            result_type = self._runtime.types.result_type(agent_type, type(event))
        except UnknownAgentType:  # a type only other devices run: its answer as plain data
            return msgspec.msgpack.decode(reply.result)
        return msgspec.msgpack.decode(reply.result, type=result_type)


def _said(err: BaseException) -> str:
    return str(err) or type(err).__name__
