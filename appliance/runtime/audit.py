"""The audit trail: every event a handler took, in compact form, kept on disk and bounded.

The graph says which tasks ran and how they ended; the trail says what each was handed and
how its handler ended. The hot path (``record``; ``Runtime._done`` inlines it) does two
things per event: it encodes the event (msgspec MessagePack, in C) onto the end of one
buffer; and it puts what it already holds at the end of one flat list, ``FIELDS`` items:
when, the job, the instance's name (``agent_type/task_id``), how the handler ended, and for
how many events. That last makes the list's entries runs: the runtime's runs of events one
instance handled one after another (``record_run``) share one entry, so what a run costs the
list, and the chunk, does not grow with its length. After each batch the runtime
dispatches, ``CHUNK`` bytes of events or more become one chunk of the open block, by
column, each column sliced out of the flat list in C and the events' column taken whole
from the buffer. A block is one row, with a small index row per job and task it
holds; the open block is written at each commit of the store, again with more in it at the
next, until it holds ``BLOCK`` events.

Why so: the trail's cost was per-event Python work and memory held. A tuple per event, and
every event object, kept until its block was sealed, made the garbage collector run (it
counts objects made and not yet freed) and walk them all; building a row per entry at the
seal ran Python code per event, and repeating the job and task in every entry doubled what
was written. Encoding the event at once lets it go when its handler ends, as it would without
the trail; what stays (a time shared by the batch, two shared strings) is nothing the
collector tracks, so a chunk can be large, and a chunk's work (about 13 µs for 128 events
when the events were still held) no longer falls on one request in every hundred
(``bench_request``'s p99). Few rows, not one per event, keep the store's writer short; the
index finds a job's or a task's blocks without reading the rest. The trail keeps its newest
``limit`` events (as blocks; the oldest dropped at each commit). ``qey events JOB`` reads it
back.

A block is ``[FORMAT, [chunk, ...]]``; a chunk is ``[ats, job ids, names, outcomes, counts,
events]``, an entry's item in each column but the events', a column of one value repeated
stored as that value, encoded and then compressed (Zstandard). The compression is what keeps
the trail's memory near the events' own: a chunk is made compact as soon as it is made, not
when the store commits. Blocks of the earlier formats still read (format 3: chunks of an
entry an event, compressed with zlib; format 2: the same, not compressed; before the format
marker, a bare array of ``[at, job, task, agent type, kind, outcome, event]`` entries):
nothing on disk is left behind by a change of format.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from itertools import islice
from typing import Any

import msgspec

from appliance.events import TAG_FIELD, Envelope, TaskRef
from appliance.runtime.clock import Clock
from appliance.runtime.store import Row, Store

TABLE = "audit"
KEYS = "audit_keys"
BLOCK = 2048  # events a block holds (it is sealed at the first chunk that fills it)
CHUNK = 8192  # bytes of encoded events made into one chunk of the block being filled
DEFAULT_LIMIT = 100_000  # events: a few MB at the built-in agents' sizes
FORMAT = 4  # a block's first item; a block without it is of the first format
# Chunks are compressed with Zstandard (Python 3.14's compression.zstd, from its backport) at
# level -1: a chunk of small events shrinks about twentyfold (their tags repeat) for about
# 50 ns an event on this machine; zlib's fastest level took 260-400 ns an event (a quarter
# of the one-way benchmark's whole cost per event) for a twelvefold shrink. Levels below -1
# are no quicker here and shrink less. Chunks of a few KiB keep little waiting to be
# compressed: the one-way benchmark's peak memory is below plain asyncio's (2.5x with zlib's
# chunks of 1,024 events).
LEVEL = -1
_SIX = b"\x96"  # the MessagePack header of an array of six items (a chunk)

# One entry's items in the flat list, in this order: at, job id, the instance's name
# ("agent_type/task_id"), how its handler ended ("done", "failed", "cancelled"), and for how
# many of the events in the buffer, one after another. An event's kind is its tag, inside the
# encoded event: not stored twice.
FIELDS = 5
# the first format's entry: at, job id, task id, agent type, kind, outcome, event
FirstEntry = tuple[float, str, str, str, str, str, Any]


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
        self.pending: list[Any] = []  # FIELDS items per entry; the runtime appends to it
        self.events = bytearray()  # the same events, encoded one after another
        # the runtime's way to add an event: encode_event(event, events, -1)
        self.encode_event = msgspec.msgpack.Encoder().encode_into
        # the open block: its seq, its chunks (encoded), how many events they hold, when the
        # first was handled, its (job, task) pairs and those of them already written
        self._seq = store.read_now(
            lambda db: db.execute(f"SELECT coalesce(max(seq), 0) FROM {TABLE}").fetchone()[0]
        )
        self._chunks: list[bytes] = []  # each compressed
        self._chunked = 0
        self._first_at = 0.0
        self._keys: set[tuple[str, str]] = set()
        self._indexed: set[tuple[str, str]] = set()
        self._rows: list[tuple[str, object, Row]] = []  # for the store's next commit
        # how long events may grow before grew() has something to do: nothing (0) until
        # the store is told there is something for its next commit, then a chunk's worth
        self.due = 0
        self._encode = msgspec.msgpack.Encoder().encode
        self._compress: Callable[[bytes], bytes] = self._first_compress
        store.add_source(self.collect)
        store.cap(TABLE, max(1, limit // BLOCK))

    def record(self, env: Envelope[Any], task: TaskRef, outcome: str) -> None:
        """One handled event (the runtime inlines this: see ``Runtime._done`` and ``_audit``)."""
        self.encode_event(env.event, self.events, -1)
        self.pending += (self._now(), env.job.job_id, str(task), outcome, 1)
        if len(self.events) >= self.due:
            self.grew()

    def record_run(self, events: list[Any], at: float, job_id: str, name: str) -> None:
        """Events one instance handled one after another, each ended well ("done"): one
        entry for all, and the events encoded in one call (the runtime's runs,
        ``Runtime._run``). That call encodes them as an array, whose header goes: the
        buffer holds the events one after another."""
        buffer = self.events
        start = len(buffer)
        self.encode_event(events, buffer, -1)
        del buffer[start : start + len(_array_header(len(events)))]
        self.pending += (at, job_id, name, "done", len(events))

    def grew(self) -> None:
        """``events`` grew to ``due`` bytes or past (the runtime checks after each batch it
        dispatched): a chunk's worth is encoded, a full block written, and the store's writer
        is told there is something for its next commit."""
        if len(self.events) >= CHUNK:
            self._encode_pending()
            if self._chunked >= BLOCK:
                self._write_block()
        if self.due == 0:  # once until the store collects: a request is often a batch
            self._store.wake()
        self.due = CHUNK

    def _encode_pending(self) -> None:
        """Encode what is pending into the open block: a chunk stored by column, each sliced
        out of the flat list in C (the times, the job ids, the instances' names, the outcomes,
        the counts) and the events' column taken whole from the buffer, behind its array
        header. A column of one value repeated (the job, the instance, "done", nearly always)
        is stored once.

        The chunk is compressed as it is made, since it is what waits in memory for the
        store's next commit (up to 100 ms of the busiest traffic), in one call, so that the
        compressor knows its size and sizes its tables to it (fed piece by piece, Zstandard
        sizes them for a stream of any length: over a megabyte).
        """
        items = self.pending
        ats = items[0::FIELDS]
        job_ids = items[1::FIELDS]
        names = items[2::FIELDS]
        outcomes = items[3::FIELDS]
        counts = items[4::FIELDS]
        items.clear()  # the same list: the runtime holds it
        count = sum(counts)
        jobs, instances = _distinct(job_ids), _distinct(names)
        columns = self._encode(
            (
                ats,
                _column(job_ids, jobs),
                _column(names, instances),
                _column(outcomes, _distinct(outcomes)),
                counts,
            )
        )
        # the five columns' array, made the six-item chunk by its header (a fixarray's
        # header is its length), then the events' array: its header, then the buffer as it is
        chunk = b"".join((_SIX, memoryview(columns)[1:], _array_header(count), self.events))
        self.events.clear()  # the same buffer: the runtime holds it
        if not self._chunks:
            self._seq += 1
            self._first_at = ats[0]
        self._chunks.append(self._compress(chunk))
        self._chunked += count
        if len(jobs) == 1 or len(instances) == 1:  # then every pair of the two occurred
            self._keys.update((job_id, _task_id(name)) for job_id in jobs for name in instances)
        else:  # several jobs and several instances: paired entry by entry
            self._keys.update(zip(job_ids, map(_task_id, names), strict=True))

    def _first_compress(self, chunk: bytes) -> bytes:
        """The compressor is made for the first chunk: a runtime that handles nothing does
        not pay for importing it (9 ms, 1.4 MB) nor for its tables (about 280 KiB)."""
        from backports.zstd import ZstdCompressor

        compress = ZstdCompressor(level=LEVEL).compress
        self._compress = lambda data: compress(data, ZstdCompressor.FLUSH_FRAME)
        return self._compress(chunk)

    def _write_block(self) -> None:
        """The open block as a row, with the index rows it does not have yet. A block that
        is not full yet is written again at the next commit, with what it holds by then, so
        a quiet trail fills its blocks too: the table's cap counts blocks."""
        seq = self._seq
        block = self._encode((FORMAT, self._chunks))
        self._rows.append((TABLE, seq, (seq, self._first_at, block)))
        for job_id, task_id in self._keys - self._indexed:
            self._rows.append((KEYS, (seq, job_id, task_id), (seq, job_id, task_id)))
        self._indexed |= self._keys
        if self._chunked >= BLOCK:  # full: the next chunk opens a new one
            self._chunks, self._chunked = [], 0
            self._keys, self._indexed = set(), set()

    def collect(self) -> list[tuple[str, object, Row]]:
        """The store's source: the blocks written since its last commit, and the open one."""
        self.due = 0
        if self.pending:
            self._encode_pending()
        if self._chunks:
            self._write_block()
        rows, self._rows = self._rows, []
        return rows

    async def entries(
        self, *, job_id: str | None = None, task_id: str | None = None, limit: int = 1000
    ) -> list[AuditEntry]:
        """The newest ``limit`` entries of a job or task (or of all), oldest first."""
        return await self._store.read(lambda db: read_entries(db, job_id, task_id, limit))


