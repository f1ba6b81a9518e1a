"""Work placement: a task whose target this device cannot reach goes to a device that can.

The placing side (``Elsewhere`` to the runtime): ``device_for`` picks, among the devices
heard now that serve the type and whose scope covers the target, the least loaded; never a
device that does not cover it. A type this device does not run at all goes to the least
loaded device that does. A task whose start event the type handles anywhere (``anywhere``:
from what the event carries alone) goes where there is capacity: to the least loaded device
serving the type when this one has BUSY events or more queued and in flight and that one
fewer than half as many. ``run_there`` hands the task over and waits for its end,
watching the device's heartbeats: a device lost or restarted before the task ends raises
DeviceLost, and the runtime places the task again.

The receiving side: a placed task is held to the HTTP API's rules (a type a command may
start, a start event a client may send), spawned under the placing task with the same id,
and its end is sent back until the placing device acknowledges it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import msgspec

from appliance.errors import (
    BadCommand,
    BadEvent,
    EventNotAllowed,
    OutOfScope,
    TransientError,
    UnknownAgentType,
    UnknownDevice,
)
from appliance.events import Event, JobContext, TaskRef, TaskSpawned
from appliance.fleet import subjects, wire
from appliance.fleet.wire import error_of
from appliance.runtime.elsewhere import DeviceLost
from appliance.runtime.outcome import TaskOutcome
from appliance.scope import Network, parse_network

if TYPE_CHECKING:
    from nats.aio.msg import Msg

    from appliance.fleet.link import FleetLink, Peer
    from appliance.runtime import Runtime

log = logging.getLogger(__name__)

RECONNECT_S = 60.0  # a task to place waits this long for the broker to come back
HANDOVER_S = 5.0  # the receiving device says it started the task within this
ENDED_RETRY_S = (0.5, 1.0, 2.0, 5.0, 10.0)  # sending an end again until it is acknowledged
ENDED_TRIES = 60  # about ten minutes of trying; then the placing device's own watch decides
# Events queued and in flight from which work that may run anywhere looks for a less busy
# device: below it, the broker's round trip costs more than waiting here saves.
BUSY = 64


class FleetPlacement:
    def __init__(self, link: FleetLink, runtime: Runtime) -> None:
        self._link = link
        self._runtime = runtime
        self._waiting: dict[str, tuple[str, TaskRef, asyncio.Future[TaskOutcome]]] = {}
        self._adopted: set[str] = set()
        self._here: dict[str, int] = {}  # job id -> its placed tasks running on this device

    # -- placing ----------------------------------------------------------------------------

    def covers(self, net: Network) -> bool:
        """Whether a device heard now (not this one) covers ``net``: the fleet reaches it."""
        return any(_covers(peer, net) for peer in self._link.peers_up(others=True))

    def device_for(self, agent_type: str, start: Event | None) -> str | None:
        try:
            cls = self._runtime.agent_class(agent_type)
        except UnknownAgentType:  # only other devices run it: the least loaded of them
            serving = self._serving(agent_type)
            return min(serving, key=_by_load).name if serving else None
        if start is not None and type(start) in cls.anywhere:
            return self._less_busy(agent_type)
        field = cls.reach
        target = getattr(start, field, None) if field else None
        if not isinstance(target, str):
            return None
        try:
            net = parse_network(target)
        except BadCommand:
            return None  # the type's own check says why
        if self._link.scope_covers(net):
            return None  # this device reaches it: no reason to send it away
        able = [
            p
            for p in self._link.peers_up(others=True)
            if agent_type in p.heartbeat.types and _covers(p, net)
        ]
        if not able:
            return None  # here, where the type's own scope check refuses it, naming it
        return min(able, key=_by_load).name

    def _less_busy(self, agent_type: str) -> str | None:
        """A device serving ``agent_type`` with much more room than this one, if this one
        is busy; None to run it here."""
        here = self._link.load()
        if here < BUSY:
            return None
        serving = self._serving(agent_type)
        if not serving:
            return None
        best = min(serving, key=_by_load)
        return best.name if best.heartbeat.load * 2 < here else None

    def _serving(self, agent_type: str) -> list[Peer]:
        """The other devices heard now that serve ``agent_type``."""
        return [p for p in self._link.peers_up(others=True) if agent_type in p.heartbeat.types]

    async def run_there(
        self, device: str, job: JobContext, spawned: TaskSpawned, start: Event | None
    ) -> TaskOutcome:
        ref = TaskRef(spawned.agent_type, spawned.task_id)
        peer = self._link.peer(device)
        if peer is None:
            raise DeviceLost(f"device {device} is not heard")
        incarnation = peer.heartbeat.started_at
        try:  # cut off from the broker: wait for it rather than give the task up
            await self._link.wait_connected(RECONNECT_S)
        except TimeoutError:
            away = f"the fleet's broker has been away for {RECONNECT_S:.0f}s"
            raise TransientError(away) from None
        await self._runtime.commit()  # the job's row, for its command
        command = await self._runtime.graph.command_of(spawned.job_id)
        ended: asyncio.Future[TaskOutcome] = asyncio.get_running_loop().create_future()
        self._waiting[spawned.task_id] = (device, ref, ended)
        try:
            placement = wire.Placement(
                job=job,
                command=command or f"work placed by {self._link.name}",
                task_id=spawned.task_id,
                agent_type=spawned.agent_type,
                objective=spawned.objective,
                parent=TaskRef(spawned.parent_agent or "?", spawned.parent_task_id)
                if spawned.parent_task_id
                else None,
                start=msgspec.Raw(wire.encode(start)) if start is not None else wire.NO_START,
            )
            answer = await self._link.ask(
                subjects.place(device, self._link.name), wire.encode(placement), HANDOVER_S
            )
            reply = wire.reply_decoder.decode(answer)
            if not reply.ok:
                raise error_of(reply)
            while True:
                try:
                    async with asyncio.timeout(self._link.settings.heartbeat_s):
                        return await asyncio.shield(ended)
                except TimeoutError:
                    if not self._link.connected:
                        continue  # cut off: the device may be fine; its end is sent again
                    now = self._link.peer(device)
                    if now is None or not self._link.is_up(now):
                        raise DeviceLost(f"device {device} was lost mid-task") from None
                    if now.heartbeat.started_at != incarnation:
                        raise DeviceLost(f"device {device} restarted mid-task") from None
        except DeviceLost:
            raise
        except UnknownDevice:
            raise DeviceLost(f"device {device} is not connected") from None
        except TimeoutError:
            raise DeviceLost(f"device {device} did not take the task") from None
        finally:
            self._waiting.pop(ref.task_id, None)

    async def on_ended(self, msg: Msg) -> None:
        sender = subjects.sender_of(msg.subject)
        try:
            ended = wire.ended_decoder.decode(msg.data)
        except msgspec.DecodeError as err:
            log.warning("fleet: a bad task end from %s: %s", sender, err)
            return
        device, ref, waiter = self._waiting.get(ended.task_id, (None, None, None))
        if device == sender and ref is not None and waiter is not None and not waiter.done():
            waiter.set_result(
                TaskOutcome(
                    ref=ref,
                    status=ended.status,
                    result=msgspec.msgpack.decode(ended.result),
                    detail=ended.detail,
                )
            )
        if msg.reply:  # acknowledged even when nobody waits (a repeat, or a task given up)
            await msg.respond(b"")

    # -- receiving --------------------------------------------------------------------------

    async def on_place(self, msg: Msg) -> None:
        sender = subjects.sender_of(msg.subject)
        try:
            try:
                placement = wire.placement_decoder.decode(msg.data)
            except msgspec.DecodeError as err:
                raise BadEvent(f"not a valid placement: {err}") from None
            ref = await self._start(placement, sender)
            reply = wire.Reply(ok=True)
        except Exception as err:  # the placing device hears why
            log.warning("fleet: a task placed by %s was refused: %s", sender, err)
            reply = wire.Reply(ok=False, error=type(err).__name__, detail=str(err))
            ref = None
        if msg.reply:
            await msg.respond(wire.encode(reply))
        if ref is not None:
            await self._send_end(ref, placement.job.job_id, sender)

    async def _start(self, placement: wire.Placement, sender: str) -> TaskRef:
        cls = self._runtime.startable(placement.agent_type)  # never an internal type
        if placement.start == wire.NO_START:  # a command's root: made into its start event
            start = cls.start_for(placement.objective)  # here, as a command is (BadCommand)
        else:
            start = self._runtime.decode_packed_event(placement.start)
        if start is not None:
            tag = str(type(start).__struct_config__.tag)
            if tag not in self._runtime.client_kinds() or type(start) not in cls.handlers:
                raise EventNotAllowed(
                    f"{placement.agent_type} does not take {tag!r} from the fleet"
                )
        if cls.reach is not None:  # refused here, before anything is recorded
            target = getattr(start, cls.reach, None)
            if not isinstance(target, str) or not self._link.scope_covers(parse_network(target)):
                raise OutOfScope(f"{target} is outside {self._link.name}'s scope")
        job = placement.job
        if job.job_id not in self._adopted and not await self._runtime.graph.has_job(job.job_id):
            self._runtime.open_job_of(job, placement.command)
        self._adopted.add(job.job_id)
        self._link.graph.share_job(job.job_id)  # what it adds to the job, the fleet sees
        return self._runtime.spawn(
            placement.agent_type,
            job,
            placement.objective,
            caller=placement.parent,
            start=start,
            task_id=placement.task_id,
        )

    async def _send_end(self, ref: TaskRef, job_id: str, device: str) -> None:
        self._here[job_id] = self._here.get(job_id, 0) + 1
        try:
            outcome = await self._runtime.wait_task(ref)
        finally:
            self._here[job_id] -= 1
            if not self._here[job_id]:  # the job's last task here: its instances retire
                del self._here[job_id]
                self._runtime.retire_job(job_id)
        ended = wire.Ended(
            task_id=ref.task_id,
            status=outcome.status,
            detail=outcome.detail,
            result=msgspec.Raw(wire.encode(_plain(outcome.result))),
        )
        for attempt in range(ENDED_TRIES):
            try:
                await self._link.ask(subjects.ended(device, self._link.name), wire.encode(ended), 5)
                return
            except Exception as err:  # the broker or the device is away: again, later
                log.info("fleet: the end of %s to %s: %s; trying again", ref, device, err)
            await asyncio.sleep(ENDED_RETRY_S[min(attempt, len(ENDED_RETRY_S) - 1)])
        log.warning("fleet: %s's end never reached %s", ref, device)


def _covers(peer: Peer, net: Network) -> bool:
    for entry in peer.heartbeat.scope:
        try:
            scope = parse_network(entry)
        except BadCommand:
            continue
        if scope.version == net.version and net.subnet_of(scope):  # type: ignore[arg-type]
            return True
    return False


def _plain(result: Any) -> Any:
    """A result msgpack can carry (a Struct as its fields; None when it cannot)."""
    try:
        wire.encode(result)
    except (TypeError, msgspec.EncodeError):
        return None
    return result


def _by_load(peer: Peer) -> tuple[int, str]:
    """Least loaded first; a tie goes by name, so the choice is the same on every device."""
    return peer.heartbeat.load, peer.name
