"""Starting a handler eagerly: its first step runs inline, in the caller's turn of the event
loop, and only a handler that really waits gets a Task.

Most handlers finish without waiting (a state update, a reply), and a Task for each would
cost more than the handler. Python 3.12's ``asyncio.eager_task_factory`` does the same for
every Task of a loop; the image runs Debian 12's Python 3.11, so the runtime does it by hand
for handlers, here, and nowhere else. When the image moves to 3.12 or later, this module is
replaced by creating handler Tasks under ``eager_task_factory``.

Why a driver: stepping a coroutine with ``coro.send(None)`` makes its end an exception
(``StopIteration``), raised and caught for every handler that returns: more than half the
cost of starting one. A generator that ``yield from``s the handler learns of its end without
one, the way an ``await`` does; the ``Starter`` keeps one such driver and hands it each
handler in turn. A handler that waits takes the driver with it (``detach``); one that raises
ends it. Either way the starter makes a new one.
"""

from __future__ import annotations

import types
from collections.abc import Awaitable, Generator
from typing import Any, cast

DONE = object()
"""What ``Starter.send`` returns when the handler ended in its first step: its return value
is then in ``Starter.box[0]``."""


class Starter:
    """The runtime's one driver of handlers' first steps.

    ``send(coro)`` runs ``coro`` to its first wait and returns ``DONE`` if it ended (its
    value in ``box[0]``), else what it waits on: hand that to ``detach`` at once, before the
    next ``send``. Whatever the coroutine raised in that step is raised by ``send``, after
    which ``renew`` must be called (the error ended the driver). Never re-entered: a handler
    that asks for another handler to start while its own first step runs (a request) finds
    the starter ``busy``, and that one is queued instead.
    """

    __slots__ = ("_driver", "box", "send")

    def __init__(self) -> None:
        self.renew()

    def renew(self) -> None:
        """A fresh driver: the old one is spent (its handler raised) or taken (it waits)."""
        box: list[Any] = [None]
        driver = _drive(box)
        driver.send(None)  # to its first yield, where it takes a coroutine
        # a generator object: ``busy`` reads its gi_running, which the Generator type lacks
        self._driver = cast("types.GeneratorType[Any, Any, None]", driver)
        self.box = box
        self.send = driver.send

    @property
    def busy(self) -> bool:
        """A handler's first step is running in this starter now."""
        return self._driver.gi_running

    def detach(self, step: Any) -> Awaitable[Any]:
        """The waiting handler ``send`` just left, with its driver, as an awaitable for a
        Task that drives it from ``step`` to its end; this starter goes on with a new one."""
        driver, box = self._driver, self.box
        self.renew()
        # awaitable: types.coroutine marks the generator so, which mypy does not see
        return cast(Awaitable[Any], _resume(driver, box, step))


@types.coroutine
def _drive(box: list[Any]) -> Generator[Any, Any, None]:
    coro = yield
    while True:
        box[0] = yield from coro
        coro = yield DONE


@types.coroutine
def _resume(
    driver: Generator[Any, Any, None], box: list[Any], step: Any
) -> Generator[Any, Any, Any]:
    """Drive a detached driver, and the handler inside it, to the handler's end, from inside a
    Task. Values, exceptions and cancellation pass through unchanged, as under ``await``."""
    while True:
        try:
            value = yield step
        except GeneratorExit:
            driver.close()
            raise
        except BaseException as exc:
            step = driver.throw(exc)
        else:
            step = driver.send(value)
        if step is DONE:
            return box[0]
