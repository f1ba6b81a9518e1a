"""The coordination graph: who spawned what, for which command, and what became of it.

Every spawn appends a task row; every status change appends a journal row. Nothing is ever
updated in place (the store's triggers refuse it), so the graph is an audit trail: any task
traces back through its parents to the command, or to the autonomous trigger, that caused it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, TypeVar

import msgspec

from appliance.errors import UnknownJob, UnknownTask
from appliance.events import (
    HandlerCrashed,
    JobSubmitted,
    JobTriggered,
    JournalRecord,
    RecordEvent,
    TaskSpawned,
    TaskStatus,
    TaskStatusChanged,
)
from appliance.runtime.store import Store


class TaskNode(msgspec.Struct, frozen=True):
    task_id: str
    job_id: str
    agent_type: str
    objective: str
    parent_task_id: str | None
    parent_agent: str | None
    autonomous: bool
    created_at: float
    status: TaskStatus = "running"
    result: Any = None
    detail: str = ""
    device: str | None = None  # the fleet device that runs it (None: this one)

    def records(self) -> list[TaskSpawned | TaskStatusChanged]:
        """The records that made this node: its spawn and, once it ended, its end (what a
        late reader of a job replays; what a fleet device sends again)."""
        spawned = TaskSpawned(
            job_id=self.job_id,
            task_id=self.task_id,
            agent_type=self.agent_type,
            objective=self.objective,
            parent_task_id=self.parent_task_id,
            parent_agent=self.parent_agent,
            autonomous=self.autonomous,
            at=self.created_at,
            device=self.device,
        )
        if self.status == "running":
            return [spawned]
        result = msgspec.Raw(_encode(self.result)) if self.result is not None else None
        ended = TaskStatusChanged(
            job_id=self.job_id,
            task_id=self.task_id,
            agent_type=self.agent_type,
            status=self.status,
            detail=self.detail,
            result=result,
            at=self.created_at,
        )
        return [spawned, ended]


class JobTree(msgspec.Struct, frozen=True):
    job_id: str
    command_id: str
    command: str
    autonomous: bool
    created_at: float
    tasks: list[TaskNode]

    def children(self) -> dict[str | None, list[TaskNode]]:
        """Each node under its parent; a node whose parent is not in this tree (work another
        fleet device placed here) is a root of it."""
        ids = {node.task_id for node in self.tasks}
        kids: dict[str | None, list[TaskNode]] = defaultdict(list)
        for node in self.tasks:
            kids[node.parent_task_id if node.parent_task_id in ids else None].append(node)
        return kids

    @property
    def roots(self) -> list[TaskNode]:
        return self.children().get(None, [])


_encode = msgspec.json.encode


class TaskGraph:
    def __init__(self, store: Store) -> None:
        self._store = store

    # -- recording (never blocks: rows go to the store's write-behind buffer) --------------

    def record_job(self, rec: JobSubmitted, *, table: str = "jobs") -> None:
        self._store.append(
            table, (rec.job_id, rec.command_id, rec.command, int(rec.autonomous), rec.at)
        )

    def record_foreign(self, rec: RecordEvent, device: str) -> None:
        """Another fleet device's record, kept beside this one's: its tasks marked with the
        device that ran them; what this device already holds stays as it is."""
        if type(rec) is JobSubmitted:
            self.record_job(rec, table="foreign_jobs")
        elif type(rec) is TaskSpawned:
            ran_on = rec.device or device
            self.record_spawn(msgspec.structs.replace(rec, device=ran_on), table="foreign_tasks")
        else:
            self.record(rec)  # type: ignore[arg-type]

    def record_spawn(
        self, rec: TaskSpawned, start: bytes | None = None, *, table: str = "tasks"
    ) -> None:
        self._store.append(
            table,
            (
                rec.task_id,
                rec.job_id,
                rec.agent_type,
                rec.parent_task_id,
                rec.parent_agent,
                rec.objective,
                int(rec.autonomous),
                rec.at,
                start.decode() if start is not None else None,
                rec.device,
            ),
        )

    def record(self, rec: JournalRecord) -> None:
        """Append any record with ``job_id``/``task_id`` fields to the journal."""
        self._store.append(
            "journal",
            (rec.at, rec.__struct_config__.tag, rec.job_id, rec.task_id, _encode(rec).decode()),
        )

    # -- queries --------------------------------------------------------------------------

    async def tree(self, job_id: str) -> JobTree:
        return await self._store.read(lambda db: _load_tree(db, job_id))

    async def chain(self, task_id: str) -> tuple[JobTree, list[TaskNode]]:
        """The task and its ancestors, the task first, ending at the job's root task."""
        return await self._store.read(lambda db: _load_chain(db, task_id))

    async def command_of(self, job_id: str) -> str | None:
        """The job's command, if the job is recorded (committed) here."""
        row = await self._store.read(
            lambda db: db.execute("SELECT command FROM jobs WHERE job_id = ?", [job_id]).fetchone()
        )
        return str(row[0]) if row is not None else None

    async def has_job(self, job_id: str) -> bool:
        return await self._store.read(
            lambda db: (
                db.execute("SELECT 1 FROM jobs WHERE job_id = ?", [job_id]).fetchone() is not None
            )
        )

    async def jobs(self, limit: int = 50) -> list[dict[str, Any]]:
        return await self._store.read(
            lambda db: list(
                db.query("SELECT * FROM jobs ORDER BY created_at DESC, rowid DESC LIMIT ?", [limit])
            )
        )

    async def recent(
        self,
        limit: int,
        *,
        job_id: str | None = None,
        task_id: str | None = None,
        kinds: Iterable[str] | None = None,
    ) -> list[dict[str, Any]]:
        """The newest records (spawns from the tasks table, the rest from the journal) as
        their JSON bodies, oldest first: what a live view shows before its stream begins."""
        wanted = list(kinds) if kinds is not None else None

        def load(db: Any) -> list[dict[str, Any]]:
            where, args = _where(job_id, task_id)
            out: list[tuple[float, dict[str, Any]]] = []
            if wanted is None or "task.spawned" in wanted:
                rows = db.query(
                    f"SELECT * FROM tasks {where} ORDER BY created_at DESC LIMIT ?",
                    [*args, limit],
                )
                out += [(r["created_at"], _spawn_body(r)) for r in rows]
            journal_kinds = [k for k in wanted or [] if k != "task.spawned"]
            if wanted is None or journal_kinds:
                kind_filter = ""
                if wanted is not None:
                    marks = ",".join("?" * len(journal_kinds))
                    kind_filter = f"{'AND' if where else 'WHERE'} kind IN ({marks})"
                rows = db.query(
                    f"SELECT at, body FROM journal {where} {kind_filter} ORDER BY seq DESC LIMIT ?",
                    [*args, *journal_kinds, limit],
                )
                out += [(r["at"], _without_result(r["body"])) for r in rows]
            out.sort(key=lambda pair: pair[0])
            return [body for _, body in out[-limit:]]

        return await self._store.read(load)

    async def recent_trees(self, limit: int = 50) -> list[JobTree]:
        """The newest jobs' trees, newest first, in one trip to the store's thread."""

        def load(db: Any) -> list[JobTree]:
            rows = db.query(
                "SELECT job_id FROM jobs ORDER BY created_at DESC, rowid DESC LIMIT ?", [limit]
            )
            return [_load_tree(db, r["job_id"]) for r in list(rows)]

        return await self._store.read(load)

    async def results(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        exclude_job: str | None = None,
        limit: int = 20,
    ) -> list[JobResult]:
        """Finished jobs' answers (their root task's result), newest first: what a later
        job reads when a command refers to earlier work ("the scan results from this
        morning", "the last job")."""
        return await self._store.read(
            lambda db: _load_results(db, since, until, exclude_job, limit)
        )

    async def unfinished(self) -> list[UnfinishedTask]:
        """Tasks of jobs whose root never ended: what a restarted appliance resumes."""
        return await self._store.read(_load_unfinished)

    async def failures(self, job_id: str) -> list[HandlerCrashed]:
        rows = await self._store.read(
            lambda db: list(
                db.query(
                    "SELECT body FROM journal WHERE job_id = ? AND kind = 'handler.crashed' "
                    "ORDER BY seq",
                    [job_id],
                )
            )
        )
        return [msgspec.json.decode(r["body"], type=HandlerCrashed) for r in rows]

    async def trigger(self, job_id: str) -> JobTriggered | None:
        """The task that started an autonomous job on its own account, and what it reacted
        to (a ``job.triggered`` record); None for a job something else started."""
        return await first_record(self._store, job_id, JobTriggered)


