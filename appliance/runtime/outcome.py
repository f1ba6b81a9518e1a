"""How a task ended: what a spawner, a fan-out and a request wait for. Its own module, so
the runtime, contexts, fan-outs and instances all import it without importing each other."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from appliance.events import TaskRef, TaskStatus

T = TypeVar("T")


class TaskOutcome(msgspec.Struct, frozen=True):
    """How a task ended (or that it had not ended by a deadline)."""

    ref: TaskRef
    status: TaskStatus
    result: Any = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "done"

    def result_as(self, type: type[T]) -> T:
        """The result as ``type``: live results are objects already, stored ones are JSON."""
        if isinstance(self.result, type):
            return self.result
        return msgspec.convert(self.result, type)
