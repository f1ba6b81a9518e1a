"""What a plan's step hands the agent type that takes it: typed parameters and the typed
results of the steps it waited for (or of earlier jobs it refers to).

It lives in the runtime because ``Agent.start_for_step`` takes it: any agent type, built in
or registered at run time, can be a plan's step without knowing the planner.
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

import msgspec

Severity: TypeAlias = Literal["info", "low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "low", "medium", "high", "critical")


class TimeWindow(msgspec.Struct, frozen=True, kw_only=True):
    """A span of wall time (epoch seconds, ``start <= t < end``) a command refers to, e.g.
    "this morning" or "last week", with the words that named it."""

    phrase: str
    start: float
    end: float


class StepParams(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The parameters the planner found in a step's clause, validated: targets are in the
    scope, ports within 1-65535. Empty means "not named" (the type's own default)."""

    targets: list[str] = []
    ports: list[int] = []
    severity: Severity | None = None  # at or above this severity only ("only critical ones")
    window: TimeWindow | None = None  # earlier jobs' results from this span
    latest: bool = False  # the latest earlier job's results ("the last scan")
    recipients: list[str] = []


class StepInput(msgspec.Struct, frozen=True, kw_only=True):
    """One result a step reads: a step of the same plan (``source`` is its id) or an earlier
    job (``source`` is ``job:<id>``). ``result`` is the producing task's result: the object
    itself when live, its JSON form when read from the store; read it with
    ``msgspec.convert(msgspec.to_builtins(result), YourType)``."""

    source: str
    agent_type: str
    result: Any = None
    at: float = 0.0