def _array_header(length: int) -> bytes:
    """The MessagePack header of an array of ``length`` items, for items already encoded one
    after another (msgspec encodes a whole array or single values, not an array's parts)."""
    if length < 16:
        return bytes((0x90 | length,))  # fixarray
    if length < 1 << 16:
        return b"\xdc" + length.to_bytes(2, "big")  # array 16
    return b"\xdd" + length.to_bytes(4, "big")  # array 32


def _distinct(values: list[str]) -> set[str]:
    """``set(values)``, quicker for the usual run of one value (``count`` compares by
    identity first, and hashes nothing)."""
    first = values[0]
    return {first} if values.count(first) == len(values) else set(values)


def _column(values: list[str], distinct: set[str]) -> str | list[str]:
    """A column as stored: its one value, if it holds only one."""
    return next(iter(distinct)) if len(distinct) == 1 else values


def _task_id(name: str) -> str:
    return name.rpartition("/")[2]  # a task id has no "/"; an agent type might


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
    found: list[AuditEntry] = []
    for row in db.execute(query, args):
        block = [
            entry
            for entry in decode_block(row[0])
            if (job_id is None or entry.job_id == job_id)
            and (task_id is None or entry.task_id == task_id)
        ]
        found[:0] = block
        if len(found) >= limit:
            break
    return found[-limit:]


