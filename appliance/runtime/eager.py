"""Starting a handler eagerly: its first step runs inline, in the caller's turn of the event
loop, and only a handler that really waits gets a Task.

Most handlers finish without waiting (a state update, a reply), and a Task for each would
cost more than the handler. Python 3.12's ``asyncio.eager_task_factory`` does the same for
every Task of a loop; the image runs Debian 12's Python 3.11, so the runtime does it by hand
for handlers, here, and nowhere else. When the image moves to 3.12 or later, this module is
replaced by creating handler Tasks under ``eager_task_factory``.
"""

from __future__ import annotations

import types
from collections.abc import Coroutine, Generator
from typing import Any

FRESH = object()
"""The step of a coroutine that has not run at all (a handler of a type that is not eager)."""


def first_step(coro: Coroutine[Any, Any, Any]) -> tuple[bool, Any]:
    """Run the coroutine to its first wait: ``(True, its result)`` if it ended without
    waiting, else ``(False, what it waits on)`` to hand to ``resume``. Whatever it raised in
    that step is raised here. A tuple, not an exception, for the common end: this is the
    runtime's hot path."""
    try:
        return False, coro.send(None)
    except StopIteration as done:
        return True, done.value


@types.coroutine
def resume(coro: Coroutine[Any, Any, Any], step: Any) -> Generator[Any, Any, Any]:
    """Drive a coroutine to its end from inside a Task, from the step ``first_step`` left it
    at (or from the start, for ``FRESH``): ``yield from`` for a coroutine whose first step ran
    inline. Values, exceptions and cancellation pass through unchanged."""
    if step is FRESH:
        return (yield from coro.__await__())
    while True:
        try:
            value = yield step
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:
            try:
                step = coro.throw(exc)
            except StopIteration as done:
                return done.value
            continue
        try:
            step = coro.send(value)
        except StopIteration as done:
            return done.value
