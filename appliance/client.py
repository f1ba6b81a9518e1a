"""A client of the running appliance's control socket, for the CLI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp
import msgspec

from appliance.actions.store import ActionRecord
from appliance.errors import ApplianceError, Refused
from appliance.fleet.status import FleetStatus
from appliance.schedules.store import ScheduleRecord
from appliance.web.views import JobAccepted, JobView


class NotRunning(ApplianceError):
    """No appliance answers on the control socket."""


class ApiError(msgspec.Struct):
    """The API's answer to bad input (``errors_as_json``)."""

    error: str
    message: str


class ControlClient:
    def __init__(self, socket: Path) -> None:
        self._socket = socket
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ControlClient:
        if not self._socket.exists():
            raise NotRunning(f"no control socket at {self._socket}")
        self._session = aiohttp.ClientSession(
            connector=aiohttp.UnixConnector(path=str(self._socket)),
            timeout=aiohttp.ClientTimeout(total=None, connect=2),
        )
        try:
            async with self._session.get("http://qey/api/v1/agents") as probe:
                probe.raise_for_status()
        except aiohttp.ClientConnectionError as err:
            await self._session.close()
            raise NotRunning(f"nothing answers on {self._socket}: {err}") from None
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()

    async def submit(self, command: str, agent_type: str | None) -> JobAccepted:
        body = msgspec.json.encode({"command": command, "agent_type": agent_type})
        headers = {"Content-Type": "application/json"}
        answer = await self._raw("POST", "/api/v1/jobs", data=body, headers=headers)
        return msgspec.json.decode(answer, type=JobAccepted)

    async def job(self, job_id: str, *, wait: float = 0) -> JobView:
        path = f"/api/v1/jobs/{quote(job_id, safe='')}?wait={wait}"
        return msgspec.json.decode(await self._raw("GET", path), type=JobView)

    async def health(self) -> str:
        """The appliance's overall health ("ok", "degraded", "failed"): the update's gate."""
        answer = msgspec.json.decode(await self._raw("GET", "/api/v1/health"))
        return str(answer.get("health", "unknown"))

    async def fleet(self) -> FleetStatus:
        """The fleet as the running appliance sees it (``enabled`` false on a single one)."""
        return msgspec.json.decode(await self._raw("GET", "/api/v1/fleet"), type=FleetStatus)

    async def set_admin_password(self, password: str) -> None:
        """``qey passwd``: the panel's admin password, set whatever its throttle says."""
        assert self._session is not None
        async with self._session.put(
            "http://qey/api/v1/console/password", json={"password": password}
        ) as resp:
            if resp.status >= 400:
                body = await resp.json(content_type=None)
                raise Refused(body.get("error", ""), body.get("message", f"HTTP {resp.status}"))

    async def schedules(self) -> list[ScheduleRecord]:
        """``qey schedules``: every schedule the appliance keeps."""
        body = await self._raw("GET", "/api/v1/schedules")
        return msgspec.json.decode(body, type=list[ScheduleRecord])

    async def change_schedule(self, schedule_id: str, action: str) -> ScheduleRecord | None:
        """Pause, resume (the schedule as it is now) or delete (None) one schedule."""
        path = f"/api/v1/schedules/{quote(schedule_id, safe='')}"
        if action == "delete":
            await self._raw("DELETE", path)
            return None
        return msgspec.json.decode(await self._raw("POST", f"{path}/{action}"), type=ScheduleRecord)

    async def actions(self, states: tuple[str, ...] = ()) -> list[ActionRecord]:
        """``qey actions`` / ``qey approvals``: the actions, or those in ``states``."""
        query = f"?state={','.join(states)}" if states else ""
        return msgspec.json.decode(
            await self._raw("GET", f"/api/v1/actions{query}"), type=list[ActionRecord]
        )

    async def decide_action(self, action_id: str, verb: str) -> ActionRecord:
        """Approve, reject or undo one action; the action as it is afterwards."""
        path = f"/api/v1/actions/{quote(action_id, safe='')}/{verb}"
        return msgspec.json.decode(await self._raw("POST", path), type=ActionRecord)

    async def _raw(self, method: str, path: str, **kw: Any) -> bytes:
        """The body of a 2xx answer, or Refused with the API's error and message."""
        assert self._session is not None
        async with self._session.request(method, f"http://qey{path}", **kw) as resp:
            body = await resp.read()
            if resp.status >= 400:
                try:
                    answer = msgspec.json.decode(body, type=ApiError)
                except msgspec.DecodeError:
                    answer = ApiError("", f"HTTP {resp.status}")
                raise Refused(answer.error, answer.message)
            return body

    async def report(self, job_id: str, fmt: str) -> bytes:
        """``qey report``: the job's findings report in ``fmt``, as the API renders it."""
        return await self._raw("GET", f"/api/v1/jobs/{quote(job_id, safe='')}/report?format={fmt}")

    async def events(self, job_id: str) -> AsyncIterator[dict[str, Any]]:
        assert self._session is not None
        async with self._session.get(f"http://qey/api/v1/jobs/{job_id}/events") as resp:
            async for line in resp.content:
                if line.strip():
                    yield msgspec.json.decode(line)