Column = str | list[str]  # one value for every entry, or a value each
Chunk = tuple[list[float], Column, Column, Column, list[int], list[Any]]
EntryChunk = tuple[list[float], Column, Column, Column, list[Any]]  # formats 2 and 3
_decode_block = msgspec.msgpack.Decoder(tuple[int, list[msgspec.Raw]]).decode
_decode_chunk = msgspec.msgpack.Decoder(Chunk).decode
_decode_entry_chunk = msgspec.msgpack.Decoder(EntryChunk).decode
_decode_first = msgspec.msgpack.Decoder(list[FirstEntry]).decode
_decode_bytes = msgspec.msgpack.Decoder(bytes).decode


def decode_block(data: bytes) -> list[AuditEntry]:
    """One stored block's entries, oldest first, in any format."""
    try:
        version, raws = _decode_block(data)
    except msgspec.ValidationError:  # no format marker: a block of the first format
        return [AuditEntry(*entry) for entry in _decode_first(data)]
    if version == FORMAT:
        from backports.zstd import decompress

        chunks = [_decode_chunk(decompress(_decode_bytes(raw))) for raw in raws]
    elif version == 3:  # an entry an event, compressed with zlib
        chunks = [_entry_an_event(zlib.decompress(_decode_bytes(raw))) for raw in raws]
    elif version == 2:  # the same, not compressed
        chunks = [_entry_an_event(raw) for raw in raws]
    else:
        raise ValueError(f"audit block of unknown format {version}")
    found = []
    for ats, *columns, counts, events in chunks:
        if sum(counts) != len(events):
            raise ValueError(f"audit chunk of {len(events)} events counted as {sum(counts)}")
        job_ids, names, outcomes = (
            [column] * len(ats) if isinstance(column, str) else column for column in columns
        )
        handed = iter(events)
        for at, job_id, name, outcome, count in zip(
            ats, job_ids, names, outcomes, counts, strict=True
        ):
            agent_type, _, task_id = name.rpartition("/")
            for event in islice(handed, count):
                kind = event.get(TAG_FIELD, "") if isinstance(event, dict) else ""
                entry = AuditEntry(at, job_id, task_id, agent_type, str(kind), outcome, event)
                found.append(entry)
    return found


def _entry_an_event(data: bytes | msgspec.Raw) -> Chunk:
    """A chunk of formats 2 and 3 (one entry an event), as a chunk of this one."""
    ats, job_ids, names, outcomes, events = _decode_entry_chunk(data)
    return ats, job_ids, names, outcomes, [1] * len(ats), events
