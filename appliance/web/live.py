"""Live events over a WebSocket, filtered by job, agent type, task and event kind.

``GET /api/v1/live?job_id=&agent_type=&task_id=&kinds=a,b&traffic=1&backlog=N`` upgrades to
a WebSocket that sends JSON text frames ``{"events": [...], "dropped": n}``; with ``backlog``
the first frame holds the newest N records already in the graph (``"backlog": true``). Events are
batched: whatever the watch holds goes out in one message (up to ``BATCH``), and a message
waits at most ``FLUSH_S`` to fill, so a flood costs few frames and a trickle little latency.
The runtime never waits for a slow browser: its watch is bounded and drops the oldest,
counted in ``dropped``. A stream ends with the session that opened it (close code 1008).
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from aiohttp import WSCloseCode, WSMsgType, web

from appliance.errors import BadCommand
from appliance.events import Envelope, TaskRef, TypeRef
from appliance.runtime import Runtime, Watch
from appliance.web.keys import RUNTIME, SESSION, SESSIONS
from appliance.web.sessions import Sessions

BATCH = 500
FLUSH_S = 0.05
WATCH_LIMIT = 5000
MAX_BACKLOG = 500


class _Stop(Exception):
    """The browser went away: leave the TaskGroup (3.11 has no TaskGroup.cancel())."""


class _SessionEnded(_Stop):
    """The session that opened the stream ended: close it, saying so."""


class LiveFilter(msgspec.Struct, frozen=True):
    job_id: str | None = None
    agent_type: str | None = None
    task_id: str | None = None

    def accepts(self, env: Envelope[Any]) -> bool:
        if self.agent_type is not None and self.agent_type not in _agent_types(env):
            return False
        return self.task_id is None or self.task_id in _task_ids(env)


def _agent_types(env: Envelope[Any]) -> tuple[str | None, ...]:
    target = env.target
    of_target = target.agent_type if isinstance(target, TaskRef | TypeRef) else None
    return (getattr(env.event, "agent_type", None), of_target, env.caller_agent)


def _task_ids(env: Envelope[Any]) -> tuple[str | None, ...]:
    target = env.target
    of_target = target.task_id if isinstance(target, TaskRef) else None
    return (getattr(env.event, "task_id", None), of_target, env.caller_task_id)


def _param(request: web.Request, name: str) -> str | None:
    value = request.query.get(name, "").strip()
    if len(value) > 200:
        raise BadCommand(f"{name} is too long")
    return value or None


async def live(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME]
    kinds_param = _param(request, "kinds")
    kinds = [k for k in kinds_param.split(",") if k] if kinds_param else None
    wanted = LiveFilter(
        _param(request, "job_id"), _param(request, "agent_type"), _param(request, "task_id")
    )
    traffic = request.query.get("traffic", "") in ("1", "true", "yes")
    backlog = _backlog(request)
    session = request[SESSION]
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=4096)
    await ws.prepare(request)
    code, why = WSCloseCode.OK, b""
    with runtime.watch(
        job_id=wanted.job_id, kinds=kinds, traffic=traffic, limit=WATCH_LIMIT
    ) as watch:
        try:
            if backlog:  # what already happened first; the watch holds what happens meanwhile
                await _send_backlog(ws, runtime, wanted, kinds, backlog)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(_pump(ws, watch, wanted))
                tg.create_task(_while_signed_in(request.app[SESSIONS], session.key))
                async for msg in ws:  # the browser says nothing; this notices it leave
                    if msg.type == WSMsgType.ERROR:
                        break
                raise _Stop
        except* _SessionEnded:
            code, why = WSCloseCode.POLICY_VIOLATION, b"the session ended: sign in again"
        except* _Stop:
            pass
        except* (ConnectionResetError, ConnectionError):
            pass
    await ws.close(code=code, message=why)
    return ws


def _backlog(request: web.Request) -> int:
    raw = request.query.get("backlog", "0")
    if not raw.isdigit() or int(raw) > MAX_BACKLOG:
        raise BadCommand(f"backlog must be a whole number of records up to {MAX_BACKLOG}")
    return int(raw)


async def _send_backlog(
    ws: web.WebSocketResponse,
    runtime: Runtime,
    wanted: LiveFilter,
    kinds: list[str] | None,
    limit: int,
) -> None:
    """The newest records the graph holds for this filter, oldest first, as one message
    marked ``backlog`` (a view opened late is not empty; delivered traffic is not kept)."""
    bodies = await runtime.graph.recent(
        limit, job_id=wanted.job_id, task_id=wanted.task_id, kinds=kinds
    )
    events = [
        {"job_id": body.get("job_id"), "target": "", "event": body}
        for body in bodies
        if wanted.agent_type is None or body.get("agent_type") == wanted.agent_type
    ]
    await ws.send_str(
        msgspec.json.encode({"events": events, "dropped": 0, "backlog": True}).decode()
    )


async def _while_signed_in(sessions: Sessions, key: str) -> None:
    """A stream lives no longer than its session: signing out, a password change, the
    console's reset or expiry closes it."""
    await sessions.wait_ended(key)
    raise _SessionEnded


async def _pump(ws: web.WebSocketResponse, watch: Watch, wanted: LiveFilter) -> None:
    encode = msgspec.json.Encoder().encode
    while True:
        try:
            batch = [await watch.next()]
        except StopAsyncIteration:
            raise _Stop from None  # the runtime stopped
        try:
            async with asyncio.timeout(FLUSH_S):
                while len(batch) < BATCH:
                    batch.append(await watch.next())
        except (TimeoutError, StopAsyncIteration):
            pass
        events = [
            {"job_id": env.job.job_id, "target": str(env.target), "event": env.event}
            for env in batch
            if wanted.accepts(env)
        ]
        if events:
            await ws.send_str(encode({"events": events, "dropped": watch.dropped}).decode())
