"""Which error means what, and how long to wait before trying again.

Classification is by exception type (the most specific match wins), so a new error class
gets the right treatment by where it sits in the hierarchy, not by a string in a table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from appliance.errors import ApplianceError, ResourceError, TransientError
from appliance.runtime import Agent, HandlerHung
from appliance.runtime.agent import ErrorClass

if TYPE_CHECKING:
    import random

DEFAULT_CLASSES: Mapping[type[BaseException], ErrorClass] = {
    HandlerHung: "fatal",  # before TimeoutError: a hang says the instance is stuck
    TransientError: "transient",
    ConnectionError: "transient",
    TimeoutError: "transient",
    ResourceError: "resource",
    MemoryError: "resource",
    ApplianceError: "rejected",  # bad input or refused by policy: the instance is fine
    ValueError: "rejected",
    PermissionError: "rejected",
}


def classify(agent: type[Agent], error: BaseException) -> ErrorClass:
    """The agent type's own ``error_classes`` first, then the defaults; else fatal."""
    for table in (agent.error_classes, DEFAULT_CLASSES):
        for cls in type(error).__mro__:
            found = table.get(cls)
            if found is not None:
                return found
    return "fatal"


class Backoff:
    """Exponential backoff with jitter: ``base * 2**(attempt-1)``, capped, times a random
    factor in [0.5, 1], so retries of many instances spread out instead of stampeding."""

    def __init__(
        self,
        *,
        base_s: float = 0.1,
        cap_s: float = 30.0,
        max_attempts: int = 5,
        rng: random.Random | None = None,
    ) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.max_attempts = max_attempts
        if rng is None:
            import random  # here, not at the top: a start does not need it

            rng = random.Random()
        self._rng = rng

    def delay(self, attempt: int) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``; None once attempts are used up."""
        if attempt >= self.max_attempts:
            return None
        raw: float = min(self.cap_s, self.base_s * 2.0 ** (attempt - 1))
        return raw * self._rng.uniform(0.5, 1.0)
