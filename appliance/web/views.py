"""The API's answers about jobs as typed records, shared by the server that encodes them and
the CLI's client that decodes them: a renamed field fails mypy or the decoder, not a user.

What a job's result holds depends on the agent type that made it (a scan's report, a plan's
steps), so ``result`` stays plain JSON; the router's decision and the planner's plan come
from their own modules' Structs and cross as JSON objects.
"""

from __future__ import annotations

from typing import Any

import msgspec

from appliance.events import JobTriggered
from appliance.reports import JobOutcome
from appliance.schedules.store import ScheduleRecord


class JobAccepted(msgspec.Struct, frozen=True, kw_only=True):
    """``POST /api/v1/jobs``: the job started for a command."""

    job_id: str
    command_id: str
    task_id: str  # the root task's
    agent_type: str  # the root task's
    route: dict[str, Any] | None = None  # the router's decision; None when the type was named
    plan: dict[str, Any] | None = None  # the planner's plan; None when the type was named
    schedule: ScheduleRecord | None = None  # the schedule the command made, if it made one


class JobView(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /api/v1/jobs/{job_id}``: a job, its root task's end and how the job ended."""

    job_id: str
    command: str
    autonomous: bool
    status: str  # the root task's: running, done, failed, cancelled
    outcome: JobOutcome  # what the command asked, done or not (done, partial, refused, ...)
    result: Any = None  # the root task's answer, as its agent type shapes it
    detail: str = ""
    tasks: int = 0
    # what started it on its own account (an agent's job.triggered link), if it was that
    triggered_by: JobTriggered | None = None
