"""Stopping tasks for good: cancel them, and cancel again any that carried on.

On Python 3.11 (Debian 12's, so the image's) a cancellation can be lost: ``asyncio.wait_for``
returns the awaited result, as if nothing had happened, when the cancellation arrives in the
same turn of the loop as that result (python/cpython#86296; 3.12 rewrote ``wait_for`` on
``asyncio.timeout`` and fixed it). The task carries on, usually to its next wait, and whoever
waits for it to end waits for ever. The NATS client awaits through ``wait_for`` in every
request and publish, so a fleet link's tasks can lose the cancellation that stops them: a
test's device hung so, stopping, with its broker's reply to a publish arriving as it was
cancelled. Our own code uses ``asyncio.timeout``, which does not lose one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

AGAIN_S = 0.5  # how long a cancelled task has to end before it is cancelled again


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]], *, again_s: float = AGAIN_S) -> None:
    """Cancel ``tasks`` and return once every one has ended, cancelling again, each
    ``again_s``, any still running. What they raised is retrieved, not raised: they were
    being stopped."""
    tasks = list(tasks)
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=again_s)
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved: asyncio logs an exception nobody asked for
