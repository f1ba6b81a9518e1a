"""Actions on disk: a table in the appliance's own database (WAL, ``synchronous=FULL``),
beside the jobs that asked for them, so a pending approval, an applied block and its undo
survive a restart and a power cut. Rows change state in place (pending, then applied,
rejected, expired or failed; applied, then undone); the graph keeps the history as
``action.decided`` records.

Reached only through the Store's worker thread: the methods are synchronous and safe from
any thread (async callers use ``asyncio.to_thread``)."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from appliance.actions.model import AnyAction, decode_action, encode_action
from appliance.errors import UnknownAction
from appliance.runtime import Store

State = Literal["pending", "applied", "rejected", "expired", "failed", "undone"]
Approval = Literal["none", "admin", "vote"]

_SCHEMA = """CREATE TABLE IF NOT EXISTS actions (
    id TEXT PRIMARY KEY,
    action TEXT NOT NULL,
    state TEXT NOT NULL,
    approval TEXT NOT NULL,
    job_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    agent_type TEXT NOT NULL,
    requested_at REAL NOT NULL,
    deadline REAL,
    decided_at REAL,
    decided_by TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT ''
)"""
_COLUMNS = (
    "id, action, state, approval, job_id, task_id, agent_type, requested_at, deadline, "
    "decided_at, decided_by, detail"
)


class ActionRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One action, as stored and as the API, the CLI and the panel show it."""

    id: str
    action: AnyAction
    what: str  # the action for people ("block 127.0.0.3")
    destructive: bool
    state: State
    approval: Approval  # what it waits for: nothing, an admin's yes, or a vote of analyzers
    job_id: str
    task_id: str
    agent_type: str
    requested_at: float
    deadline: float | None = None  # a pending approval not decided by then expires
    decided_at: float | None = None
    decided_by: str = ""  # "admin", "policy: not destructive", "deadline", ...
    detail: str = ""  # why it failed, was rejected or expired


class ActionLog:
    """The actions table."""

    def __init__(self, store: Store) -> None:
        self._store = store
        store.read_now(lambda db: db.execute(_SCHEMA))

    def add(
        self,
        action: AnyAction,
        *,
        state: State,
        approval: Approval,
        job_id: str,
        task_id: str,
        agent_type: str,
        now: float,
        deadline: float | None,
        decided_by: str = "",
    ) -> ActionRecord:
        """A new row; an action applied at once (``state`` applied) is decided now, by
        ``decided_by``."""
        import secrets  # here, not at the top: a start does not need it (hashlib, hmac)

        action_id = f"act-{secrets.token_hex(4)}"
        self._write(
            f"INSERT INTO actions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '')",
            (
                action_id,
                encode_action(action).decode(),
                state,
                approval,
                job_id,
                task_id,
                agent_type,
                now,
                deadline,
                now if decided_by else None,
                decided_by,
            ),
        )
        return self.get(action_id)

    def get(self, action_id: str) -> ActionRecord:
        rows = self._query(f"SELECT {_COLUMNS} FROM actions WHERE id = ?", (action_id,))
        if not rows:
            raise UnknownAction(f"no action {action_id!r}")
        return _record(rows[0])

    def records(self, states: tuple[State, ...] = ()) -> list[ActionRecord]:
        """Every action (or those in ``states``), oldest first."""
        where = f" WHERE state IN ({', '.join('?' * len(states))})" if states else ""
        rows = self._query(
            f"SELECT {_COLUMNS} FROM actions{where} ORDER BY requested_at, rowid", states
        )
        return [_record(row) for row in rows]

    def same(self, action: AnyAction) -> ActionRecord | None:
        """The pending or applied action identical to ``action``, if there is one."""
        rows = self._query(
            f"SELECT {_COLUMNS} FROM actions WHERE action = ? AND state IN ('pending', 'applied') "
            "ORDER BY requested_at LIMIT 1",
            (encode_action(action).decode(),),
        )
        return _record(rows[0]) if rows else None

    def move(
        self,
        action_id: str,
        *,
        expected: State,
        to: State,
        now: float,
        by: str,
        detail: str = "",
    ) -> bool:
        """Move an action from ``expected`` to ``to``; False when it was not in ``expected``
        (another decision came first): one decision per action, however many people click."""
        return bool(
            self._write(
                "UPDATE actions SET state = ?, decided_at = ?, decided_by = ?, detail = ? "
                "WHERE id = ? AND state = ?",
                (to, now, by, detail, action_id, expected),
            )
        )

    def overdue(self, now: float) -> list[ActionRecord]:
        rows = self._query(
            f"SELECT {_COLUMNS} FROM actions WHERE state = 'pending' AND deadline <= ? "
            "ORDER BY deadline, rowid",
            (now,),
        )
        return [_record(row) for row in rows]

    def _query(self, sql: str, args: tuple[object, ...]) -> list[Any]:
        return self._store.read_now(lambda db: db.execute(sql, args).fetchall())

    def _write(self, sql: str, args: tuple[object, ...]) -> int:
        """One statement, committed (autocommit, synchronous=FULL) before it returns."""
        return int(self._store.read_now(lambda db: db.execute(sql, args).rowcount))


def _record(row: Any) -> ActionRecord:
    (action_id, body, state, approval, job_id, task_id, agent_type) = row[:7]
    (requested_at, deadline, decided_at, decided_by, detail) = row[7:]
    action = decode_action(body)
    return ActionRecord(
        id=action_id,
        action=action,
        what=action.describe(),
        destructive=action.destructive,
        state=state,
        approval=approval,
        job_id=job_id,
        task_id=task_id,
        agent_type=agent_type,
        requested_at=requested_at,
        deadline=deadline,
        decided_at=decided_at,
        decided_by=decided_by,
        detail=detail,
    )