R = TypeVar("R", bound=msgspec.Struct)


async def first_record(store: Store, job_id: str, kind: type[R]) -> R | None:
    """The job's first journal record of this type (``job.triggered``, ``schedule.fired``):
    what links a job to whatever started it."""
    tag = kind.__struct_config__.tag
    rows = await store.read(
        lambda db: db.execute(
            "SELECT body FROM journal WHERE job_id = ? AND kind = ? ORDER BY seq LIMIT 1",
            [job_id, tag],
        ).fetchall()
    )
    return msgspec.json.decode(rows[0][0], type=kind) if rows else None


class JobResult(msgspec.Struct, frozen=True):
    """A finished job's answer, as stored: the root task's result in its JSON form."""

    job_id: str
    command: str
    agent_type: str
    created_at: float
    result: Any


def _load_results(
    db: Any, since: float | None, until: float | None, exclude: str | None, limit: int
) -> list[JobResult]:
    rows = db.query(
        """SELECT j.job_id, j.command, j.created_at, t.agent_type, s.body FROM jobs j
           JOIN tasks t ON t.job_id = j.job_id AND t.parent_task_id IS NULL
           JOIN journal s ON s.task_id = t.task_id AND s.kind = 'task.status'
           WHERE json_extract(s.body, '$.status') = 'done'
             AND j.created_at >= ? AND j.created_at < ? AND j.job_id != ?
           ORDER BY j.created_at DESC, j.rowid DESC LIMIT ?""",
        [
            since if since is not None else float("-inf"),
            until if until is not None else float("inf"),
            exclude or "",
            limit,
        ],
    )
    return [
        JobResult(
            job_id=r["job_id"],
            command=r["command"],
            agent_type=r["agent_type"],
            created_at=r["created_at"],
            result=json.loads(r["body"]).get("result"),
        )
        for r in rows
    ]


