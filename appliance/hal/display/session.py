"""Numbers for names, per connection: numeric agent and event ids, so a frame on the serial
line carries no strings.

Agent types and event kinds get one-byte ids, jobs and instances two-byte ones, each
announced in a ``Names`` message before the first frame that uses it. The tables live as long
as one connection: a display that reconnects (or says Nack) gets ``reset`` and a fresh start,
so the two ends can never disagree for longer than one frame.
"""

from __future__ import annotations

from appliance.hal.display.budget import COMMAND_BYTES, COMMAND_CHARS, NAME_BYTES, cut
from appliance.hal.display.messages import AgentLine, Frame, Names
from appliance.hal.display.scene import Snapshot

UNKNOWN = 0
"""The id of a name that did not fit in its table (more than 255 agent types or event kinds)."""


class _Table:
    """Names to small numbers from 1; ``limit`` caps them, later names get UNKNOWN."""

    def __init__(self, limit: int) -> None:
        self._ids: dict[str, int] = {}
        self._limit = limit
        self._next = 1

    def id_of(self, name: str, new: list[tuple[int, str]]) -> int:
        found = self._ids.get(name)
        if found is not None:
            return found
        if len(self._ids) >= self._limit:
            return UNKNOWN
        while self._next in self._ids.values() or self._next == UNKNOWN:
            self._next = self._next % self._limit + 1
        number = self._ids[name] = self._next
        self._next = self._next % self._limit + 1
        new.append((number, name))
        return number

    def keep_only(self, names: set[str]) -> None:
        """Forget names no longer shown, so long-lived appliances reuse their numbers."""
        for name in [n for n in self._ids if n not in names]:
            del self._ids[name]


class WireSession:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Start the tables over: the next frame comes with a reset ``Names``."""
        self._agents = _Table(255)
        self._events = _Table(255)
        self._jobs = _Table(0xFFFF)
        self._slots = _Table(0xFFFF)
        self._reset = True

    def encode(self, snapshot: Snapshot, t_ms: int) -> tuple[Names | None, Frame]:
        """The frame for a snapshot, and the Names it needs first (None when none are new)."""
        agents: list[tuple[int, str]] = []
        events: list[tuple[int, str]] = []
        jobs: list[tuple[int, bool, str]] = []
        new_jobs: list[tuple[int, str]] = []
        self._slots.keep_only({v.task_id for v in snapshot.lines})
        self._jobs.keep_only(set(snapshot.jobs))
        unused: list[tuple[int, str]] = []  # slots need no announcement
        lines = []
        for view in snapshot.lines:
            job = self._jobs.id_of(view.job_id, new_jobs)
            lines.append(
                AgentLine(
                    slot=self._slots.id_of(view.task_id, unused),
                    parent=self._slots.id_of(view.parent, unused) if view.parent else 0,
                    job=job,
                    agent=self._agents.id_of(view.agent_type, agents),
                    event=self._events.id_of(view.event, events),
                    status=view.status,
                    hits=min(view.hits, 255),
                )
            )
        for number, job_id in new_jobs:
            info = snapshot.jobs[job_id]
            jobs.append((number, info.autonomous, cut(info.command, COMMAND_BYTES, COMMAND_CHARS)))
        agents = [(number, cut(name, NAME_BYTES)) for number, name in agents]
        events = [(number, cut(name, NAME_BYTES)) for number, name in events]
        frame = Frame(t_ms=t_ms & 0xFFFFFFFF, total=min(snapshot.total, 0xFFFF), lines=lines)
        if not (agents or events or jobs or self._reset):
            return None, frame
        names = Names(reset=self._reset, agents=agents, events=events, jobs=jobs)
        self._reset = False
        return names, frame
