"""One coordination graph across the fleet: the records of every job that spans devices go
to a JetStream stream, and every device keeps them beside its own.

A job spans devices once one of its tasks is placed on another device (the placing device
then shares what its graph already holds of the job, and every record after) or once a
device runs a task placed on it (it shares that job's records from then on). Each device
reads the stream through its own durable consumer, so records sent while it was away reach
it when it is back; it stores them with the device that ran each task, so its panel and
``qey tasks tree`` show the whole job, wherever each part ran. Jobs that stay on one device
are never shared.

Which jobs are shared is kept in the store (knowledge ``fleet/shared``), not only in memory:
after a restart, a device sends what its graph holds of the jobs it shared in the last day
once more, since records waiting for the broker when it stopped were lost with the process.
Receivers keep what they hold, so a record sent twice changes nothing.

JetStream is the broker's (nats-server with a store directory). A broker without it leaves
each device with its own part of a job, said once in the log.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

import msgspec

from appliance.errors import UnknownJob
from appliance.events import (
    JobSubmitted,
    RecordEvent,
    TaskRecord,
    TaskSpawned,
    TaskStatus,
    TaskStatusChanged,
)
from appliance.fleet import subjects
from appliance.fleet.status import GraphStatus

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext

    from appliance.runtime import Runtime
    from appliance.runtime.graph import JobTree

log = logging.getLogger(__name__)

STREAM = subjects.GRAPH_STREAM
KEEP_S = 30 * 86400  # the stream keeps a month of records ...
KEEP_BYTES = 256 * 1024**2  # ... or this much, the oldest dropped first
OUTBOX = 100_000  # records waiting for the broker; past this the oldest are dropped, said
RESEND_S = 86400  # after a restart, the jobs shared this recently are sent once more
# between tries at setting the stream up, when the broker did not answer in time: a device
# whose broker was slow as it started would otherwise share nothing until it restarted
SETUP_RETRY_S = (1.0, 2.0, 5.0, 10.0, 30.0)
SHARED_KEY = "fleet/shared"  # knowledge: job id -> when it was first shared
SHARED = (JobSubmitted, TaskSpawned, TaskStatusChanged)


class _Ended(TaskRecord, frozen=True, kw_only=True, tag="task.status"):
    """``TaskStatusChanged`` as it is read from the stream: msgspec decodes no optional Raw,
    so the result comes as a value and goes back to JSON for the graph."""

    status: TaskStatus
    detail: str = ""
    result: Any = None


# JSON, not msgpack: a record's result is already JSON (msgspec.Raw), as the graph stores it
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(JobSubmitted | TaskSpawned | _Ended).decode


def _record(data: bytes) -> RecordEvent:
    rec: JobSubmitted | TaskSpawned | _Ended = _decode(data)
    if not isinstance(rec, _Ended):
        return rec
    result = msgspec.Raw(msgspec.json.encode(rec.result)) if rec.result is not None else None
    fields = msgspec.structs.asdict(rec) | {"result": result}
    return TaskStatusChanged(**fields)


class GraphShare:
    def __init__(self, runtime: Runtime, device: str) -> None:
        self._runtime = runtime
        self._device = device
        # the jobs whose records go to the stream, and when each began to (kept in the store)
        self._shared = set(runtime.knowledge.get(SHARED_KEY, dict[str, float], {}))
        self._resend = True  # once per process: what may have been lost with the last one
        self._outbox: deque[RecordEvent] = deque(maxlen=OUTBOX)
        self._ready = asyncio.Event()
        self._reading: set[asyncio.Task[None]] = set()
        self.dropped = 0
        self.sent = 0
        self.received = 0
        self.available = False
        runtime.journal.listeners.append(self._on_record)

    def share_job(self, job_id: str) -> None:
        """From now on this job's records go to the stream (a task placed here of it)."""
        if job_id in self._shared:
            return
        self._shared.add(job_id)
        now = self._runtime.clock.now()
        cutoff = now - KEEP_S
        self._runtime.knowledge.update(
            SHARED_KEY,
            lambda jobs: {j: at for j, at in jobs.items() if at > cutoff} | {job_id: now},
            type=dict[str, float],
            default={},
        )

    def status(self) -> GraphStatus:
        return GraphStatus(
            available=self.available,
            sent=self.sent,
            received=self.received,
            waiting=len(self._outbox),
            dropped=self.dropped,
            shared_jobs=len(self._shared),
        )

    # -- out --------------------------------------------------------------------------------

    def _on_record(self, rec: RecordEvent) -> None:
        if not isinstance(rec, SHARED):
            return
        if type(rec) is TaskSpawned and rec.device is not None and rec.job_id not in self._shared:
            self.share_job(rec.job_id)  # placed elsewhere: the job spans devices now
            task = asyncio.get_running_loop().create_task(self._share_so_far(rec.job_id))
            self._reading.add(task)
            task.add_done_callback(self._reading.discard)
            return  # the record itself is in what is shared so far
        if rec.job_id in self._shared:
            self._queue(rec)

    def _queue(self, rec: RecordEvent) -> None:
        if len(self._outbox) == self._outbox.maxlen:
            self.dropped += 1
        self._outbox.append(rec)
        self._ready.set()

    async def _share_so_far(self, job_id: str) -> None:
        """What this device's graph holds of a job it now shares (committed first)."""
        await self._runtime.commit()
        for rec in records_of(await self._runtime.graph.tree(job_id)):
            self._queue(rec)

    async def run(self, nc: Client) -> None:
        """Set the stream up, follow it, and send the outbox, for as long as the link runs."""
        from nats.js.errors import Error as JetStreamError

        js = nc.jetstream()
        attempt = 0
        while True:
            try:
                await self._follow(js)
                break
            except TimeoutError as err:  # a broker too busy to answer in time: not a "no"
                if attempt == 0:
                    log.warning(
                        "fleet: the graph's stream is not set up yet (%s): trying again", err
                    )
                await asyncio.sleep(SETUP_RETRY_S[min(attempt, len(SETUP_RETRY_S) - 1)])
                attempt += 1
            except JetStreamError as err:
                log.warning(
                    "fleet: the broker keeps no stream (%s): each device keeps its own part of "
                    "a job that spans devices",
                    err,
                )
                return
        self.available = True
        if self._resend:
            self._resend = False
            await self._send_recent()
        while True:
            await self._ready.wait()
            while self._outbox:
                rec = self._outbox[0]
                try:
                    await js.publish(subjects.graph(self._device), _encode(rec), timeout=5)
                except Exception as err:  # the broker is away: the same record, later
                    log.debug("fleet: graph record not sent yet: %s", err)
                    await asyncio.sleep(1.0)
                    continue
                self._outbox.popleft()
                self.sent += 1
            self._ready.clear()

    async def _follow(self, js: JetStreamContext) -> None:
        """The stream made (or found as it is) and this device's durable consumer of it."""
        from nats.js.api import DiscardPolicy, StorageType, StreamConfig

        await js.add_stream(
            StreamConfig(
                name=STREAM,
                subjects=[subjects.GRAPH],
                storage=StorageType.FILE,
                max_age=KEEP_S,
                max_bytes=KEEP_BYTES,
                discard=DiscardPolicy.OLD,
            )
        )
        await js.subscribe(
            subjects.GRAPH,
            durable=self._device,
            stream=STREAM,
            cb=self._on_message,
            manual_ack=True,
        )

    async def _send_recent(self) -> None:
        """The jobs shared in the last RESEND_S, once more from this device's graph."""
        since = self._runtime.clock.now() - RESEND_S
        shared = self._runtime.knowledge.get(SHARED_KEY, dict[str, float], {})
        for job_id in sorted(j for j, at in shared.items() if at > since):
            try:
                tree = await self._runtime.graph.tree(job_id)
            except UnknownJob:
                continue  # shared by another device; this one holds none of it any more
            for rec in records_of(tree):
                self._queue(rec)

    # -- in ---------------------------------------------------------------------------------

    async def _on_message(self, msg: Msg) -> None:
        sender = subjects.sender_of(msg.subject)
        if sender != self._device:
            try:
                rec = _record(msg.data)
            except msgspec.DecodeError as err:
                log.warning("fleet: a bad graph record from %s: %s", sender, err)
            else:
                self.share_job(rec.job_id)  # what this device adds to it is shared too
                if not (type(rec) is TaskSpawned and rec.device == self._device):
                    # (a task placed here: this device records it itself, as it starts it)
                    self._runtime.graph.record_foreign(rec, sender)
                    self.received += 1
        await msg.ack()


def records_of(tree: JobTree) -> list[RecordEvent]:
    """A job's graph as the records that made it: the job, each spawn, each task's end."""
    out: list[RecordEvent] = [
        JobSubmitted(
            job_id=tree.job_id,
            command_id=tree.command_id,
            command=tree.command,
            autonomous=tree.autonomous,
            at=tree.created_at,
        )
    ]
    for node in tree.tasks:
        out.extend(node.records())
    return out
