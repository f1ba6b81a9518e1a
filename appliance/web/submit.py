"""The app's submit, as the web layer sees it (web/ knows nothing of the router)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec

from appliance.events import JobContext, TaskRef

Submit = Callable[[str, str | None], Awaitable[tuple[JobContext, TaskRef, msgspec.Struct | None]]]
"""Start a job for a command (agent type or None for the router's pick): the job, its root
task and, when the router chose the agent type, its decision."""