class UnfinishedTask(msgspec.Struct, frozen=True):
    task_id: str
    job_id: str
    command_id: str
    agent_type: str
    objective: str
    is_root: bool
    autonomous: bool
    start: str | None
    states: dict[str, bytes]  # job_id -> last committed state (JSON)


def _load_unfinished(db: Any) -> list[UnfinishedTask]:
    rows = db.query(
        """SELECT t.*, j.command_id FROM tasks t JOIN jobs j USING (job_id)
           WHERE NOT EXISTS (
               SELECT 1 FROM journal s WHERE s.task_id = t.task_id AND s.kind = 'task.status'
               AND json_extract(s.body, '$.status') IN ('done', 'failed', 'cancelled'))
           ORDER BY t.created_at, t.rowid"""
    )
    found = []
    for r in rows:
        states = {
            s["job_id"]: s["state"]
            for s in db.query("SELECT job_id, state FROM states WHERE task_id = ?", [r["task_id"]])
        }
        found.append(
            UnfinishedTask(
                task_id=r["task_id"],
                job_id=r["job_id"],
                command_id=r["command_id"],
                agent_type=r["agent_type"],
                objective=r["objective"],
                is_root=r["parent_task_id"] is None,
                autonomous=bool(r["autonomous"]),
                start=r["start"],
                states=states,
            )
        )
    return found


def _status_of(db: Any, where: str, arg: str) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for row in db.query(
        f"SELECT task_id, body FROM journal WHERE {where} AND kind = 'task.status' ORDER BY seq",
        [arg],
    ):
        latest[row["task_id"]] = json.loads(row["body"])
    return latest


def _node(row: dict[str, Any], status: dict[str, Any] | None) -> TaskNode:
    status = status or {}
    return TaskNode(
        task_id=row["task_id"],
        job_id=row["job_id"],
        agent_type=row["agent_type"],
        objective=row["objective"],
        parent_task_id=row["parent_task_id"],
        parent_agent=row["parent_agent"],
        autonomous=bool(row["autonomous"]),
        created_at=row["created_at"],
        status=status.get("status", "running"),
        result=status.get("result"),
        detail=status.get("detail", ""),
        device=row.get("device"),
    )


def _where(job_id: str | None, task_id: str | None) -> tuple[str, list[str]]:
    clauses, args = [], []
    for column, value in (("job_id", job_id), ("task_id", task_id)):
        if value is not None:
            clauses.append(f"{column} = ?")
            args.append(value)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), args


