"""The audit trail: every event a handler took, in compact form, kept on disk and bounded.

The graph says which tasks ran and how they ended; the trail says what each was handed and
how its handler ended. The hot path only appends a tuple of what it already holds
(``record``). Every ``BLOCK`` events, and at each commit of the store, the entries so far are
sealed into one row: a
MessagePack array (msgspec), with a small index row per job and task the block holds. One
row per block, not per event, is what keeps the trail's cost to a few percent of the
runtime's event rate; the index finds a job's or a task's blocks without reading the rest.
The trail keeps its newest ``limit`` events (as blocks; the oldest dropped at each commit).
``qey events JOB`` reads it back.
"""

from __future__ import annotations

from typing import Any

import msgspec

from appliance.events import Envelope, TaskRef
from appliance.runtime.clock import Clock
from appliance.runtime.store import Row, Store

TABLE = "audit"
KEYS = "audit_keys"
BLOCK = 512
DEFAULT_LIMIT = 100_000  # events: a few MB at the built-in agents' sizes

# at, job, task, agent type, event kind, how it ended ("done", "failed", "cancelled"), event
Entry = tuple[float, str, str, str, str, str, Any]
_TAGS: dict[type, str] = {}


class AuditEntry(msgspec.Struct, frozen=True):
    at: float
    job_id: str
    task_id: str
    agent_type: str
    kind: str
    outcome: str
    event: Any  # the event as it was handed over, decoded to plain data


class AuditTrail:
    def __init__(self, store: Store, clock: Clock, *, limit: int = DEFAULT_LIMIT) -> None:
        self._store = store
        self._clock = clock
        self._now = clock.now
        # at, what was handed over, to which task, how its handler ended
        self.pending: list[tuple[float, Envelope[Any], TaskRef, str]] = []
        self._sealed: list[tuple[str, object, Row]] = []
        self._encode = msgspec.msgpack.Encoder().encode
        self._seq = store.read_now(
            lambda db: db.execute(f"SELECT coalesce(max(seq), 0) FROM {TABLE}").fetchone()[0]
        )
        store.add_source(self.collect)
        store.cap(TABLE, max(1, limit // BLOCK))

    def record(self, env: Envelope[Any], task: TaskRef, outcome: str) -> None:
        """One handled event (the runtime inlines this: see ``Runtime._finish``)."""
        self.pending.append((self._now(), env, task, outcome))
        self.grew()

    def grew(self) -> None:
        """``pending`` grew by one: the first of a block wakes the store's writer, a full
        block is sealed at once."""
        n = len(self.pending)
        if n >= BLOCK:
            self._seal()
        elif n == 1:
            self._store.wake()

    def _seal(self) -> None:
        pending = self.pending[:]
        self.pending.clear()  # the same list: the runtime holds it
        tag = _TAGS.get
        entries = [
            (
                at,
                env.job.job_id,
                task.task_id,
                task.agent_type,
                tag(type(env.event)) or _learn_tag(env.event),
                out,
                env.event,
            )
            for at, env, task, out in pending
        ]
        self._seq += 1
        seq = self._seq
        self._sealed.append((TABLE, seq, (seq, entries[0][0], self._encode(entries))))
        for job_id, task_id in {(e[1], e[2]) for e in entries}:
            self._sealed.append((KEYS, (seq, job_id, task_id), (seq, job_id, task_id)))

    def collect(self) -> list[tuple[str, object, Row]]:
        """The store's source: the blocks sealed since its last commit, and the rest."""
        if self.pending:
            self._seal()
        sealed, self._sealed = self._sealed, []
        return sealed

    async def entries(
        self, *, job_id: str | None = None, task_id: str | None = None, limit: int = 1000
    ) -> list[AuditEntry]:
        """The newest ``limit`` entries of a job or task (or of all), oldest first."""
        return await self._store.read(lambda db: read_entries(db, job_id, task_id, limit))


def read_entries(db: Any, job_id: str | None, task_id: str | None, limit: int) -> list[AuditEntry]:
    """The query itself, for the store's thread or a read-only store (``qey events``)."""
    clauses, args = [], []
    for column, value in (("job_id", job_id), ("task_id", task_id)):
        if value is not None:
            clauses.append(f"{column} = ?")
            args.append(value)
    if clauses:
        where = " AND ".join(clauses)
        query = (
            f"SELECT entries FROM {TABLE} WHERE seq IN "
            f"(SELECT seq FROM {KEYS} WHERE {where}) ORDER BY seq DESC"
        )
    else:
        query = f"SELECT entries FROM {TABLE} ORDER BY seq DESC"
    decode = msgspec.msgpack.Decoder(list[tuple[float, str, str, str, str, str, Any]]).decode
    found: list[AuditEntry] = []
    for row in db.execute(query, args):
        block = [
            AuditEntry(*entry)
            for entry in decode(row[0])
            if (job_id is None or entry[1] == job_id) and (task_id is None or entry[2] == task_id)
        ]
        found[:0] = block
        if len(found) >= limit:
            break
    return found[-limit:]


def _learn_tag(event: Any) -> str:
    """An event type's tag: reading ``__struct_config__`` builds an object, so once per type."""
    tag = _TAGS[type(event)] = str(event.__struct_config__.tag)
    return tag