def _without_result(body: str) -> dict[str, Any]:
    """A record's body less a task's result (a whole scan's, perhaps): a view of events
    shows that a task ended, and its page the result."""
    decoded: dict[str, Any] = msgspec.json.decode(body)
    decoded.pop("result", None)
    return decoded


def _spawn_body(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "task.spawned",
        "job_id": row["job_id"],
        "task_id": row["task_id"],
        "agent_type": row["agent_type"],
        "parent_task_id": row["parent_task_id"],
        "parent_agent": row["parent_agent"],
        "objective": row["objective"],
        "autonomous": bool(row["autonomous"]),
        "device": row.get("device"),
        "at": row["created_at"],
    }


def _load_tree(db: Any, job_id: str) -> JobTree:
    jobs = list(db.query("SELECT * FROM jobs WHERE job_id = ?", [job_id]))
    if not jobs:
        raise UnknownJob(f"no job {job_id!r}")
    job = jobs[0]
    status = _status_of(db, "job_id = ?", job_id)
    rows = db.query("SELECT * FROM tasks WHERE job_id = ? ORDER BY created_at, rowid", [job_id])
    return JobTree(
        job_id=job_id,
        command_id=job["command_id"],
        command=job["command"],
        autonomous=bool(job["autonomous"]),
        created_at=job["created_at"],
        tasks=[_node(r, status.get(r["task_id"])) for r in rows],
    )


def _load_chain(db: Any, task_id: str) -> tuple[JobTree, list[TaskNode]]:
    rows = list(
        db.query(
            """WITH RECURSIVE up(task_id, depth) AS (
               SELECT task_id, 0 FROM tasks WHERE task_id = ?
               UNION ALL
               SELECT t.parent_task_id, up.depth + 1 FROM tasks t JOIN up USING (task_id)
               WHERE t.parent_task_id IS NOT NULL AND up.depth < 10000)
           SELECT tasks.* FROM up JOIN tasks USING (task_id) ORDER BY up.depth""",
            [task_id],
        )
    )
    if not rows:
        raise UnknownTask(f"no task {task_id!r} was ever spawned")
    tree = _load_tree(db, rows[0]["job_id"])
    by_id = {n.task_id: n for n in tree.tasks}
    return tree, [by_id[r["task_id"]] for r in rows]


def render_tree(tree: JobTree, *, with_status: bool = False) -> str:
    """The job's tree as text, one line per instance: short enough to read on a console.

    Instances are numbered per agent type in spawn order (``Analyzer-3``); each line names the
    task, its parent, and, after ``//``, what it was asked to do.
    """
    head = "Autonomous" if tree.autonomous else "User Command"
    lines = [f'{head}: "{tree.command}"']
    kids = tree.children()
    numbers: dict[str, int] = defaultdict(int)
    label: dict[str, str] = {}
    for node in tree.tasks:  # spawn order: numbering follows it
        numbers[node.agent_type] += 1
        label[node.task_id] = f"{_title(node.agent_type)}-{numbers[node.agent_type]}"

    def walk(node: TaskNode, prefix: str, last: bool, root: bool) -> None:
        branch = "└── " if last else "├── "
        if root:
            text = f"{_title(node.agent_type)} ({node.task_id})"
        else:
            text = f"{label[node.task_id]} ({node.task_id}, parent: {node.parent_task_id})"
        if node.device:
            text += f" @{node.device}"
        if node.objective and not root:
            text += f" // {node.objective}"
        if with_status:
            text += f" [{node.status}]"
        lines.append(prefix + branch + text)
        children = kids.get(node.task_id, [])
        for i, child in enumerate(children):
            walk(child, prefix + ("    " if last else "│   "), i == len(children) - 1, False)

    roots = kids.get(None, [])
    for i, root in enumerate(roots):
        walk(root, "  ", i == len(roots) - 1, True)
    return "\n".join(lines)


def render_chain(chain: list[TaskNode], command: str) -> str:
    """A task and every ancestor up to the command, one per line, the command last."""
    lines = [
        f"{_title(n.agent_type)} ({n.task_id}){f' @{n.device}' if n.device else ''} "
        f"// {n.objective} [{n.status}]"
        for n in chain
    ]
    root = chain[-1]
    lines.append(("Autonomous" if root.autonomous else "User Command") + f': "{command}"')
    return "\n  ← ".join(lines)


def _title(agent_type: str) -> str:
    return agent_type.replace("_", " ").title().replace(" ", "")
